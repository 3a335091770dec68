// The fork server's control channel passes descriptors (SCM_RIGHTS). A message whose
// descriptors the kernel truncated (MSG_CTRUNC) must neither be believed nor leak what arrived.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct DescriptorPassingTests {
        /// Sends `bytes` with `fds` attached in one SCM_RIGHTS control message, built by hand
        /// (the CMSG macros are not importable): a 16-byte cmsghdr, then the descriptors.
        func sendRaw(_ socket: CInt, _ bytes: [UInt8], fds: [CInt]) -> Int {
            let header = MemoryLayout<cmsghdr>.size
            var control = [UInt64](repeating: 0, count: (header + fds.count * 4 + 7) / 8)  // 8-byte aligned
            return control.withUnsafeMutableBytes { raw in
                let cmsg = raw.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                cmsg.pointee.cmsg_len = header + fds.count * 4
                cmsg.pointee.cmsg_level = SOL_SOCKET
                cmsg.pointee.cmsg_type = CInt(SCM_RIGHTS)
                for (index, fd) in fds.enumerated() { raw.storeBytes(of: fd, toByteOffset: header + index * 4, as: CInt.self) }
                var payload = bytes
                return payload.withUnsafeMutableBytes { data in
                    var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = raw.baseAddress
                        message.msg_controllen = header + fds.count * 4
                        return sendmsg(socket, &message, 0)
                    }
                }
            }
        }

        /// Receives one message through the shim, with room for four descriptors: the byte count
        /// (or -1), the errno, the bytes and the descriptors that arrived.
        func receive(_ socket: CInt) -> (result: Int, errno: Int32, bytes: [UInt8], fds: [CInt]) {
            var bytes = [UInt8](repeating: 0, count: 16)
            var received: [CInt] = [-1, -1, -1, -1]
            var count: CInt = 0
            let result = bytes.withUnsafeMutableBytes { forkpool_receive_with_fds(socket, $0.baseAddress, $0.count, &received, 4, &count) }
            return (result, errno, bytes, Array(received.prefix(Int(count))))
        }

        /// A seqpacket socketpair (the control channel's kind) and a descriptor to pass over it,
        /// all closed after `body`.
        func withControlPair(_ body: (_ sender: CInt, _ receiver: CInt, _ passed: CInt) throws -> Void) rethrows {
            var pair: [CInt] = [-1, -1]
            #expect(forkpool_seqpacket_pair(&pair) == 0)
            let nullDevice = open("/dev/null", O_RDONLY)
            defer {
                pair.forEach { close($0) }
                close(nullDevice)
            }
            try body(pair[0], pair[1], nullDevice)
        }

        @Test func truncatedDescriptorsAreClosedAndTheMessageRefused() throws {
            withControlPair { sender, receiver, nullDevice in
                let fdsBefore = openFileDescriptorCount()
                // Six descriptors where the receiver has room for four: the kernel truncates.
                #expect(sendRaw(sender, [1, 2, 3], fds: Array(repeating: nullDevice, count: 6)) == 3)
                let received = receive(receiver)
                #expect(received.result == -1)
                #expect(received.errno == EPROTO)
                #expect(received.fds.isEmpty)
                #expect(openFileDescriptorCount() == fdsBefore, "every descriptor that arrived was closed")
            }
        }

        @Test func descriptorsThatFitArriveWithTheirMessage() throws {
            withControlPair { sender, receiver, nullDevice in
                #expect(sendRaw(sender, [9], fds: [nullDevice, nullDevice]) == 1)
                let received = receive(receiver)
                #expect(received.result == 1 && received.bytes[0] == 9)
                #expect(received.fds.count == 2)
                for fd in received.fds {
                    #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
                    close(fd)
                }
            }
        }
    }
}
