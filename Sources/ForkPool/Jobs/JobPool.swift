// JobPool: what both job pools promise — one pool, many kinds of work: any job whose type the
// pool was created with, as Python's `executor.submit(fn, *args)` runs any function — plus the
// scoped `with…JobPool` helpers and `results(for:)` over jobs.
import Glibc

/// A pool that runs any ``PoolJob`` whose type it was created with, on the same workers.
///
/// ``ProcessJobPool`` runs the jobs in pre-forked worker processes; ``ThreadJobPool`` on
/// pthreads. Jobs of different types may be in flight at once; `map` takes jobs of one type.
/// All methods may be called from any number of threads at once.
public protocol JobPool: AnyObject, Sendable {
    /// The number of workers the pool keeps running.
    var workerCount: Int { get }

    /// The names of the job types the pool runs (``RunnableJob/jobName``), as registered.
    var jobNames: [String] { get }

    /// What the pool has done so far; see ``PoolStats``.
    var stats: PoolStats { get }

    /// Queues one job and returns a future for its output.
    /// - Throws: ``ForkPoolError/Code/unknownJob`` when the job's type is not one of the pool's
    ///   (nothing is queued), ``ForkPoolError/Code/overloaded`` when the queue is full,
    ///   ``ForkPoolError/Code/poolShutDown`` after `shutdown`, or a coding error.
    func submit<Job: PoolJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output>

    /// Queues one job like `submit(_:)`, but when the queue is full suspends the calling task
    /// until there is room; cancelling it meanwhile throws ``ForkPoolError/Code/cancelled``.
    func submitWhenReady<Job: PoolJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output>

    /// Runs every job (all of one type) and returns the outputs in order; the pool picks how
    /// many to hand a worker at once. The first failure in order cancels the rest and is thrown.
    func map<Jobs: Sequence>(_ jobs: Jobs) throws(ForkPoolError) -> [Jobs.Element.Output] where Jobs.Element: PoolJob

    /// Like `map(_:)`, handing jobs to workers `chunkSize` at a time.
    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: PoolJob

    /// The async form of `map(_:)`; cancelling the calling `Task` cancels the jobs not yet
    /// started and throws ``ForkPoolError/Code/cancelled``.
    func map<Jobs: Sequence>(_ jobs: Jobs) async throws(ForkPoolError) -> [Jobs.Element.Output] where Jobs.Element: PoolJob

    /// The async form of `map(_:chunkSize:)`.
    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: PoolJob

    /// Stops accepting jobs and waits until every worker has exited; queued jobs still run
    /// unless `cancelPending`. Idempotent.
    func shutdown(cancelPending: Bool)
}

extension JobPool {
    /// Stops accepting jobs, runs the queued ones and waits for every worker to exit.
    public func shutdown() {
        shutdown(cancelPending: false)
    }

    /// Runs every job and hands over each result as soon as its job completes, as
    /// ``WorkerPool/results(for:maximumInFlight:)`` does for inputs: at most `maximumInFlight`
    /// results owed at once (default: twice the worker count); jobs are read lazily.
    public func results<Jobs: Sequence>(for jobs: Jobs, maximumInFlight: Int? = nil) -> CompletedResults<Jobs.Element.Output>
    where Jobs.Element: PoolJob {
        precondition(maximumInFlight.map { $0 >= 1 } ?? true, "maximumInFlight must be at least 1, not \(maximumInFlight!)")
        return CompletedResults(inputs: jobs, maximumInFlight: maximumInFlight ?? workerCount * 2) { [self] job async throws(ForkPoolError) in
            try await submitWhenReady(job)
        }
    }
}

/// Creates a ``ProcessJobPool``, runs `body` with it and shuts the pool down when `body`
/// returns or throws (cancelling queued jobs on throw).
///
/// - Parameters:
///   - workers: How many worker processes.
///   - configuration: The pool's settings.
///   - jobs: The job types the pool runs.
///   - body: What to do with the pool; its result is returned.
public func withProcessJobPool<Result>(
    workers: Int = defaultWorkerCount,
    configuration: ProcessPoolConfiguration = .init(),
    jobs: [any PoolJob.Type],
    _ body: (ProcessJobPool) throws -> Result
) throws -> Result {
    let pool = try ProcessJobPool(workers: workers, configuration: configuration, jobs: jobs)
    return try withShutdown(pool.shutdown(cancelPending:)) { try body(pool) }
}

/// Creates a ``ThreadJobPool``, runs `body` with it and shuts the pool down when `body`
/// returns or throws (cancelling queued jobs on throw).
///
/// - Parameters:
///   - workers: How many threads.
///   - jobs: The job types the pool runs.
///   - body: What to do with the pool; its result is returned.
public func withThreadJobPool<Result>(
    workers: Int = defaultWorkerCount,
    jobs: [any RunnableJob.Type],
    _ body: (ThreadJobPool) throws -> Result
) throws -> Result {
    let pool = try ThreadJobPool(workers: workers, jobs: jobs)
    return try withShutdown(pool.shutdown(cancelPending:)) { try body(pool) }
}
