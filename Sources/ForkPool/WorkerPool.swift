// WorkerPool: what both pools promise, so callers can pick processes or threads at run time
// (the article's `run_pool(strategy:)`), plus the scoped `with…Pool` helpers.
import Glibc

/// A pool of workers that runs one function, fixed at creation, over many inputs.
///
/// ``ProcessPool`` runs it in pre-forked worker processes; ``ThreadPool`` in pthreads.
/// All methods may be called from any number of threads at once.
public protocol WorkerPool<Input, Output>: AnyObject, Sendable {
    /// What the work function takes: one element of the inputs.
    associatedtype Input: Sendable
    /// What the work function returns for one input.
    associatedtype Output: Sendable

    /// The number of workers the pool keeps running.
    var workerCount: Int { get }

    /// What the pool has done so far: per worker and in total, plus the tasks waiting in the
    /// queue; see ``PoolStats``.
    var stats: PoolStats { get }

    /// Queues one input and returns a future for its output.
    /// - Parameter input: The input for the work function.
    /// - Returns: A ``Future`` that completes with the output or the task's error.
    /// - Throws: ``ForkPoolError`` with ``ForkPoolError/Code/poolShutDown`` after `shutdown`,
    ///   ``ForkPoolError/Code/overloaded`` when the pool's queue is full, or a coding error if
    ///   the input cannot be sent to a worker.
    func submit(_ input: Input) throws(ForkPoolError) -> Future<Output>

    /// Queues one input like `submit(_:)`, but when the pool's queue is full (its
    /// `maximumQueuedTasks`) suspends the calling task until there is room, instead of
    /// throwing ``ForkPoolError/Code/overloaded``.
    /// - Throws: ``ForkPoolError/Code/cancelled`` if the calling `Task` is cancelled while it
    ///   waits (nothing is queued), ``ForkPoolError/Code/poolShutDown`` after `shutdown`.
    func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output>

    /// Runs the work on every input in parallel and returns the outputs in input order,
    /// blocking until all are done; the pool chooses how many inputs to hand a worker at once.
    /// On the first failure (in input order) the work not yet started is cancelled and that
    /// failure is thrown.
    func map<Inputs: Sequence>(_ inputs: Inputs) throws(ForkPoolError) -> [Output] where Inputs.Element == Input

    /// Like `map(_:)`, handing inputs to workers `chunkSize` at a time (as Python's
    /// `Executor.map(chunksize:)`): less overhead per task for many small tasks.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` when `chunkSize < 1`.
    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) throws(ForkPoolError) -> [Output] where Inputs.Element == Input

    /// The async form of `map(_:)`: suspends the calling task instead of blocking a thread.
    /// Cancelling the calling `Task` cancels the work not yet started and throws
    /// ``ForkPoolError/Code/cancelled``.
    func map<Inputs: Sequence>(_ inputs: Inputs) async throws(ForkPoolError) -> [Output] where Inputs.Element == Input

    /// The async form of `map(_:chunkSize:)`.
    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input

    /// Stops accepting tasks and waits until every worker has exited. Queued tasks still run
    /// unless `cancelPending` is true, in which case they fail with ``ForkPoolError/Code/cancelled``.
    /// Running tasks always finish. Idempotent.
    /// - Parameter cancelPending: Whether to cancel the queued tasks instead of running them.
    func shutdown(cancelPending: Bool)
}

extension WorkerPool {
    /// Stops accepting tasks, runs the queued ones and waits for every worker to exit.
    public func shutdown() {
        shutdown(cancelPending: false)
    }
}

/// The number of online processors: the default worker count.
public var defaultWorkerCount: Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Creates a ``ProcessPool``, runs `body` with it and shuts the pool down when `body`
/// returns or throws (cancelling queued tasks on throw).
///
/// - Parameters:
///   - workers: How many worker processes.
///   - configuration: The pool's settings.
///   - work: The function each worker runs on each input.
///   - body: What to do with the pool; its result is returned.
public func withProcessPool<Input: Codable & Sendable, Output: Codable & Sendable, Result>(
    workers: Int = defaultWorkerCount,
    configuration: ProcessPoolConfiguration = .init(),
    work: @escaping @Sendable (Input) throws -> Output,
    _ body: (ProcessPool<Input, Output>) throws -> Result
) throws -> Result {
    let pool = try ProcessPool(workers: workers, configuration: configuration, work: work)
    return try withShutdown(of: pool, body)
}

/// Creates a ``ThreadPool``, runs `body` with it and shuts the pool down when `body`
/// returns or throws (cancelling queued tasks on throw).
///
/// - Parameters:
///   - workers: How many threads.
///   - work: The function each thread runs on each input.
///   - body: What to do with the pool; its result is returned.
public func withThreadPool<Input: Sendable, Output: Sendable, Result>(
    workers: Int = defaultWorkerCount,
    work: @escaping @Sendable (Input) throws -> Output,
    _ body: (ThreadPool<Input, Output>) throws -> Result
) throws -> Result {
    try withShutdown(of: ThreadPool(workers: workers, work: work), body)
}

private func withShutdown<Pool: WorkerPool, Result>(of pool: Pool, _ body: (Pool) throws -> Result) throws -> Result {
    try withShutdown(pool.shutdown(cancelPending:)) { try body(pool) }
}

/// Runs `body`, then shuts down with `shutdown`: letting queued work finish when `body`
/// returns, cancelling it when `body` throws.
func withShutdown<Result>(_ shutdown: (Bool) -> Void, _ body: () throws -> Result) throws -> Result {
    do {
        let result = try body()
        shutdown(false)
        return result
    } catch {
        shutdown(true)
        throw error
    }
}
