// JobLeaseSQL: the worker host's statements on forkpool_jobs — claim, renew, settle. Every
// claim draws a fresh token (`lease_token`, from a sequence), and every write after it names
// the claim by (id, token): a host whose lease lapsed and was claimed again matches no row,
// and its late result is dropped. That is what makes a result recorded exactly once.
//
//   claim:  queued and due, or running with a lapsed lease and attempts left
//           ─ FOR UPDATE SKIP LOCKED ─▶ running, attempts + 1, lease_owner, lease_token, lease_expires
//           (a job whose cancellation was requested is claimed too: the host records it cancelled)
//   reap:   running with a lapsed lease and no attempts left ─▶ failed (workerDied)
//   renew:  lease_expires := now() + lease, for the claims still ours; tells of cancel requests
//   settle: succeeded (recordResults, many at once: ResultWriter's batches too) / failed /
//           cancelled (finish), each with NOTIFY forkpool_done; queued again for a retry, or
//           released (a claim given back uncounted)
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

/// A job this host claimed: its row, the claim's token and how many claims it has had.
struct JobClaim: Sendable {
    let id: Int64
    let jobName: String
    let payload: [UInt8]
    /// The claim's `lease_token`: every later write matches it.
    let token: Int64
    /// Claims so far, this one included.
    let attempt: Int32
    let maximumAttempts: Int32
    /// Cancelled (while it ran on another host, or before a retry): record it, do not run it.
    let cancelRequested: Bool
}

/// How a claimed job ends, as the host writes it.
enum Settlement: Sendable {
    case succeeded([UInt8])
    case failed(ForkPoolError)
    case retry(ForkPoolError, after: Duration)
    case cancelled
    case released
}

enum JobLeaseSQL {
    static func claim(queue: String, owner: String, count: Int, lease: Duration, client: PostgresClient,
                      logger: Logger) async throws -> [JobClaim] {
        let rows = try await client.query("""
            WITH picked AS (
                SELECT id FROM forkpool_jobs
                WHERE queue = \(queue)
                  AND ((state = 'queued' AND not_before <= now())
                       OR (state = 'running' AND lease_expires < now() AND attempts < max_attempts))
                ORDER BY id
                LIMIT \(Int64(count))
                FOR UPDATE SKIP LOCKED
            )
            UPDATE forkpool_jobs AS job
            SET state = 'running', attempts = job.attempts + 1, lease_owner = \(owner),
                lease_token = nextval('forkpool_lease_tokens'), lease_expires = now() + make_interval(secs => \(lease / .seconds(1)))
            FROM picked WHERE job.id = picked.id
            RETURNING job.id, job.job_name, job.payload, job.lease_token, job.attempts, job.max_attempts, job.cancel_requested
            """, logger: logger)
        var claims: [JobClaim] = []
        for try await (id, name, payload, token, attempt, maximum, cancelRequested)
            in rows.decode((Int64, String, ByteBuffer, Int64, Int32, Int32, Bool).self) {
            claims.append(JobClaim(id: id, jobName: name, payload: Array(payload.readableBytesView), token: token, attempt: attempt,
                                   maximumAttempts: maximum, cancelRequested: cancelRequested))
        }
        return claims.sorted { $0.id < $1.id }
    }

    /// Fails the jobs whose host stopped renewing their lease on their last attempt.
    static func reapLapsed(queue: String, client: PostgresClient, logger: Logger) async throws {
        let rows = try await client.query("""
            WITH lapsed AS (
                UPDATE forkpool_jobs
                SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END,
                    error_code = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'workerDied' END,
                    finished_at = now(), lease_owner = NULL, lease_expires = NULL,
                    error_message = CASE WHEN cancel_requested THEN 'cancelled while it ran (its host stopped renewing its lease)'
                                    ELSE 'its host stopped renewing its lease on attempt ' || attempts || ' of ' || max_attempts
                                         || coalesce(' (last error: ' || error_message || ')', '') END
                WHERE queue = \(queue) AND state = 'running' AND lease_expires < now() AND attempts >= max_attempts
                RETURNING id
            )
            SELECT lapsed.id FROM lapsed, LATERAL pg_notify('forkpool_done', lapsed.id::text) AS notified
            """, logger: logger)
        for try await _ in rows.decode(Int64.self) {}
    }

    /// Extends the leases of `claims`; returns, for each claim still held (by token), whether
    /// its cancellation was requested. A claim missing from the answer is lost.
    static func renew(_ claims: [(id: Int64, token: Int64)], lease: Duration, client: PostgresClient,
                      logger: Logger) async throws -> [Int64: Bool] {
        let ids = claims.map(\.id)
        let tokens = claims.map(\.token)
        let rows = try await client.query("""
            UPDATE forkpool_jobs AS job SET lease_expires = now() + make_interval(secs => \(lease / .seconds(1)))
            FROM unnest(\(ids)::bigint[], \(tokens)::bigint[]) AS held(id, token)
            WHERE job.id = held.id AND job.lease_token = held.token AND job.state = 'running'
            RETURNING job.lease_token, job.cancel_requested
            """, logger: logger)
        var held: [Int64: Bool] = [:]
        for try await (token, cancelRequested) in rows.decode((Int64, Bool).self) { held[token] = cancelRequested }
        return held
    }

    /// Writes how `claim` ended; false when the claim was no longer this host's (nothing
    /// written).
    static func settle(_ claim: JobClaim, as settlement: Settlement, client: PostgresClient, logger: Logger) async throws -> Bool {
        let id = claim.id, token = claim.token
        let query: PostgresQuery
        switch settlement {
        case .succeeded(let output):
            return try await recordResults([(claim, output)], client: client, logger: logger).contains(id)
        case .failed(let error):
            return try await finish(claim, state: "failed", code: error.code.name, message: storable(error.message),
                                    client: client, logger: logger)
        case .cancelled:
            return try await finish(claim, state: "cancelled", code: "cancelled", message: "cancelled while it ran",
                                    client: client, logger: logger)
        case .retry(let error, let delay):
            query = """
                UPDATE forkpool_jobs SET state = 'queued', error_code = \(error.code.name),
                       error_message = \(storable(error.message)), lease_owner = NULL, lease_expires = NULL,
                       not_before = now() + make_interval(secs => \(delay / .seconds(1)))
                WHERE id = \(id) AND lease_token = \(token) AND state = 'running'
                RETURNING id
                """
        case .released:
            query = """
                UPDATE forkpool_jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_expires = NULL
                WHERE id = \(id) AND lease_token = \(token) AND state = 'running'
                RETURNING id
                """
        }
        var written = false
        for try await _ in try await client.query(query, logger: logger).decode(Int64.self) { written = true }
        return written
    }
}

extension JobLeaseSQL {
    /// Records the outcome of a job that failed or was cancelled (final), and notifies.
    private static func finish(_ claim: JobClaim, state: String, code: String, message: String, client: PostgresClient,
                               logger: Logger) async throws -> Bool {
        let rows = try await client.query("""
            WITH done AS (
                UPDATE forkpool_jobs SET state = \(state), error_code = \(code), error_message = \(message), finished_at = now(),
                       lease_owner = NULL, lease_expires = NULL
                WHERE id = \(claim.id) AND lease_token = \(claim.token) AND state = 'running' RETURNING id
            )
            SELECT done.id FROM done, LATERAL pg_notify('forkpool_done', done.id::text) AS notified
            """, logger: logger)
        var written = false
        for try await _ in rows.decode(Int64.self) { written = true }
        return written
    }

    /// Records the outputs of jobs that succeeded, in one statement, and notifies; returns the
    /// ids written (a claim no longer this host's is not among them).
    static func recordResults(_ results: [(claim: JobClaim, output: [UInt8])], client: PostgresClient,
                              logger: Logger) async throws -> Set<Int64> {
        let ids = results.map(\.claim.id)
        let tokens = results.map(\.claim.token)
        let outputs = results.map { ByteBuffer(bytes: $0.output) }
        let rows = try await client.query("""
            WITH done AS (
                UPDATE forkpool_jobs AS job
                SET state = 'succeeded', result = given.result, error_code = NULL, error_message = NULL, finished_at = now(),
                    lease_owner = NULL, lease_expires = NULL
                FROM unnest(\(ids)::bigint[], \(tokens)::bigint[], \(outputs)::bytea[]) AS given(id, token, result)
                WHERE job.id = given.id AND job.lease_token = given.token AND job.state = 'running'
                RETURNING job.id
            )
            SELECT done.id FROM done, LATERAL pg_notify('forkpool_done', done.id::text) AS notified
            """, logger: logger)
        var written: Set<Int64> = []
        for try await id in rows.decode(Int64.self) { written.insert(id) }
        return written
    }
}

/// `text` as PostgreSQL's `text` takes it: no NUL character (which it refuses), at most 64 KiB.
func storable(_ text: String) -> String {
    var cleaned = text
    if text.unicodeScalars.contains("\0") {
        cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\0" ? "\u{FFFD}" : $0 }))
    }
    if cleaned.utf8.count > 65536 { cleaned = String(decoding: cleaned.utf8.prefix(65536), as: UTF8.self) + "…" }
    return cleaned
}
