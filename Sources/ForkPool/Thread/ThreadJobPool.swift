// ThreadJobPool: the job pool on pthreads — any registered job, run in this process.
//
//   submit(job) ─ JobRegistry.check ─▶ ThreadEngine (the same queue and threads as ThreadPool),
//                 the job's own `run` as the work ─▶ Future<Job.Output>
//
// The shared calls are JobPool's (Pool.swift). Jobs stay in memory, so a job need only be
// `Sendable` (`RunnableJob`); `PoolJob`s work too, so one list of jobs can go to either kind.
import CoreMetrics

/// A pool of pthreads that runs any job whose type it was created with — the thread twin of
/// ``ProcessJobPool``, with the calls of ``JobPool``.
///
/// Jobs need only be `Sendable` here (``RunnableJob``); a ``PoolJob`` is one. As on a
/// ``ThreadPool``, a crash in a job takes the whole process down and a running job cannot be
/// stopped; a job that throws fails only itself, with the original error attached.
public final class ThreadJobPool: JobPool, @unchecked Sendable {
    let engine: ThreadEngine
    let registry: JobRegistry
    public let _jobs: any _JobTasks
    public var _control: any _PoolControl { engine }

    /// Starts `workers` threads that can run every job type in `jobs`.
    ///
    /// - Parameters:
    ///   - workers: How many threads (at least one); default: the number of online processors.
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
        let metrics = PoolMetrics(factory: metricsFactory ?? MetricsSystem.factory, pool: "thread", dimensions: metricsDimensions)
        engine = try ThreadEngine(workers: workers, metrics: metrics, maximumQueuedTasks: maximumQueuedTasks)
        _jobs = ThreadJobTasks(engine: engine, registry: registry)
    }

    /// Dropping the last reference shuts the pool down: queued jobs still run.
    deinit {
        engine.shutdown(cancelPending: false)
    }
}

/// A thread job pool's engine seam: the registry's check, then the job's own `run` as the work.
struct ThreadJobTasks: _JobTasks {
    let engine: ThreadEngine
    let registry: JobRegistry

    /// The engine with `Job`'s own `run` as the work, once its type is known to be registered.
    private func tasks<Job: RunnableJob>(for _: Job.Type) throws(ForkPoolError) -> ThreadTasks<Job, Job.Output> {
        try registry.check(Job.self)
        return ThreadTasks(engine: engine, work: Self.work(of: Job.self), jobName: Job.jobName)
    }

    func submit<Job: RunnableJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output> {
        let tasks = try tasks(for: Job.self)
        do {
            return try tasks.submit(job)
        } catch {
            throw Self.naming(error, Job.jobName)
        }
    }

    func submitWhenReady<Job: RunnableJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output> {
        let tasks = try tasks(for: Job.self)
        do {
            return try await tasks.submitWhenReady(job)
        } catch {
            throw Self.naming(error, Job.jobName)
        }
    }

    /// `error` (overloaded, shut down, cancelled while waiting), naming the job.
    /// How a thread runs a job: its `run()`, or, for an ``AsyncPoolJob``, its async `run()` in a
    /// Task on the cooperative pool while the thread waits.
    private static func work<Job: RunnableJob>(of _: Job.Type) -> @Sendable (Job) throws -> Job.Output {
        guard Job.self is any AsyncPoolJob.Type else { return { job in try job.run() } }
        return { job in
            // The cast cannot fail: `Job` is an AsyncPoolJob, whose output is this Output.
            let asyncJob = job as! any AsyncPoolJob
            return try runAsync(asyncJob) as! Job.Output
        }
    }

    private static func runAsync<Job: AsyncPoolJob>(_ job: Job) throws -> any Sendable {
        try AsyncJobRunner.run { try await job.run() }
    }

    private static func naming(_ error: ForkPoolError, _ jobName: String) -> ForkPoolError {
        var named = error
        named.jobName = jobName
        return named
    }

    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int?) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        try tasks(for: Jobs.Element.self).map(jobs, chunkSize: chunkSize)
    }

    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int?) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        try await tasks(for: Jobs.Element.self).map(jobs, chunkSize: chunkSize)
    }
}
