// The job queue through a real PostgreSQL server with an in-process worker host: jobs and
// `map` round trips, a job that throws (failed at once), one that crashes its worker (retried,
// then failed with the error), a payload over the limit (refused before anything is written),
// cancelling queued and running jobs, and the schema's versioned migration.
import ClusterJobs
@_spi(Integration) import ForkPool
@testable import ForkPoolPostgres
import PostgresNIO
import Testing

@Suite(.serialized, .timeLimit(.minutes(1)))
struct JobQueueTests {
    @Test func jobsAndMapsRunOnAWorkerHost() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let host = try await withLocalHost(queue: queue) { host in
            let handle = try await queue.submit(SquareJob(value: 12))
            #expect(try await handle.value == 144)
            let squares = try await queue.map((1...200).map { SquareJob(value: $0) })
            #expect(squares == (1...200).map { $0 * $0 })
            let answer = try await queue.submit(SleepJob(milliseconds: 1, tag: 7)).value
            #expect(answer == HostAnswer(host: "local", value: 7))
            let row = try await database.row(handle.id)
            #expect(row.state == "succeeded" && row.attempts == 1 && row.leaseOwner == nil)
            #expect(try await database.rowCount() == 202)
            return host
        }
        #expect(host.worker.counters.settled == 202 && host.worker.counters.dropped == 0)
    }

    @Test func aJobLongerThanItsLeaseKeepsItsClaim() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let host = try await withLocalHost(queue: queue, lease: .milliseconds(500)) { host in
            let handle = try await queue.submit(SleepJob(milliseconds: 2000, tag: 4))
            #expect(try await handle.value == HostAnswer(host: "local", value: 4))
            #expect(try await database.row(handle.id).attempts == 1)
            return host
        }
        #expect(host.worker.counters.claimed == 1 && host.worker.counters.dropped == 0)
    }

    /// A host that claims its own job again (its lease lapsed while the database was away, say):
    /// the first run is stopped (its worker killed), the second is the one held and recorded.
    @Test func aHostThatReclaimsItsOwnLapsedJobStopsTheFirstRun() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let host = try await withLocalHost(queue: queue, lease: .seconds(60)) { host in
            let handle = try await queue.submit(SleepJob(milliseconds: 3000, tag: 5))
            try await database.waitUntil("the job runs") { try await database.row(handle.id).state == "running" }
            _ = try await database.client.query("UPDATE forkpool_jobs SET lease_expires = now() - interval '1 second' WHERE id = \(handle.id)",
                                                logger: database.logger)
            try await database.waitUntil("the host claims it again") { try await database.row(handle.id).attempts == 2 }
            #expect(try await handle.value == HostAnswer(host: "local", value: 5))
            #expect(try await database.row(handle.id).attempts == 2)
            #expect(host.pool.stats.workers.map(\.restarts).reduce(0, +) >= 1)  // the first run's worker was stopped
            #expect(host.worker.heldJobIDs.isEmpty)
            return host
        }
        #expect(host.worker.counters.claimed == 2 && host.worker.counters.settled == 1 && host.worker.counters.dropped == 1)
    }

    /// Two hosts past a lapsed lease, step by step: host A's claim lapses and is rescued, host B
    /// claims the job again; whatever A then writes (a result, a failure, a retry, a release)
    /// matches no row, and B's result is the one recorded. A write B repeats after its first
    /// call's answer was lost is recognised as B's own.
    @Test func onlyTheCurrentClaimCanRecordAnOutcome() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let handle = try await queue.submit(SquareJob(value: 2))
        let (client, logger, name) = (database.client, database.logger, database.queueName)
        func claim(_ owner: String) async throws -> [JobClaim] {
            try await JobClaimer.claim(5, queue: name, owner: owner, lease: .seconds(60), client: client, logger: logger)
        }
        let a = try #require(try await claim("A").first)
        #expect(try await claim("B").isEmpty)
        _ = try await client.query("UPDATE forkpool_jobs SET lease_expires = now() - interval '1 second' WHERE id = \(handle.id)",
                                   logger: logger)
        for try await (requeued, _, _) in try await client.query(QueueSQL.rescueLapsed(queue: name, limit: 10), logger: logger)
            .decode((Int64, Int64, Int64).self) { #expect(requeued == 1) }
        let b = try #require(try await claim("B").first)
        #expect(a.id == b.id && a.attempt == 1 && b.attempt == 2 && a.token != b.token)
        let writer = OutcomeWriter(client: client, queue: name, callTimeout: .seconds(10), logger: logger)
        let lapsed = ForkPoolError(.workerDied, "lapsed")
        for late in [Settlement.succeeded([0x42]), .failed(lapsed), .retry(lapsed, after: .zero), .cancelled, .released] {
            #expect(try await writer.write(a, as: late) == .lost)
        }
        #expect(try await LeaseKeeper.renew([(id: a.id, token: a.token)], lease: .seconds(60), owner: "A", queue: name, client: client,
                                            logger: logger).isEmpty)
        let output = try EncodedJob.encodeOutput(4, of: SquareJob.self)
        #expect(try await writer.write(b, as: .succeeded(output)) == .written)
        #expect(try await writer.write(b, as: .succeeded(output)) == .writtenEarlier)  // B's own, answered again
        #expect(try await writer.write(b, as: .failed(lapsed)) == .lost)  // not what B wrote
        #expect(try await handle.value == 4)
        let row = try await database.row(handle.id)
        #expect(row.state == "succeeded" && row.attempts == 2)
    }

    /// A result recorded without a notification (one lost while the listening connection was
    /// down) still reaches its waiter: the watcher polls.
    @Test func aResultWithoutANotificationIsFoundByPolling() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let handle = try await queue.submit(SquareJob(value: 9))
        async let waiting = handle.value  // a child task: the time limit cancels it
        try await Task.sleep(for: .milliseconds(300))  // the watcher has looked once and listens
        let output = ByteBuffer(bytes: try EncodedJob.encodeOutput(81, of: SquareJob.self))
        _ = try await database.client.query("""
            UPDATE forkpool_jobs SET state = 'succeeded', result = \(output), finished_at = now() WHERE id = \(handle.id)
            """, logger: database.logger)
        #expect(try await waiting == 81)
    }

    @Test func anErrorTextPostgreSQLCannotStoreIsStoredCleaned() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let error = try await withLocalHost(queue: queue) { _ in
            let handle = try await queue.submit(FailingJob(reason: "nul\u{0}inside"))
            return await #expect(throws: ForkPoolError.self) { try await handle.value }
        }
        #expect(error?.code == .workFailed)
        #expect(error?.message.contains("refused: nul\u{FFFD}inside") == true)
    }

    @Test func aJobThatThrowsIsRecordedFailedAtOnce() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        try await withLocalHost(queue: queue) { _ in
            let handle = try await queue.submit(FailingJob(reason: "no such file"))
            let error = await #expect(throws: ForkPoolError.self) { try await handle.value }
            #expect(error?.code == .workFailed)
            #expect(error?.message.contains("refused: no such file") == true)
            #expect(error?.jobName == FailingJob.jobName)
            let row = try await database.row(handle.id)
            #expect(row.state == "failed" && row.attempts == 1 && row.errorCode == "workFailed")
        }
    }

    @Test func aJobThatCrashesItsWorkerIsRetriedThenRecordedFailed() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue {
            $0.maximumAttempts = 3
            $0.retryBackoff = RetryBackoff(initial: .milliseconds(10), maximum: .milliseconds(10), jitter: 0)
        }
        try await withLocalHost(queue: queue) { host in
            let handle = try await queue.submit(CrashingJob())
            let error = await #expect(throws: ForkPoolError.self) { try await handle.value }
            #expect(error?.code == .workerDied)
            #expect(error?.message.contains("attempt 3 of 3") == true)
            #expect(error?.message.contains("SIGSEGV") == true)
            let row = try await database.row(handle.id)
            #expect(row.state == "failed" && row.attempts == 3 && row.errorCode == "workerDied")
            #expect(host.worker.counters.retried == 2)
            // The host goes on.
            #expect(try await queue.submit(SquareJob(value: 3)).value == 9)
        }
    }

    @Test func aHostWhosePoolShutsDownReleasesItsJobAndStops() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let host = try LocalHost(queue: queue)
        host.pool.shutdown()
        let handle = try await queue.submit(SquareJob(value: 2))
        let error = await #expect(throws: ForkPoolError.self) { try await host.running.value }
        #expect(error?.code == .poolShutDown)
        let row = try await database.row(handle.id)
        #expect(row.state == "queued" && row.attempts == 0 && row.leaseOwner == nil)
        let value = try await withLocalHost(queue: queue) { _ in try await handle.value }
        #expect(value == 4)
    }

    @Test func aPayloadOverTheLimitIsRefusedBeforeAnythingIsWritten() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue { $0.maximumPayloadBytes = 1024 }
        let error = await #expect(throws: ForkPoolError.self) {
            _ = try await queue.submit(contentsOf: [BytesJob(bytes: [1, 2, 3]), BytesJob(bytes: Array(repeating: 9, count: 2000))])
        }
        #expect(error?.code == .frameTooLarge)
        #expect(error?.message.contains("maximumPayloadBytes") == true)
        #expect(try await database.rowCount() == 0)
        let small = try await queue.submit(BytesJob(bytes: Array(repeating: 1, count: 900)))
        #expect(try await database.row(small.id).state == "queued")
    }

    @Test func cancellingQueuedAndRunningJobs() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        // No host yet: the job stays queued, and cancelling it means it never runs.
        let queued = try await queue.submit(SleepJob(milliseconds: 1))
        #expect(try await queued.cancel())
        let error = await #expect(throws: ForkPoolError.self) { try await queued.value }
        #expect(error?.code == .cancelled)
        try await withLocalHost(queue: queue, lease: .milliseconds(600)) { _ in
            let running = try await queue.submit(SleepJob(milliseconds: 60_000))
            try await database.waitUntil("the job runs") { try await database.row(running.id).state == "running" }
            let started = ContinuousClock.now
            #expect(try await running.cancel() == false)  // running: its host stops it
            let stopped = await #expect(throws: ForkPoolError.self) { try await running.value }
            #expect(stopped?.code == .cancelled)
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(try await database.row(running.id).state == "cancelled")
            #expect(try await database.row(queued.id).attempts == 0)
            #expect(try await queue.submit(SquareJob(value: 5)).value == 25)  // its worker was replaced
        }
    }

    @Test func theSchemaMigratesOnceAndRefusesANewerOne() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        try await queue.migrate()
        try await queue.migrate()
        var versions: [Int32] = []
        for try await version in try await database.client.query("SELECT version FROM forkpool_schema ORDER BY version",
                                                                 logger: database.logger).decode(Int32.self) {
            versions.append(version)
        }
        #expect(versions == [1, 2])
        _ = try await database.client.query("INSERT INTO forkpool_schema (version) VALUES (99)", logger: database.logger)
        let error = await #expect(throws: ForkPoolError.self) { try await queue.migrate() }
        _ = try await database.client.query("DELETE FROM forkpool_schema WHERE version = 99", logger: database.logger)
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("version 99") == true)
    }
}
