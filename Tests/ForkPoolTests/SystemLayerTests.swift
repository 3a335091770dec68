// The system layer under the engine: transfers that report .wouldBlock and failures as values,
// and a pool descriptor that closes (and unregisters) itself when dropped.
import CForkShim
import Glibc
import Testing
@testable import ForkPool

extension ForkPoolTests {
    @Suite struct SystemLayerTests {
        @Test func transfersReportWouldBlockEndOfStreamAndFailuresAsValues() throws {
            var fds: [CInt] = [-1, -1]
            #expect(forkpool_socketpair(&fds) == 0)
            let (ours, peer) = (fds[0], fds[1])
            var space = [UInt8](repeating: 0, count: 16)
            let empty = space.withUnsafeMutableBytes { SystemCall.receive(ours, into: $0, wait: false) }
            #expect(empty == .wouldBlock)

            #expect(sendPart(peer, head: [1, 2, 3], tail: [4, 5], from: 1, nonblocking: true) == .transferred(4))
            let got = space.withUnsafeMutableBytes { SystemCall.receive(ours, into: $0, wait: false) }
            #expect(got == .transferred(4))
            #expect(Array(space.prefix(4)) == [2, 3, 4, 5])

            close(peer)
            let ended = space.withUnsafeMutableBytes { SystemCall.receive(ours, into: $0, wait: false) }
            #expect(ended == .endOfStream)
            // The peer is gone: EPIPE as a value, and no SIGPIPE (MSG_NOSIGNAL).
            #expect(sendPart(ours, head: [1], tail: [], from: 0, nonblocking: true) == .failed(errno: EPIPE))
            close(ours)
        }

        @Test func aDroppedDescriptorIsClosedAndUnregistered() throws {
            let before = PoolDescriptors.count
            var numbers: [CInt] = []
            do {
                let pair = try PoolDescriptors.makeSocketPair()
                numbers = [pair.parent.raw, pair.child.raw]
                #expect(PoolDescriptors.registered.isSuperset(of: numbers))
            }
            #expect(PoolDescriptors.count == before)
            for fd in numbers {
                #expect(!PoolDescriptors.registered.contains(fd))
                #expect(fcntl(fd, F_GETFD) == -1 && errno == EBADF)
            }
        }
    }
}
