// FrameSend: encoded frames onto a worker socket through SystemCall.send (MSG_NOSIGNAL,
// EINTR retried), a frame's head and a borrowed byte tail gathered into one call.
import Glibc

/// Sends `head` then `tail` (a frame and, for a large `[UInt8]` payload, the array's own
/// bytes) completely, retrying short writes; on a non-blocking socket (a caller's lane) it
/// polls until the socket takes more. Throws on any other error (EPIPE when the peer is gone;
/// never SIGPIPE).
func sendAll(_ fd: CInt, _ head: [UInt8], tail: [UInt8] = []) throws(ForkPoolError) {
    var offset = 0
    while offset < head.count + tail.count {
        switch sendPart(fd, head: head, tail: tail, from: offset, nonblocking: false) {
        case .transferred(let count):
            offset += count
        case .endOfStream:
            continue
        case .wouldBlock:
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = retryingInterrupts { poll(&writable, 1, -1) }
        case .failed(let number):
            throw ForkPoolError(.systemCallFailed, "send failed", errno: number)
        }
    }
}

/// One send of what is left of `head` + `tail` from `offset`: a gathering `sendmsg` while
/// part of the head is unsent, so a header and a large payload leave in one call with no copy.
func sendPart(_ fd: CInt, head: [UInt8], tail: [UInt8], from offset: Int, nonblocking: Bool) -> IOResult {
    head.withUnsafeBytes { headBytes in
        tail.withUnsafeBytes { tailBytes in
            if offset < headBytes.count {
                return SystemCall.send(fd, head: UnsafeRawBufferPointer(rebasing: headBytes[offset...]), tail: tailBytes,
                                       nonblocking: nonblocking)
            }
            return SystemCall.send(fd, head: UnsafeRawBufferPointer(start: nil, count: 0),
                                   tail: UnsafeRawBufferPointer(rebasing: tailBytes[(offset - headBytes.count)...]),
                                   nonblocking: nonblocking)
        }
    }
}

/// ``sendPart(_:head:tail:from:nonblocking:)`` as a count, for callers that read errno: the
/// bytes sent, or -1 with errno set (EAGAIN when the socket has no room).
func sendSome(_ fd: CInt, head: [UInt8], tail: [UInt8], from offset: Int, nonblocking: Bool) -> Int {
    switch sendPart(fd, head: head, tail: tail, from: offset, nonblocking: nonblocking) {
    case .transferred(let count):
        return count
    case .endOfStream:
        return 0
    case .wouldBlock:
        errno = EAGAIN
        return -1
    case .failed(let number):
        errno = number
        return -1
    }
}
