// ThreadEngine: the engine under both thread pools — a WorkQueue of work items and N pthreads
// that take them (no Dispatch, no Swift concurrency: joinable pthreads on one condition).
//
//   submit(input, work) ─▶ SingleInput (the input, the work, its Future) ─▶ queue
//   map ─ ChunkedMap ─▶ ChunkOfInputs (inputs, the work, a Future<[Output]>) per chunk ─▶ queue
//   thread: pop ─▶ item.run: work ─▶ count (stats, metrics) ─▶ complete the future
//
// Each item carries its own typed work (`ThreadWork`), so ThreadPool (one work function) and
// ThreadJobPool (a job's `run`) share one queue, its threads, counters and backpressure.
import CoreMetrics
import Synchronization

/// One queue entry of a thread pool: it runs on a pool thread, or is cancelled by shutdown.
protocol ThreadWork: Sendable {
    /// Runs the work (unless the future was cancelled while queued), counting it through
    /// `count` before its future completes.
    func run(count: (_ since: UInt64, _ failed: Bool) -> Void)
    /// Fails the future as cancelled by shutdown.
    func cancelByShutdown()
    /// Whether the future completed while queued (a cancellation): the item holds no place.
    var leftEarly: Bool { get }
}

/// The error a thread pool task gets when its work throws: the original attached.
func workFailure(_ error: any Error, taskID: UInt64, jobName: String?) -> ForkPoolError {
    var failure = ForkPoolError(.workFailed, "task \(taskID)\(jobName.map { " (job \($0))" } ?? "") threw: \(error)", taskID: taskID)
    failure.underlyingError = error
    failure.jobName = jobName
    return failure
}

/// One input and its future.
struct SingleInput<Input: Sendable, Output: Sendable>: ThreadWork, @unchecked Sendable {
    let input: Input
    let work: @Sendable (Input) throws -> Output
    let future: Future<Output>
    let jobName: String?

    func run(count: (UInt64, Bool) -> Void) {
        guard future.markRunning() else { return }  // cancelled while queued
        let start = monotonicNanoseconds()
        do {
            let output = try work(input)
            count(start, false)
            future.complete(.success(output))
        } catch {
            count(start, true)
            future.complete(.failure(workFailure(error, taskID: future.taskID, jobName: jobName)))
        }
    }

    func cancelByShutdown() { future.cancelByShutdown() }
    var leftEarly: Bool { future.hasCompleted }
}

/// A chunk of `map`, taken by one thread at once: the work over each input, in order, into
/// one array. Its first failing input fails the whole chunk.
struct ChunkOfInputs<Input: Sendable, Output: Sendable>: ThreadWork, @unchecked Sendable {
    let inputs: ArraySlice<Input>
    let work: @Sendable (Input) throws -> Output
    let future: Future<[Output]>
    let jobName: String?

    func run(count: (UInt64, Bool) -> Void) {
        guard future.markRunning() else { return }
        let start = monotonicNanoseconds()
        var failure: (any Error)?
        // Each output written once, in place; on a failure the ones written are destroyed.
        let outputs = [Output](unsafeUninitializedCapacity: inputs.count) { slots, initialized in
            for input in inputs {
                do {
                    (slots.baseAddress! + initialized).initialize(to: try work(input))
                    initialized += 1
                } catch {
                    failure = error
                    slots.baseAddress?.deinitialize(count: initialized)
                    initialized = 0
                    return
                }
            }
        }
        if let failure {
            count(start, true)
            future.complete(.failure(workFailure(failure, taskID: future.taskID, jobName: jobName)))
            return
        }
        count(start, false)
        future.complete(.success(outputs))
    }

    func cancelByShutdown() { future.cancelByShutdown() }
    var leftEarly: Bool { future.hasCompleted }
}

final class ThreadEngine: _PoolControl, WorkQueueOwner, @unchecked Sendable {
    let workerCount: Int
    let lock = ConditionLock()
    /// The items waiting for a thread, and the queue's bound.
    var queue: WorkQueue<ThreadQueueItem>
    private(set) var nextTaskID: UInt64 = 1
    private var accepting = true
    private var threads: [PosixThread] = []
    private let joinLock = ConditionLock()
    private var joined = false
    private let metrics: PoolMetrics
    /// One set of counters per thread, each written by its thread only.
    private let threadCounters: [ThreadCounters]
    private let threadsStarted = Atomic<Int>(0)
    /// With a bound on the queue, single tasks' futures tell the engine when they are
    /// cancelled while queued, so a caller waiting for room takes their place.
    private lazy var queueHook = QueueHook(engine: self)

    /// Starts `workers` threads (at least one), with at most `maximumQueuedTasks` tasks
    /// waiting (nil: no bound).
    ///
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for fewer than one worker or a bound
    ///   below one; ``ForkPoolError/Code/systemCallFailed`` when a thread cannot be started
    ///   (the threads started so far are joined first).
    init(workers: Int, metrics: PoolMetrics, maximumQueuedTasks: Int?) throws(ForkPoolError) {
        guard workers >= 1 else { throw ForkPoolError(.invalidArgument, "a thread pool needs at least one worker, not \(workers)") }
        if let maximumQueuedTasks, maximumQueuedTasks < 1 {
            throw ForkPoolError(.invalidArgument, "maximumQueuedTasks must be at least 1, not \(maximumQueuedTasks)")
        }
        workerCount = workers
        self.metrics = metrics
        threadCounters = (0..<workers).map { _ in ThreadCounters() }
        queue = WorkQueue(limit: maximumQueuedTasks)
        for index in 0..<workers {
            do {
                threads.append(try PosixThread.start(name: "forkpool-t\(index)") { [self] in serve() })
            } catch {
                shutdown(cancelPending: true)
                throw error
            }
        }
    }

    /// How many `submitWhenReady` callers wait for room now.
    var parkedCount: Int { lock.withLock { queue.parkedCount } }

    var stats: PoolStats {
        var snapshot = PoolStats(workerCount: threadCounters.count)
        for (index, counters) in threadCounters.enumerated() {
            let completed = counters.tasksCompleted.load(ordering: .relaxed)
            let failed = counters.tasksFailed.load(ordering: .relaxed)
            snapshot.workers[index].tasksCompleted = completed
            snapshot.workers[index].tasksFailed = failed
            snapshot.workers[index].busyTime = .nanoseconds(counters.busyNanoseconds.load(ordering: .relaxed))
            snapshot.tasksCompleted += completed
            snapshot.tasksFailed += failed
        }
        snapshot.queuedTasks = lock.withLock { queue.count }
        return snapshot
    }

    /// Counts a task a thread ran, before its future completes (so a caller woken by it finds
    /// it counted).
    private func count(_ counters: ThreadCounters, since start: UInt64, failed: Bool) {
        let now = monotonicNanoseconds()
        let ranFor = now > start ? now - start : 0
        counters.busyNanoseconds.wrappingAdd(Int64(clamping: ranFor), ordering: .relaxed)
        if failed { counters.tasksFailed.wrappingAdd(1, ordering: .relaxed) }
        counters.tasksCompleted.wrappingAdd(1, ordering: .relaxed)
        metrics.taskEnded(failure: failed ? .workFailed : nil, runNanoseconds: ranFor)
    }

    func shutdown(cancelPending: Bool) {
        let cancelled: [ThreadQueueItem] = lock.withLock {
            accepting = false
            lock.broadcast()
            return cancelPending ? queue.removeAll() : []
        }
        refuseParked(ForkPoolError(.poolShutDown, "the pool has been shut down"))
        for item in cancelled { item.work.cancelByShutdown() }
        joinLock.withLock {
            guard !joined else { return }
            for thread in threads { thread.join() }
            threads = []
            joined = true
        }
    }

    // MARK: Single tasks and backpressure

    /// Under the lock: a future for one input; with a bound on the queue, its cancellation
    /// while queued gives its place to a caller waiting for room.
    private func makeFutureLocked<Output>() -> Future<Output> {
        defer { nextTaskID += 1 }
        guard queue.limit != nil else { return Future<Output>(taskID: nextTaskID) }
        return Future<Output>(taskID: nextTaskID, hook: queueHook)
    }

    func checkAcceptingLocked() throws(ForkPoolError) {
        guard accepting else { throw ForkPoolError(.poolShutDown, "the pool has been shut down") }
    }

    func submit<Input: Sendable, Output: Sendable>(_ input: Input, jobName: String? = nil,
                                                   work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) -> Future<Output> {
        try lock.withLock { () throws(ForkPoolError) in
            try checkAcceptingLocked()
            try queue.checkRoom()
            let future: Future<Output> = makeFutureLocked()
            queue.append(ThreadQueueItem(SingleInput(input: input, work: work, future: future, jobName: jobName)), now: 0)
            lock.signal()
            return future
        }
    }

    func submitWhenReady<Input: Sendable, Output: Sendable>(_ input: Input, jobName: String? = nil,
                                                            work: @escaping @Sendable (Input) throws -> Output)
        async throws(ForkPoolError) -> Future<Output> {
        let future: Future<Output> = lock.withLock { makeFutureLocked() }
        try await submitWhenReady(ThreadQueueItem(SingleInput(input: input, work: work, future: future, jobName: jobName)))
        return future
    }

    // MARK: map (the chunking itself is ChunkedMap's)

    /// A future for one chunk of `map`: it does not spin, and with a bound on the queue its
    /// cancellation while queued frees its place, as a single task's does.
    func makeChunkFuture<Output>() -> Future<Output> {
        lock.withLock {
            defer { nextTaskID += 1 }
            return Future(taskID: nextTaskID, spinsWhileWaiting: false, hook: queue.limit == nil ? nil : queueHook)
        }
    }

    /// Queues one chunk of `map`. Not refused when the queue is full: `map` bounds its own
    /// window.
    func enqueueChunk(_ item: ThreadQueueItem) throws(ForkPoolError) {
        try lock.withLock { () throws(ForkPoolError) in
            try checkAcceptingLocked()
            queue.append(item, now: 0)
            lock.signal()
        }
    }

    // MARK: The threads

    /// One worker thread: take an item, run it; leave when shut down and the queue is empty.
    private func serve() {
        let counters = threadCounters[threadsStarted.wrappingAdd(1, ordering: .relaxed).oldValue]
        while true {
            let (next, resumptions): (ThreadQueueItem?, [ParkedResumption]) = lock.withLock {
                while queue.isEmpty && accepting { lock.wait() }
                let item = queue.popFirst()
                return (item, item == nil ? [] : admitParkedLocked(now: 0))
            }
            for resumption in resumptions { resumption.resume() }
            guard let next else { return }
            next.work.run { start, failed in count(counters, since: start, failed: failed) }
        }
    }
}

/// One thread's counts: written by that thread only, read by `stats`.
final class ThreadCounters: Sendable {
    let tasksCompleted = Atomic<Int>(0)
    let tasksFailed = Atomic<Int>(0)
    let busyNanoseconds = Atomic<Int64>(0)
}

/// A bounded thread pool's futures' hook: a task cancelled while queued frees its place.
private final class QueueHook: TaskHook, @unchecked Sendable {
    weak var engine: ThreadEngine?

    init(engine: ThreadEngine) {
        self.engine = engine
    }

    func leftQueueEarly() { engine?.queuedTaskLeftEarly() }
}

/// A thread pool's queue entry: one item of work, as the queue sees it.
struct ThreadQueueItem: QueuedWork, Sendable {
    let work: any ThreadWork

    init(_ work: any ThreadWork) {
        self.work = work
    }

    var isAbandoned: Bool { work.leftEarly }
}

extension ThreadEngine {
    /// Wakes the threads for newly queued items.
    func didQueueLocked() { lock.broadcast() }

    /// Queues one item, or throws `.overloaded` when the queue is full.
    func submit(_ item: ThreadQueueItem) throws(ForkPoolError) {
        try enqueue(item, now: 0)
    }
}
