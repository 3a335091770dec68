// ForkPoolError: the one error type every ForkPool call throws.
//
// A stable `code` says what kind of failure it was; the optional fields say which task,
// which worker process and which signal or exit status were involved, so an error from a
// dead worker carries its cause (pid + signal) rather than a bare "broken pool".
import CForkShim
import Glibc

/// The error thrown by ``ProcessPool``, ``ThreadPool`` and ``Future``.
public struct ForkPoolError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is. Stable: match on it, not on the message.
    public enum Code: Sendable, Hashable, CaseIterable {
        /// The work function threw; ``ForkPoolError/message`` carries the original description.
        case workFailed
        /// The worker process running the task died (signal or exit).
        case workerDied
        /// `submit` or `map` was called after `shutdown`.
        case poolShutDown
        /// The task was cancelled: dropped before it ran (`Future.cancel()`, `shutdown(cancelPending: true)`,
        /// a cancelled calling `Task`), or stopped while running on a ``ProcessPool`` (its worker killed).
        case cancelled
        /// An input or output could not be encoded.
        case encodingFailed
        /// An input or output could not be decoded.
        case decodingFailed
        /// A frame was longer than `maximumFrameBytes` (a `@_spi(Tuning)` setting).
        case frameTooLarge
        /// A frame had a wrong version, kind or layout.
        case malformedFrame
        /// A system call failed; ``ForkPoolError/errno`` has the error number.
        case systemCallFailed
        /// An argument was out of range (for example zero workers).
        case invalidArgument
        /// The pool cannot serve any more: its workers keep failing to start, or a crash broke
        /// it under ``CrashPolicy/breakPool``.
        case poolBroken
        /// The task ran past its deadline (``ProcessPoolConfiguration/taskTimeout`` or the
        /// `timeout` given to `submit`); its worker was killed and replaced.
        case timedOut
        /// The pool's queue was full (``ProcessPoolConfiguration/maximumQueuedTasks``, or
        /// `ThreadPool`'s `maximumQueuedTasks`): `submit` queued nothing. Try again later, or
        /// use `submitWhenReady`, which waits for room.
        case overloaded
        /// A job pool was handed a job whose type it was not created with; nothing was queued.
        case unknownJob

        /// The code in words, as in `worker died`.
        var words: String {
            switch self {
            case .workFailed: "work failed"
            case .workerDied: "worker died"
            case .poolShutDown: "pool shut down"
            case .cancelled: "cancelled"
            case .encodingFailed: "encoding failed"
            case .decodingFailed: "decoding failed"
            case .frameTooLarge: "frame too large"
            case .malformedFrame: "malformed frame"
            case .systemCallFailed: "system call failed"
            case .invalidArgument: "invalid argument"
            case .poolBroken: "pool broken"
            case .timedOut: "timed out"
            case .overloaded: "overloaded"
            case .unknownJob: "unknown job"
            }
        }
    }

    /// What kind of failure this is.
    public let code: Code
    /// A human-readable explanation; for ``Code/workFailed`` the thrown error's description.
    public let message: String
    /// The id of the task that failed, when the failure belongs to one task.
    public var taskID: UInt64?
    /// The worker process involved, when there is one.
    public var processID: pid_t?
    /// The signal that killed the worker, for ``Code/workerDied``.
    public var signal: Int32?
    /// The worker's exit status, for ``Code/workerDied`` after a normal exit.
    public var exitStatus: Int32?
    /// The C error number, for ``Code/systemCallFailed``.
    public var errno: Int32?
    /// The job that failed (its ``RunnableJob/jobName``), for a task of a job pool.
    public var jobName: String?
    /// The error the work function threw, when it crossed no process boundary (``ThreadPool``).
    /// A ``ProcessPool`` can only carry its description, in ``message``.
    public var underlyingError: (any Error)?

    /// Creates an error. Library users normally only read these.
    @_spi(Integration)
    public init(_ code: Code, _ message: String, taskID: UInt64? = nil, processID: pid_t? = nil,
                signal: Int32? = nil, exitStatus: Int32? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.taskID = taskID
        self.processID = processID
        self.signal = signal
        self.exitStatus = exitStatus
        self.errno = errno
    }

    /// The code, the message and the job, task id and errno when known, as in
    /// `ForkPoolError(worker died): worker process 812 was killed by signal 9 (SIGKILL) … [task 3]`.
    public var description: String {
        var text = "ForkPoolError(\(code.words)): \(message)"
        if let jobName { text += " [job \(jobName)]" }
        if let taskID { text += " [task \(taskID)]" }
        if let errno { text += " [errno \(errno): \(String(cString: strerror(errno)))]" }
        return text
    }

    /// The name of a signal, such as "SIGKILL".
    static func signalName(_ signal: Int32) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { buffer in
            forkpool_signal_name(signal, buffer.baseAddress!, 32)
            return String(cString: buffer.baseAddress!)
        }
    }

    /// A task dropped from the queue by `shutdown(cancelPending: true)`.
    static func cancelledByShutdown(taskID: UInt64) -> ForkPoolError {
        ForkPoolError(.cancelled, "task \(taskID) was cancelled by shutdown", taskID: taskID)
    }

    /// A system call failure, reading `errno` now.
    static func systemCall(_ name: String) -> ForkPoolError {
        let number = Glibc.errno
        return ForkPoolError(.systemCallFailed, "\(name) failed", errno: number)
    }
}

extension ForkPoolError.Code {
    /// The code's stable name: its Swift case name (`"workerDied"`) — the metric dimension and
    /// log value, and what a store of outcomes (a job queue's table) keeps.
    @_spi(Integration)
    public var name: String {
        switch self {
        case .workFailed: "workFailed"
        case .workerDied: "workerDied"
        case .poolShutDown: "poolShutDown"
        case .cancelled: "cancelled"
        case .encodingFailed: "encodingFailed"
        case .decodingFailed: "decodingFailed"
        case .frameTooLarge: "frameTooLarge"
        case .malformedFrame: "malformedFrame"
        case .systemCallFailed: "systemCallFailed"
        case .invalidArgument: "invalidArgument"
        case .poolBroken: "poolBroken"
        case .timedOut: "timedOut"
        case .overloaded: "overloaded"
        case .unknownJob: "unknownJob"
        }
    }

    /// The code whose ``name`` is `name`; nil for a name this version does not know.
    @_spi(Integration)
    public init?(name: String) {
        guard let code = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = code
    }
}
