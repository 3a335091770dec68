// SystemCalls: the one place Swift code retries a system call that a signal interrupted, and
// the wrappers that turn a transfer's `-1` + errno into a value: a socket or eventfd that has
// nothing to give, or no room, is `.wouldBlock`, not an error to catch. (The shim's C calls
// retry EINTR with its RETRY_ON_EINTR macro.) swift-system's FileDescriptor was weighed and
// not used: it has no send/recv with flags (MSG_NOSIGNAL, MSG_DONTWAIT) and throws EAGAIN.
import CForkShim
import Glibc

/// Runs `call` again while it fails with EINTR and returns its last result; on any other
/// failure the result is negative and `errno` says why.
@inline(__always)
func retryingInterrupts<Result: BinaryInteger>(_ call: () -> Result) -> Result {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// What one read, write, send or receive did.
enum IOResult: Equatable {
    /// This many bytes moved (more than 0).
    case transferred(Int)
    /// Nothing to read yet, or no room to write: a non-blocking descriptor would have waited.
    case wouldBlock
    /// A read found the end of the stream.
    case endOfStream
    /// Any other failure, with its errno (EPIPE, ECONNRESET, …).
    case failed(errno: Int32)

    /// The value for a call that returned `count` (errno read now when it is negative).
    @inline(__always)
    init(returned count: Int) {
        if count > 0 {
            self = .transferred(count)
        } else if count == 0 {
            self = .endOfStream
        } else {
            let number = errno
            self = number == EAGAIN || number == EWOULDBLOCK ? .wouldBlock : .failed(errno: number)
        }
    }
}

enum SystemCall {
    /// One `recv` into `space`, retrying EINTR; `wait: false` never blocks (MSG_DONTWAIT).
    @inline(__always)
    static func receive(_ fd: CInt, into space: UnsafeMutableRawBufferPointer, wait: Bool) -> IOResult {
        let flags = wait ? 0 : CInt(MSG_DONTWAIT)
        return IOResult(returned: retryingInterrupts { recv(fd, space.baseAddress, space.count, flags) })
    }

    /// Sleeps until `fd` is readable, has hung up or failed, or `deadline` (monotonic ns; nil:
    /// none) passes — at most a minute, as any `pollTimeout`; whether it is. A signal that interrupts the sleep does not end it, and the
    /// deadline stays where it was. The one way any side here sleeps on a single socket, pidfd or control
    /// descriptor: a unix socket's reader asleep in a blocking `recv` is also woken, and put back
    /// to sleep, each time the peer reads what it sent (the kernel's write-space wake-up), while
    /// `poll` for POLLIN wakes only for data or the end.
    @discardableResult
    static func waitReadable(_ fd: CInt, until deadline: UInt64? = nil) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = retryingInterrupts { poll(&entry, 1, pollTimeout(until: deadline, now: monotonicNanoseconds())) }
        return entry.revents != 0
    }

    /// One `read` into `space`, retrying EINTR.
    @inline(__always)
    static func read(_ fd: CInt, into space: UnsafeMutableRawBufferPointer) -> IOResult {
        IOResult(returned: retryingInterrupts { Glibc.read(fd, space.baseAddress, space.count) })
    }

    /// One `write` of `bytes`, retrying EINTR.
    @inline(__always)
    static func write(_ fd: CInt, _ bytes: UnsafeRawBufferPointer) -> IOResult {
        IOResult(returned: retryingInterrupts { Glibc.write(fd, bytes.baseAddress, bytes.count) })
    }

    /// One `sendmsg` of `head` then `tail` (either may be empty) on a socket: MSG_NOSIGNAL, so
    /// a peer that is gone is `.failed(EPIPE)` rather than SIGPIPE; `nonblocking` adds
    /// MSG_DONTWAIT. EINTR is retried by the shim. (A send of no bytes reports `.endOfStream`.)
    @inline(__always)
    static func send(_ fd: CInt, head: UnsafeRawBufferPointer, tail: UnsafeRawBufferPointer, nonblocking: Bool) -> IOResult {
        let flag: CInt = nonblocking ? 1 : 0
        if head.isEmpty {
            return IOResult(returned: forkpool_send(fd, tail.baseAddress, tail.count, flag))
        }
        return IOResult(returned: forkpool_send_two(fd, head.baseAddress, head.count, tail.baseAddress, tail.count, flag))
    }
}
