// PostgresJobQueue+Operations: what an operator does to a queue — look (status, a job, a
// list), queue failed jobs again, cancel, purge finished rows. The PostgresJobHost command
// line (`status`, `list`, `retry`, `cancel`, `purge`) is a thin layer over these.
import Foundation
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

/// One job's row, as an operator sees it.
public struct JobRecord: Sendable, Hashable {
    public var id: Int64
    public var queue: String
    public var jobName: String
    public var state: JobState
    /// Claims so far.
    public var attempts: Int
    public var maximumAttempts: Int
    public var priority: Int
    public var notBefore: Date
    public var createdAt: Date
    public var finishedAt: Date?
    /// The host holding its claim (running jobs).
    public var leaseOwner: String?
    /// The error's stable code name (``ForkPoolError/Code``) and message, for failed,
    /// cancelled and retried jobs.
    public var errorCode: String?
    public var errorMessage: String?
    public var uniqueKey: String?
}

/// A queue at a glance.
public struct QueueStatus: Sendable, Hashable {
    public var queue: String
    /// Jobs per state (states without jobs: absent).
    public var counts: [JobState: Int]
    /// How long the oldest due queued job has waited; nil when none waits.
    public var oldestQueuedAge: Duration?
    /// The worker hosts serving the queue that the database has heard of.
    public var hosts: [HostStatus]
}

/// A worker host as the database last saw it (it records itself at every lease renewal).
public struct HostStatus: Sendable, Hashable {
    /// Its `lease_owner` name.
    public var owner: String
    public var startedAt: Date
    /// Since it was last seen.
    public var lastSeen: Duration
    /// Seen within its lease duration (one that stopped gracefully is removed).
    public var isAlive: Bool
}

extension PostgresJobQueue {
    /// Every queue of the database with jobs or hosts, at a glance.
    public static func status(client: PostgresClient, logger: Logger = Logger(label: "forkpool.postgres")) async throws -> [QueueStatus] {
        try await status(of: nil, client: client, logger: logger)
    }

    /// This queue at a glance.
    public func status() async throws -> QueueStatus {
        try await Self.status(of: name, client: client, logger: logger).first
            ?? QueueStatus(queue: name, counts: [:], oldestQueuedAge: nil, hosts: [])
    }

    private static func status(of queue: String?, client: PostgresClient, logger: Logger) async throws -> [QueueStatus] {
        var byQueue: [String: QueueStatus] = [:]
        func entry(_ name: String) -> QueueStatus { byQueue[name] ?? QueueStatus(queue: name, counts: [:], oldestQueuedAge: nil, hosts: []) }
        for try await (name, state, count, waited) in try await client.query(QueueSQL.counts(queue: queue), logger: logger)
            .decode((String, String, Int64, Double?).self) {
            var status = entry(name)
            if let state = JobState(rawValue: state) { status.counts[state] = Int(count) }
            if let waited { status.oldestQueuedAge = .milliseconds(Int64(waited * 1000)) }
            byQueue[name] = status
        }
        for try await (owner, name, started, seen, alive) in try await client.query(QueueSQL.hosts(queue: queue), logger: logger)
            .decode((String, String, Date, Double, Bool).self) {
            var status = entry(name)
            status.hosts.append(HostStatus(owner: owner, startedAt: started, lastSeen: .milliseconds(Int64(seen * 1000)), isAlive: alive))
            byQueue[name] = status
        }
        return byQueue.values.sorted { $0.queue < $1.queue }
    }

    /// Job `id`'s row, or nil when there is none. Ids are the database's, not the queue's: this,
    /// ``retry(jobID:)`` and ``cancel(jobID:)`` act on job `id` whatever its queue.
    public func job(id: Int64) async throws -> JobRecord? {
        try await records(QueueSQL.job(id: id)).first
    }

    /// This queue's newest `limit` jobs in `state` (any state: nil), newest first.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for a limit below 1.
    public func jobs(in state: JobState? = nil, limit: Int = 100) async throws -> [JobRecord] {
        guard limit >= 1 else { throw ForkPoolError(.invalidArgument, "a list's limit is at least 1, not \(limit)") }
        return try await records(QueueSQL.jobs(queue: name, state: state?.rawValue, limit: limit))
    }

    /// Queues failed or cancelled job `id` again, as if new: its attempts from zero, its error
    /// cleared.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` when there is no job `id`, it is not
    ///   failed or cancelled, or its unique key is held by a scheduled, queued or running job, saying which.
    public func retry(jobID id: Int64) async throws {
        guard try await ids(QueueSQL.retry(id: id, failedOf: nil)).isEmpty else { return }
        guard let record = try await job(id: id) else {
            throw ForkPoolError(.invalidArgument, "there is no job \(id) (never written, or deleted after its retention)")
        }
        if record.state == .failed || record.state == .cancelled, let key = record.uniqueKey {
            for try await (holder, _) in try await client.query(QueueSQL.holderOfUniqueKey(queue: record.queue, key: key), logger: logger)
                .decode((Int64, String).self) {
                throw ForkPoolError(.invalidArgument, "job \(id)'s unique key \"\(key)\" is held by job \(holder) (scheduled, queued or running): "
                                    + "it can be retried once that job has finished")
            }
        }
        throw ForkPoolError(.invalidArgument, "job \(id) is \(record.state.rawValue): only a failed or cancelled job can be retried")
    }

    /// Queues every failed job of this queue again (a job whose unique key a queued or running
    /// job holds stays failed; of several failed with one free key, the newest is queued); how many.
    @discardableResult
    public func retryFailed() async throws -> Int {
        try await ids(QueueSQL.retry(id: nil, failedOf: name)).count
    }

    /// Deletes this queue's jobs that finished before `date` (results and errors with them),
    /// in batches of 10,000; how many. Queued and running jobs are never touched.
    @discardableResult
    public func purge(finishedBefore date: Date) async throws -> Int {
        var total = 0
        while true {
            var deleted = 0
            for try await count in try await client.query(QueueSQL.purge(queue: name, finishedBefore: date, limit: 10_000), logger: logger)
                .decode(Int64.self) { deleted = Int(count) }
            total += deleted
            if deleted == 0 { return total }  // a batch cut short by the hosts' own retention goes on
        }
    }

    private func records(_ query: PostgresQuery) async throws -> [JobRecord] {
        var records: [JobRecord] = []
        for try await row in try await client.query(query, logger: logger) {
            let (id, queue, jobName, state, attempts, maximum, priority, notBefore, created, finished, owner, code, message, key) =
                try row.decode((Int64, String, String, String, Int32, Int32, Int16, Date, Date, Date?, String?, String?, String?, String?).self)
            records.append(JobRecord(id: id, queue: queue, jobName: jobName, state: JobState(rawValue: state) ?? .failed,
                                     attempts: Int(attempts), maximumAttempts: Int(maximum), priority: Int(priority),
                                     notBefore: notBefore, createdAt: created, finishedAt: finished, leaseOwner: owner,
                                     errorCode: code, errorMessage: message, uniqueKey: key))
        }
        return records
    }
}
