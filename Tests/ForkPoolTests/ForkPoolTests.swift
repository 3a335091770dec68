// The root of every suite: serialized, because the process tests count this process's
// children and open file descriptors, which tests running alongside would disturb; and
// hang-guarded: a test still running after 60 s ends the run red (HangGuard.swift).
import CForkShim
import ForkPoolWire
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

@Suite(.serialized, .timeLimit(.minutes(3)), .hangGuard(seconds: 60))
enum ForkPoolTests {}

func fib(_ n: Int) -> Int {
    n < 2 ? n : fib(n - 1) + fib(n - 2)
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
}

/// A task that does what the test tells it, inside the worker.
enum Command: Codable, Sendable {
    case square(Int)
    case fail(String)
    case exit(Int32)
    case segfault
    /// Writes the worker's pid to `fd` (a pipe the test holds), then sleeps `milliseconds`
    /// (forever when negative).
    case reportPID(fd: Int32, sleepMilliseconds: Int)
    /// Writes raw bytes to the worker's own socket as if they were a reply, then sleeps.
    case forgeReply([UInt8])
    /// Writes the worker's pid to `reportFD`, waits for one byte on `gateFD` (a ``Gate``),
    /// then returns `value` (`Int.min` if the gate stayed shut for 60 s).
    case passGate(reportFD: Int32, gateFD: Int32, value: Int)
    /// Returns `value` at once.
    case echo(Int)
    /// Returns the worker's pid.
    case processID
    /// Raises `signal` in the worker, then returns its pid (if it is still alive).
    case raise(Int32)
    /// Sleeps, then returns the worker's pid.
    case sleep(milliseconds: Int)
    /// The first run (no file at `marker`) creates it, reports its pid and hangs; a later run
    /// returns `value`.
    case hangOnce(marker: String, fd: Int32, value: Int)
    /// Forks a grandchild that keeps the worker's socket open; reports the grandchild's pid,
    /// then its own, and hangs.
    case shareSocketWithGrandchild(fd: Int32)
    /// Writes `bytes` to the worker's own socket in one write, then returns `value`.
    case writeThenReturn([UInt8], value: Int)
    /// Waits (up to 2 s) until the next task's frame is in the worker's shared ring, then
    /// sends its own reply (`value`) by hand and exits with status 9 before taking that task;
    /// returns `Int.min` normally if no next task came.
    case replyThenExitBeforeNextTask(value: Int)
    /// Raises the worker's own `asleep` flag (as it does just before it finds a frame after
    /// all), waits until the next task is in its ring (so the pool rang, for nothing), lets the
    /// doorbell land, then returns `value` (`Int.min` if no next task came within 2 s).
    case raiseSleepFlagThenWaitForNextTask(value: Int)
    /// Appends a line to the file at `path`, then the worker dies (status 9).
    case appendLineThenDie(path: String)
}

@Sendable func obey(_ command: Command) throws -> Int {
    switch command {
    case .processID:
        return Int(getpid())
    case .raise(let signal):
        Glibc.raise(signal)
        return Int(getpid())
    case .sleep(let milliseconds):
        usleep(UInt32(milliseconds) * 1000)
        return Int(getpid())
    case .echo(let value):
        return value
    case .hangOnce(let marker, let fd, let value):
        if access(marker, F_OK) == 0 { return value }
        close(open(marker, O_CREAT | O_WRONLY, 0o600))
        var pid = getpid()
        _ = write(fd, &pid, MemoryLayout<pid_t>.size)
        while true { pause() }
    case .shareSocketWithGrandchild(let fd):
        var grandchild = fork()
        if grandchild == 0 { while true { pause() } }
        _ = write(fd, &grandchild, MemoryLayout<pid_t>.size)
        var pid = getpid()
        _ = write(fd, &pid, MemoryLayout<pid_t>.size)
        while true { pause() }
    case .raiseSleepFlagThenWaitForNextTask(let value):
        guard let ring = WorkerLoop.ringInThisWorker else { return Int.min }
        forkpool_ring_store_flag(ring.region + SharedRing.Ring.toWorker.asleep, 1)
        let giveUp = monotonicNanoseconds() + 2_000_000_000
        while !ring.hasIncoming {
            if monotonicNanoseconds() > giveUp { return Int.min }
            usleep(100)
        }
        usleep(20_000)
        return value
    case .appendLineThenDie(let path):
        let fd = open(path, O_CREAT | O_WRONLY | O_APPEND, 0o600)
        _ = "ran\n".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        exitLikeUserCode(9)
    case .replyThenExitBeforeNextTask(let value):
        guard let ring = WorkerLoop.ringInThisWorker else { return Int.min }
        let giveUp = monotonicNanoseconds() + 2_000_000_000
        while !ring.hasIncoming {
            if monotonicNanoseconds() > giveUp { return Int.min }
            usleep(100)
        }
        var reply = FrameHeader.emptyFrame()
        try? PayloadCodec<Int>().encode(value, into: &reply)
        FrameHeader(kind: .result, length: reply.count - FrameHeader.size, taskID: ring.takenTaskID).write(into: &reply)
        WorkerLoop.sendReply(reply)
        exitLikeUserCode(9)
    case .writeThenReturn(let bytes, let value):
        WorkerLoop.forgeFrames(bytes)  // by the worker's transport: its ring, or its socket
        return value
    case .square(let n):
        return n * n
    case .fail(let message):
        throw TestFailure(description: message)
    case .exit(let status):
        exitLikeUserCode(status)
    case .segfault:
        UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = 1
        return -1
    case .reportPID(let fd, let milliseconds):
        var pid = getpid()
        _ = write(fd, &pid, MemoryLayout<pid_t>.size)
        if milliseconds < 0 {
            while true { pause() }
        }
        usleep(UInt32(milliseconds) * 1000)
        return Int(getpid())
    case .passGate(let reportFD, let gateFD, let value):
        var pid = getpid()
        _ = write(reportFD, &pid, MemoryLayout<pid_t>.size)
        // A hang guard: a gate never opened (a bug under test) lets the task go after 60 s
        // with a value no test expects, instead of wedging the test run.
        var entry = pollfd(fd: gateFD, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 60_000) > 0 else { return Int.min }
        var byte: UInt8 = 0
        while read(gateFD, &byte, 1) < 0 && errno == EINTR {}
        return value
    case .forgeReply(let bytes):
        _ = bytes.withUnsafeBytes { write(WorkerLoop.socketInThisWorker, $0.baseAddress, $0.count) }
        while true { pause() }
    }
}

/// Set by `make test-sanitizers` to the sanitizer in use.
let sanitizer = getenv("FORKPOOL_SANITIZER").map { String(cString: $0) }

/// What user code calling `exit(status)` in a worker does. Under a sanitizer, `_exit`
/// instead: the sanitizers' own exit handlers hang or rewrite the status in a forked child
/// of a multi-threaded process. For ForkPool the two are the same event: a worker process
/// that exits with `status` mid-task.
func exitLikeUserCode(_ status: Int32) -> Never {
    if sanitizer != nil { _exit(status) }
    Glibc.exit(status)
}

/// Open file descriptors of this process (less the one listing them).
func openFileDescriptorCount() -> Int {
    directoryEntries("/proc/self/fd").count - 1
}

/// Expects `body` to throw a ForkPoolError and returns it.
/// The ForkPoolError an async body throws; records an issue if it returns or throws another.
func expectAsyncForkPoolError(_ body: () async throws -> Void,
                              sourceLocation: SourceLocation = #_sourceLocation) async -> ForkPoolError? {
    do {
        try await body()
        Issue.record("expected a ForkPoolError, got success", sourceLocation: sourceLocation)
    } catch let error as ForkPoolError {
        return error
    } catch {
        Issue.record("expected a ForkPoolError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func expectForkPoolError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> ForkPoolError? {
    do {
        try body()
        Issue.record("expected a ForkPoolError, got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as ForkPoolError {
        return error
    } catch {
        Issue.record("expected a ForkPoolError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

// MARK: Shared between threads

/// A value set on one thread and read on another.
final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var stored: Value?
    var value: Value? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// A count several threads add to.
final class ConditionLockedCounter: @unchecked Sendable {
    private let lock = ConditionLock()
    private var count = 0
    func add(_ amount: Int) { lock.withLock { count += amount } }
    var value: Int { lock.withLock { count } }
}
