// PostgresJobWorker: a worker host — claims a queue's jobs in batches, runs them on its local
// ProcessJobPool (with all of that pool's isolation), writes their results, and keeps its
// leases alive while they run.
//
//   claim loop: half the capacity free? ─ reap lapsed ─ claim ≤ free (leases) ─▶ run each:
//       pool.submit(EncodedJob) ─▶ Future<[UInt8]> ─▶ settle (JobLeaseSQL, retried while the
//       database is away; dropped when the claim was lost) ─▶ capacity freed ─▶ wake
//   wakes: NOTIFY forkpool_ready, a job finishing, the poll timer
//   renewal loop (every lease / 3): extend every held claim; a lost claim's job is stopped
//       (its result would be dropped); a cancel request stops the job and records it cancelled
//   graceful shutdown: stop claiming, let running jobs finish for `shutdownGracePeriod`, then
//       stop the rest and release their claims (queued again, the attempt not counted)
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
/// let worker = PostgresJobWorker(queue: queue, pool: pool)
/// let group = ServiceGroup(services: [client, worker], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// A job that throws is recorded as failed at once; one that crashes its worker or passes its
/// deadline is tried again (after a short delay) until the queue's ``PostgresJobQueue/Configuration/maximumAttempts``,
/// then recorded as failed with its last error. A job whose name the pool lacks is recorded as
/// failed with ``ForkPoolError/Code/unknownJob``.
public final class PostgresJobWorker: Service, Sendable {
    /// The host's settings.
    public struct Configuration: Sendable {
        /// How many jobs the host holds at once (running and waiting in its pool); nil: four
        /// per worker of the pool, so that its workers find the next job at hand.
        public var capacity: Int?
        /// How long a claim lasts without renewal: after a host dies, its jobs wait this long
        /// before another host runs them. Renewed every third of it. Default 30 s.
        public var leaseDuration: Duration = .seconds(30)
        /// How often the host looks for jobs when no notification comes. Default 1 s.
        public var pollInterval: Duration = .seconds(1)
        /// Each job's deadline on the pool (nil: none); one that passes it is stopped and tried
        /// again, as a crash is.
        public var jobTimeout: Duration?
        /// The delay before a crashed or timed-out job may run again. Default 100 ms.
        public var retryDelay: Duration = .milliseconds(100)
        /// On graceful shutdown, how long running jobs may go on before they are stopped and
        /// released. Default 30 s.
        public var shutdownGracePeriod: Duration = .seconds(30)
        /// The longest any one database call may take before the host gives up on it and tries
        /// again later (a cut network link otherwise holds a call for minutes). Default 10 s.
        public var databaseCallTimeout: Duration = .seconds(10)
        /// How the host names itself in `lease_owner`; nil: host name, pid and a random suffix.
        public var hostName: String?

        public init() {}
    }

    private struct Held {
        let claim: JobClaim
        var future: Future<[UInt8]>?
        var lost = false
        var cancelRequested = false
        var released = false
    }

    private struct State {
        /// The claims held, by lease token (a job this host claims again after its own lease
        /// lapsed is a second claim, not the first one's).
        var held: [Int64: Held] = [:]
        var stopping = false
        /// Why the host stopped on its own: its pool shut down or broke.
        var poolFailure: ForkPoolError?
    }

    /// The queue whose jobs the host runs.
    public let queue: PostgresJobQueue
    /// The pool the jobs run on.
    public let pool: ProcessJobPool
    /// The settings the host was created with.
    public let configuration: Configuration
    /// The host's `lease_owner` name.
    public let owner: String
    private let capacity: Int
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeSignal = WakeSignal()
    private let resultWriter: ResultWriter
    private let tallies = Mutex(Counters())

    /// What the host has done so far.
    public struct Counters: Sendable {
        /// Jobs claimed (a job claimed again after a crash counts again).
        public var claimed = 0
        /// Jobs whose outcome this host recorded (succeeded, failed or cancelled).
        public var settled = 0
        /// Jobs queued again for another attempt after a crash or time-out.
        public var retried = 0
        /// Results dropped because the claim was lost (another host had claimed the job).
        public var dropped = 0
        /// Claims given back unfinished at shutdown.
        public var released = 0
    }

    /// A host running `queue`'s jobs on `pool`. The pool must have been created with the job
    /// types the queue's submitters use; the caller shuts it down after the host stops.
    public init(queue: PostgresJobQueue, pool: ProcessJobPool, configuration: Configuration = .init(),
                logger: Logger? = nil) {
        self.queue = queue
        self.pool = pool
        self.configuration = configuration
        var capacity = max(configuration.capacity ?? pool.stats.workers.count * 4, 1)
        if let bound = pool.configuration.maximumQueuedTasks {
            capacity = min(capacity, pool.stats.workers.count + bound)  // never more than the pool takes
        }
        self.capacity = capacity
        self.logger = logger ?? queue.logger
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        owner = configuration.hostName ?? "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        resultWriter = ResultWriter(client: queue.client, callTimeout: configuration.databaseCallTimeout,
                                    logger: self.logger)
    }

    /// What the host has done so far.
    public var counters: Counters { tallies.withLock { $0 } }

    /// The ids of the jobs the host holds now.
    public var heldJobIDs: [Int64] { state.withLock { $0.held.values.map(\.claim.id).sorted() } }

    /// Runs until a graceful shutdown (then finishes or releases what it holds) or until the
    /// calling task is cancelled (then stops and releases at once).
    /// - Throws: the pool's ``ForkPoolError/Code/poolShutDown`` or ``ForkPoolError/Code/poolBroken``
    ///   when the pool stops taking jobs: the host releases what it holds and stops.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listenForJobs() }
            group.addTask { await self.renewLeases() }
            await withGracefulShutdownHandler {
                await self.claimJobs(group: &group)
            } onGracefulShutdown: {
                self.stop()
            }
            await self.drain()
            group.cancelAll()
        }
        if let failure = state.withLock({ $0.poolFailure }) { throw failure }
    }

    private func stop() {
        state.withLock { $0.stopping = true }
        wakeSignal.wake()
    }

    private var isStopping: Bool { state.withLock { $0.stopping } || Task.isCancelled }

    // MARK: Claiming and running

    private func claimJobs(group: inout DiscardingTaskGroup) async {
        var failures = 0
        var lastReap = ContinuousClock.now - configuration.pollInterval
        while !isStopping {
            let held = state.withLock { $0.held.count }
            let free = capacity - held
            // Claims in batches: once half the room is free (or nothing is held).
            if free > 0 && (held == 0 || free >= (capacity + 1) / 2) {
                do {
                    let reap = ContinuousClock.now - lastReap >= configuration.pollInterval
                    let claims = try await withDeadline(configuration.databaseCallTimeout, "claiming jobs",
                                                        onLateResult: { [self] late in releaseLate(late) }) { [self] in
                        if reap { try await JobLeaseSQL.reapLapsed(queue: queue.name, client: queue.client, logger: logger) }
                        return try await JobLeaseSQL.claim(queue: queue.name, owner: owner, count: free,
                                                           lease: configuration.leaseDuration, client: queue.client, logger: logger)
                    }
                    failures = 0
                    if reap { lastReap = ContinuousClock.now }
                    if !claims.isEmpty {
                        tallies.withLock { $0.claimed += claims.count }
                        let superseded = state.withLock { state -> [Future<[UInt8]>] in
                            var futures: [Future<[UInt8]>] = []
                            for claim in claims {
                                // This host's own earlier claim of the job lapsed (the database was
                                // away longer than the lease): that run is lost; stop it.
                                for (token, entry) in state.held where entry.claim.id == claim.id {
                                    state.held[token]?.lost = true
                                    if let future = entry.future { futures.append(future) }
                                }
                                state.held[claim.token] = Held(claim: claim)
                            }
                            return futures
                        }
                        for future in superseded { future.cancel() }
                        for claim in claims { group.addTask { await self.run(claim) } }
                        if claims.count == free { continue }  // there may be more
                    }
                } catch {
                    failures += 1
                    if failures == 1 || failures % 30 == 0 {
                        logger.warning("could not claim jobs; trying again", metadata: ["error": "\(String(reflecting: error))"])
                    }
                }
            }
            await wakeSignal.sleep(timeout: failures > 0 ? min(configuration.pollInterval, .milliseconds(500)) : configuration.pollInterval)
        }
    }

    /// Gives back claims that committed after their call had timed out (this host never took
    /// them up): queued again, the attempt not counted.
    private func releaseLate(_ claims: [JobClaim]) {
        guard !claims.isEmpty else { return }
        logger.notice("giving back \(claims.count) jobs claimed after the claim had timed out")
        Task { [self] in
            for claim in claims {
                _ = try? await withDeadline(configuration.databaseCallTimeout, "giving back job \(claim.id)") { [self] in
                    try await JobLeaseSQL.settle(claim, as: .released, client: queue.client, logger: logger)
                }
            }
        }
    }

    private func run(_ claim: JobClaim) async {
        let settlement: Settlement
        if claim.cancelRequested {  // cancelled while another host ran it, or before its retry
            settlement = .cancelled
        } else {
            do {
                let future = try pool.submit(EncodedJob(jobName: claim.jobName, payload: claim.payload), timeout: configuration.jobTimeout)
                let stopNow = state.withLock { state -> Bool in
                    state.held[claim.token]?.future = future
                    return state.held[claim.token].map { $0.lost || $0.cancelRequested || $0.released } ?? false
                }
                if stopNow { future.cancel() }
                switch await future.resultIgnoringTaskCancellation() {
                case .success(let output): settlement = .succeeded(output)
                case .failure(let error): settlement = self.settlement(for: error, of: claim)
                }
            } catch {
                settlement = self.settlement(for: error, of: claim)
            }
        }
        await settle(claim, as: settlement)
        state.withLock { _ = $0.held.removeValue(forKey: claim.token) }
        wakeSignal.wake()
    }

    /// What a failed job's row should say.
    private func settlement(for error: ForkPoolError, of claim: JobClaim) -> Settlement {
        let held = state.withLock { $0.held[claim.token] }
        if error.code == .cancelled {  // stopped by this host: why?
            if held?.cancelRequested == true { return .cancelled }
            return .released  // shutting down, or the claim was lost (then nothing is written)
        }
        switch error.code {
        case .workerDied, .timedOut:
            guard claim.attempt < claim.maximumAttempts else {
                var last = error
                last = ForkPoolError(error.code, "failed on attempt \(claim.attempt) of \(claim.maximumAttempts): \(error.message)")
                return .failed(last)
            }
            return .retry(error, after: configuration.retryDelay)
        case .poolShutDown, .poolBroken:
            // The pool takes no more jobs: give this one back, and stop the host.
            state.withLock { state in
                if state.poolFailure == nil { state.poolFailure = error }
                state.stopping = true
            }
            wakeSignal.wake()
            return .released
        case .overloaded:
            return .released  // this host could not run it: another may
        default:
            return .failed(error)
        }
    }

    /// Writes the outcome, trying again while the database is away, until it is written or the
    /// claim turns out lost. An outcome the database itself refuses three times is recorded as
    /// the job's failure, saying so.
    private func settle(_ claim: JobClaim, as first: Settlement) async {
        var settlement = first
        var failures = 0
        var refusals = 0
        var recordingRefusal = false
        while true {
            do {
                let written: Bool
                if case .succeeded(let output) = settlement {
                    written = try await resultWriter.write(claim, output: output)  // batched with this host's other results
                } else {
                    let current = settlement
                    written = try await withDeadline(configuration.databaseCallTimeout, "recording job \(claim.id)") { [self] in
                        try await JobLeaseSQL.settle(claim, as: current, client: queue.client, logger: logger)
                    }
                }
                count(written: written, settlement)
                if !written {
                    logger.notice("job \(claim.id)'s claim was lost (its lease lapsed and another host claimed it): outcome dropped")
                }
                return
            } catch {
                failures += 1
                if failures == 1 || failures % 30 == 0 {
                    logger.warning("could not record job \(claim.id); trying again", metadata: ["error": "\(String(reflecting: error))"])
                }
                if Task.isCancelled { return }  // the lease lapses; the job runs again elsewhere
                // The server itself refuses the outcome for what it is (bad data, a limit; not a
                // lost connection, a deadlock or a restart): the same write cannot succeed. After three refusals, record the refusal as the job's failure;
                // if even that is refused, give up (the lease lapses and the job runs again).
                if let refused = error as? PSQLError, refused.code == .server, refused.isPermanentRefusal {
                    refusals += 1
                    if refusals >= 3 {
                        guard !recordingRefusal else { return }
                        recordingRefusal = true
                        refusals = 0
                        let reason = refused.serverInfo?[.message] ?? "\(refused.code)"
                        settlement = .failed(ForkPoolError(.workFailed, "the host could not record the job's outcome: the database "
                                                           + "refused it: \(reason)"))
                    }
                }
                try? await Task.sleep(for: .milliseconds(min(100 * failures, 2000)))
            }
        }
    }

    private func count(written: Bool, _ settlement: Settlement) {
        tallies.withLock { counters in
            switch (written, settlement) {
            case (false, _): counters.dropped += 1
            case (true, .retry): counters.retried += 1
            case (true, .released): counters.released += 1
            case (true, _): counters.settled += 1
            }
        }
    }

    // MARK: Leases

    private func renewLeases() async {
        let interval = configuration.leaseDuration / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let claims = state.withLock { $0.held.values.map { (id: $0.claim.id, token: $0.claim.token) } }
            guard !claims.isEmpty else { continue }
            do {
                let held = try await withDeadline(configuration.databaseCallTimeout, "renewing leases") { [self] in
                    try await JobLeaseSQL.renew(claims, lease: configuration.leaseDuration, client: queue.client, logger: logger)
                }
                let toStop = state.withLock { state -> [Future<[UInt8]>] in
                    var futures: [Future<[UInt8]>] = []
                    for claim in claims {
                        guard var entry = state.held[claim.token] else { continue }
                        if let cancelRequested = held[claim.token] {
                            if cancelRequested { entry.cancelRequested = true }
                        } else {
                            entry.lost = true
                        }
                        state.held[claim.token] = entry
                        // At every renewal until it ends: a job sent ahead to a busy worker
                        // cannot be stopped until it runs.
                        if entry.cancelRequested || entry.lost, let future = entry.future { futures.append(future) }
                    }
                    return futures
                }
                for future in toStop { future.cancel() }
            } catch {
                logger.warning("could not renew leases; trying again", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    // MARK: Shutdown

    /// After claiming stopped: lets held jobs finish for the grace period, then stops and
    /// releases the rest, and waits until each is written (or given up).
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.shutdownGracePeriod
        while state.withLock({ !$0.held.isEmpty }) && ContinuousClock.now < deadline && !Task.isCancelled {
            await wakeSignal.sleep(timeout: .milliseconds(100))
        }
        let toStop = state.withLock { state -> [Future<[UInt8]>] in
            var futures: [Future<[UInt8]>] = []
            for token in state.held.keys {
                state.held[token]?.released = true
                if let future = state.held[token]?.future { futures.append(future) }
            }
            return futures
        }
        if !toStop.isEmpty { logger.info("releasing \(toStop.count) unfinished jobs") }
        // Each job's own task writes its release; wait for them (bounded by their retries). A
        // job sent ahead to a busy worker cannot be stopped until it runs: ask again each turn.
        // The waits are not cut short by this task's cancellation (that would spin).
        let giveUp = ContinuousClock.now + configuration.databaseCallTimeout * 2
        while state.withLock({ !$0.held.isEmpty }) && ContinuousClock.now < giveUp {
            for future in toStop { future.cancel() }
            await Task.detached { try? await Task.sleep(for: .milliseconds(50)) }.value
        }
    }

    // MARK: Notifications

    /// LISTEN forkpool_ready: a submitter wrote jobs to this queue; look for them now (and
    /// once listening starts again, for what came meanwhile).
    private func listenForJobs() async {
        await listenContinually(on: "forkpool_ready", client: queue.client, logger: logger,
                                onListening: { self.wakeSignal.wake() },
                                onNotification: { payload in if payload == self.queue.name { self.wakeSignal.wake() } })
    }
}

extension Future {
    /// The outcome, without cancelling the job when the awaiting task is cancelled (the host
    /// decides that itself).
    func resultIgnoringTaskCancellation() async -> Result<Value, ForkPoolError> {
        await Task.detached { () async -> Result<Value, ForkPoolError> in
            do throws(ForkPoolError) {
                return .success(try await self.value)
            } catch {
                return .failure(error)
            }
        }.value
    }
}

extension PSQLError {
    /// An error the same statement would meet again: SQLSTATE class 22 (data exception) or 54
    /// (program limit exceeded). Deadlocks, shutdowns, failovers and lost connections pass.
    var isPermanentRefusal: Bool {
        guard let state = serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("54")
    }
}
