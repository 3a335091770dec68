// PostgresJobWorker: a worker host — runs a queue's jobs on its local ProcessJobPool (with all
// of that pool's isolation). It is its duties, each a type of its own, sharing one HostContext
// (the queue, the pool, the ClaimBook, the wake signals, the counters):
//
//   JobClaimer          claims due jobs in batches sized by throughput ─▶ ClaimBook
//   JobRunner           a turn at a worker (fresh lease only) ─▶ pool ─▶ OutcomeWriter; a job's
//                       end starts the next (on the pool's completion, no task per job)
//   OutcomeWriter       writes outcomes in batches, by (id, token)
//   LeaseKeeper         renews every held claim, re-checks them after a stall, heartbeats
//   LapsedClaimRescuer  queues lapsed claims again (or fails them); deletes rows past retention
//   PeriodicScheduler   enqueues periodic jobs, once per tick across hosts
//   listener            LISTEN forkpool_ready ─▶ wakes the claimer
//
// Graceful shutdown: stop claiming, give back the claims waiting for a worker, let running jobs
// finish for `shutdownGracePeriod`, then stop the rest and release their claims (queued again,
// the attempt not counted).
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A worker host of a ``PostgresJobQueue``: a swift-service-lifecycle `Service` that runs the
/// queue's jobs on a local ``ProcessJobPool``.
///
/// ```swift
/// let pool = try ProcessJobPool(workers: 8, jobs: [Resize.self, Checksum.self])
/// let worker = try PostgresJobWorker(queue: queue, pool: pool)
/// let group = ServiceGroup(services: [client, worker], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// A job that throws is recorded as failed at once; one that crashes its worker or passes its
/// deadline is tried again (after the queue's ``PostgresJobQueue/Configuration/retryBackoff``)
/// until the queue's ``PostgresJobQueue/Configuration/maximumAttempts``, then recorded as
/// failed with its last error. A job whose name the pool lacks is recorded as failed with
/// ``ForkPoolError/Code/unknownJob``.
public final class PostgresJobWorker: Service, Sendable {
    /// The host's settings.
    public struct Configuration: Sendable {
        /// How many claims the host holds at once (running, waiting for a worker, being
        /// written); nil: sized by the host's throughput — a quarter of a second of it, at least
        /// two per worker of the pool, at most 4,096.
        public var capacity: Int?
        /// How long a claim lasts without renewal: after a host dies, its jobs wait this long
        /// before another host runs them. Renewed every third of it; a claim with less than half
        /// of it left (the host stalled) is re-checked before its job starts. Default 30 s.
        public var leaseDuration: Duration = .seconds(30)
        /// How often the host looks for jobs when no notification comes, and for lapsed claims.
        /// Default 1 s.
        public var pollInterval: Duration = .seconds(1)
        /// Each job's deadline on the pool (nil: none); one that passes it is stopped and tried
        /// again, as a crash is.
        public var jobTimeout: Duration?
        /// On graceful shutdown, how long running jobs may go on before they are stopped and
        /// released. Default 30 s.
        public var shutdownGracePeriod: Duration = .seconds(30)
        /// The longest any one database call may take before the host gives up on it and tries
        /// again later (a cut network link otherwise holds a call for minutes). Default 10 s.
        public var databaseCallTimeout: Duration = .seconds(10)
        /// How the host names itself in `lease_owner`; nil: host name, pid and a random suffix.
        public var hostName: String?
        /// Jobs this host enqueues on a schedule (every host of the queue may list the same
        /// ones: each tick is enqueued once).
        public var periodicJobs: [PeriodicJob] = []

        public init() {}

        func problem() -> String? {
            if let capacity, capacity < 1 { return "capacity is \(capacity); it must be at least 1 (or nil: sized by throughput)" }
            if leaseDuration < .milliseconds(100) { return "leaseDuration is \(leaseDuration); it must be at least 100 ms" }
            if pollInterval <= .zero { return "pollInterval is \(pollInterval); it must be positive" }
            if let jobTimeout, jobTimeout <= .zero { return "jobTimeout is \(jobTimeout); it must be positive (or nil)" }
            if shutdownGracePeriod < .zero { return "shutdownGracePeriod is \(shutdownGracePeriod); it must not be negative" }
            if databaseCallTimeout <= .zero { return "databaseCallTimeout is \(databaseCallTimeout); it must be positive" }
            let names = periodicJobs.map(\.name)
            if Set(names).count != names.count { return "two periodic jobs share a name" }
            return nil
        }
    }

    /// What the host has done so far.
    public struct Counters: Sendable {
        /// Jobs claimed (a job claimed again after a crash counts again).
        public var claimed = 0
        /// Jobs whose outcome this host recorded (succeeded, failed or cancelled).
        public var settled = 0
        /// Jobs queued again for another attempt after a crash or time-out.
        public var retried = 0
        /// Claims lost (their lease lapsed and another host may run the job): the job was not
        /// started, or its outcome was dropped.
        public var dropped = 0
        /// Claims given back unfinished at shutdown.
        public var released = 0
        /// Finished rows this host deleted past the queue's retention.
        public var expired = 0
        /// Periodic jobs this host enqueued.
        public var scheduled = 0
    }

    /// The queue whose jobs the host runs.
    public let queue: PostgresJobQueue
    /// The pool the jobs run on.
    public let pool: ProcessJobPool
    /// The settings the host was created with.
    public let configuration: Configuration
    /// The host's `lease_owner` name.
    public var owner: String { host.owner }
    private let host: HostContext

    /// A host running `queue`'s jobs on `pool`. The pool must have been created with the job
    /// types the queue's submitters use; the caller shuts it down after the host stops.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for a setting out of range, naming it.
    public init(queue: PostgresJobQueue, pool: ProcessJobPool, configuration: Configuration = .init(),
                logger: Logger? = nil) throws {
        if let problem = configuration.problem() { throw ForkPoolError(.invalidArgument, "PostgresJobWorker: \(problem)") }
        self.queue = queue
        self.pool = pool
        self.configuration = configuration
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let machine = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        host = HostContext(queue: queue, pool: pool, configuration: configuration,
                           owner: configuration.hostName ?? "\(machine):\(getpid()):\(UInt32.random(in: 0...UInt32.max))",
                           logger: logger ?? queue.logger)
    }

    /// What the host has done so far.
    public var counters: Counters { host.tallies.withLock { $0 } }

    /// The ids of the jobs the host holds now.
    public var heldJobIDs: [Int64] { host.book.heldJobIDs }

    /// Runs until a graceful shutdown (then finishes or releases what it holds) or until the
    /// calling task is cancelled (then stops and releases at once).
    /// - Throws: the pool's ``ForkPoolError/Code/poolShutDown`` or ``ForkPoolError/Code/poolBroken``
    ///   when the pool stops taking jobs: the host releases what it holds and stops.
    public func run() async throws {
        let host = self.host
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listenForJobs() }
            group.addTask { await LeaseKeeper(host: host).run() }
            group.addTask { await LapsedClaimRescuer(host: host).run() }
            if !configuration.periodicJobs.isEmpty {
                group.addTask { await PeriodicScheduler(host: host, jobs: host.configuration.periodicJobs).run() }
            }
            await withGracefulShutdownHandler {
                await JobClaimer(host: host).run()
            } onGracefulShutdown: {
                host.book.stop()
                host.runner.pump()  // claims waiting for a worker go back
                host.claimWake.wake()
            }
            await self.drain()
            host.outcomes.stop()
            group.cancelAll()
        }
        await LeaseKeeper(host: host).hostStopped()  // after its last renewal
        if let failure = host.book.poolFailure { throw failure }
    }

    /// After claiming stopped: lets held jobs finish for the grace period, then stops and
    /// releases the rest, and waits until each is written (or given up).
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.shutdownGracePeriod
        while host.book.count > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
            await host.claimWake.sleep(timeout: .milliseconds(100))
        }
        let toStop = host.book.releaseAll()
        host.runner.pump()  // the waiting ones are given back unrun
        if !toStop.isEmpty { host.logger.info("releasing \(toStop.count) unfinished jobs") }
        // Each stopped job's end writes its release; wait for them (bounded: the writer then
        // stops, and the leases lapse). The waits are not cut short by this task's
        // cancellation (that would spin).
        let giveUp = ContinuousClock.now + configuration.databaseCallTimeout * 2
        while host.book.count > 0 && ContinuousClock.now < giveUp {
            for future in toStop { future.cancel() }
            await Task.detached { try? await Task.sleep(for: .milliseconds(50)) }.value
        }
    }

    /// LISTEN forkpool_ready: a submitter wrote jobs to this queue; look for them now (and
    /// once listening starts again, for what came meanwhile).
    private func listenForJobs() async {
        await listenContinually(on: "forkpool_ready", client: queue.client, logger: host.logger,
                                onListening: { self.host.claimWake.wake() },
                                onNotification: { payload in if payload == self.queue.name { self.host.claimWake.wake() } })
    }
}

/// What a worker host's duties share.
final class HostContext: Sendable {
    let queue: PostgresJobQueue
    let pool: ProcessJobPool
    let configuration: PostgresJobWorker.Configuration
    let owner: String
    let logger: Logger
    let book: ClaimBook
    let outcomes: OutcomeWriter
    /// The claimer sleeps on it: NOTIFY forkpool_ready, a job ending, rescued claims.
    let claimWake = WakeSignal()
    let tallies = Mutex(PostgresJobWorker.Counters())
    var client: PostgresClient { queue.client }
    var runner: JobRunner { JobRunner(host: self) }

    init(queue: PostgresJobQueue, pool: ProcessJobPool, configuration: PostgresJobWorker.Configuration, owner: String, logger: Logger) {
        self.queue = queue
        self.pool = pool
        self.configuration = configuration
        self.owner = owner
        self.logger = logger
        // Each worker runs up to jobsPerWorker async jobs at once: the host's capacity follows.
        let perWorker = pool.runsAsyncJobs ? pool.configuration.jobsPerWorker : 1
        book = ClaimBook(slots: pool.stats.workers.count * perWorker, lease: configuration.leaseDuration)
        outcomes = OutcomeWriter(client: queue.client, queue: queue.name, callTimeout: configuration.databaseCallTimeout, logger: logger)
    }
}
