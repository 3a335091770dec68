// ThreadJobPool: the job pool on pthreads — any registered job, run in this process.
//
//   submit(job) ─ JobRegistry.check ─▶ ThreadEngine (the same queue and threads as ThreadPool),
//                 the job's own `run` as the work ─▶ Future<Job.Output>
//
// Jobs stay in memory, so a job need only be `Sendable` (`RunnableJob`); `PoolJob`s work too,
// so one list of jobs can go to either kind of pool (the `JobPool` protocol).
import CoreMetrics

/// A pool of pthreads that runs any job whose type it was created with — the thread twin of
/// ``ProcessJobPool``, with the calls of ``ThreadPool``.
///
/// Jobs need only be `Sendable` here (``RunnableJob``); a ``PoolJob`` is one. As on a
/// ``ThreadPool``, a crash in a job takes the whole process down and a running job cannot be
/// stopped; a job that throws fails only itself, with the original error attached.
public final class ThreadJobPool: JobPool, @unchecked Sendable {
    /// The number of worker threads.
    public let workerCount: Int
    let engine: ThreadEngine
    let registry: JobRegistry

    /// Starts `workers` threads that can run every job type in `jobs`.
    ///
    /// - Parameters:
    ///   - workers: How many threads (at least one).
    ///   - maximumQueuedTasks: The most jobs that may wait in the queue (nil: no bound), as
    ///     for ``ThreadPool/init(workers:maximumQueuedTasks:metricsFactory:metricsDimensions:work:)``.
    ///   - metricsFactory: The swift-metrics factory (nil: `MetricsSystem.factory`).
    ///   - metricsDimensions: Dimensions added to every metric of the pool.
    ///   - jobs: The job types the pool runs.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for fewer than one worker, a bound below
    ///   one, no job types, or two job types with one ``RunnableJob/jobName`` (naming both);
    ///   ``ForkPoolError/Code/poolBroken`` when a job type's ``PoolJob/setUpWorker()`` throws
    ///   (it runs once, here, for every ``PoolJob`` type among `jobs`).
    public init(workers: Int = defaultWorkerCount, maximumQueuedTasks: Int? = nil, metricsFactory: (any MetricsFactory)? = nil,
                metricsDimensions: [(String, String)] = [], jobs: [any RunnableJob.Type]) throws(ForkPoolError) {
        guard workers >= 1 else { throw ForkPoolError(.invalidArgument, "a ThreadJobPool needs at least one worker, not \(workers)") }
        if let maximumQueuedTasks, maximumQueuedTasks < 1 {
            throw ForkPoolError(.invalidArgument, "maximumQueuedTasks must be at least 1, not \(maximumQueuedTasks)")
        }
        registry = try JobRegistry(runnableJobs: jobs)
        // A PoolJob's set-up, which a process pool runs once in each worker, runs once here:
        // the threads share this process.
        for case let job as any PoolJob.Type in jobs {
            do {
                try job.setUpWorker()
            } catch {
                throw ForkPoolError(.poolBroken, "\(String(reflecting: job)).setUpWorker() threw: \(error)")
            }
        }
        workerCount = workers
        let metrics = PoolMetrics(factory: metricsFactory ?? MetricsSystem.factory, pool: "thread", dimensions: metricsDimensions)
        engine = ThreadEngine(workers: workers, metrics: metrics, maximumQueuedTasks: maximumQueuedTasks)
    }

    /// Dropping the last reference shuts the pool down: queued jobs still run.
    deinit {
        engine.shutdown(cancelPending: false)
    }

    /// The names of the job types the pool runs, as registered.
    public var jobNames: [String] { registry.names }

    /// What the pool has done so far, all job types together; see ``PoolStats``.
    public var stats: PoolStats { engine.stats }

    /// Queues one job and returns a future for its output.
    /// - Throws: ``ForkPoolError/Code/unknownJob`` when `Job` is not one of the pool's job types
    ///   (nothing is queued), ``ForkPoolError/Code/overloaded`` when the queue is full,
    ///   ``ForkPoolError/Code/poolShutDown`` after shutdown.
    public func submit<Job: RunnableJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output> {
        try submit(runnable: job)
    }

    /// Queues one job, suspending until the queue has room when it is full; cancelling the
    /// calling `Task` meanwhile throws ``ForkPoolError/Code/cancelled`` with nothing queued.
    public func submitWhenReady<Job: RunnableJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output> {
        try await submitWhenReady(runnable: job)
    }

    /// Runs every job on the pool's threads and returns the outputs in order, about eight
    /// chunks per thread.
    public func map<Jobs: Sequence>(_ jobs: Jobs) throws(ForkPoolError) -> [Jobs.Element.Output] where Jobs.Element: RunnableJob {
        try map(runnable: jobs, chunkSize: nil)
    }

    /// Like `map(_:)`, a thread taking exactly `chunkSize` jobs at a time.
    public func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        try map(runnable: jobs, chunkSize: chunkSize)
    }

    /// The async form of `map(_:)`: cancelling the calling `Task` cancels the chunks not
    /// yet started and throws ``ForkPoolError/Code/cancelled``.
    public func map<Jobs: Sequence>(_ jobs: Jobs) async throws(ForkPoolError) -> [Jobs.Element.Output] where Jobs.Element: RunnableJob {
        try await map(runnable: jobs, chunkSize: nil)
    }

    /// The async form of `map(_:chunkSize:)`.
    public func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        try await map(runnable: jobs, chunkSize: chunkSize)
    }

    /// Stops accepting jobs, runs (or cancels) the queued ones, lets running ones finish and
    /// joins every thread. Idempotent.
    public func shutdown(cancelPending: Bool) {
        engine.shutdown(cancelPending: cancelPending)
    }
}

// The implementations. (The public calls above, generic over any RunnableJob, also witness
// JobPool's requirements, which ask only for PoolJobs.)
extension ThreadJobPool {
    private func submit<Job: RunnableJob>(runnable job: Job) throws(ForkPoolError) -> Future<Job.Output> {
        try registry.check(Job.self)
        do {
            return try engine.submit(job, jobName: Job.jobName) { job in try job.run() }
        } catch {
            throw Self.naming(error, Job.jobName)
        }
    }

    private func submitWhenReady<Job: RunnableJob>(runnable job: Job) async throws(ForkPoolError) -> Future<Job.Output> {
        try registry.check(Job.self)
        do {
            return try await engine.submitWhenReady(job, jobName: Job.jobName) { job in try job.run() }
        } catch {
            throw Self.naming(error, Job.jobName)
        }
    }

    /// `error` (overloaded, shut down, cancelled while waiting), naming the job.
    private static func naming(_ error: ForkPoolError, _ jobName: String) -> ForkPoolError {
        var named = error
        named.jobName = jobName
        return named
    }

    private func map<Jobs: Sequence>(runnable jobs: Jobs, chunkSize: Int?) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        let all = Array(jobs)
        let size = chunkSize ?? max(1, all.count / (workerCount * 8))  // about eight chunks per thread
        guard size >= 1 else { throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(size)") }
        try registry.check(Jobs.Element.self)
        return try engine.map(all, chunkSize: size, jobName: Jobs.Element.jobName) { job in try job.run() }
    }

    private func map<Jobs: Sequence>(runnable jobs: Jobs, chunkSize: Int?) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        let all = Array(jobs)
        let size = chunkSize ?? max(1, all.count / (workerCount * 8))  // about eight chunks per thread
        guard size >= 1 else { throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(size)") }
        try registry.check(Jobs.Element.self)
        return try await engine.map(all, chunkSize: size, jobName: Jobs.Element.jobName) { job in try job.run() }
    }
}
