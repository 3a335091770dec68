// PostgresJobQueue: the submitting side — jobs become rows of forkpool_jobs, and their results
// come back through the same table.
//
//   submit(job) ─ EncodedJob (size checked first) ─▶ INSERT … RETURNING id; NOTIFY forkpool_ready
//               ─▶ JobHandle(id) at once
//   handle.value ─▶ OutcomeWatcher (NOTIFY forkpool_done, polling as a fallback) ─▶ row's result
//               ─▶ EncodedJob.decodeOutput ─▶ Job.Output (or the recorded error)
//   map(jobs) ─ one INSERT of every row ─▶ handles ─▶ every value, in order
//   cancel(handle) ─ queued: state := cancelled; running: cancel_requested := true (its host
//                    stops it at its next lease renewal)
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

/// A job queue in PostgreSQL: jobs submitted here run on every ``PostgresJobWorker`` serving
/// the same queue name, on any host that reaches the database.
///
/// ```swift
/// let client = PostgresClient(configuration: …)
/// Task { await client.run() }                      // or in a ServiceGroup
/// let queue = PostgresJobQueue(client: client, name: "thumbnails")
/// try await queue.migrate()                        // once per database; safe to repeat
/// let handle = try await queue.submit(Resize(path: p, width: 200))
/// let thumb = try await handle.value               // when a worker host recorded it
/// ```
///
/// Jobs run at least once and their results are recorded exactly once: see the
/// "Past one machine" section of the README for what is and is not guaranteed.
public final class PostgresJobQueue: Sendable {
    /// The queue's settings.
    public struct Configuration: Sendable {
        /// The largest encoded job `submit` accepts; a larger one throws
        /// ``ForkPoolError/Code/frameTooLarge`` before anything is written. Default 8 MiB.
        public var maximumPayloadBytes = 8 << 20
        /// How many times a job may be claimed (runs that crash their worker, hang past their
        /// deadline or lose their host count; a job that throws fails at once). Default 3.
        public var maximumAttempts = 3
        /// How often a waiting ``JobHandle/value`` looks for results when no notification
        /// comes. Default 1 s.
        public var pollInterval: Duration = .seconds(1)

        public init() {}
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
    /// ``migrate()`` or ``submit(_:)``.
    public init(client: PostgresClient, name: String = "default", configuration: Configuration = .init(),
                logger: Logger = Logger(label: "forkpool.postgres")) {
        self.client = client
        self.name = name
        self.configuration = configuration
        self.logger = logger
        watcher = OutcomeWatcher(client: client, pollInterval: configuration.pollInterval, logger: logger)
    }

    /// Creates or upgrades the queue's tables (one versioned migration, applied once, under a
    /// lock). Safe to call from every host at start-up.
    public func migrate() async throws {
        try await JobQueueSchema.migrate(client, logger: logger)
    }

    /// Writes one job and returns its handle at once; a worker host runs it.
    /// - Throws: ``ForkPoolError/Code/frameTooLarge`` for a job that encodes to more than
    ///   ``Configuration/maximumPayloadBytes`` and ``ForkPoolError/Code/encodingFailed``, both
    ///   before anything is written; the database's errors as they come.
    public func submit<Job: PoolJob>(_ job: Job) async throws -> JobHandle<Job.Output> {
        try await submit(contentsOf: CollectionOfOne(job))[0]
    }

    /// Writes every job in one round trip and returns their handles, in order.
    /// - Throws: as ``submit(_:)``; when one job is refused, none is written.
    public func submit<Jobs: Sequence>(contentsOf jobs: Jobs) async throws -> [JobHandle<Jobs.Element.Output>]
    where Jobs.Element: PoolJob {
        let jobName = Jobs.Element.jobName
        var payloads: [ByteBuffer] = []
        for job in jobs {
            let encoded = try EncodedJob(job)
            guard encoded.payload.count <= configuration.maximumPayloadBytes else {
                var error = ForkPoolError(.frameTooLarge, "the job encodes to \(encoded.payload.count) bytes; queue \"\(name)\" takes at "
                                          + "most \(configuration.maximumPayloadBytes) (maximumPayloadBytes); nothing was written")
                error.jobName = jobName
                throw error
            }
            payloads.append(ByteBuffer(bytes: encoded.payload))
        }
        guard !payloads.isEmpty else { return [] }
        let attempts = Int32(max(configuration.maximumAttempts, 1))
        let rows = try await client.query("""
            WITH added AS (
                INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts)
                SELECT \(name), \(jobName), payload, \(attempts)
                FROM unnest(\(payloads)::bytea[]) WITH ORDINALITY AS given(payload, position)
                ORDER BY position
                RETURNING id
            )
            SELECT added.id FROM added, LATERAL pg_notify('forkpool_ready', \(name)) AS notified
            """, logger: logger)
        var ids: [Int64] = []
        ids.reserveCapacity(payloads.count)
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        // The ids come from one sequence, in the order the rows were inserted.
        ids.sort()
        return ids.map { id in
            JobHandle(id: id, queue: self, jobName: jobName) { bytes throws(ForkPoolError) in
                try EncodedJob.decodeOutput(of: Jobs.Element.self, from: bytes)
            }
        }
    }

    /// Runs every job on the queue's worker hosts and returns the outputs in order: one round
    /// trip writes them all, then the results are awaited.
    /// - Throws: as ``submit(contentsOf:)``, then the first failure in order, as
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
    @discardableResult
    public func cancel(jobID id: Int64) async throws -> Bool {
        // One UPDATE: when a host's claim holds the row, PostgreSQL waits for it and then
        // re-checks this very row, so the job is either cancelled while queued or marked while
        // running — never neither.
        let rows = try await client.query("""
            UPDATE forkpool_jobs SET
                cancel_requested = true,
                state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
                error_code = CASE WHEN state = 'queued' THEN 'cancelled' ELSE error_code END,
                error_message = CASE WHEN state = 'queued' THEN 'cancelled before it ran' ELSE error_message END,
                finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END
            WHERE id = \(id) AND state IN ('queued', 'running')
            RETURNING state
            """, logger: logger)
        var cancelled = false
        for try await state in rows.decode(String.self) { cancelled = state == "cancelled" }
        if cancelled {  // wakes its waiters now (polling would find it otherwise)
            _ = try? await client.query("SELECT pg_notify('forkpool_done', \(String(id)))", logger: logger)
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
        }
    }
}
