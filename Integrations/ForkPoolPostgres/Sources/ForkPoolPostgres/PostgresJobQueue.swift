// PostgresJobQueue: the submitting side — jobs become rows of forkpool_jobs, and their results
// come back through the same table. (Operating a queue: PostgresJobQueue+Operations.swift.)
//
//   submit(job, options) ─ EncodedJob (size, options checked first) ─▶ one INSERT … RETURNING id
//               + one NOTIFY forkpool_ready (a unique key: ON CONFLICT DO NOTHING, else the
//               holder's id) ─▶ JobHandle(id) at once
//   handle.value ─▶ OutcomeWatcher (NOTIFY forkpool_done, polling as a fallback) ─▶ row's result
//               ─▶ EncodedJob.decodeOutput ─▶ Job.Output (or the recorded error)
//   map(jobs) ─ one INSERT of every row ─▶ handles ─▶ every value, in order
//   cancel(handle) ─ queued: state := cancelled; running: cancel_requested := true (its host
//                    stops it at its next lease renewal)
import Foundation
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

/// A job queue in PostgreSQL: jobs submitted here run on every ``PostgresJobWorker`` serving
/// the same queue name, on any host that reaches the database.
///
/// ```swift
/// let client = PostgresClient(configuration: …)
/// Task { await client.run() }                      // or in a ServiceGroup
/// let queue = try PostgresJobQueue(client: client, name: "thumbnails")
/// try await queue.migrate()                        // once per database; safe to repeat
/// let handle = try await queue.submit(Resize(path: p, width: 200))
/// let thumb = try await handle.value               // when a worker host recorded it
/// ```
///
/// Jobs run at least once and their results are recorded exactly once; see docs/POSTGRES.md
/// for what is and is not guaranteed.
public final class PostgresJobQueue: Sendable {
    /// The queue's settings. Submitters use the payload limit and attempts; worker hosts the
    /// back-off and the retention; waiting handles the poll interval.
    public struct Configuration: Sendable {
        /// The largest encoded job `submit` accepts; a larger one throws
        /// ``ForkPoolError/Code/frameTooLarge`` before anything is written. Default 8 MiB.
        public var maximumPayloadBytes = 8 << 20
        /// How many times a job may be claimed (runs that crash their worker, hang past their
        /// deadline or lose their host count; a job that throws fails at once). Default 3.
        public var maximumAttempts = 3
        /// How long a job waits between attempts. Default: 1 s doubling to at most 5 min, ±20 %.
        public var retryBackoff = RetryBackoff()
        /// How long a finished job's row (its result or error) stays readable; the queue's
        /// worker hosts then delete it, a batch at a time. nil: kept until deleted by hand
        /// (`purge`). Default 7 days.
        public var retention: Duration? = .seconds(7 * 24 * 3600)
        /// How often a waiting ``JobHandle/value`` looks for results when no notification
        /// comes. Default 1 s.
        public var pollInterval: Duration = .seconds(1)

        public init() {}

        func problem() -> String? {
            if maximumPayloadBytes < 1 { return "maximumPayloadBytes is \(maximumPayloadBytes); it must be at least 1" }
            if maximumAttempts < 1 || maximumAttempts > Int(Int32.max) { return "maximumAttempts is \(maximumAttempts); it must be at least 1" }
            if let retention, retention < .seconds(1) { return "retention is \(retention); it must be at least 1 s (or nil: kept)" }
            if pollInterval <= .zero { return "pollInterval is \(pollInterval); it must be positive" }
            return retryBackoff.problem()
        }
    }

    /// The connection pool the queue uses; the caller runs it (`client.run()`).
    public let client: PostgresClient
    /// The queue's name: workers serving this name run its jobs.
    public let name: String
    /// The settings the queue was created with.
    public let configuration: Configuration
    let logger: Logger
    private let watcher: OutcomeWatcher

    /// A queue named `name` in the database `client` connects to. Nothing is written until
    /// ``migrate()`` or ``submit(_:options:)``.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for an empty name or a setting out of
    ///   range, naming it.
    public init(client: PostgresClient, name: String = "default", configuration: Configuration = .init(),
                logger: Logger = Logger(label: "forkpool.postgres")) throws {
        guard !name.isEmpty, !name.unicodeScalars.contains("\0"), name.utf8.count <= 200 else {
            throw ForkPoolError(.invalidArgument, "a queue name is 1 to 200 bytes without NUL, not \"\(name.prefix(40))\"")
        }
        if let problem = configuration.problem() {
            throw ForkPoolError(.invalidArgument, "PostgresJobQueue \"\(name)\": \(problem)")
        }
        self.client = client
        self.name = name
        self.configuration = configuration
        self.logger = logger
        watcher = OutcomeWatcher(client: client, pollInterval: configuration.pollInterval, logger: logger)
    }

    /// Creates or upgrades the queue's tables (versioned migrations, each applied once, under a
    /// lock; a version-1 database is upgraded in place with its jobs). Safe to call from every
    /// host at start-up.
    public func migrate() async throws {
        try await JobQueueSchema.migrate(client, logger: logger)
    }

    /// Writes one job and returns its handle at once; a worker host runs it when `options` say.
    /// With a ``JobOptions/uniqueKey`` held by a scheduled, queued or running job of this queue, writes
    /// nothing and returns that job's handle.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for options out of range (or a unique
    ///   key held by a job of another type), ``ForkPoolError/Code/frameTooLarge`` for a job that
    ///   encodes to more than ``Configuration/maximumPayloadBytes`` and
    ///   ``ForkPoolError/Code/encodingFailed``, all before anything is written; the database's
    ///   errors as they come.
    public func submit<Job: PoolJob>(_ job: Job, options: JobOptions = JobOptions()) async throws -> JobHandle<Job.Output> {
        guard let key = options.uniqueKey else { return try await submit(contentsOf: CollectionOfOne(job), options: options)[0] }
        let payload = try encode(job, options: options)
        // Insert unless the key is held; else the holder — unless it finished in between: again.
        for _ in 0..<10 {
            let inserted = try await ids(QueueSQL.submitUnique(
                queue: name, jobName: Job.jobName, payload: payload, attempts: Int32(configuration.maximumAttempts),
                priority: Int32(options.priority), notBefore: options.notBefore, delaySeconds: options.delay?.seconds ?? 0, key: key))
            if let id = inserted.first { return handle(id, of: Job.self) }
            for try await (id, jobName) in try await client.query(QueueSQL.holderOfUniqueKey(queue: name, key: key), logger: logger)
                .decode((Int64, String).self) {
                guard jobName == Job.jobName else {
                    throw ForkPoolError(.invalidArgument, "unique key \"\(key)\" of queue \"\(name)\" is held by job \(id), a \(jobName), "
                                        + "not a \(Job.jobName)")
                }
                return handle(id, of: Job.self)
            }
        }
        throw ForkPoolError(.overloaded, "unique key \"\(key)\" of queue \"\(name)\" kept changing hands; nothing was written")
    }

    /// Writes one job to run at `notBefore` (by the database's clock) or later.
    public func submit<Job: PoolJob>(_ job: Job, notBefore: Date) async throws -> JobHandle<Job.Output> {
        try await submit(job, options: JobOptions(notBefore: notBefore))
    }

    /// Writes every job in one round trip and returns their handles, in order.
    /// - Throws: as ``submit(_:options:)`` (a ``JobOptions/uniqueKey`` is for one job only);
    ///   when one job is refused, none is written.
    public func submit<Jobs: Sequence>(contentsOf jobs: Jobs, options: JobOptions = JobOptions()) async throws
        -> [JobHandle<Jobs.Element.Output>] where Jobs.Element: PoolJob {
        let jobs = Array(jobs)
        guard options.uniqueKey == nil || jobs.count <= 1 else {
            throw ForkPoolError(.invalidArgument, "a uniqueKey names one job: submit the \(jobs.count) jobs one at a time; nothing was written")
        }
        if options.uniqueKey != nil, let job = jobs.first { return [try await submit(job, options: options)] }
        var payloads: [ByteBuffer] = []
        payloads.reserveCapacity(jobs.count)
        for job in jobs { payloads.append(try encode(job, options: options)) }
        guard !payloads.isEmpty else { return [] }
        var ids = try await ids(QueueSQL.submit(
            queue: name, jobName: Jobs.Element.jobName, payloads: payloads, attempts: Int32(configuration.maximumAttempts),
            priority: Int32(options.priority), notBefore: options.notBefore, delaySeconds: options.delay?.seconds ?? 0))
        // The ids come from one sequence, in the order the rows were inserted.
        ids.sort()
        return ids.map { handle($0, of: Jobs.Element.self) }
    }

    /// Runs every job on the queue's worker hosts and returns the outputs in order: one round
    /// trip writes them all, then the results are awaited.
    /// - Throws: as ``submit(contentsOf:options:)``, then the first failure in order, as
    ///   ``JobHandle/value`` throws it.
    public func map<Jobs: Sequence>(_ jobs: Jobs) async throws -> [Jobs.Element.Output] where Jobs.Element: PoolJob {
        let handles = try await submit(contentsOf: jobs)
        // Every handle waits at once, so one look-up answers many.
        typealias Outcome = Result<Jobs.Element.Output, ForkPoolError>
        let outcomes = await withTaskGroup(of: (Int, Outcome).self) { group in
            for (index, handle) in handles.enumerated() {
                group.addTask {
                    do throws(ForkPoolError) { return (index, .success(try await handle.value)) } catch { return (index, .failure(error)) }
                }
            }
            var outcomes = [Outcome?](repeating: nil, count: handles.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }
        return try outcomes.map { try $0!.get() }  // the first failure in order
    }

    /// Cancels job `id`: a queued job will not run (returns true); a running one is stopped by
    /// its host at its next lease renewal, and its handle then throws
    /// ``ForkPoolError/Code/cancelled`` (returns false, as for a job already finished).
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` when there is no job `id`.
    @discardableResult
    public func cancel(jobID id: Int64) async throws -> Bool {
        // One UPDATE: when a host's claim holds the row, PostgreSQL waits for it and then
        // re-checks this very row, so the job is either cancelled while queued or marked while
        // running — never neither.
        var state: String?
        for try await row in try await client.query(QueueSQL.cancel(id: id), logger: logger).decode(String.self) { state = row }
        if state == nil, try await job(id: id) == nil {
            throw ForkPoolError(.invalidArgument, "there is no job \(id) (never written, or deleted after its retention)")
        }
        let cancelled = state == "cancelled"
        if cancelled {  // wakes its waiters now (polling would find it otherwise)
            _ = try? await client.query(QueueSQL.notifyDone(ids: String(id)), logger: logger)
        }
        return cancelled
    }

    /// Waits for job `id`'s outcome and decodes it as a `Job.Output`.
    func value<Output>(of id: Int64, decode: ([UInt8]) throws(ForkPoolError) -> Output) async throws(ForkPoolError) -> Output {
        guard let outcome = await watcher.outcome(of: id) else {
            throw ForkPoolError(.cancelled, "stopped waiting for job \(id): the waiting task was cancelled (the job goes on)")
        }
        switch outcome {
        case .succeeded(let bytes): return try decode(bytes)
        case .failed(let code, let message):
            // As the host recorded it: the code by its stable name (workFailed for one this
            // version does not know) and the message.
            throw ForkPoolError(code.flatMap(ForkPoolError.Code.init(name:)) ?? .workFailed, "job \(id): \(message ?? "failed")")
        case .cancelled(let message): throw ForkPoolError(.cancelled, "job \(id) was cancelled: \(message ?? "cancelled")")
        case .missing:
            throw ForkPoolError(.invalidArgument, "there is no job \(id): it was deleted (past the queue's retention, or purged)")
        }
    }

    private func encode<Job: PoolJob>(_ job: Job, options: JobOptions) throws -> ByteBuffer {
        if let problem = options.problem() {
            throw ForkPoolError(.invalidArgument, "queue \"\(name)\": \(problem); nothing was written")
        }
        let encoded = try EncodedJob(job)
        guard encoded.payload.count <= configuration.maximumPayloadBytes else {
            var error = ForkPoolError(.frameTooLarge, "the job encodes to \(encoded.payload.count) bytes; queue \"\(name)\" takes at "
                                      + "most \(configuration.maximumPayloadBytes) (maximumPayloadBytes); nothing was written")
            error.jobName = Job.jobName
            throw error
        }
        return ByteBuffer(bytes: encoded.payload)
    }

    /// Runs a statement answering ids (and -1 per notification it sent); the ids.
    func ids(_ query: PostgresQuery) async throws -> [Int64] {
        var ids: [Int64] = []
        for try await id in try await client.query(query, logger: logger).decode(Int64.self) where id >= 0 { ids.append(id) }
        return ids
    }

    private func handle<Job: PoolJob>(_ id: Int64, of type: Job.Type) -> JobHandle<Job.Output> {
        JobHandle(id: id, queue: self, jobName: Job.jobName) { bytes throws(ForkPoolError) in
            try EncodedJob.decodeOutput(of: Job.self, from: bytes)
        }
    }
}
