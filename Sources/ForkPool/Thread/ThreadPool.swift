// ThreadPool: the same calls as ProcessPool on plain pthreads in this process.
//
//   submit(input) ─▶ ThreadTasks ─▶ ThreadEngine: queue (ConditionLock) ─▶ thread: work(input) ─▶ Future
//
// The shared calls are WorkerPool's (Pool.swift); this type creates the engine and pairs it
// with the pool's one work function (ThreadTasks). Inputs and outputs are handed over in
// memory, so they need not be Codable, and a thrown error reaches the caller attached.
import CoreMetrics

/// A pool of pthreads running one function over many inputs — the Swift counterpart of
/// Python's `ThreadPoolExecutor`, with the calls of ``ProcessPool``.
///
/// Swift has no global interpreter lock, so threads parallelise CPU work as well as processes
/// do and hand data over far more cheaply. What they cannot give is isolation: a crash in the
/// work function takes the whole process down, and a running task cannot be stopped.
public final class ThreadPool<Input: Sendable, Output: Sendable>: WorkerPool, @unchecked Sendable {
    /// The queue and threads; the threads hold the engine, not the pool, so dropping the pool
    /// can shut them down.
    let engine: ThreadEngine
    public let _tasks: any _ValueTasks<Input, Output>
    public var _control: any _PoolControl { engine }

    /// Starts `workers` threads that will run `work`.
    ///
    /// - Parameters:
    ///   - workers: How many threads to run (at least one); default: the number of online
    ///     processors.
    ///   - maximumQueuedTasks: The most tasks that may wait in the queue (not yet on a thread);
    ///     nil (the default) for no bound. When that many wait, `submit` throws
    ///     ``ForkPoolError/Code/overloaded`` and queues nothing, and `submitWhenReady` waits for
    ///     room. A task cancelled while queued frees its place at once.
    ///   - metricsFactory: The swift-metrics factory for the pool's metrics
    ///     (`forkpool_tasks_completed`, `forkpool_task_failures`, `forkpool_run_time`, with the
    ///     dimension `("pool", "thread")`); nil (the default): `MetricsSystem.factory`.
    ///   - metricsDimensions: Dimensions added to every metric of the pool, to tell pools apart.
    ///   - work: The function the threads run on each input.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for fewer than one worker or a bound
    ///   below one; ``ForkPoolError/Code/systemCallFailed`` when a thread cannot be started.
    public init(workers: Int = defaultWorkerCount, maximumQueuedTasks: Int? = nil, metricsFactory: (any MetricsFactory)? = nil,
                metricsDimensions: [(String, String)] = [], work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) {
        let metrics = PoolMetrics(factory: metricsFactory ?? MetricsSystem.factory, pool: "thread", dimensions: metricsDimensions)
        engine = try ThreadEngine(workers: workers, metrics: metrics, maximumQueuedTasks: maximumQueuedTasks)
        _tasks = ThreadTasks(engine: engine, work: work)
    }

    /// Dropping the last reference shuts the pool down: queued tasks still run.
    deinit {
        engine.shutdown(cancelPending: false)
    }
}

/// A thread pool's engine seam: the engine and the work function (the pool's one, or a job
/// type's `run`), as the shared calls and `map` use them.
struct ThreadTasks<Input: Sendable, Output: Sendable>: _ValueTasks, ChunkMaker {
    let engine: ThreadEngine
    let work: @Sendable (Input) throws -> Output
    /// The job's name in a job pool (stamped on its errors); nil in a ThreadPool.
    var jobName: String? = nil

    var workerCount: Int { engine.workerCount }
    /// A chunk costs a thread pool one lock and one wake-up, not a frame: larger chunks, fewer
    /// hand-offs.
    var largestChunk: Int { 1 << 16 }
    /// With the count known, about eight chunks per thread to start (a probe round trip costs
    /// more than many tasks); the time per input then sizes the rest.
    func firstChunkSize(knownCount: Int) -> Int? {
        knownCount > 0 ? max(1, knownCount / (workerCount * 8)) : nil
    }

    func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        try engine.submit(input, jobName: jobName, work: work)
    }

    func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        try await engine.submitWhenReady(input, jobName: jobName, work: work)
    }

    func makeChunk(_ inputs: ArraySlice<Input>) throws(ForkPoolError) -> (chunk: ThreadMapChunk<Input, Output>, rest: [Input]) {
        let future: Future<[Output]> = engine.makeChunkFuture()
        return (ThreadMapChunk(item: ChunkOfInputs(inputs: inputs, work: work, future: future, jobName: jobName)), [])
    }

    func queue(_ chunk: ThreadMapChunk<Input, Output>) throws(ForkPoolError) {
        try engine.enqueueChunk(ThreadQueueItem(chunk.item))
    }
}

/// A chunk of a thread pool's `map`: its queue item, whose future gets the outputs.
struct ThreadMapChunk<Input: Sendable, Output: Sendable>: MapChunk, @unchecked Sendable {
    let item: ChunkOfInputs<Input, Output>

    var id: UInt64 { item.future.taskID }
    func outputs() -> Result<[Output], ForkPoolError> { item.future.waitForResult() }
    func outputs() async -> Result<[Output], ForkPoolError> { await item.future.completion }
    func cancelIfQueued() { item.future.cancelIfQueued() }
    /// A running thread cannot be stopped: only a queued chunk is dropped.
    func cancelForCancelledCaller() { item.future.cancelIfQueued() }
}
