// LapsedClaimRescuer: a worker host's rescuing duty — every poll interval (and when the next
// scheduled job's time comes), scheduled jobs whose time has come are queued; claims whose lease
// lapsed (their host died, stalled or lost the database) go back to the queue while attempts
// are left, else they fail (or are cancelled, if that was asked); and, as the queue's retention
// says, finished rows past it are deleted, up to ten batches of 1,000 a turn (and hosts silent
// for an hour and ten leases are forgotten). Every host does both:
// FOR UPDATE SKIP LOCKED keeps them out of each other's way.
//
//   timer ─▶ QueueSQL.rescueLapsed (index: running by lease_expires) ─▶ rescued? wake claimer
//         ─▶ QueueSQL.queueDueJobs (index: scheduled by not_before) ─▶ queued? wake claimer
//         ─▶ retention due? ─▶ QueueSQL.deleteExpired (index: finished by finished_at), while full
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

struct LapsedClaimRescuer {
    let host: HostContext
    static var batch: Int { 1000 }

    func run() async {
        let interval = min(host.configuration.pollInterval, host.configuration.leaseDuration / 2)
        var lastExpiry: ContinuousClock.Instant?
        var failures = FailureStreak()
        while !Task.isCancelled {
            var sleep = interval
            do {
                var full = true
                while full && !Task.isCancelled {
                    let (requeued, finished) = try await rescue()
                    if requeued > 0 { host.claimWake.wake() }
                    full = requeued + finished == Self.batch
                }
                full = true
                while full && !Task.isCancelled {
                    let (queued, next) = try await queueDueJobs()
                    if queued > 0 { host.claimWake.wake() }
                    if let next { sleep = min(sleep, .milliseconds(Int64(max(next, 0) * 1000) + 1)) }
                    full = queued == Self.batch
                }
                if let retention = host.queue.configuration.retention {
                    let every = max(host.configuration.pollInterval, min(.seconds(60), retention / 10))
                    if lastExpiry.map({ ContinuousClock.now - $0 >= every }) ?? true {
                        // At most 10 batches a turn: a backlog (a database upgraded with years
                        // of rows) must not hold up the rescue of lapsed claims.
                        var full = 0
                        while full < 10, try await deleteExpired(retention) == Self.batch, !Task.isCancelled { full += 1 }
                        if full < 10 { lastExpiry = ContinuousClock.now }
                        try await forgetSilentHosts()
                    }
                }
                failures.succeeded()
            } catch {
                failures.failed("rescue lapsed claims, queue due jobs or expire finished ones", error, logger: host.logger)
            }
            try? await Task.sleep(for: sleep)
        }
    }

    /// Queues the scheduled jobs whose time has come; how many, and the seconds until the next.
    private func queueDueJobs() async throws -> (queued: Int, next: Double?) {
        let query = QueueSQL.queueDueJobs(queue: host.queue.name, limit: Self.batch)
        return try await withDeadline(host.configuration.databaseCallTimeout, "queueing due jobs") { [host] in
            for try await (queued, next, _) in try await host.client.query(query, logger: host.logger)
                .decode((Int64, Double?, Int64).self) {
                return (Int(queued), next)
            }
            return (0, nil)
        }
    }

    private func rescue() async throws -> (requeued: Int, finished: Int) {
        let query = QueueSQL.rescueLapsed(queue: host.queue.name, limit: Self.batch)
        return try await withDeadline(host.configuration.databaseCallTimeout, "rescuing lapsed claims") { [host] in
            for try await (requeued, finished, _) in try await host.client.query(query, logger: host.logger)
                .decode((Int64, Int64, Int64).self) {
                return (Int(requeued), Int(finished))
            }
            return (0, 0)
        }
    }

    private func forgetSilentHosts() async throws {
        let query = QueueSQL.forgetSilentHosts(queue: host.queue.name)
        _ = try await withDeadline(host.configuration.databaseCallTimeout, "forgetting silent hosts") { [host] in
            try await host.client.query(query, logger: host.logger)
        }
    }

    private func deleteExpired(_ retention: Duration) async throws -> Int {
        let query = QueueSQL.deleteExpired(queue: host.queue.name, retention: retention, limit: Self.batch)
        let deleted = try await withDeadline(host.configuration.databaseCallTimeout, "deleting expired jobs") { [host] in
            for try await count in try await host.client.query(query, logger: host.logger).decode(Int64.self) { return Int(count) }
            return 0
        }
        if deleted > 0 { host.tallies.withLock { $0.expired += deleted } }
        return deleted
    }
}
