// ProcessJobPool: one process pool, many kinds of work — any registered job, as Python's
// `executor.submit(fn, *args)` runs any picklable function.
//
//   submit(job) ─ JobRegistry.check ─▶ TypedTasks<Job, Job.Output> (cached per job type):
//                 [job name][encoded job] ─▶ frame ─▶ Dispatcher (the same engine as ProcessPool)
//   worker: JobRegistry.handle ─ name ─▶ that job type's WorkFunctionHandler ─▶ job.run() ─▶ reply
//
// A thin typed layer over the engine that `ProcessPool` uses too: the dispatcher, fork server,
// lanes, pipelines, backpressure and wire format are shared, not copied. Every job type's
// handler is in the registry every worker has (inherited at fork, or found by name in a fresh
// worker), so jobs of different types run on the
// same workers, at once.
import Glibc
import Synchronization

/// A pool of pre-forked worker processes that runs any ``PoolJob`` whose type it was created
/// with: one pool sized to the machine for every kind of CPU-heavy work a program has.
///
/// ```swift
/// let pool = try ProcessJobPool(workers: 4, jobs: [Resize.self, Checksum.self])
/// let thumb = try pool.submit(Resize(path: p, width: 200))   // Future<Resize.Output>
/// let sums = try pool.map(files.map(Checksum.init))           // [Checksum.Output], in order
/// ```
///
/// It behaves as a ``ProcessPool`` in every other way — the same ``ProcessPoolConfiguration``
/// (time-outs, crash policy, recycling, lanes, backpressure; an `initializer` only with
/// ``ProcessPoolConfiguration/StartMethod/snapshot``: a job pool starts fresh by default, and a
/// job type sets its workers up in ``PoolJob/setUpWorker()``), the same isolation:
/// a job that throws, crashes, hangs or cannot be decoded fails only itself, and its error
/// names the job (``ForkPoolError/jobName``).
public final class ProcessJobPool: JobPool, @unchecked Sendable {
    /// The number of worker processes the pool keeps running.
    public let workerCount: Int
    /// The settings the pool was created with.
    public let configuration: ProcessPoolConfiguration
    let dispatcher: Dispatcher
    let registry: JobRegistry
    /// One typed layer per job type used so far (a `TypedTasks<Job, Job.Output>` each).
    private let typed = Mutex<[ObjectIdentifier: any Sendable]>([:])

    /// Forks `workers` worker processes that can run every job type in `jobs`, and returns once
    /// they are up.
    ///
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for no job types, two types with one
    ///   ``RunnableJob/jobName`` (naming both), fewer than one worker or a bad setting; otherwise
    ///   as ``ProcessPool/init(workers:configuration:work:)``.
    public init(workers: Int = defaultWorkerCount, configuration: ProcessPoolConfiguration = .init(),
                jobs: [any PoolJob.Type]) throws(ForkPoolError) {
        guard workers >= 1 else {
            throw ForkPoolError(.invalidArgument, "a ProcessJobPool needs at least one worker, not \(workers)")
        }
        try configuration.validate()
        let registry = try JobRegistry(jobs: jobs)
        self.registry = registry
        self.workerCount = workers
        self.configuration = configuration
        var settings = Dispatcher.Settings(workerCount: workers, configuration: configuration)
        if configuration.startMethod ?? .fresh == .fresh {
            guard configuration.initializer == nil else {
                throw ForkPoolError(.invalidArgument, "an initializer closure cannot go to a fresh worker process: set the workers up in "
                                    + "a job type's static setUpWorker(), or use startMethod .snapshot")
            }
            settings.fresh = FreshStartSettings(serverOptions: configuration.forkServerOptions, workerOptions: configuration.workerForkOptions,
                                                maximumFrameBytes: configuration.maximumFrameBytes,
                                                jobTypeNames: try FreshStart.typeNames(of: jobs))
        }
        let maximumFrameBytes = configuration.maximumFrameBytes
        let initializer = configuration.initializer
        dispatcher = try Dispatcher(settings: settings) { socket in
            // A snapshot worker: the initializer (if any), then every job type's set-up.
            WorkerLoop.run(socket: socket, maximumFrameBytes: maximumFrameBytes, initializer: {
                try initializer?()
                for job in jobs { try job.setUpWorker() }
            }, handler: registry.handle)
        }
    }

    deinit {
        dispatcher.shutdown(cancelPending: false)
    }

    /// The names of the job types the pool runs, as registered.
    public var jobNames: [String] { registry.names }

    /// The pids of the live, ready worker processes.
    public var workerProcessIDs: [pid_t] { dispatcher.workerProcessIDs }

    /// The pid of the pool's fork server; nil once the pool has shut down.
    public var forkServerProcessID: pid_t? { dispatcher.forkServerProcessID }

    /// What the pool has done so far, all job types together; see ``PoolStats``.
    public var stats: PoolStats { dispatcher.stats }

    /// The typed layer for `Job`, once its type is known to be registered.
    private func tasks<Job: PoolJob>(for _: Job.Type) throws(ForkPoolError) -> TypedTasks<Job, Job.Output> {
        let key = ObjectIdentifier(Job.self)
        if let known = typed.withLock({ $0[key] }) as? TypedTasks<Job, Job.Output> { return known }
        try registry.check(Job.self)
        let made = TypedTasks<Job, Job.Output>(dispatcher: dispatcher, configuration: configuration, workerCount: workerCount,
                                                jobName: Job.jobName)
        typed.withLock { $0[key] = made }
        return made
    }

    /// Queues one job and returns a future for its output. The job is encoded here, on the
    /// calling thread.
    ///
    /// - Throws: ``ForkPoolError/Code/unknownJob`` when `Job` is not one of the pool's job types
    ///   (naming it and the registered names; nothing is queued), ``ForkPoolError/Code/overloaded``
    ///   when the queue is full, ``ForkPoolError/Code/poolShutDown`` after shutdown, or a coding
    ///   error.
    public func submit<Job: PoolJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output> {
        try tasks(for: Job.self).submit(job)
    }

    /// Queues one job with a deadline `timeout` seconds from now, as
    /// ``ProcessPool/submit(_:timeout:)-(Input,Double)`` does.
    public func submit<Job: PoolJob>(_ job: Job, timeout: Double) throws(ForkPoolError) -> Future<Job.Output> {
        try tasks(for: Job.self).submit(job, timeout: timeout)
    }

    /// Queues one job with a deadline `timeout` from now.
    public func submit<Job: PoolJob>(_ job: Job, timeout: Duration) throws(ForkPoolError) -> Future<Job.Output> {
        try tasks(for: Job.self).submit(job, timeout: timeout.seconds)
    }

    /// Queues one job, suspending until the queue has room when it is full (see
    /// ``ProcessPool/submitWhenReady(_:)``).
    public func submitWhenReady<Job: PoolJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output> {
        try await tasks(for: Job.self).submitWhenReady(job)
    }

    /// Runs every job in the worker processes and returns the outputs in order, with the chunk
    /// sizes chosen as ``ProcessPool/map(_:)-lovd`` chooses them.
    public func map<Jobs: Sequence>(_ jobs: Jobs) throws(ForkPoolError) -> [Jobs.Element.Output] where Jobs.Element: PoolJob {
        try tasks(for: Jobs.Element.self).map(jobs, chunkSize: nil)
    }

    /// Like `map(_:)`, sending exactly `chunkSize` jobs per frame.
    public func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: PoolJob {
        try tasks(for: Jobs.Element.self).map(jobs, chunkSize: chunkSize)
    }

    /// The async form of `map(_:)`; cancellation as in ``ProcessPool/map(_:)-4niv5``.
    public func map<Jobs: Sequence>(_ jobs: Jobs) async throws(ForkPoolError) -> [Jobs.Element.Output] where Jobs.Element: PoolJob {
        try await tasks(for: Jobs.Element.self).map(jobs, chunkSize: nil)
    }

    /// The async form of `map(_:chunkSize:)`.
    public func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: PoolJob {
        try await tasks(for: Jobs.Element.self).map(jobs, chunkSize: chunkSize)
    }

    /// Stops accepting jobs, runs (or cancels) the queued ones, lets running ones finish, and
    /// waits until every worker process has exited and been reaped. Idempotent.
    public func shutdown(cancelPending: Bool) {
        dispatcher.shutdown(cancelPending: cancelPending)
    }
}
