// ThreadEngine: the engine under both thread pools — a locked queue of work items and N
// pthreads that take them.
//
//   submit(input, work) ─▶ SingleInput (the input, the work, its Future) ─▶ queue (ConditionLock)
//   map(inputs, work)   ─▶ ChunkOfInputs (a slice, where its outputs go, a Future<Void>) per chunk
//   thread: pop ─▶ item.run: work ─▶ count (stats, metrics) ─▶ complete the future
//
// It knows no input or output type: each item carries its own work, typed (`ThreadWork`), so
// `ThreadPool<Input, Output>` (one work function) and `ThreadJobPool` (any registered job, the
// job's `run` as the work) are thin typed layers over the same queue, threads, counters and
// backpressure. No Dispatch and no Swift concurrency inside: joinable pthreads waiting on one
// condition variable.
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

/// A chunk of `map`, taken by one thread at once, whose outputs the thread writes straight
/// into the caller's result buffer at `slots`. Its first failing input fails the whole chunk
/// and leaves every slot of the chunk uninitialized.
struct ChunkOfInputs<Input: Sendable, Output: Sendable>: ThreadWork, @unchecked Sendable {
    let inputs: ArraySlice<Input>
    let slots: UnsafeMutablePointer<Output>
    let work: @Sendable (Input) throws -> Output
    let future: Future<Void>
    let jobName: String?

    func run(count: (UInt64, Bool) -> Void) {
        guard future.markRunning() else { return }
        let start = monotonicNanoseconds()
        var written = 0
        for input in inputs {
            do {
                (slots + written).initialize(to: try work(input))
                written += 1
            } catch {
                slots.deinitialize(count: written)
                count(start, true)
                future.complete(.failure(workFailure(error, taskID: future.taskID, jobName: jobName)))
                return
            }
        }
        count(start, false)
        future.complete(.success(()))
    }

    func cancelByShutdown() { future.cancelByShutdown() }
    var leftEarly: Bool { false }  // only single tasks count against the queue's bound
}

final class ThreadEngine: _PoolControl, WorkQueueOwner, @unchecked Sendable {
    let workerCount: Int
    let lock = ConditionLock()
    /// The items waiting for a thread, and the queue's bound.
    var queue: WorkQueue<ThreadQueueItem>
    private var nextTaskID: UInt64 = 1
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

    /// The chunk size `map` uses: `requested`, checked, or about eight chunks per thread for
    /// `count` inputs — few enough hand-offs to cost next to nothing, enough chunks to keep
    /// the threads evenly loaded.
    func chunkSize(_ requested: Int?, count: Int) throws(ForkPoolError) -> Int {
        guard let requested else { return max(1, count / (workerCount * 8)) }
        guard requested >= 1 else { throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(requested)") }
        return requested
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

    // MARK: map

    /// Queues `inputs` in chunks (one future per chunk) whose threads write each output into
    /// its place in the result array — no per-chunk arrays, no copy at the end. On the first
    /// failure in input order the chunks not yet started are cancelled, the running ones are
    /// waited for (they write into the array), every output already written is destroyed, and
    /// the failure is thrown.
    func map<Input: Sendable, Output: Sendable>(_ inputs: [Input], chunkSize: Int, jobName: String? = nil,
                                                work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) -> [Output] {
        var failure: ForkPoolError?
        let outputs = [Output](unsafeUninitializedCapacity: inputs.count) { slots, initialized in
            initialized = 0
            let queued = Result { () throws(ForkPoolError) in
                try queueChunks(inputs, chunkSize: chunkSize, into: slots.baseAddress, jobName: jobName, work: work)
            }
            guard case .success(let futures) = queued else {
                if case .failure(let error) = queued { failure = error }
                return
            }
            var completed = 0
            for future in futures {
                if case .failure(let error) = future.waitForResult() {
                    failure = error
                    break
                }
                completed += 1
            }
            guard failure != nil else {
                initialized = inputs.count
                return
            }
            // Chunks before `completed` succeeded; the failed one wrote nothing; later ones are
            // cancelled if queued, waited for if running.
            for future in futures[(completed + 1)...] { future.cancelIfQueued() }
            for (index, future) in futures.enumerated()
            where index < completed || (index > completed && (try? future.waitForResult().get()) != nil) {
                Self.destroyOutputs(ofChunk: index, chunkSize: chunkSize, count: inputs.count, in: slots.baseAddress!)
            }
        }
        if let failure { throw failure }
        return outputs
    }

    /// The async form: the threads write into a buffer of this call's, moved into the result
    /// array at the end (the array's own storage cannot outlive a suspension).
    func map<Input: Sendable, Output: Sendable>(_ inputs: [Input], chunkSize: Int, jobName: String? = nil,
                                                work: @escaping @Sendable (Input) throws -> Output) async throws(ForkPoolError) -> [Output] {
        let count = inputs.count
        let slots = UnsafeMutablePointer<Output>.allocate(capacity: max(count, 1))
        defer { slots.deallocate() }
        let relay = CancellationRelay()
        var futures: [Future<Void>] = []
        // The handler is in place before any chunk is queued: once the chunks are visible, a
        // cancellation reaches every one still queued before `cancel()` returns.
        let (completed, failure): (Int, ForkPoolError?) = await withTaskCancellationHandler {
            if Task.isCancelled { return (0, ForkPoolError(.cancelled, "map was cancelled before it started")) }
            // Each chunk joins the relay before a thread can see it.
            let queued = Result { () throws(ForkPoolError) in
                try queueChunks(inputs, chunkSize: chunkSize, into: slots, jobName: jobName, work: work) { future in
                    relay.add(future.taskID) { future.cancelIfQueued() }
                }
            }
            switch queued {
            case .success(let queued): futures = queued
            case .failure(let error): return (0, error)
            }
            for (index, future) in futures.enumerated() {
                if case .failure(let error) = await future.completion { return (index, error) }
                if Task.isCancelled {
                    return (index + 1, ForkPoolError(.cancelled, "map was cancelled: its calling task was cancelled"))
                }
            }
            return (futures.count, nil)
        } onCancel: {
            relay.cancelAll()
        }
        guard let failure else {
            return [Output](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { buffer.baseAddress!.moveInitialize(from: slots, count: count) }
                initialized = count
            }
        }
        // Chunks before `completed` succeeded; the one at `completed` (if it failed) wrote
        // nothing; later ones are cancelled if queued, waited for if running.
        for future in futures.dropFirst(completed) { future.cancelIfQueued() }
        for (index, future) in futures.enumerated() {
            let wrote: Bool
            if index < completed {
                wrote = true
            } else if case .success = await future.completion {
                wrote = true
            } else {
                wrote = false
            }
            if wrote { Self.destroyOutputs(ofChunk: index, chunkSize: chunkSize, count: count, in: slots) }
        }
        throw failure
    }

    /// Destroys the outputs chunk `index` wrote into `slots` (a map that failed).
    private static func destroyOutputs<Output>(ofChunk index: Int, chunkSize: Int, count: Int, in slots: UnsafeMutablePointer<Output>) {
        let start = index * chunkSize
        (slots + start).deinitialize(count: min(chunkSize, count - start))
    }

    private func queueChunks<Input: Sendable, Output: Sendable>(
        _ inputs: [Input], chunkSize: Int, into slots: UnsafeMutablePointer<Output>?, jobName: String?,
        work: @escaping @Sendable (Input) throws -> Output, willQueue: (Future<Void>) -> Void = { _ in }
    ) throws(ForkPoolError) -> [Future<Void>] {
        try lock.withLock { () throws(ForkPoolError) -> [Future<Void>] in
            try checkAcceptingLocked()
            var futures: [Future<Void>] = []
            futures.reserveCapacity(inputs.count / chunkSize + 1)
            for start in stride(from: 0, to: inputs.count, by: chunkSize) {
                let future = Future<Void>(taskID: nextTaskID, spinsWhileWaiting: false)
                nextTaskID += 1
                futures.append(future)
                willQueue(future)
                queue.append(ThreadQueueItem(ChunkOfInputs(inputs: inputs[start..<min(start + chunkSize, inputs.count)],
                                                           slots: slots! + start, work: work, future: future, jobName: jobName)),
                             now: 0)
            }
            lock.broadcast()
            return futures
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
