// JobClaimer: a worker host's claiming duty — claims the queue's due jobs in batches sized by
// the host's own throughput, and starts a runner for each.
//
//   wake (NOTIFY forkpool_ready, held claims down to half, rescued claims, the poll timer) ─▶
//   target = jobs ended per second × 0.25 s (a slow start before that is known; at least 2 per
//   worker, at most 4,096; or the configured capacity) ─ half of it free? ─▶
//   QueueSQL.claim(free) ─▶ ClaimBook.add ─▶ JobRunner.claimed
// A claim that commits after its call timed out is given back (queued again, uncounted).
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

struct JobClaimer {
    let host: HostContext

    func run() async {
        var sizer = ClaimSizer(workers: host.book.slots, fixed: host.configuration.capacity)
        var failures = FailureStreak()
        while !host.book.isStopping && !Task.isCancelled {
            let held = host.book.count
            let target = sizer.target(ended: host.book.endedCount, held: held, at: .now)
            let free = target - held
            host.book.claimAgain(atOrBelow: target - (target + 1) / 2)
            if free > 0 && (held == 0 || free >= (target + 1) / 2) {
                do {
                    let sent = ContinuousClock.now
                    let claims = try await withDeadline(host.configuration.databaseCallTimeout, "claiming jobs",
                                                        onLateResult: { [host] late in Self.giveBack(late, host: host) }) { [host] in
                        try await Self.claim(free, queue: host.queue.name, owner: host.owner, lease: host.configuration.leaseDuration,
                                             client: host.client, logger: host.logger)
                    }
                    failures.succeeded()
                    sizer.claimed(claims.count, of: free)
                    if !claims.isEmpty {
                        host.tallies.withLock { $0.claimed += claims.count }
                        for future in host.book.add(claims, confirmedAt: sent) { future.cancel() }
                        host.runner.claimed(claims)
                        if claims.count == free { continue }  // there may be more
                    }
                } catch {
                    failures.failed("claim jobs", error, logger: host.logger)
                }
            }
            await host.claimWake.sleep(timeout: failures.isFailing ? min(host.configuration.pollInterval, .milliseconds(500))
                                                             : host.configuration.pollInterval)
        }
    }

    static func claim(_ count: Int, queue: String, owner: String, lease: Duration, client: PostgresClient,
                      logger: Logger) async throws -> [JobClaim] {
        let query = QueueSQL.claim(queue: queue, owner: owner, count: count, lease: lease)
        var claims: [JobClaim] = []
        for try await (id, name, payload, token, attempt, maximum, cancelRequested, _)
            in try await client.query(query, logger: logger)
                .decode((Int64, String, ByteBuffer, Int64, Int32, Int32, Bool, Int16).self) {
            claims.append(JobClaim(id: id, jobName: name, payload: Array(payload.readableBytesView), token: token, attempt: attempt,
                                   maximumAttempts: maximum, cancelRequested: cancelRequested))
        }
        return claims
    }

    /// Gives back claims that committed after their call had timed out (this host never took
    /// them up): queued again, the attempt not counted.
    private static func giveBack(_ claims: [JobClaim], host: HostContext) {
        guard !claims.isEmpty else { return }
        host.logger.notice("giving back \(claims.count) jobs claimed after the claim had timed out")
        Task {
            for claim in claims { host.outcomes.record(claim, as: .released) { _ in } }
        }
    }
}

/// How many claims a host holds: enough for a quarter of a second of its own throughput, so a
/// fast host claims (and writes) in large batches and a slow one does not hoard jobs that other
/// hosts could run. Until the throughput is known it starts small and doubles whenever its
/// workers ran out of claims after a full batch (a slow start, as TCP's), halving that again
/// once claims are left over.
struct ClaimSizer {
    let minimum: Int
    let maximum = 4096
    let fixed: Int?
    private var rate = 0.0
    private var lastEnded = 0
    private var lastInstant = ContinuousClock.now
    private var boost: Int
    private var lastWasFull = false

    init(workers: Int, fixed: Int?) {
        minimum = max(2 * workers, 2)
        boost = minimum
        self.fixed = fixed
    }

    /// The claims to hold, given `ended` jobs so far and `held` claims at `now`.
    mutating func target(ended: Int, held: Int, at now: ContinuousClock.Instant) -> Int {
        if let fixed { return fixed }
        let elapsed = (now - lastInstant) / .seconds(1)
        if elapsed >= 0.05 {
            let measured = Double(ended - lastEnded) / elapsed
            rate = rate == 0 ? measured : 0.5 * rate + 0.5 * measured
            lastEnded = ended
            lastInstant = now
        }
        if held == 0 && lastWasFull {
            boost = min(boost * 2, maximum)  // the workers ran dry: more at once
        } else if held > 0 {
            boost = max(boost / 2, minimum)
        }
        return min(max(Int(rate * 0.25), boost, minimum), maximum)
    }

    /// The last claim asked for `asked` and got `got`.
    mutating func claimed(_ got: Int, of asked: Int) {
        lastWasFull = got == asked
    }
}
