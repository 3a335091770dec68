// ProcessPool: the public face of the multi-process pool.
//
//   submit(input) ─ TypedTasks: encode on the caller's thread ─▶ frame ─▶ Dispatcher (queue, or a direct lane)
//        ▲                                                        │
//   Future<Output> ◀─ decode ◀─ result frame ◀─ worker process (WorkFunctionHandler)
//   (decoded by the dispatcher thread, or by the caller that reads a lane reply itself)
//   map(inputs): TypedTasks' chunk frames, at most workers × 4 in flight; replies decoded by the caller
//
// The work function is captured at creation. The dispatcher starts a single-threaded fork
// server right away, which forks the workers; they inherit the function by memory, so
// nothing but inputs and outputs ever crosses a socket.
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
/// the pool is created (so workers see this process's memory as it was then). A worker that
/// crashes, exits or is killed fails only the task it was running (with its pid and signal or
/// exit status) and is replaced; the pool keeps serving. Inputs and outputs cross a private
/// socketpair as compact binary frames: any `Codable & Sendable` type works.
///
/// The work function runs synchronously in the worker: it must not rely on Dispatch queues or
/// Swift concurrency, which do not survive `fork`.
public final class ProcessPool<Input: Codable & Sendable, Output: Codable & Sendable>: WorkerPool, @unchecked Sendable {
    /// The pool's settings: ``ProcessPoolConfiguration`` under a shorter name.
    public typealias Configuration = ProcessPoolConfiguration

    /// The number of worker processes the pool keeps running.
    public let workerCount: Int
    /// The settings the pool was created with.
    public let configuration: Configuration
    let dispatcher: Dispatcher
    /// Frames in, typed outputs back (the one work function: no job name).
    private let tasks: TypedTasks<Input, Output>

    /// Forks `workers` worker processes that will run `work`, and returns once they are up.
    ///
    /// - Parameters:
    ///   - workers: How many worker processes to keep running (at least one).
    ///   - configuration: Limits, time-outs and failure policies; see ``ProcessPoolConfiguration``.
    ///   - work: The function each worker runs on each input. It is inherited by `fork`, never sent.
    /// - Throws: ``ForkPoolError`` with ``ForkPoolError/Code/invalidArgument`` for fewer than one
    ///   worker or a bad setting, ``ForkPoolError/Code/systemCallFailed`` if the fork server
    ///   cannot be started, or ``ForkPoolError/Code/poolBroken`` when workers keep failing to
    ///   start (``ProcessPoolConfiguration/maximumConsecutiveStartFailures``).
    public init(workers: Int = defaultWorkerCount, configuration: Configuration = .init(),
                work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) {
        guard workers >= 1 else {
            throw ForkPoolError(.invalidArgument, "a ProcessPool needs at least one worker, not \(workers)")
        }
        try configuration.validate()
        if configuration.startMethod == .fresh {
            throw ForkPoolError(.invalidArgument, "a ProcessPool's work closure cannot go to a fresh worker process: use a "
                                + "ProcessJobPool with a PoolJob, or startMethod .snapshot")
        }
        self.workerCount = workers
        self.configuration = configuration
        let handler = WorkFunctionHandler(work: work).handle
        let maximumFrameBytes = configuration.maximumFrameBytes
        let initializer = configuration.initializer
        dispatcher = try Dispatcher(settings: .init(workerCount: workers, configuration: configuration)) { socket in
            WorkerLoop.run(socket: socket, maximumFrameBytes: maximumFrameBytes, initializer: initializer, handler: handler)
        }
        tasks = TypedTasks(dispatcher: dispatcher, configuration: configuration, workerCount: workers)
    }

    deinit {
        dispatcher.shutdown(cancelPending: false)
    }

    /// The pids of the live, ready worker processes (a replacement appears once it is ready).
    public var workerProcessIDs: [pid_t] { dispatcher.workerProcessIDs }

    /// What the pool has done so far: per worker slot (the worker's pid, tasks completed and
    /// failed, busy time, restarts) and in total, plus the tasks waiting in the queue. Each
    /// call takes a fresh snapshot; safe from any thread. A chunk of `map` counts as one task.
    /// See ``PoolStats`` for what is counted.
    public var stats: PoolStats { dispatcher.stats }

    /// The pid of the pool's fork server, the single-threaded process that forks every
    /// worker; nil once the pool has shut down.
    public var forkServerProcessID: pid_t? { dispatcher.forkServerProcessID }

    /// Queues one input and returns a future for its output. The input is encoded here, on the
    /// calling thread, so an input that cannot be encoded fails this call, not a worker. When
    /// ``ProcessPoolConfiguration/maximumQueuedTasks`` tasks already wait, it throws
    /// ``ForkPoolError/Code/overloaded`` at once and queues nothing (see ``submitWhenReady(_:)``).
    public func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        try tasks.submit(input)
    }

    /// Queues one input with a deadline `timeout` seconds from now. If the task has not
    /// finished by then it fails with ``ForkPoolError/Code/timedOut``: dropped if still queued,
    /// or its worker killed (and replaced) if running.
    public func submit(_ input: Input, timeout: Double) throws(ForkPoolError) -> Future<Output> {
        try tasks.submit(input, timeout: timeout)
    }

    /// Queues one input like ``submit(_:)``, but when the queue is full
    /// (``ProcessPoolConfiguration/maximumQueuedTasks``) suspends the calling task until there
    /// is room instead of throwing ``ForkPoolError/Code/overloaded``. Callers waiting for room
    /// are served first come, first served.
    ///
    /// - Throws: ``ForkPoolError/Code/cancelled`` when the calling `Task` is cancelled while it
    ///   waits (nothing is queued then); ``ForkPoolError/Code/poolShutDown`` when the pool shuts
    ///   down meanwhile; a coding error as ``submit(_:)`` does.
    public func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        try await tasks.submitWhenReady(input)
    }

    /// Queues one input with a deadline `timeout` from now: the `Duration` form of the call
    /// above, with the same behaviour.
    public func submit(_ input: Input, timeout: Duration) throws(ForkPoolError) -> Future<Output> {
        try submit(input, timeout: timeout.seconds)
    }

    /// Runs `work` on every input in the worker processes and returns the outputs in input
    /// order, choosing how many inputs to send per frame: the first `workerCount` inputs go one
    /// by one, and after every completed chunk the time per input so far sets the next chunk's
    /// size, so that fast tasks are batched about 2 ms of work to a frame while slow ones
    /// (≥ 2 ms) stay one per frame and a long task never holds short ones hostage. The input sequence is consumed lazily, with at most `workerCount × 4` chunks in
    /// flight, so memory stays flat however long it is. On the first failure in input order
    /// (including an input that cannot be encoded) the chunks not yet started are cancelled and
    /// that failure is thrown.
    public func map<Inputs: Sequence>(_ inputs: Inputs) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        try tasks.map(inputs, chunkSize: nil)
    }

    /// Like ``map(_:)-lovd``, but sends the inputs to the workers exactly `chunkSize` at a time (one
    /// frame and one reply per chunk), as Python's `Executor.map(chunksize:)`. A worker that dies
    /// fails the chunk it held.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        try tasks.map(inputs, chunkSize: chunkSize)
    }

    /// The async form of ``map(_:)``: suspends the calling task instead of blocking its
    /// thread. Cancelling the calling `Task` cancels the chunks not yet started (and kills the
    /// workers running the others when ``ProcessPoolConfiguration/cancellationKillsRunningTasks``
    /// is set), then throws ``ForkPoolError/Code/cancelled``.
    public func map<Inputs: Sequence>(_ inputs: Inputs) async throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        try await tasks.map(inputs, chunkSize: nil)
    }

    /// The async form of ``map(_:chunkSize:)``; cancellation as in ``map(_:)-4niv5``.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        try await tasks.map(inputs, chunkSize: chunkSize)
    }

    /// Stops accepting tasks, runs (or cancels) the queued ones, lets running ones finish,
    /// and waits until every worker process has exited and been reaped. Idempotent.
    public func shutdown(cancelPending: Bool) {
        dispatcher.shutdown(cancelPending: cancelPending)
    }

}
