// An outcome written by a call whose answer never came: the call timed out on the host's side
// but its statement committed. Written again (the host tries again), it must be recognised as
// the host's own earlier write (`.writtenEarlier`, by lease token and state) — not written a
// second time, and not mistaken for a lost claim. Provoked two ways: the first write sent as a
// raw statement whose answer is ignored, then the same outcome through an OutcomeWriter (every
// kind of outcome); and a worker host whose outcome write is held behind a row lock past its
// call time-out, so that it tries again while the first write still waits, and the first
// write commits once the lock goes.
import ClusterJobs
@_spi(Integration) import ForkPool
@testable import ForkPoolPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite(.serialized, .timeLimit(.minutes(1)))
struct EarlierWriteTests {
    enum Kind: String, CaseIterable, Sendable {
        case succeeded, failed, cancelled, retry, released

        var settlement: Settlement {
            switch self {
            case .succeeded: .succeeded([1, 2, 3])
            case .failed: .failed(ForkPoolError(.workFailed, "it failed"))
            case .cancelled: .cancelled
            case .retry: .retry(ForkPoolError(.workerDied, "its worker died"), after: .seconds(60))
            case .released: .released
            }
        }

        var state: String {
            switch self {
            case .retry: "scheduled"  // its back-off is still to come
            case .released: "queued"
            default: rawValue
            }
        }
    }

    @Test(arguments: Kind.allCases)
    func anOutcomeWrittenByACallWhoseAnswerNeverCameIsRecognised(kind: Kind) async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let handle = try await queue.submit(SquareJob(value: 9))
        let claims = try await JobClaimer.claim(1, queue: database.queueName, owner: "writer", lease: .seconds(30),
                                                client: database.client, logger: database.logger)
        let claim = try #require(claims.first)
        #expect(claim.id == handle.id)

        // The call whose answer never came: its statement, its answer ignored by the host.
        var answered: [Int64: Bool] = [:]
        for try await (token, now) in try await database.client.query(
            QueueSQL.recordOutcomes([(claim: claim, settlement: kind.settlement)], queue: database.queueName), logger: database.logger
        ).decode((Int64, Bool).self) where token >= 0 {
            answered[token] = now
        }
        #expect(answered == [claim.token: true])  // by the claim's token
        let written = try await rowText(claim.id, database)
        #expect(try await database.row(claim.id).state == kind.state)

        // The host tries again: its own earlier write, recognised; the row as that write left it.
        let writer = OutcomeWriter(client: database.client, queue: database.queueName, callTimeout: .seconds(5), logger: database.logger)
        #expect(try await writer.write(claim, as: kind.settlement) == .writtenEarlier)
        #expect(try await rowText(claim.id, database) == written)

        // Another claim's token (the job claimed again since, by this host or another): lost.
        let other = JobClaim(id: claim.id, jobName: claim.jobName, payload: claim.payload, token: claim.token + 1_000_000,
                             attempt: claim.attempt, maximumAttempts: claim.maximumAttempts, cancelRequested: false)
        #expect(try await writer.write(other, as: kind.settlement) == .lost)
        #expect(try await rowText(claim.id, database) == written)
    }

    /// A row lock taken by another connection holds the host's outcome write past its call
    /// time-out (0.4 s); the host tries again while that write still waits. Once the lock goes,
    /// the first write commits; the one the host waits for must see it as its own.
    @Test func aHostsWriteThatCommittedAfterItsCallTimedOutIsSettledNotDropped() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let capture = LogCapture()
        let host = try LocalHost(queue: queue, name: "slowdb", workers: 1, lease: .seconds(20), logger: capture.logger) {
            $0.databaseCallTimeout = .milliseconds(400)
        }
        do {
            let handle = try await queue.submit(SleepJob(milliseconds: 1000, tag: 5))
            try await database.waitUntil("the host runs the job") { try await database.row(handle.id).leaseOwner == "slowdb" }
            try await database.client.withTransaction(logger: database.logger) { connection in
                _ = try await connection.query("SELECT 1 FROM forkpool_jobs WHERE id = \(handle.id) FOR UPDATE", logger: database.logger)
                // The job ends; its write waits for the lock, times out, and is sent again.
                try await database.waitUntil("two of the host's writes wait for the row", seconds: 20) {
                    try await waitingWrites(database) >= 2
                }
            }
            #expect(try await handle.value == HostAnswer(host: "slowdb", value: 5))
            try await database.waitUntil("the host is done with the job") {
                host.worker.heldJobIDs.isEmpty && host.worker.counters.settled + host.worker.counters.dropped >= 1
            }
            let counters = host.worker.counters
            #expect(counters.settled == 1 && counters.dropped == 0)
            let row = try await database.row(handle.id)
            #expect(row.state == "succeeded" && row.attempts == 1)
            #expect(capture.text.contains("could not record job \(handle.id)"))  // the write did time out
            #expect(capture.text.contains("job \(handle.id)'s outcome had been written by an earlier call"))
            #expect(!capture.text.contains("dropped"))
            await host.stop()
        } catch {
            await host.stop()
            throw error
        }
    }

    /// The row as JSON text: every column.
    private func rowText(_ id: Int64, _ database: TestDatabase) async throws -> String {
        for try await text in try await database.client.query("SELECT row_to_json(job)::text FROM forkpool_jobs AS job WHERE id = \(id)",
                                                               logger: database.logger).decode(String.self) {
            return text
        }
        throw ForkPoolError(.invalidArgument, "no job \(id)")
    }

    /// Outcome writes (QueueSQL.recordOutcomes) waiting for a lock now.
    private func waitingWrites(_ database: TestDatabase) async throws -> Int {
        let query: PostgresQuery = """
            SELECT count(*) FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%AS g(id, token, kind, result%'
            """
        for try await count in try await database.client.query(query, logger: database.logger).decode(Int64.self) { return Int(count) }
        return 0
    }
}
