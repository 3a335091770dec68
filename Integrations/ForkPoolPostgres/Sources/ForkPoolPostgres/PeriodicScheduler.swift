// PeriodicScheduler: a worker host's periodic-jobs duty. Every host configured with a periodic
// job registers its schedule (forkpool_schedules: one row per queue and name, holding the next
// tick); when a tick comes, every host tries to move the row from that tick to the next one and
// enqueue the job in the same statement — the row's lock lets exactly one succeed, so the job
// is enqueued exactly once per tick however many hosts run. Ticks missed while no host ran are
// skipped (one job, then the next tick after now). Times are the database's clock.
//
//   start ─▶ QueueSQL.registerSchedule (first tick after the database's now)
//   loop ─▶ QueueSQL.schedules ─ due ones ─▶ QueueSQL.fireSchedule(due → next) ─▶ sleep until
//           the nearest tick (at most a poll interval)
import Foundation
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

/// A job a worker host enqueues on a schedule: once per tick across every host serving the
/// queue (see ``PostgresJobWorker/Configuration/periodicJobs``).
public struct PeriodicJob: Sendable {
    /// The schedule's name, unique within its queue: hosts configured with the same name share
    /// its ticks.
    public let name: String
    public let schedule: PeriodicSchedule
    /// The enqueued jobs' priority (see ``JobOptions/priority``).
    public let priority: Int
    let job: EncodedJob

    /// - Throws: ``ForkPoolError/Code/invalidArgument`` for an empty name or a priority out of
    ///   range; ``ForkPoolError/Code/encodingFailed`` when `job` does not encode.
    public init<Job: PoolJob>(name: String, schedule: PeriodicSchedule, job: Job, priority: Int = 0) throws {
        guard !name.isEmpty, name.utf8.count <= 200, !name.unicodeScalars.contains("\0") else {
            throw ForkPoolError(.invalidArgument, "a periodic job's name is 1 to 200 bytes without NUL, not \"\(name.prefix(40))\"")
        }
        if let problem = JobOptions(priority: priority).problem() {
            throw ForkPoolError(.invalidArgument, "periodic job \"\(name)\": \(problem)")
        }
        self.name = name
        self.schedule = schedule
        self.priority = priority
        self.job = try EncodedJob(job)
    }
}

struct PeriodicScheduler {
    let host: HostContext
    let jobs: [PeriodicJob]

    func run() async {
        var registered = false
        var failures = FailureStreak()
        while !Task.isCancelled {
            var sleep = host.configuration.pollInterval
            do {
                if !registered {
                    try await register()
                    registered = true
                }
                sleep = min(sleep, try await fireDueTicks())
                failures.succeeded()
            } catch {
                failures.failed("run the periodic jobs' schedules", error, logger: host.logger)
            }
            try? await Task.sleep(for: max(sleep, .milliseconds(5)))
        }
    }

    private func register() async throws {
        var now: Int64 = 0
        for try await clock in try await host.client.query(QueueSQL.clock, logger: host.logger).decode(Int64.self) { now = clock }
        for job in jobs {
            let first = Self.milliseconds(job.schedule.nextTick(after: Self.date(now)))
            _ = try await host.client.query(QueueSQL.registerSchedule(queue: host.queue.name, name: job.name,
                                                                      schedule: job.schedule.description, firstTick: first),
                                            logger: host.logger)
        }
    }

    /// Fires every due tick of this host's schedules; how long until the nearest next tick.
    private func fireDueTicks() async throws -> Duration {
        var rows: [(name: String, next: Int64, now: Int64)] = []
        for try await row in try await host.client.query(QueueSQL.schedules(queue: host.queue.name), logger: host.logger)
            .decode((String, Int64, Int64).self) { rows.append(row) }
        var wait = host.configuration.pollInterval
        for job in jobs {
            guard let row = rows.first(where: { $0.name == job.name }) else { continue }  // another version's: registered next start
            guard row.next <= row.now else {
                wait = min(wait, .milliseconds(row.next - row.now))
                continue
            }
            let next = Self.milliseconds(job.schedule.nextTick(after: Self.date(max(row.now, row.next))))
            let query = QueueSQL.fireSchedule(queue: host.queue.name, name: job.name, due: row.next, next: next,
                                              jobName: job.job.jobName, payload: ByteBuffer(bytes: job.job.payload),
                                              attempts: Int32(host.queue.configuration.maximumAttempts), priority: Int32(job.priority))
            var enqueued = false
            for try await id in try await host.client.query(query, logger: host.logger).decode(Int64.self) where id >= 0 {
                enqueued = true
                host.logger.debug("periodic job enqueued", metadata: ["schedule": "\(job.name)", "job": "\(id)"])
            }
            if enqueued {
                host.tallies.withLock { $0.scheduled += 1 }
                host.claimWake.wake()
            }
            wait = min(wait, .milliseconds(max(next - row.now, 0)))
        }
        return wait
    }

    static func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
}
