// ProcessPool: the public face of the multi-process pool — one work function, inherited by
// the workers at fork, over many Codable inputs.
//
//   submit(input) ─ TypedTasks: encode on the caller's thread ─▶ frame ─▶ Dispatcher (queue, or a direct lane)
//   Future<Output> ◀─ decode ◀─ result frame ◀─ worker process (WorkFunctionHandler)
//
// The shared calls (submit, map, results, shutdown) are WorkerPool's (Pool.swift); this type
// creates the engine and adds a deadline per task.
import Glibc

/// A pool of pre-forked worker processes running one function over many inputs — the Swift
/// counterpart of Python's `ProcessPoolExecutor`.
///
/// ```swift
/// let pool = try ProcessPool(workers: 4) { (n: Int) -> Int in fib(n) }
/// let results = try pool.map([30, 31, 32, 33, 34, 35])
/// pool.shutdown()
/// ```
///
/// Each worker is forked by the pool's fork server, itself a `fork` of this process made when
/// the pool is created (so workers see this process's memory as it was then, the work closure
/// and everything it captured included). A worker that crashes, exits or is killed fails only
/// the task it was running (with its pid and signal or exit status) and is replaced; the pool
/// keeps serving. Inputs and outputs cross a private socketpair as compact binary frames: any
/// `Codable & Sendable` type works.
///
/// The work function runs synchronously in the worker: it must not rely on Dispatch queues or
/// Swift concurrency, which do not survive `fork`.
public final class ProcessPool<Input: Codable & Sendable, Output: Codable & Sendable>: WorkerPool, @unchecked Sendable {
    let dispatcher: Dispatcher
    /// Frames in, typed outputs back (the one work function: no job name).
    private let tasks: TypedTasks<Input, Output>
    public let _tasks: any _ValueTasks<Input, Output>
    public var _control: any _PoolControl { dispatcher }

    /// Forks `workers` worker processes that will run `work`, and returns once they are up.
    ///
    /// - Parameters:
    ///   - workers: How many worker processes to keep running (at least one); default: the
    ///     number of online processors.
    ///   - configuration: Limits, time-outs and failure policies; see ``ProcessPoolConfiguration``.
    ///   - work: The function each worker runs on each input. It is inherited by `fork`, never sent.
    /// - Throws: ``ForkPoolError`` with ``ForkPoolError/Code/invalidArgument`` for fewer than one
    ///   worker or a bad setting, ``ForkPoolError/Code/systemCallFailed`` if the fork server
    ///   cannot be started, or ``ForkPoolError/Code/poolBroken`` when workers keep failing to
    ///   start.
    public init(workers: Int = defaultWorkerCount, configuration: ProcessPoolConfiguration = .init(),
                work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) {
        guard workers >= 1 else {
            throw ForkPoolError(.invalidArgument, "a ProcessPool needs at least one worker, not \(workers)")
        }
        try configuration.validate()
        let handler = WorkFunctionHandler(work: work).handle
        let maximumFrameBytes = configuration.maximumFrameBytes
        let initializer = configuration.initializer
        dispatcher = try Dispatcher(settings: .init(workerCount: workers, configuration: configuration)) { socket in
            WorkerLoop.run(socket: socket, maximumFrameBytes: maximumFrameBytes, initializer: initializer, handler: handler)
        }
        tasks = TypedTasks(dispatcher: dispatcher, configuration: configuration, workerCount: workers)
        _tasks = tasks
    }

    deinit {
        dispatcher.shutdown(cancelPending: false)
    }

    /// The pids of the live, ready worker processes (a replacement appears once it is ready).
    @_spi(Testing)
    public var workerProcessIDs: [pid_t] { dispatcher.workerProcessIDs }

    /// The pid of the pool's fork server; nil once the pool has shut down.
    @_spi(Testing)
    public var forkServerProcessID: pid_t? { dispatcher.forkServerProcessID }

    /// Queues one input with a deadline `timeout` from now. If the task has not finished by
    /// then it fails with ``ForkPoolError/Code/timedOut``: dropped if still queued, or its
    /// worker killed (and replaced) if running.
    ///
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for a timeout that is not positive;
    ///   otherwise as ``WorkerPool/submit(_:)``.
    public func submit(_ input: Input, timeout: Duration) throws(ForkPoolError) -> Future<Output> {
        try tasks.submit(input, timeout: timeout)
    }
}
