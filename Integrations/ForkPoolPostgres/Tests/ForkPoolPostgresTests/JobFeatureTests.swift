// The queue's features through a real PostgreSQL server, each provoked for real: priorities
// (claimed highest first, then oldest), delayed jobs (not claimed before their time, by the
// database's clock), unique jobs (one queued or running job per key, also when 20 submitters
// race; the key free again once it finished; a failed unique job retried by an operator only
// when its key is free), options and settings out of range (refused, naming them, nothing
// written), the retry back-off (a crashed job's next attempt waits, growing and capped),
// periodic jobs on three hosts (one job per tick, no gaps, none early; a host with a stale view
// of a tick enqueues nothing), retention (20,000 old rows deleted in batches while jobs run; a
// new row kept its 2 s), a version-1 database upgraded with jobs in flight (in a PostgreSQL
// schema of its own), and the operator's commands (status, list, retry, purge, cancel).
//
// Each was checked by removing its mechanism (the claim's ORDER BY priority and its not_before
// test, ON CONFLICT, the option checks, the retry's not_before, fireSchedule's tick conditions,
// retention's age, the rescuer's clearing of the lease token, the state type's migration, the
// retry's and purge's state conditions): the test fails.
import ClusterJobs
@_spi(Integration) import ForkPool
@testable import ForkPoolPostgres
@testable import PostgresJobHost
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite(.serialized, .timeLimit(.minutes(1)))
struct JobFeatureTests {
    // MARK: Priorities

    @Test func higherPriorityIsClaimedFirstThenTheOldestJob() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        var ids: [Int64] = []
        for (value, priority) in [0, 5, -3, 5, 10].enumerated() {
            ids.append(try await queue.submit(SquareJob(value: value), options: JobOptions(priority: priority)).id)
        }
        // Two written in one statement: one priority, in the order given.
        ids += try await queue.submit(contentsOf: [SquareJob(value: 5), SquareJob(value: 6)], options: JobOptions(priority: 5)).map(\.id)
        #expect(try await queue.job(id: ids[4])?.priority == 10)
        var order: [Int64] = []
        while order.count <= ids.count,
              let claim = try await JobClaimer.claim(1, queue: database.queueName, owner: "t", lease: .seconds(60),
                                                     client: database.client, logger: database.logger).first {
            order.append(claim.id)
        }
        #expect(order == [ids[4], ids[1], ids[3], ids[5], ids[6], ids[0], ids[2]])
    }

    // MARK: Delayed jobs

    @Test func aDelayedJobIsNotClaimedBeforeItsTime() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        func claim() async throws -> [JobClaim] {
            try await JobClaimer.claim(1, queue: database.queueName, owner: "t", lease: .seconds(60), client: database.client,
                                       logger: database.logger)
        }
        let sent = ContinuousClock.now
        let delayed = try await queue.submit(SquareJob(value: 3), options: JobOptions(delay: .seconds(2)))
        #expect(try await database.row(delayed.id).state == "scheduled")
        #expect(try await claim().isEmpty)
        // A host's rescuer queues it once its time has come (by hand here: no host runs).
        var claimed: [JobClaim] = []
        try await database.waitUntil("the delayed job is claimed", seconds: 10) {
            _ = try await database.client.query(QueueSQL.queueDueJobs(queue: database.queueName, limit: 10), logger: database.logger)
            claimed = try await claim()
            return !claimed.isEmpty
        }
        #expect(claimed.map(\.id) == [delayed.id])
        #expect(ContinuousClock.now - sent >= .milliseconds(1990))
        // On the database's clock: claimed (lease_expires − 60 s) no earlier than 2 s after it was written.
        let waited = try await database.values("""
            SELECT extract(epoch FROM lease_expires - interval '60 seconds' - created_at)::float8 FROM forkpool_jobs WHERE id = \(delayed.id)
            """, as: Double.self)
        #expect(waited.count == 1 && waited[0] >= 2, "\(waited)")

        // With a host: a due job runs at once; the delayed ones no earlier than their time.
        let started = ContinuousClock.now
        let notBefore = Date().addingTimeInterval(2)
        try await withLocalHost(queue: queue) { _ in
            let atTime = try await queue.submit(SquareJob(value: 4), notBefore: notBefore)
            let later = try await queue.submit(SquareJob(value: 5), options: JobOptions(delay: .seconds(2)))
            #expect(try await queue.submit(SquareJob(value: 6)).value == 36)
            #expect(try await database.row(atTime.id).state == "scheduled")
            #expect(try await database.row(later.id).state == "scheduled")
            #expect(try await atTime.value == 16)
            #expect(Date().timeIntervalSince(notBefore) >= -0.001)
            #expect(try await later.value == 25)
            #expect(ContinuousClock.now - started >= .milliseconds(1990))
            let times = try await database.values("""
                SELECT extract(epoch FROM not_before)::float8 FROM forkpool_jobs WHERE id = \(atTime.id)
                  AND finished_at >= not_before
                UNION ALL
                SELECT -1 FROM forkpool_jobs WHERE id = \(later.id) AND finished_at >= created_at + interval '2 seconds'
                """, as: Double.self)
            #expect(times.count == 2, "finished before its time: \(times)")
            #expect(abs((times.first ?? 0) - notBefore.timeIntervalSince1970) < 0.001)
        }
    }

    // MARK: Unique jobs

    @Test func aUniqueKeyHoldsOneQueuedOrRunningJob() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        func rows(withKey key: String) async throws -> Int {
            try await database.values("SELECT count(*) FROM forkpool_jobs WHERE queue = \(database.queueName) AND unique_key = \(key)",
                                      as: Int64.self).first.map(Int.init) ?? 0
        }
        let first = try await queue.submit(SleepJob(milliseconds: 1, tag: 1), options: JobOptions(uniqueKey: "k"))
        let second = try await queue.submit(SleepJob(milliseconds: 1, tag: 2), options: JobOptions(uniqueKey: "k"))
        #expect(first.id == second.id)
        #expect(try await rows(withKey: "k") == 1)
        #expect(try await database.rowCount() == 1)

        // Twenty submitters at once: one row, every one of them gets its id.
        let racers = try await withThrowingTaskGroup(of: Int64.self) { group in
            for tag in 0..<20 {
                group.addTask {
                    try await queue.submit(SleepJob(milliseconds: 1, tag: 100 + tag), options: JobOptions(uniqueKey: "race")).id
                }
            }
            var ids: [Int64] = []
            for try await id in group { ids.append(id) }
            return ids
        }
        #expect(racers.count == 20 && Set(racers).count == 1, "\(racers)")
        #expect(try await rows(withKey: "race") == 1)
        #expect(try await database.rowCount() == 2)

        // Held by a job of another type: refused.
        let otherType = await #expect(throws: ForkPoolError.self) {
            _ = try await queue.submit(SquareJob(value: 1), options: JobOptions(uniqueKey: "k"))
        }
        #expect(otherType?.code == .invalidArgument)
        #expect(otherType?.message.contains("held by job \(first.id)") == true, "\(otherType?.message ?? "")")
        // A key names one job: two in one call are refused, nothing written.
        let twoJobs = await #expect(throws: ForkPoolError.self) {
            _ = try await queue.submit(contentsOf: [SleepJob(milliseconds: 1), SleepJob(milliseconds: 1)], options: JobOptions(uniqueKey: "two"))
        }
        #expect(twoJobs?.code == .invalidArgument)
        #expect(twoJobs?.message.contains("uniqueKey") == true && twoJobs?.message.contains("nothing was written") == true)
        #expect(try await database.rowCount() == 2)
        // A key is the queue's: another queue's job with the same key is another job.
        let elsewhere = try PostgresJobQueue(client: database.client, name: database.queueName + "-other", logger: database.logger)
        let other = try await elsewhere.submit(SleepJob(milliseconds: 1), options: JobOptions(uniqueKey: "k"))
        #expect(other.id != first.id)
        _ = try await database.client.query("DELETE FROM forkpool_jobs WHERE id = \(other.id)", logger: database.logger)

        try await withLocalHost(queue: queue) { _ in
            #expect(try await first.value == HostAnswer(host: "local", value: 1))
            let raced = racers[0]
            try await database.waitUntil("the raced job finishes") { try await database.row(raced).state == "succeeded" }
            // Finished: the key is free, a new submit writes a new row.
            let again = try await queue.submit(SleepJob(milliseconds: 1, tag: 3), options: JobOptions(uniqueKey: "k"))
            #expect(again.id != first.id)
            #expect(try await again.value == HostAnswer(host: "local", value: 3))
            #expect(try await rows(withKey: "k") == 2)
            // Held while it runs, too.
            let long = try await queue.submit(SleepJob(milliseconds: 1500, tag: 4), options: JobOptions(uniqueKey: "long"))
            try await database.waitUntil("the long job runs") { try await database.row(long.id).state == "running" }
            #expect(try await queue.submit(SleepJob(milliseconds: 1, tag: 5), options: JobOptions(uniqueKey: "long")).id == long.id)
            #expect(try await long.value == HostAnswer(host: "local", value: 4))
            #expect(try await rows(withKey: "long") == 1)
        }
    }

    /// A failed unique job queued again by an operator takes its key back — unless a newer job
    /// holds it: then retry(jobID:) refuses, naming the holder, and retryFailed() leaves it (and
    /// of two failed jobs with one free key, queues the newer). The other failed jobs go on.
    @Test func retryingFailedUniqueJobsRespectsTheirKeys() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        func failed(_ reason: String, key: String?) async throws -> JobHandle<Int> {
            let handle = try await queue.submit(FailingJob(reason: reason), options: JobOptions(uniqueKey: key))
            _ = await #expect(throws: ForkPoolError.self) { try await handle.value }
            return handle
        }
        let (u1, u2, v1, v2, plain) = try await withLocalHost(queue: queue) { (_: LocalHost) async throws in
            (try await failed("u1", key: "u"), try await failed("u2", key: "u"), try await failed("v1", key: "v"),
             try await failed("v2", key: "v"), try await failed("plain", key: nil))
        }
        #expect(Set([u1.id, u2.id, v1.id, v2.id, plain.id]).count == 5)  // a failed job's key is free
        let holder = try await queue.submit(FailingJob(reason: "u3"), options: JobOptions(uniqueKey: "u"))  // no host: queued
        let refused = await #expect(throws: ForkPoolError.self) { try await queue.retry(jobID: u1.id) }
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.message.contains("held by job \(holder.id)") == true, "\(refused?.message ?? "")")
        #expect(try await queue.retryFailed() == 2)  // v2 and plain
        #expect(try await queue.jobs(in: .queued).map(\.id) == [holder.id, plain.id, v2.id])  // newest first
        #expect(try await queue.jobs(in: .failed).map(\.id) == [v1.id, u2.id, u1.id])
        let again = await #expect(throws: ForkPoolError.self) { try await queue.retry(jobID: v1.id) }
        #expect(again?.message.contains("held by job \(v2.id)") == true, "\(again?.message ?? "")")
    }

    // MARK: Options and settings out of range

    @Test func optionsAndSettingsOutOfRangeAreRefusedNamingThem() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let cases: [(JobOptions, String)] = [
            (JobOptions(priority: 40000), "priority 40000"),
            (JobOptions(priority: -32769), "priority -32769"),
            (JobOptions(delay: .milliseconds(-1)), "is negative"),
            (JobOptions(notBefore: Date(), delay: .seconds(1)), "set notBefore or delay, not both"),
            (JobOptions(uniqueKey: ""), "a uniqueKey is 1 to 1024 bytes"),
            (JobOptions(uniqueKey: String(repeating: "x", count: 1025)), "a uniqueKey is 1 to 1024 bytes"),
            (JobOptions(uniqueKey: "a\u{0}b"), "a uniqueKey is 1 to 1024 bytes"),
        ]
        for (options, named) in cases {
            let single = await #expect(throws: ForkPoolError.self) { _ = try await queue.submit(SquareJob(value: 1), options: options) }
            #expect(single?.code == .invalidArgument, "\(options)")
            #expect(single?.message.contains(named) == true && single?.message.contains("nothing was written") == true,
                    "\(single?.message ?? "")")
            guard options.uniqueKey == nil else { continue }
            let batch = await #expect(throws: ForkPoolError.self) {
                _ = try await queue.submit(contentsOf: [SquareJob(value: 1), SquareJob(value: 2)], options: options)
            }
            #expect(batch?.code == .invalidArgument && batch?.message.contains(named) == true, "\(batch?.message ?? "")")
        }
        #expect(try await database.rowCount() == 0)
        // The edges are taken.
        let edges = [try await queue.submit(SquareJob(value: 1), options: JobOptions(priority: 32767)),
                     try await queue.submit(SquareJob(value: 2), options: JobOptions(delay: .zero, priority: -32768)),
                     try await queue.submit(SquareJob(value: 3), options: JobOptions(uniqueKey: String(repeating: "é", count: 512)))]
        var priorities: [Int] = []
        for edge in edges { priorities.append(try #require(try await queue.job(id: edge.id)).priority) }
        #expect(priorities == [32767, -32768, 0])

        // The queue's settings.
        let settings: [((inout PostgresJobQueue.Configuration) -> Void, String)] = [
            ({ $0.maximumAttempts = 0 }, "maximumAttempts is 0"),
            ({ $0.retention = .milliseconds(999) }, "retention is"),
            ({ $0.maximumPayloadBytes = 0 }, "maximumPayloadBytes is 0"),
            ({ $0.pollInterval = .zero }, "pollInterval is"),
            ({ $0.retryBackoff = RetryBackoff(initial: .seconds(2), maximum: .seconds(1)) }, "retryBackoff needs"),
            ({ $0.retryBackoff.jitter = 1.5 }, "retryBackoff.jitter 1.5"),
        ]
        for (configure, named) in settings {
            let error = #expect(throws: ForkPoolError.self) { _ = try database.makeQueue(configure) }
            #expect(error?.code == .invalidArgument && error?.message.contains(named) == true, "\(error?.message ?? "")")
        }
        #expect(try database.makeQueue { $0.retention = .seconds(1) }.configuration.retention == .seconds(1))
        let unnamed = #expect(throws: ForkPoolError.self) { _ = try PostgresJobQueue(client: database.client, name: "") }
        #expect(unnamed?.code == .invalidArgument && unnamed?.message.contains("a queue name is 1 to 200 bytes") == true)

        // A worker host's settings.
        let pool = try ProcessJobPool(workers: 1, configuration: .withoutBacktraces, jobs: clusterJobTypes)
        defer { pool.shutdown(cancelPending: true) }
        let hostSettings: [((inout PostgresJobWorker.Configuration) -> Void, String)] = [
            ({ $0.leaseDuration = .milliseconds(10) }, "leaseDuration is"),
            ({ $0.capacity = 0 }, "capacity is 0"),
            ({ $0.pollInterval = .zero }, "pollInterval is"),
            ({ $0.databaseCallTimeout = .zero }, "databaseCallTimeout is"),
        ]
        for (configure, named) in hostSettings {
            var configuration = PostgresJobWorker.Configuration()
            configure(&configuration)
            let error = #expect(throws: ForkPoolError.self) {
                _ = try PostgresJobWorker(queue: queue, pool: pool, configuration: configuration)
            }
            #expect(error?.code == .invalidArgument && error?.message.contains(named) == true, "\(error?.message ?? "")")
        }
        #expect(try await database.rowCount() == 3)
    }

    // MARK: The retry back-off

    @Test func aCrashedJobWaitsItsBackOffBeforeItsNextAttempt() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue {
            $0.maximumAttempts = 3
            $0.retryBackoff = RetryBackoff(initial: .milliseconds(300), maximum: .seconds(1), jitter: 0)
        }
        try await withLocalHost(queue: queue) { host in
            let handle = try await queue.submit(CrashingJob())
            // The write of each retry lies between two looks (the last without it, the first
            // with it): its not_before is that write's time + the delay.
            for (attempt, delay) in [(1, 0.3), (2, 0.6)] {
                let seen = try await database.requeue(of: handle.id, afterAttempt: attempt)
                #expect(seen.notBefore - seen.lookedBefore >= delay - 0.05, "attempt \(attempt): \(seen)")
                #expect(seen.notBefore - seen.lookedAt <= delay + 0.05, "attempt \(attempt): \(seen)")
                #expect(seen.errorCode == "workerDied" && seen.errorMessage.contains("SIGSEGV"), "\(seen)")
            }
            let error = await #expect(throws: ForkPoolError.self) { try await handle.value }
            #expect(error?.code == .workerDied)
            #expect(error?.message.contains("attempt 3 of 3") == true, "\(error?.message ?? "")")
            let row = try await database.row(handle.id)
            #expect(row.state == "failed" && row.attempts == 3 && row.errorMessage?.contains("attempt 3 of 3") == true)
            #expect(host.worker.counters.retried == 2)
        }
    }

    @Test func theBackOffGrowsIsCappedAndJittersWithinItsBounds() {
        let exact = RetryBackoff(initial: .milliseconds(300), maximum: .seconds(1), jitter: 0)
        #expect((0...5).map { exact.delay(afterAttempt: $0) }
                == [.milliseconds(300), .milliseconds(300), .milliseconds(600), .seconds(1), .seconds(1), .seconds(1)])
        #expect(exact.delay(afterAttempt: 10_000) == .seconds(1) && exact.delay(afterAttempt: .max) == .seconds(1))
        let doubling = RetryBackoff(initial: .seconds(1), maximum: .seconds(300), jitter: 0)
        #expect((1...10).map { doubling.delay(afterAttempt: $0) } == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300].map { Duration.seconds($0) })

        let jittered = RetryBackoff(initial: .seconds(1), maximum: .seconds(300), jitter: 0.2)
        let samples = (0..<2000).map { _ in jittered.delay(afterAttempt: 3) }  // 4 s ± 20 %
        #expect(samples.allSatisfy { $0 >= .milliseconds(3199) && $0 <= .milliseconds(4800) }, "\(samples.min()!) … \(samples.max()!)")
        #expect(samples.min()! < .milliseconds(3400) && samples.max()! > .milliseconds(4600), "\(samples.min()!) … \(samples.max()!)")
        #expect(Set(samples).count > 200)
        let capped = (0..<2000).map { _ in jittered.delay(afterAttempt: 40) }  // the cap, ± 20 %
        #expect(capped.allSatisfy { $0 >= .seconds(239.999) && $0 <= .seconds(360) }, "\(capped.min()!) … \(capped.max()!)")
        #expect(capped.min()! < .seconds(250) && capped.max()! > .seconds(350))
        // A maximum longer than milliseconds in an Int64 hold (292 million years): clamped, not a trap.
        let endless = RetryBackoff(initial: .seconds(1), maximum: .seconds(Int64.max / 2), jitter: 0)
        #expect(endless.delay(afterAttempt: 100) >= .seconds(9_000_000_000_000_000))
    }

    // MARK: Periodic jobs

    @Test func threeHostsEnqueueOnePeriodicJobPerTick() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()

        // Statement by statement: a host with a stale view of a tick, or early, enqueues nothing.
        let (client, logger) = (database.client, database.logger)
        let stale = database.queueName + "-stale"
        let payload = ByteBuffer(bytes: try EncodedJob(TickJob()).payload)
        let now = try #require(try await database.values(QueueSQL.clock, as: Int64.self).first)
        let due = (now / 1000 - 5) * 1000  // a whole second, five seconds ago
        for (name, first) in [("late", due), ("early", due + 60_000)] {
            _ = try await client.query(QueueSQL.registerSchedule(queue: stale, name: name, schedule: "every 1 s", firstTick: first),
                                       logger: logger)
        }
        func fire(_ name: String, due: Int64, next: Int64) async throws -> [Int64] {
            try await database.values(QueueSQL.fireSchedule(queue: stale, name: name, due: due, next: next, jobName: TickJob.jobName,
                                                            payload: payload, attempts: 1, priority: 0), as: Int64.self).filter { $0 >= 0 }
        }
        #expect(try await fire("late", due: due, next: due + 1000).count == 1)
        #expect(try await fire("late", due: due, next: due + 1000).isEmpty)  // another host, the same (past) tick
        #expect(try await fire("late", due: due + 1000, next: due + 2000).count == 1)
        #expect(try await fire("early", due: due + 60_000, next: due + 61_000).isEmpty)  // not come yet
        let staleKeys = try await database.values("SELECT unique_key FROM forkpool_jobs WHERE queue = \(stale) ORDER BY id", as: String.self)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        #expect(staleKeys == [due, due + 1000].map { "periodic:late:" + formatter.string(from: Date(timeIntervalSince1970: Double($0) / 1000)) })
        _ = try await client.query("DELETE FROM forkpool_jobs WHERE queue = \(stale)", logger: logger)
        _ = try await client.query("DELETE FROM forkpool_schedules WHERE queue = \(stale)", logger: logger)

        // Three hosts, each its own pool, one schedule.
        let tick = try PeriodicJob(name: "tick", schedule: .every(.seconds(1)), job: TickJob())
        func ticks() async throws -> Int {
            Int(try await database.values("SELECT count(*) FROM forkpool_jobs WHERE queue = \(database.queueName) AND job_name = \(TickJob.jobName)",
                                          as: Int64.self).first ?? 0)
        }
        let started = ContinuousClock.now
        var hosts: [LocalHost] = []
        do {
            for index in 0..<3 { hosts.append(try LocalHost(queue: queue, name: "h\(index)") { $0.periodicJobs = [tick] }) }
            try await database.waitUntil("four ticks", seconds: 20) { try await ticks() >= 4 }
        } catch {
            for host in hosts { await host.stop() }
            throw error
        }
        for host in hosts { await host.stop() }
        let elapsed = (ContinuousClock.now - started) / .seconds(1)
        var rows: [(key: String, tick: Double, created: Double)] = []
        for try await row in try await client.query("""
            SELECT unique_key, extract(epoch FROM substr(unique_key, 15)::timestamptz)::float8, extract(epoch FROM created_at)::float8
            FROM forkpool_jobs WHERE queue = \(database.queueName) AND job_name = \(TickJob.jobName) ORDER BY 2
            """, logger: logger).decode((String, Double, Double).self) { rows.append(row) }
        let keys = rows.map(\.key)
        #expect(rows.count >= 4 && Double(rows.count) <= elapsed + 1, "\(rows.count) jobs in \(elapsed) s: \(keys)")
        #expect(Set(keys).count == keys.count, "a tick enqueued twice: \(keys)")
        #expect(keys.allSatisfy { $0.hasPrefix("periodic:tick:") && $0.hasSuffix(".000Z") }, "\(keys)")
        #expect(zip(rows.dropFirst(), rows).allSatisfy { $0.tick - $1.tick == 1 }, "not one per second: \(keys)")
        #expect(rows.allSatisfy { $0.created >= $0.tick }, "enqueued before its tick: \(rows)")
        let scheduled = hosts.map(\.worker.counters.scheduled)
        #expect(scheduled.reduce(0, +) == rows.count, "\(scheduled)")
        var schedule: [(Double, Double)] = []
        for try await row in try await client.query("""
            SELECT extract(epoch FROM last_tick)::float8, extract(epoch FROM next_tick)::float8 FROM forkpool_schedules
            WHERE queue = \(database.queueName)
            """, logger: logger).decode((Double, Double).self) { schedule.append(row) }
        #expect(schedule.count == 1 && schedule.first?.0 == rows.last?.tick && schedule.first?.1 == rows.last.map { $0.tick + 1 },
                "\(schedule)")
    }

    // MARK: Retention

    @Test func retentionDeletesOldRowsInBatchesWhileJobsRun() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue { $0.retention = .seconds(2) }
        let (client, logger) = (database.client, database.logger)
        let other = database.queueName + "-other"
        for (name, count) in [(database.queueName, 20_000), (other, 100)] {
            _ = try await client.query("""
                INSERT INTO forkpool_jobs (queue, job_name, payload, state, attempts, max_attempts, created_at, finished_at)
                SELECT \(name), 'OldJob', '\\x00'::bytea, 'succeeded', 1, 1, now() - interval '2 hours', now() - interval '1 hour'
                FROM generate_series(1, \(count))
                """, logger: logger)
        }
        func count(_ queue: String, _ condition: String = "job_name = 'OldJob'") async throws -> Int {
            Int(try await database.values("SELECT count(*) FROM forkpool_jobs WHERE queue = \(queue) AND \(unescaped: condition)",
                                          as: Int64.self).first ?? -1)
        }
        #expect(try await count(database.queueName) == 20_000)
        let host = try await withLocalHost(queue: queue) { host in
            var checked = 0
            var last: [JobHandle<Int>] = []
            var lastFinished: [Int64: Double] = [:]
            for batch in 0..<10 {
                let values = Array(batch * 50..<(batch + 1) * 50)
                let sent = ContinuousClock.now
                let handles = try await queue.submit(contentsOf: values.map { SquareJob(value: $0) })
                var outputs: [Int] = []
                for handle in handles { outputs.append(try await handle.value) }
                #expect(outputs == values.map { $0 * $0 })
                // Finished less than 2 s ago (they were written after `sent`): every row is there.
                var finished: [Int64: Double] = [:]
                for try await (id, at) in try await client.query("""
                    SELECT id, extract(epoch FROM finished_at)::float8 FROM forkpool_jobs WHERE id = ANY(\(handles.map(\.id)))
                    """, logger: logger).decode((Int64, Double).self) { finished[id] = at }
                if ContinuousClock.now - sent < .milliseconds(1900) {
                    #expect(finished.count == 50, "batch \(batch): \(50 - finished.count) rows deleted within 2 s")
                    checked += 1
                    (last, lastFinished) = (handles, finished)
                }
            }
            #expect(checked >= 1)
            try await database.waitUntil("the old rows are deleted") { try await count(database.queueName) == 0 }
            #expect(try await count(other) == 100)  // another queue's: not this queue's retention
            // The last batch's rows go once 2 s have passed since each finished, not before.
            let ids = last.map(\.id)
            var deletedAfter: [Int64: Double] = [:]  // seconds after it finished, as first seen gone
            try await database.waitUntil("the last batch's rows are deleted", seconds: 20) {
                var present: Set<Int64> = []
                var now = 0.0
                for try await (id, at) in try await client.query("""
                    SELECT coalesce(job.id, -1), extract(epoch FROM statement_timestamp())::float8
                    FROM (SELECT 1) AS one LEFT JOIN forkpool_jobs AS job ON job.id = ANY(\(ids))
                    """, logger: logger).decode((Int64, Double).self) {
                    present.insert(id)
                    now = at
                }
                for (id, finishedAt) in lastFinished where !present.contains(id) && deletedAfter[id] == nil {
                    deletedAfter[id] = now - finishedAt
                }
                return !ids.contains { present.contains($0) }
            }
            #expect(deletedAfter.count == ids.count && deletedAfter.values.allSatisfy { $0 >= 1.95 },
                    "deleted this long after they finished: \(deletedAfter.values.sorted())")
            if let gone = last.first {
                let error = await #expect(throws: ForkPoolError.self) { try await gone.value }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("there is no job \(gone.id): it was deleted") == true, "\(error?.message ?? "")")
            }
            return host
        }
        #expect(host.worker.counters.expired >= 20_000 + 50, "\(host.worker.counters)")
        #expect(host.worker.counters.settled == 500)
        _ = try await client.query("DELETE FROM forkpool_jobs WHERE queue = \(other)", logger: logger)
    }

    // MARK: Migration from version 1

    @Test func aVersion1DatabaseIsUpgradedWithItsJobsInFlight() async throws {
        let database = try await TestDatabase()
        let schema = "v1test_\(UInt32.random(in: 0...UInt32.max))"
        _ = try await database.client.query("CREATE SCHEMA \(unescaped: schema)", logger: database.logger)
        var configuration = try PostgresClient.Configuration(url: database.url)
        configuration.options.additionalStartupParameters = [("search_path", schema)]
        let client = PostgresClient(configuration: configuration, backgroundLogger: database.logger)
        let running = Task { await client.run() }
        do {
            try await upgradeVersion1(database: database, client: client, schema: schema)
        } catch {
            running.cancel()
            await running.value
            _ = try? await database.client.query("DROP SCHEMA \(unescaped: schema) CASCADE", logger: database.logger)
            throw error
        }
        running.cancel()
        await running.value
        _ = try await database.client.query("DROP SCHEMA \(unescaped: schema) CASCADE", logger: database.logger)
    }

    private func upgradeVersion1(database: TestDatabase, client: PostgresClient, schema: String) async throws {
        let logger = database.logger
        func values<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type) async throws -> [T] {
            var values: [T] = []
            for try await value in try await client.query(query, logger: logger).decode(T.self) { values.append(value) }
            return values
        }
        func stateType() async throws -> [String] {
            try await values("""
                SELECT udt_schema || '.' || udt_name FROM information_schema.columns
                WHERE table_schema = \(schema) AND table_name = 'forkpool_jobs' AND column_name = 'state'
                """, as: String.self)
        }
        try await JobQueueSchema.migrate(client, to: 1, logger: logger)
        #expect(try await values("SELECT version FROM forkpool_schema ORDER BY version", as: Int32.self) == [1])
        #expect(try await stateType() == ["pg_catalog.text"])

        // Version-1 rows, as a version-1 host left them: queued, running (a lease of 1 s; one on
        // its last attempt), succeeded.
        let (name, square) = (database.queueName, SquareJob.jobName)
        let payloads = Dictionary(uniqueKeysWithValues: try (2...7).map { ($0, ByteBuffer(bytes: try EncodedJob(SquareJob(value: $0)).payload)) })
        func payload(_ value: Int) -> ByteBuffer { payloads[value]! }
        var queued: [Int64] = []
        for value in 2...4 {
            queued += try await values("""
                INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts) VALUES (\(name), \(square), \(payload(value)), 3)
                RETURNING id
                """, as: Int64.self)
        }
        var inFlight: [(id: Int64, token: Int64)] = []
        for (value, attempts) in [(5, 1), (6, 3)] {
            for try await row in try await client.query("""
                INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts, state, attempts, lease_owner, lease_token, lease_expires)
                VALUES (\(name), \(square), \(payload(value)), 3, 'running', \(Int32(attempts)), 'old', nextval('forkpool_lease_tokens'),
                        now() + interval '1 second')
                RETURNING id, lease_token
                """, logger: logger).decode((Int64, Int64).self) { inFlight.append(row) }
        }
        let output = ByteBuffer(bytes: try EncodedJob.encodeOutput(49, of: SquareJob.self))
        let succeeded = try #require(try await values("""
            INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts, state, attempts, result, finished_at)
            VALUES (\(name), \(square), \(payload(7)), 3, 'succeeded', 1, \(output), now())
            RETURNING id
            """, as: Int64.self).first)
        #expect(queued.count == 3 && inFlight.count == 2)

        var settings = PostgresJobQueue.Configuration()
        settings.pollInterval = .milliseconds(250)
        let queue = try PostgresJobQueue(client: client, name: name, configuration: settings, logger: logger)
        try await queue.migrate()
        #expect(try await values("SELECT version FROM forkpool_schema ORDER BY version", as: Int32.self) == [1, 2])
        #expect(try await stateType() == ["\(schema).forkpool_job_state"])
        let indexes = try await values("SELECT indexdef FROM pg_indexes WHERE schemaname = \(schema) AND tablename = 'forkpool_jobs'",
                                       as: String.self)
        #expect(indexes.contains { $0.contains("forkpool_jobs_ready") && $0.contains("priority DESC") } && indexes.count == 6, "\(indexes)")
        var states: [Int64: String] = [:]
        for try await (id, state, priority, key) in try await client.query(
            "SELECT id, state::text, priority, unique_key FROM forkpool_jobs WHERE queue = \(name)", logger: logger)
            .decode((Int64, String, Int16, String?).self) {
            states[id] = state
            #expect(priority == 0 && key == nil)
        }
        var expected: [Int64: String] = [succeeded: "succeeded", inFlight[0].id: "running", inFlight[1].id: "running"]
        for id in queued { expected[id] = "queued" }
        #expect(states == expected)

        func handle(_ id: Int64) -> JobHandle<Int> {
            JobHandle(id: id, queue: queue, jobName: square) { bytes throws(ForkPoolError) in
                try EncodedJob.decodeOutput(of: SquareJob.self, from: bytes)
            }
        }
        try await withLocalHost(queue: queue) { host in
            var outputs: [Int] = []
            for id in queued { outputs.append(try await handle(id).value) }
            #expect(outputs == [4, 9, 16])
            #expect(try await handle(succeeded).value == 49)
            // The in-flight claims lapse: the one with attempts left runs again, the other fails.
            #expect(try await handle(inFlight[0].id).value == 25)
            let rescued = try await database.row(inFlight[0].id, client: client)
            #expect(rescued.state == "succeeded" && rescued.attempts == 2 && rescued.leaseOwner == nil)
            let lastAttempt = await #expect(throws: ForkPoolError.self) { try await handle(inFlight[1].id).value }
            #expect(lastAttempt?.code == .workerDied && lastAttempt?.message.contains("attempt 3 of 3") == true)
            // The old host's late writes match nothing, and are not taken for its own.
            let writer = OutcomeWriter(client: client, queue: name, callTimeout: .seconds(10), logger: logger)
            for ((id, token), value) in zip(inFlight, [5, 6]) {
                let claim = JobClaim(id: id, jobName: square, payload: Array(payload(value).readableBytesView), token: token, attempt: 1,
                                     maximumAttempts: 3, cancelRequested: false)
                #expect(try await writer.write(claim, as: .failed(ForkPoolError(.workerDied, "late"))) == .lost, "job \(id)")
                #expect(try await writer.write(claim, as: .succeeded(try EncodedJob.encodeOutput(value * value, of: SquareJob.self)))
                        == .lost, "job \(id)")
            }
            #expect(try await database.row(inFlight[1].id, client: client).state == "failed")
            // Version 2's own features on the upgraded table.
            let after = try await queue.submit(SquareJob(value: 8), options: JobOptions(priority: 3, uniqueKey: "after"))
            #expect(try await after.value == 64)
            #expect(host.worker.counters.settled == 5)
        }
    }

    // MARK: The operator's commands

    @Test func statusListRetryPurgeAndCancel() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let (square, failures) = try await withLocalHost(queue: queue) { _ in
            let square = try await queue.submit(SquareJob(value: 2))
            let failures = try await queue.submit(contentsOf: [FailingJob(reason: "one"), FailingJob(reason: "two")])
            #expect(try await square.value == 4)
            for failure in failures { _ = await #expect(throws: ForkPoolError.self) { try await failure.value } }
            try await database.waitUntil("the host is seen") {
                try await queue.status().hosts.contains { $0.owner == "local" && $0.isAlive }
            }
            return (square, failures)
        }
        // No host from here on.
        let later = try await queue.submit(SquareJob(value: 3), options: JobOptions(delay: .seconds(3600)))
        let dropped = try await queue.submit(SquareJob(value: 5), options: JobOptions(delay: .seconds(3600)))
        #expect(try await dropped.cancel())
        var status = try await queue.status()
        #expect(status.queue == database.queueName)
        #expect(status.counts == [.succeeded: 1, .failed: 2, .scheduled: 1, .cancelled: 1])
        #expect(status.oldestQueuedAge == nil)  // the scheduled one is not queued
        let due = try await queue.submit(SquareJob(value: 6))
        status = try await queue.status()
        #expect(status.counts[.queued] == 1 && status.counts[.scheduled] == 1 && status.oldestQueuedAge.map { $0 >= .zero && $0 < .seconds(30) } == true)

        let failed = try await queue.jobs(in: .failed)
        #expect(failed.map(\.id) == failures.map(\.id).reversed())  // newest first
        #expect(failed.allSatisfy { $0.errorCode == "workFailed" && $0.attempts == 1 && $0.finishedAt != nil && $0.jobName == FailingJob.jobName })
        #expect(failed.first?.errorMessage?.contains("refused: two") == true)
        #expect(try await queue.jobs().count == 6)
        #expect(try await queue.jobs(limit: 2).map(\.id) == [due.id, dropped.id])
        #expect(try await queue.jobs(in: .cancelled).map(\.id) == [dropped.id])
        let noLimit = await #expect(throws: ForkPoolError.self) { _ = try await queue.jobs(limit: 0) }
        #expect(noLimit?.code == .invalidArgument)

        // retry(jobID:): a failed job is queued as new; others are refused, saying why.
        try await queue.retry(jobID: failures[0].id)
        let retried = try #require(try await queue.job(id: failures[0].id))
        #expect(retried.state == .queued && retried.attempts == 0 && retried.errorCode == nil && retried.errorMessage == nil
                && retried.finishedAt == nil)
        for (id, reason) in [(square.id, "job \(square.id) is succeeded"), (later.id, "job \(later.id) is scheduled"),
                             (Int64.max, "there is no job \(Int64.max)")] {
            let error = await #expect(throws: ForkPoolError.self) { try await queue.retry(jobID: id) }
            #expect(error?.code == .invalidArgument && error?.message.contains(reason) == true, "\(error?.message ?? "")")
        }
        try await queue.retry(jobID: dropped.id)  // a cancelled one, too
        #expect(try await queue.retryFailed() == 1)
        #expect(try await queue.retryFailed() == 0)
        #expect(try await queue.status().counts == [.succeeded: 1, .queued: 4, .scheduled: 1])

        try await withLocalHost(queue: queue) { (_: LocalHost) async throws in
            #expect(try await dropped.value == 25)
            #expect(try await due.value == 36)
            for (failure, reason) in zip(failures, ["one", "two"]) {
                let error = await #expect(throws: ForkPoolError.self) { try await failure.value }
                #expect(error?.code == .workFailed && error?.message.contains("refused: \(reason)") == true)
                #expect(try await database.row(failure.id).attempts == 1)  // it ran again
            }
        }
        #expect(try await queue.status().counts == [.succeeded: 3, .failed: 2, .scheduled: 1])

        // purge(finishedBefore:): finished rows older than the date, of this queue, nothing else.
        let other = try PostgresJobQueue(client: database.client, name: database.queueName + "-other", logger: database.logger)
        let elsewhere = try await other.submit(SquareJob(value: 1))
        _ = try await database.client.query("""
            UPDATE forkpool_jobs SET finished_at = now() - interval '2 hours',
                   state = CASE WHEN id = \(elsewhere.id) THEN 'succeeded' ELSE state END
            WHERE id = ANY(\([square.id, failures[0].id, later.id, elsewhere.id]))
            """, logger: database.logger)  // the queued one too: a queued job is never purged
        #expect(try await queue.purge(finishedBefore: Date().addingTimeInterval(-3600)) == 2)
        #expect(try await queue.job(id: square.id) == nil)
        #expect(try await queue.job(id: failures[0].id) == nil)
        for id in [later.id, dropped.id, due.id, failures[1].id, elsewhere.id] { #expect(try await queue.job(id: id) != nil, "job \(id)") }
        #expect(try await queue.purge(finishedBefore: Date().addingTimeInterval(-3600)) == 0)
        let purged = await #expect(throws: ForkPoolError.self) { try await square.value }
        #expect(purged?.code == .invalidArgument && purged?.message.contains("deleted") == true)
        _ = try await database.client.query("DELETE FROM forkpool_jobs WHERE id = \(elsewhere.id)", logger: database.logger)

        // cancel(jobID:) of a job that does not exist.
        let unknown = await #expect(throws: ForkPoolError.self) { try await queue.cancel(jobID: Int64.max) }
        #expect(unknown?.code == .invalidArgument && unknown?.message.contains("there is no job \(Int64.max)") == true)
        #expect(try await queue.cancel(jobID: due.id) == false)  // finished: nothing to cancel
    }
}

extension TestDatabase {
    /// The first column of every row `query` answers.
    func values<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type) async throws -> [T] {
        var values: [T] = []
        for try await value in try await client.query(query, logger: logger).decode(T.self) { values.append(value) }
        return values
    }

    func row(_ id: Int64, client: PostgresClient) async throws -> Row {
        for try await (state, attempts, owner, code, message) in try await client.query("""
            SELECT state::text, attempts, lease_owner, error_code, error_message FROM forkpool_jobs WHERE id = \(id)
            """, logger: logger).decode((String, Int32, String?, String?, String?).self) {
            return Row(state: state, attempts: attempts, leaseOwner: owner, errorCode: code, errorMessage: message)
        }
        throw ForkPoolError(.invalidArgument, "no job \(id)")
    }

    /// A crashed job queued again after attempt `attempt`, as looked at closely: the time of the
    /// last look that did not see it yet and of the first that did (the database's clock, in
    /// seconds since the epoch), its not_before and recorded error.
    struct Requeue: CustomStringConvertible {
        var lookedBefore: Double
        var lookedAt: Double
        var notBefore: Double
        var errorCode: String
        var errorMessage: String
        var description: String {
            "written between \(lookedBefore) and \(lookedAt), not before \(notBefore) (\(notBefore - lookedBefore) s after the "
                + "first, \(notBefore - lookedAt) s after the second); \(errorCode): \(errorMessage)"
        }
    }

    func requeue(of id: Int64, afterAttempt attempt: Int, seconds: Double = 20) async throws -> Requeue {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var lookedBefore: Double?
        while ContinuousClock.now < deadline {
            for try await (state, attempts, notBefore, now, code, message) in try await client.query("""
                SELECT state::text, attempts, extract(epoch FROM not_before)::float8, extract(epoch FROM statement_timestamp())::float8,
                       error_code, error_message
                FROM forkpool_jobs WHERE id = \(id)
                """, logger: logger).decode((String, Int32, Double, Double, String?, String?).self) {
                if state == "scheduled" && attempts == attempt {
                    guard let lookedBefore else { throw ForkPoolError(.invalidArgument, "job \(id) was queued again before the first look") }
                    return Requeue(lookedBefore: lookedBefore, lookedAt: now, notBefore: notBefore, errorCode: code ?? "",
                                   errorMessage: message ?? "")
                }
                guard attempts <= attempt, state == "scheduled" || state == "queued" || state == "running" else {
                    throw ForkPoolError(.invalidArgument, "job \(id) went past its requeue after attempt \(attempt) unseen: \(state), "
                                        + "attempts \(attempts)")
                }
                lookedBefore = now
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ForkPoolError(.timedOut, "job \(id) was not queued again after attempt \(attempt) within \(seconds) s")
    }
}
