// What a claim reads, as PostgreSQL plans and runs it: with 50,000 finished rows and 50,000
// jobs set for tomorrow in the queue, the claim of the one due job goes through the queued
// jobs' own index and passes over no row (EXPLAIN ANALYZE: no "Rows Removed by Filter", no
// other index, no sequential scan). Without its mechanism — the claim also taking lapsed claims
// (an OR), or jobs set for later left in the queued state — it walks past those rows, and this
// fails. The same for the rescuer's statement and the queueing of due scheduled jobs.
import ClusterJobs
@_spi(Integration) import ForkPool
@testable import ForkPoolPostgres
import Foundation
import PostgresNIO
import Testing

@Suite(.serialized, .timeLimit(.minutes(1)))
struct ClaimPlanTests {
    @Test func aClaimPassesOverNeitherFinishedNorScheduledRows() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let name = database.queueName
        _ = try await database.client.query("""
            INSERT INTO forkpool_jobs (queue, job_name, payload, state, attempts, max_attempts, result, finished_at)
            SELECT \(name), 'NoOpJob', '\\x00'::bytea, 'succeeded', 1, 3, '\\x00'::bytea, now() FROM generate_series(1, 50000)
            """, logger: database.logger)
        _ = try await queue.submit(contentsOf: (0..<50_000).map { _ in SquareJob(value: 1) },
                                   options: JobOptions(notBefore: Date(timeIntervalSinceNow: 86_400)))
        let due = try await queue.submit(SquareJob(value: 2))
        _ = try await database.client.query("ANALYZE forkpool_jobs", logger: database.logger)

        let claim = try await plan(of: QueueSQL.claim(queue: name, owner: "plan", count: 10, lease: .seconds(60)), in: database)
        #expect(claim.indexes == ["forkpool_jobs_ready", "forkpool_jobs_pkey"], "\(claim)")  // then each picked row by id
        #expect(claim.rowsRemovedByFilter == 0 && !claim.sequentialScan, "\(claim)")
        #expect(claim.rows == 1)
        #expect(try await database.row(due.id).state == "running")

        let rescue = try await plan(of: QueueSQL.rescueLapsed(queue: name, limit: 1000), in: database)
        #expect(rescue.indexes.isSubset(of: ["forkpool_jobs_leased", "forkpool_jobs_pkey"]) && rescue.rowsRemovedByFilter <= 1
                && !rescue.sequentialScan, "\(rescue)")
        let queueDue = try await plan(of: QueueSQL.queueDueJobs(queue: name, limit: 1000), in: database)
        #expect(queueDue.indexes.isSubset(of: ["forkpool_jobs_scheduled", "forkpool_jobs_pkey"]) && queueDue.rowsRemovedByFilter == 0
                && !queueDue.sequentialScan, "\(queueDue)")
    }

    struct Plan: CustomStringConvertible {
        var indexes: Set<String> = []
        var rowsRemovedByFilter = 0
        var sequentialScan = false
        var rows = 0
        var text = ""
        var description: String { text }
    }

    /// Runs `query` under EXPLAIN (ANALYZE, FORMAT JSON): the indexes its scans of forkpool_jobs
    /// used, the rows they read and threw away, whether any scanned the table, and the rows of
    /// the top node.
    private func plan(of query: PostgresQuery, in database: TestDatabase) async throws -> Plan {
        var explained = query
        explained.sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + query.sql
        var json = ""
        for try await text in try await database.client.query(explained, logger: database.logger).decode(String.self) { json += text }
        var plan = Plan(text: json)
        guard let top = (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])?.first?["Plan"] as? [String: Any] else {
            throw ForkPoolError(.decodingFailed, "no plan: \(json)")
        }
        plan.rows = top["Actual Rows"] as? Int ?? 0
        func visit(_ node: [String: Any]) {
            if (node["Relation Name"] as? String) == "forkpool_jobs" {
                if let index = node["Index Name"] as? String { plan.indexes.insert(index) }
                if (node["Node Type"] as? String) == "Seq Scan" { plan.sequentialScan = true }
                plan.rowsRemovedByFilter += node["Rows Removed by Filter"] as? Int ?? 0
            }
            for child in node["Plans"] as? [[String: Any]] ?? [] { visit(child) }
        }
        visit(top)
        return plan
    }
}
