// FrameSend: encoded frames onto a worker socket, through the shim's send calls (which set
// MSG_NOSIGNAL and retry EINTR), gathering a frame's head and a borrowed byte tail in one call.
import CForkShim
import Glibc

/// Sends `head` then `tail` (a frame and, for a large `[UInt8]` payload, the array's own
/// bytes) completely on a blocking socket, retrying EINTR and short writes. Throws on any
/// other error (EPIPE when the peer is gone; never SIGPIPE).
func sendAll(_ fd: CInt, _ head: [UInt8], tail: [UInt8] = []) throws(ForkPoolError) {
    var offset = 0
    while offset < head.count + tail.count {
        let sent = sendSome(fd, head: head, tail: tail, from: offset, nonblocking: false)
        if sent >= 0 {
            offset += sent
        } else if errno == EAGAIN || errno == EWOULDBLOCK {
            // A non-blocking socket (a caller's lane): wait until it takes more.
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = retryingInterrupts { poll(&writable, 1, -1) }
        } else {
            throw ForkPoolError(.systemCallFailed, "send failed", errno: errno)  // EINTR is retried by the shim
        }
    }
}

/// One `send` of what is left of `head` + `tail` from `offset`: a gathering `sendmsg` while
/// part of the head is unsent, so a header and a large payload leave in one call with no copy.
/// Returns the bytes sent or -1 with errno.
func sendSome(_ fd: CInt, head: [UInt8], tail: [UInt8], from offset: Int, nonblocking: Bool) -> Int {
    let flag: CInt = nonblocking ? 1 : 0
    return head.withUnsafeBytes { headBytes in
        tail.withUnsafeBytes { tailBytes in
            if offset < headBytes.count {
                return forkpool_send_two(fd, headBytes.baseAddress! + offset, headBytes.count - offset,
                                         tailBytes.baseAddress, tailBytes.count, flag)
            }
            return forkpool_send(fd, tailBytes.baseAddress! + (offset - headBytes.count), tailBytes.count - (offset - headBytes.count), flag)
        }
    }
}
