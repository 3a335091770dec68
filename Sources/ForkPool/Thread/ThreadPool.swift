// ThreadPool: the same API as ProcessPool on plain pthreads in this process.
//
//   submit(input) ─▶ ThreadEngine: queue (ConditionLock) ─▶ worker thread: work(input) ─▶ Future
//
// A thin typed layer over ThreadEngine (which ThreadJobPool shares): the pool's one work
// function goes with every input. Inputs and outputs are handed over in memory, so they need
// not be Codable, and a thrown error reaches the caller with the original error attached.
// Each thread counts what it runs in its own atomic counters (`stats`) and in the pool's
// metrics.
import CoreMetrics

/// A pool of pthreads running one function over many inputs — the Swift counterpart of
/// Python's `ThreadPoolExecutor`, with the same calls as ``ProcessPool``.
///
/// Swift has no global interpreter lock, so threads parallelise CPU work as well as processes
/// do and hand data over far more cheaply. What they cannot give is isolation: a crash in the
/// work function takes the whole process down, and a running task cannot be stopped.
public final class ThreadPool<Input: Sendable, Output: Sendable>: WorkerPool, @unchecked Sendable {
    /// The number of worker threads.
    public let workerCount: Int
    /// The queue and threads; the threads hold the engine, not the pool, so dropping the pool
    /// can shut them down.
    let engine: ThreadEngine
    private let work: @Sendable (Input) throws -> Output

    /// Starts `workers` threads that will run `work`.
    ///
    /// - Parameters:
    ///   - workers: How many threads to run (at least one).
    ///   - maximumQueuedTasks: The most tasks that may wait in the queue (not yet on a thread);
    ///     nil (the default) for no bound. When that many wait, ``submit(_:)`` throws
    ///     ``ForkPoolError/Code/overloaded`` and queues nothing, and ``submitWhenReady(_:)``
    ///     waits for room. A task cancelled while queued frees its place at once; `map` is not
    ///     refused (its chunks go in as one batch).
    ///   - metricsFactory: The swift-metrics factory for the pool's metrics
    ///     (`forkpool_tasks_completed`, `forkpool_task_failures`, `forkpool_run_time`, with the
    ///     dimension `("pool", "thread")`); nil (the default): `MetricsSystem.factory`, which
    ///     records nothing unless the application bootstrapped a backend.
    ///   - metricsDimensions: Dimensions added to every metric of the pool, to tell pools apart.
    ///   - work: The function the threads run on each input.
    /// - Precondition: `workers >= 1`, `maximumQueuedTasks` nil or at least 1, and the system
    ///   can create that many threads.
    public init(workers: Int = defaultWorkerCount, maximumQueuedTasks: Int? = nil, metricsFactory: (any MetricsFactory)? = nil,
                metricsDimensions: [(String, String)] = [], work: @escaping @Sendable (Input) throws -> Output) {
        precondition(workers >= 1, "a ThreadPool needs at least one worker, not \(workers)")
        precondition((maximumQueuedTasks ?? 1) >= 1, "maximumQueuedTasks must be at least 1, not \(maximumQueuedTasks ?? 0)")
        workerCount = workers
        let metrics = PoolMetrics(factory: metricsFactory ?? MetricsSystem.factory, pool: "thread", dimensions: metricsDimensions)
        engine = ThreadEngine(workers: workers, metrics: metrics, maximumQueuedTasks: maximumQueuedTasks)
        self.work = work
    }

    /// What the pool has done so far, per thread (tasks completed and failed, busy time) and
    /// in total, plus the tasks waiting in the queue. Each call takes a fresh snapshot; safe
    /// from any thread. A chunk of `map` counts as one task; ``WorkerStats/processID`` is
    /// always nil and restarts are always 0. See ``PoolStats`` for what is counted.
    public var stats: PoolStats { engine.stats }

    /// Dropping the last reference shuts the pool down: queued tasks still run.
    deinit {
        engine.shutdown(cancelPending: false)
    }

    /// Queues one input and returns a future for its output. When `maximumQueuedTasks` tasks
    /// already wait, throws ``ForkPoolError/Code/overloaded`` at once and queues nothing.
    public func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        try engine.submit(input, work: work)
    }

    /// Queues one input like ``submit(_:)``, but when the queue is full suspends the calling
    /// task until there is room instead of throwing ``ForkPoolError/Code/overloaded``; callers
    /// waiting for room are served first come, first served.
    ///
    /// - Throws: ``ForkPoolError/Code/cancelled`` when the calling `Task` is cancelled while it
    ///   waits (nothing is queued then); ``ForkPoolError/Code/poolShutDown`` when the pool shuts
    ///   down meanwhile.
    public func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        try await engine.submitWhenReady(input, work: work)
    }

    /// Runs `work` on every input on the pool's threads and returns the outputs in input order.
    /// The inputs are split into about eight chunks per thread — few enough hand-offs to cost
    /// next to nothing, enough chunks to keep the threads evenly loaded.
    public func map<Inputs: Sequence>(_ inputs: Inputs) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        let all = Array(inputs)
        return try engine.map(all, chunkSize: max(1, all.count / (workerCount * 8)), work: work)
    }

    /// Like ``map(_:)-1ynr7``, but a thread takes exactly `chunkSize` inputs at a time off the queue.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try engine.map(Array(inputs), chunkSize: chunkSize, work: work)
    }

    /// The async form of ``map(_:)``: suspends the calling task instead of blocking its
    /// thread. Cancelling the calling `Task` cancels the chunks not yet started (running ones
    /// finish: a thread cannot be interrupted), then throws ``ForkPoolError/Code/cancelled``.
    public func map<Inputs: Sequence>(_ inputs: Inputs) async throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        let all = Array(inputs)
        return try await engine.map(all, chunkSize: max(1, all.count / (workerCount * 8)), work: work)
    }

    /// The async form of ``map(_:chunkSize:)``; cancellation as in ``map(_:)-7qelq``.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try await engine.map(Array(inputs), chunkSize: chunkSize, work: work)
    }

    /// Stops accepting tasks, runs (or cancels) the queued ones, lets running ones finish and
    /// joins every thread. Idempotent. Cancellation is cooperative: a running task cannot be
    /// interrupted, only queued ones are cancelled.
    public func shutdown(cancelPending: Bool) {
        engine.shutdown(cancelPending: cancelPending)
    }
}
