// LeaseKeeper: a worker host's lease duty — every third of the lease (and at once when a stale
// lease blocks a turn: the host stalled), one statement extends the leases of every claim the
// host holds, by token, and records the host as alive (forkpool_hosts). A claim missing from
// the answer is lost: its job is stopped if it runs, and never started if it waits. A cancel
// request stops the job; the runner records it cancelled.
//
//   timer or ClaimBook.staleLeaseSeen ─▶ held claims ─▶ QueueSQL.renew ─▶ ClaimBook.confirm
//   (leases known to last until send time + lease) ─▶ stop lost / cancelled jobs, give turns
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

struct LeaseKeeper {
    let host: HostContext

    func run() async {
        let interval = host.configuration.leaseDuration / 3
        var failures = FailureStreak(every: 10)
        while !Task.isCancelled {
            // After a failure, not sooner than half a second (a stale lease wakes this at once).
            let slept = ContinuousClock.now
            await host.book.staleLeaseSeen.sleep(timeout: interval)
            if Task.isCancelled { return }
            if failures.isFailing, ContinuousClock.now - slept < .milliseconds(500) {
                try? await Task.sleep(for: .milliseconds(500))
            }
            do {
                try await renew()
                failures.succeeded()
            } catch {
                failures.failed("renew leases", error, logger: host.logger)
            }
        }
    }

    /// One renewal of every held claim.
    func renew() async throws {
        let asked = host.book.held()
        let sent = ContinuousClock.now
        let renewed = try await withDeadline(host.configuration.databaseCallTimeout, "renewing leases") { [host] in
            try await Self.renew(asked, lease: host.configuration.leaseDuration, owner: host.owner, queue: host.queue.name,
                                 client: host.client, logger: host.logger)
        }
        for future in host.book.confirm(asked: asked, renewed: renewed, sentAt: sent) { future.cancel() }
        host.runner.pump()  // fresh leases: turns go on; lost claims: settled unrun
    }

    /// Extends the leases of `claims`; for each claim still held (by token), whether its
    /// cancellation was requested. A claim missing from the answer is lost.
    static func renew(_ claims: [(id: Int64, token: Int64)], lease: Duration, owner: String, queue: String, client: PostgresClient,
                      logger: Logger) async throws -> [Int64: Bool] {
        let query = QueueSQL.renew(ids: claims.map(\.id), tokens: claims.map(\.token), lease: lease, owner: owner, queue: queue)
        var renewed: [Int64: Bool] = [:]
        for try await (token, cancelRequested) in try await client.query(query, logger: logger).decode((Int64, Bool).self) {
            renewed[token] = cancelRequested
        }
        return renewed
    }

    /// The host stops: it is no longer counted alive.
    func hostStopped() async {
        _ = try? await withDeadline(host.configuration.databaseCallTimeout, "removing the host") { [host] in
            try await host.client.query(QueueSQL.hostStopped(owner: host.owner), logger: host.logger)
        }
    }
}
