// ThreadPool: the same API as ProcessPool on plain pthreads in this process.
//
//   submit(input) ─▶ queue (ConditionLock) ─▶ worker thread: work(input) ─▶ Future
//
// No Dispatch and no Swift concurrency inside: N joinable pthreads wait on one condition
// variable. Inputs and outputs are handed over in memory, so they need not be Codable, and
// a thrown error reaches the caller with the original error attached. Each thread counts
// what it runs in its own atomic counters (`stats`) and in the pool's metrics.
import CoreMetrics
import Synchronization

/// A pool of pthreads running one function over many inputs — the Swift counterpart of
/// Python's `ThreadPoolExecutor`, with the same calls as ``ProcessPool``.
///
/// Swift has no global interpreter lock, so threads parallelise CPU work as well as processes
/// do and hand data over far more cheaply. What they cannot give is isolation: a crash in the
/// work function takes the whole process down, and a running task cannot be stopped.
public final class ThreadPool<Input: Sendable, Output: Sendable>: WorkerPool, @unchecked Sendable {
    /// The number of worker threads.
    public let workerCount: Int
    let core: Core

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
        core = Core(work: work, workerCount: workers, metrics: metrics, maximumQueuedTasks: maximumQueuedTasks)
        core.start(workers: workers)
    }

    /// What the pool has done so far, per thread (tasks completed and failed, busy time) and
    /// in total, plus the tasks waiting in the queue. Each call takes a fresh snapshot; safe
    /// from any thread. A chunk of `map` counts as one task; ``WorkerStats/processID`` is
    /// always nil and restarts are always 0. See ``PoolStats`` for what is counted.
    public var stats: PoolStats { core.stats }

    /// Dropping the last reference shuts the pool down: queued tasks still run.
    deinit {
        core.shutdown(cancelPending: false)
    }

    /// Queues one input and returns a future for its output. When `maximumQueuedTasks` tasks
    /// already wait, throws ``ForkPoolError/Code/overloaded`` at once and queues nothing.
    public func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        try core.submit(input)
    }

    /// Queues one input like ``submit(_:)``, but when the queue is full suspends the calling
    /// task until there is room instead of throwing ``ForkPoolError/Code/overloaded``; callers
    /// waiting for room are served first come, first served.
    ///
    /// - Throws: ``ForkPoolError/Code/cancelled`` when the calling `Task` is cancelled while it
    ///   waits (nothing is queued then); ``ForkPoolError/Code/poolShutDown`` when the pool shuts
    ///   down meanwhile.
    public func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        try await core.submitWhenReady(input)
    }

    /// Runs `work` on every input on the pool's threads and returns the outputs in input order.
    /// The inputs are split into about eight chunks per thread — few enough hand-offs to cost
    /// next to nothing, enough chunks to keep the threads evenly loaded.
    public func map<Inputs: Sequence>(_ inputs: Inputs) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        let all = Array(inputs)
        return try core.mapInChunks(all, chunkSize: max(1, all.count / (workerCount * 8)))
    }

    /// Like ``map(_:)-1ynr7``, but a thread takes exactly `chunkSize` inputs at a time off the queue.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try core.mapInChunks(Array(inputs), chunkSize: chunkSize)
    }

    /// The async form of ``map(_:)``: suspends the calling task instead of blocking its
    /// thread. Cancelling the calling `Task` cancels the chunks not yet started (running ones
    /// finish: a thread cannot be interrupted), then throws ``ForkPoolError/Code/cancelled``.
    public func map<Inputs: Sequence>(_ inputs: Inputs) async throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        let all = Array(inputs)
        return try await core.mapInChunks(all, chunkSize: max(1, all.count / (workerCount * 8)))
    }

    /// The async form of ``map(_:chunkSize:)``; cancellation as in ``map(_:)-7qelq``.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try await core.mapInChunks(Array(inputs), chunkSize: chunkSize)
    }

    /// Stops accepting tasks, runs (or cancels) the queued ones, lets running ones finish and
    /// joins every thread. Idempotent. Cancellation is cooperative: a running task cannot be
    /// interrupted, only queued ones are cancelled.
    public func shutdown(cancelPending: Bool) {
        core.shutdown(cancelPending: cancelPending)
    }

    /// The queue and threads; the threads hold the core, not the pool, so dropping the pool
    /// can shut them down.
    final class Core: @unchecked Sendable {
        /// One queue entry: a single input, or a chunk of `map` taken by one thread at once,
        /// whose outputs the thread writes straight into the caller's result array at `slots`.
        private enum Job {
            case one(Input, Future<Output>)
            case chunk(ArraySlice<Input>, UnsafeMutablePointer<Output>, Future<Void>)

            func cancel() {
                switch self {
                case .one(_, let future): future.cancelByShutdown()
                case .chunk(_, _, let future): future.cancelByShutdown()
                }
            }
        }

        private let work: @Sendable (Input) throws -> Output
        private let lock = ConditionLock()
        private var queue = FIFOQueue<Job>()
        private var nextTaskID: UInt64 = 1
        private var accepting = true
        private var threads: [PosixThread] = []
        private let joinLock = ConditionLock()
        private var joined = false
        private let metrics: PoolMetrics
        /// One set of counters per thread, each written by its thread only.
        private let threadCounters: [ThreadCounters]
        private let threadsStarted = Atomic<Int>(0)

        /// The bound on queued tasks and the `submitWhenReady` callers waiting for room.
        private var admission: QueueAdmission<Job>

        init(work: @escaping @Sendable (Input) throws -> Output, workerCount: Int, metrics: PoolMetrics, maximumQueuedTasks: Int?) {
            self.work = work
            self.metrics = metrics
            threadCounters = (0..<workerCount).map { _ in ThreadCounters() }
            admission = QueueAdmission(limit: maximumQueuedTasks)
        }

        /// How many `submitWhenReady` callers wait for room now.
        var parkedCount: Int { lock.withLock { admission.parkedCount } }

        /// A future for one input; with a bound on the queue, its cancellation while queued
        /// gives its place to a caller waiting for room.
        private func makeFuture() -> Future<Output> {
            defer { nextTaskID += 1 }
            guard admission.limit != nil else { return Future<Output>(taskID: nextTaskID) }
            return Future<Output>(taskID: nextTaskID, leftQueueEarly: { [weak self] in self?.queuedTaskLeftEarly() })
        }

        /// Under the lock: whether one more task fits, dropping cancelled tasks first.
        private func hasRoomLocked() -> Bool {
            if admission.hasRoom(queued: queue.count) { return true }
            dropCompletedQueuedLocked()
            return admission.hasRoom(queued: queue.count)
        }

        private func dropCompletedQueuedLocked() {
            queue.removeAll { job in
                if case .one(_, let future) = job { future.hasCompleted } else { false }
            }
        }

        func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
            try lock.withLock { () throws(ForkPoolError) in
                guard accepting else { throw ForkPoolError(.poolShutDown, "the pool has been shut down") }
                guard hasRoomLocked() else { throw admission.overloaded(queued: queue.count) }
                let future = makeFuture()
                queue.append(.one(input, future))
                lock.signal()
                return future
            }
        }

        func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
            let (id, future) = lock.withLock { (admission.makeID(), makeFuture()) }
            let result: Result<Void, ForkPoolError> = await withTaskCancellationHandler {
                await withUnsafeContinuation { continuation in
                    let now: Result<Void, ForkPoolError>? = lock.withLock {
                        if Task.isCancelled { return .failure(ParkedSubmission<Job>.cancelled) }
                        guard accepting else { return .failure(ForkPoolError(.poolShutDown, "the pool has been shut down")) }
                        guard hasRoomLocked() else {
                            admission.park(ParkedSubmission(id: id, item: .one(input, future), continuation: continuation))
                            return nil
                        }
                        queue.append(.one(input, future))
                        lock.signal()
                        return .success(())
                    }
                    if let now { continuation.resume(returning: now) }
                }
            } onCancel: {
                let parked = lock.withLock { admission.withdraw(id) }
                parked?.continuation.resume(returning: .failure(ParkedSubmission<Job>.cancelled))
            }
            try result.get()
            return future
        }

        /// Under the lock: parked tasks join the queue while there is room. Their callers are
        /// resumed outside the lock.
        private func admitParkedLocked() -> [ParkedResumption] {
            guard admission.hasParked else { return [] }
            dropCompletedQueuedLocked()
            let admitted = admission.admit(queued: queue.count)
            for parked in admitted { queue.append(parked.item) }
            if !admitted.isEmpty { lock.broadcast() }
            return admitted.map { $0.resumption(.success(())) }
        }

        /// A queued task was cancelled: its place goes to a caller waiting for room, if any.
        private func queuedTaskLeftEarly() {
            let resumptions = lock.withLock { admitParkedLocked() }
            for resumption in resumptions { resumption.resume() }
        }

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

        /// Counts a task a thread ran, before its future completes (so a caller woken by it
        /// finds it counted).
        private func count(_ counters: ThreadCounters, since start: UInt64, failed: Bool) {
            let now = monotonicNanoseconds()
            let ranFor = now > start ? now - start : 0
            counters.busyNanoseconds.wrappingAdd(Int64(clamping: ranFor), ordering: .relaxed)
            if failed { counters.tasksFailed.wrappingAdd(1, ordering: .relaxed) }
            counters.tasksCompleted.wrappingAdd(1, ordering: .relaxed)
            metrics.taskEnded(failure: failed ? .workFailed : nil, runNanoseconds: ranFor)
        }

        func start(workers: Int) {
            for index in 0..<workers {
                do {
                    threads.append(try PosixThread.start(name: "forkpool-t\(index)") { [self] in serve() })
                } catch {
                    fatalError("ThreadPool could not start thread \(index): \(error)")
                }
            }
        }

        func shutdown(cancelPending: Bool) {
            let (cancelled, parked): ([Job], [ParkedSubmission<Job>]) = lock.withLock {
                accepting = false
                lock.broadcast()
                return (cancelPending ? queue.removeAll() : [], admission.withdrawAll())
            }
            for submission in parked {
                submission.resumption(.failure(ForkPoolError(.poolShutDown, "the pool has been shut down"))).resume()
            }
            for job in cancelled { job.cancel() }
            joinLock.withLock {
                guard !joined else { return }
                for thread in threads { thread.join() }
                threads = []
                joined = true
            }
        }

        func enqueue(_ inputs: some Sequence<Input>) throws(ForkPoolError) -> [Future<Output>] {
            try lock.withLock { () throws(ForkPoolError) in
                guard accepting else { throw ForkPoolError(.poolShutDown, "the pool has been shut down") }
                var futures: [Future<Output>] = []
                futures.reserveCapacity(inputs.underestimatedCount)
                for input in inputs {
                    let future = Future<Output>(taskID: nextTaskID)
                    nextTaskID += 1
                    futures.append(future)
                    queue.append(.one(input, future))
                }
                if futures.count == 1 { lock.signal() } else { lock.broadcast() }
                return futures
            }
        }

        /// Queues `inputs` in chunks (one future per chunk) whose threads write each output
        /// into its place in the result array — no per-chunk arrays, no copy at the end. On the
        /// first failure in input order the chunks not yet started are cancelled, the running
        /// ones are waited for (they write into the array), every output already written is
        /// destroyed, and the failure is thrown.
        func mapInChunks(_ inputs: [Input], chunkSize: Int) throws(ForkPoolError) -> [Output] {
            var failure: ForkPoolError?
            let outputs = [Output](unsafeUninitializedCapacity: inputs.count) { slots, initialized in
                initialized = 0
                let queued = Result { () throws(ForkPoolError) in
                    try queueChunks(inputs, chunkSize: chunkSize, into: slots.baseAddress)
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

        /// The async form: the threads write into a buffer of this call's, moved into the
        /// result array at the end (the array's own storage cannot outlive a suspension).
        func mapInChunks(_ inputs: [Input], chunkSize: Int) async throws(ForkPoolError) -> [Output] {
            let count = inputs.count
            let slots = UnsafeMutablePointer<Output>.allocate(capacity: max(count, 1))
            defer { slots.deallocate() }
            let relay = CancellationRelay()
            var futures: [Future<Void>] = []
            // The handler is in place before any chunk is queued: once the chunks are visible,
            // a cancellation reaches every one still queued before `cancel()` returns.
            let (completed, failure): (Int, ForkPoolError?) = await withTaskCancellationHandler {
                if Task.isCancelled { return (0, ForkPoolError(.cancelled, "map was cancelled before it started")) }
                // Each chunk joins the relay before a thread can see it.
                let queued = Result { () throws(ForkPoolError) in
                    try queueChunks(inputs, chunkSize: chunkSize, into: slots) { future in
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
        private static func destroyOutputs(ofChunk index: Int, chunkSize: Int, count: Int, in slots: UnsafeMutablePointer<Output>) {
            let start = index * chunkSize
            (slots + start).deinitialize(count: min(chunkSize, count - start))
        }

        private func queueChunks(_ inputs: [Input], chunkSize: Int, into slots: UnsafeMutablePointer<Output>?,
                                 willQueue: (Future<Void>) -> Void = { _ in }) throws(ForkPoolError) -> [Future<Void>] {
            try lock.withLock { () throws(ForkPoolError) -> [Future<Void>] in
                guard accepting else { throw ForkPoolError(.poolShutDown, "the pool has been shut down") }
                var futures: [Future<Void>] = []
                futures.reserveCapacity(inputs.count / chunkSize + 1)
                for start in stride(from: 0, to: inputs.count, by: chunkSize) {
                    let future = Future<Void>(taskID: nextTaskID, spinsWhileWaiting: false)
                    nextTaskID += 1
                    futures.append(future)
                    willQueue(future)
                    queue.append(.chunk(inputs[start..<min(start + chunkSize, inputs.count)], slots! + start, future))
                }
                lock.broadcast()
                return futures
            }
        }

        /// One worker thread: take a task, run it, complete its future; leave when shut down
        /// and the queue is empty.
        private func serve() {
            let counters = threadCounters[threadsStarted.wrappingAdd(1, ordering: .relaxed).oldValue]
            while true {
                let (next, resumptions): (Job?, [ParkedResumption]) = lock.withLock {
                    while queue.isEmpty && accepting { lock.wait() }
                    let job = queue.popFirst()
                    return (job, job == nil ? [] : admitParkedLocked())
                }
                for resumption in resumptions { resumption.resume() }
                switch next {
                case nil:
                    return
                case .one(let input, let future):
                    run(input, future, counters)
                case .chunk(let inputs, let slots, let future):
                    run(inputs, writingTo: slots, future, counters)
                }
            }
        }

        /// Runs a chunk, initializing one slot per input. Its first failing input fails the
        /// whole chunk (as `map` reports it) and leaves every slot of the chunk uninitialized.
        private func run(_ inputs: ArraySlice<Input>, writingTo slots: UnsafeMutablePointer<Output>, _ future: Future<Void>,
                         _ counters: ThreadCounters) {
            guard future.markRunning() else { return }  // cancelled while queued
            let start = monotonicNanoseconds()
            var written = 0
            for input in inputs {
                do {
                    (slots + written).initialize(to: try work(input))
                    written += 1
                } catch {
                    slots.deinitialize(count: written)
                    let id = future.taskID
                    var failure = ForkPoolError(.workFailed, "task \(id) threw: \(error)", taskID: id)
                    failure.underlyingError = error
                    count(counters, since: start, failed: true)
                    future.complete(.failure(failure))
                    return
                }
            }
            count(counters, since: start, failed: false)
            future.complete(.success(()))
        }

        private func run(_ input: Input, _ future: Future<Output>, _ counters: ThreadCounters) {
            guard future.markRunning() else { return }  // cancelled while queued
            let start = monotonicNanoseconds()
            do {
                let output = try work(input)
                count(counters, since: start, failed: false)
                future.complete(.success(output))
            } catch {
                let id = future.taskID
                var failure = ForkPoolError(.workFailed, "task \(id) threw: \(error)", taskID: id)
                failure.underlyingError = error
                count(counters, since: start, failed: true)
                future.complete(.failure(failure))
            }
        }
    }
}

/// One ThreadPool thread's counts: written by that thread only, read by `stats`.
private final class ThreadCounters: Sendable {
    let tasksCompleted = Atomic<Int>(0)
    let tasksFailed = Atomic<Int>(0)
    let busyNanoseconds = Atomic<Int64>(0)
}
