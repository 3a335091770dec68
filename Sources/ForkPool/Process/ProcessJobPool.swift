// ProcessJobPool: one process pool, many kinds of work — any registered job, as Python's
// `executor.submit(fn, *args)` runs any picklable function.
//
//   submit(job) ─ JobRegistry.check ─▶ TypedTasks<Job, Job.Output> (one per job type):
//                 [job name][encoded job] ─▶ frame ─▶ Dispatcher (the same engine as ProcessPool)
//   worker: JobRegistry.handle ─ name ─▶ that job type's WorkFunctionHandler ─▶ job.run() ─▶ reply
//
// Every worker has every job type's handler (inherited at fork, or found by name in a fresh
// worker), so jobs of different types run on the same workers at once.
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
/// (time-outs, crash policy, recycling, backpressure; an `initializer` only with
/// ``StartMethod/snapshot``: a job pool starts fresh by default, and a job type sets its
/// workers up in ``PoolJob/setUpWorker()``), the same isolation: a job that throws, crashes,
/// hangs or cannot be decoded fails only itself, and its error names the job
/// (``ForkPoolError/jobName``).
public final class ProcessJobPool: JobPool, @unchecked Sendable {
    /// How a job pool starts its fork server, the process that forks every worker.
    public enum StartMethod: Sendable, Hashable {
        /// Fork the running program: workers are copies of it as it was at pool creation, so
        /// an ``ProcessPoolConfiguration/initializer`` and global state set by `main` are
        /// there. Start and every respawn copy the program's page tables (they grow with its
        /// heap), and a lock another thread held at that instant stays held in the copy.
        case snapshot
        /// Start the program's own binary anew (`posix_spawn` of `/proc/self/exe`; the
        /// default): a fork server with one thread and a small heap, whose workers find each
        /// job's type by its name. Start and respawn barely depend on the parent's heap, and no
        /// lock of the parent is ever inherited. A worker has only what a job carries and
        /// computes; set it up in ``PoolJob/setUpWorker()``.
        case fresh
    }

    let dispatcher: Dispatcher
    let registry: JobRegistry
    let jobTasks: ProcessJobTasks
    public var _control: any _PoolControl { dispatcher }
    public var _jobs: any _JobTasks { jobTasks }

    /// Starts `workers` worker processes that can run every job type in `jobs`, and returns
    /// once they are up.
    ///
    /// - Parameters:
    ///   - workers: How many worker processes (at least one); default: the number of online
    ///     processors.
    ///   - startMethod: How the fork server starts; ``StartMethod/fresh`` by default.
    ///   - configuration: Limits, time-outs and failure policies; see ``ProcessPoolConfiguration``.
    ///   - jobs: The job types the pool runs.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for no job types, two types with one
    ///   ``RunnableJob/jobName`` (naming both), fewer than one worker, a bad setting, or an
    ///   `initializer` with ``StartMethod/fresh``; otherwise as
    ///   ``ProcessPool/init(workers:configuration:work:)``.
    public init(workers: Int = defaultWorkerCount, startMethod: StartMethod = .fresh,
                configuration: ProcessPoolConfiguration = .init(), jobs: [any PoolJob.Type]) throws(ForkPoolError) {
        guard workers >= 1 else {
            throw ForkPoolError(.invalidArgument, "a ProcessJobPool needs at least one worker, not \(workers)")
        }
        try configuration.validate()
        let registry = try JobRegistry(jobs: jobs)
        self.registry = registry
        var settings = Dispatcher.Settings(workerCount: workers, configuration: configuration)
        if startMethod == .snapshot, let asyncType = jobs.first(where: { $0 is any AsyncPoolJob.Type }) {
            throw ForkPoolError(.invalidArgument, "\(String(reflecting: asyncType)) is an async job, and a snapshot worker (a copy of "
                                + "this multi-threaded program) cannot run Swift concurrency: use a fresh job pool (startMethod .fresh, "
                                + "the default)")
        }
        if startMethod == .fresh {
            guard configuration.initializer == nil else {
                throw ForkPoolError(.invalidArgument, "an initializer closure cannot go to a fresh worker process: set the workers up in "
                                    + "a job type's static setUpWorker(), or use startMethod .snapshot")
            }
            settings.fresh = FreshStartSettings(serverOptions: configuration.forkServerOptions, workerOptions: configuration.workerForkOptions,
                                                maximumFrameBytes: configuration.maximumFrameBytes,
                                                jobTypeNames: try FreshStart.typeNames(of: jobs))
            settings.fresh?.jobsPerWorker = configuration.jobsPerWorker
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
        jobTasks = ProcessJobTasks(dispatcher: dispatcher, registry: registry, configuration: configuration, workerCount: workers)
    }

    deinit {
        dispatcher.shutdown(cancelPending: false)
    }

    /// Whether any of its job types is async (its workers run `jobsPerWorker` of those at once).
    @_spi(Integration)
    public var runsAsyncJobs: Bool { registry.hasAsyncJobs }

    /// The settings the pool was created with (for integrations that size themselves by it).
    @_spi(Integration)
    public var configuration: ProcessPoolConfiguration { jobTasks.configuration }

    /// The pids of the live, ready worker processes.
    @_spi(Testing)
    public var workerProcessIDs: [pid_t] { dispatcher.workerProcessIDs }

    /// The pid of the pool's fork server; nil once the pool has shut down.
    @_spi(Testing)
    public var forkServerProcessID: pid_t? { dispatcher.forkServerProcessID }

    /// Queues one job with a deadline `timeout` from now, as
    /// ``ProcessPool/submit(_:timeout:)`` does.
    public func submit<Job: RunnableJob>(_ job: Job, timeout: Duration) throws(ForkPoolError) -> Future<Job.Output> {
        try jobTasks.submit(job, timeout: timeout)
    }
}

/// The job pool's engine seam: one `TypedTasks<Job, Job.Output>` per job type used so far, over
/// the pool's one dispatcher. Jobs arrive as any `RunnableJob`; only registered types (all
/// `PoolJob`s) pass the registry's check, and are then opened as the `PoolJob` they are.
final class ProcessJobTasks: _JobTasks {
    let dispatcher: Dispatcher
    let registry: JobRegistry
    let configuration: ProcessPoolConfiguration
    let workerCount: Int
    private let typed = Mutex<[ObjectIdentifier: any Sendable]>([:])

    init(dispatcher: Dispatcher, registry: JobRegistry, configuration: ProcessPoolConfiguration, workerCount: Int) {
        self.dispatcher = dispatcher
        self.registry = registry
        self.configuration = configuration
        self.workerCount = workerCount
    }

    /// The typed layer for `Job`, once its type is known to be registered.
    func tasks<Job: PoolJob>(for _: Job.Type) -> TypedTasks<Job, Job.Output> {
        let key = ObjectIdentifier(Job.self)
        if let known = typed.withLock({ $0[key] }) as? TypedTasks<Job, Job.Output> { return known }
        var made = TypedTasks<Job, Job.Output>(dispatcher: dispatcher, configuration: configuration, workerCount: workerCount,
                                                jobName: Job.jobName)
        made.concurrent = Job.self is any AsyncPoolJob.Type  // a fresh pool's: a snapshot one refuses them
        typed.withLock { $0[key] = made }
        return made
    }

    /// `Job` as the registered `PoolJob` type it is.
    private func poolJobType<Job: RunnableJob>(_: Job.Type) throws(ForkPoolError) -> any PoolJob.Type {
        try registry.check(Job.self)
        guard let type = Job.self as? any PoolJob.Type else {
            // Unreachable: a process pool registers PoolJob types only.
            throw ForkPoolError(.unknownJob, "\(String(reflecting: Job.self)) is not a PoolJob: a process pool runs only Codable jobs")
        }
        return type
    }

    func submit<Job: RunnableJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output> {
        func open<J: PoolJob>(_: J.Type) throws(ForkPoolError) -> Future<Job.Output> {
            try tasks(for: J.self).submit(job as! J) as! Future<Job.Output>
        }
        return try open(poolJobType(Job.self))
    }

    func submit<Job: RunnableJob>(_ job: Job, timeout: Duration) throws(ForkPoolError) -> Future<Job.Output> {
        func open<J: PoolJob>(_: J.Type) throws(ForkPoolError) -> Future<Job.Output> {
            try tasks(for: J.self).submit(job as! J, timeout: timeout) as! Future<Job.Output>
        }
        return try open(poolJobType(Job.self))
    }

    func submitWhenReady<Job: RunnableJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output> {
        func open<J: PoolJob>(_: J.Type) async throws(ForkPoolError) -> Future<Job.Output> {
            try await tasks(for: J.self).submitWhenReady(job as! J) as! Future<Job.Output>
        }
        return try await open(poolJobType(Job.self))
    }

    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int?) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        func open<J: PoolJob>(_: J.Type) throws(ForkPoolError) -> [Jobs.Element.Output] {
            let tasks = tasks(for: J.self)
            let outputs = if let array = jobs as? [J] {
                try tasks.map(array, chunkSize: chunkSize)
            } else {
                try tasks.map(jobs.lazy.map { $0 as! J }, chunkSize: chunkSize)
            }
            return outputs as! [Jobs.Element.Output]
        }
        return try open(poolJobType(Jobs.Element.self))
    }

    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int?) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        func open<J: PoolJob>(_: J.Type) async throws(ForkPoolError) -> [Jobs.Element.Output] {
            let tasks = tasks(for: J.self)
            let outputs = if let array = jobs as? [J] {
                try await tasks.map(array, chunkSize: chunkSize)
            } else {
                try await tasks.map(jobs.lazy.map { $0 as! J }, chunkSize: chunkSize)
            }
            return outputs as! [Jobs.Element.Output]
        }
        return try await open(poolJobType(Jobs.Element.self))
    }
}
