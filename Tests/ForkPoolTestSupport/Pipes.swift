// Pipes a test holds: workers (forked after them) inherit their descriptors, so a task can
// report to the test and wait for it. A gate is how a test decides an ordering: whatever waits
// at it goes on only when the test opens it.
import Glibc

/// A pipe the test holds; workers inherit its descriptors (make it before their pool).
open class TestPipe: @unchecked Sendable {
    public let readEnd: Int32
    public let writeEnd: Int32

    public init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }
}

/// A pipe whose read end yields the pids that tasks write to its write end.
public final class PIDPipe: TestPipe, @unchecked Sendable {
    /// Whether no pid is waiting to be read (none reported since the last `nextPID`).
    public var isEmpty: Bool {
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 0
    }

    /// Blocks until a task reports its pid (bounded by the suite's time limit).
    public func nextPID() -> pid_t {
        var pid: pid_t = 0
        let count = read(readEnd, &pid, MemoryLayout<pid_t>.size)
        precondition(count == MemoryLayout<pid_t>.size)
        return pid
    }

    /// The next reported pid, or nil if none comes within `seconds`.
    public func nextPID(within seconds: Int32) -> pid_t? {
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, seconds * 1000) > 0 ? nextPID() : nil
    }
}

/// A gate: `pass()` (or a worker reading one byte from `readEnd`) waits until the test lets it
/// through; each `open(count)` lets that many through. A thread, a worker process or a signal
/// handler can wait at it (`read` is async-signal-safe). Whatever still waits when the test
/// ends would hold its pool's shutdown: open enough.
public final class Gate: TestPipe, @unchecked Sendable {
    public func open(_ count: Int = 1) {
        let bytes = [UInt8](repeating: 1, count: count)
        precondition(write(writeEnd, bytes, count) == count)
    }

    /// Waits until the gate lets this caller through; false if it stayed shut for `seconds`
    /// (a hang guard, not a timing assertion).
    @discardableResult
    public func pass(within seconds: Int32 = 60) -> Bool {
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&entry, 1, seconds * 1000)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return false }
            var byte: UInt8 = 0
            let count = read(readEnd, &byte, 1)
            if count == 1 { return true }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            return false
        }
    }
}
