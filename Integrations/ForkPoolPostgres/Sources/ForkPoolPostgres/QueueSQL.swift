// QueueSQL: every statement the queue runs on forkpool_jobs and its side tables, by name, in
// one place — each one round trip, each read through the one index made for it (see
// JobQueueSchema). Callers: PostgresJobQueue (submit, cancel, look up, operate) and a worker
// host's duties (claim, renew, record, rescue, expire, schedule).
//
// A statement that picks rows and then changes them writes `id = ANY(ARRAY(SELECT id FROM
// picked))`, and one given ids names them `id = ANY(ids)` beside its join: one primary-key
// look-up per row, never a scan of every running job (or of the table) for a hash join.
//
// Claims are named by (id, lease token): every claim draws a fresh token, and every write after
// it matches that token and state 'running'. A host whose lease lapsed matches no row, so a
// result is recorded exactly once; the rescuer, a cancel of a queued job and an operator's retry
// clear the token, so a row still carrying a host's token in a final state was written by that
// host (how `recordOutcomes` recognises a write of its own whose answer never came).
import Foundation
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

/// A job a host claimed: its row, the claim's token and how many claims it has had.
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
    /// Given back unfinished (shutdown, lost hand-off): queued again, the attempt not counted.
    case released

    /// The `kind` the record statement takes.
    var kind: String {
        switch self {
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .retry: "retry"
        case .cancelled: "cancelled"
        case .released: "released"
        }
    }
}

/// What became of one outcome a host wrote.
enum RecordedOutcome: Sendable, Equatable {
    /// Written now.
    case written
    /// Written by an earlier call of this host whose answer never came (it timed out).
    case writtenEarlier
    /// Not written: the claim is no longer this host's.
    case lost
}

enum QueueSQL {
    // MARK: Submitting

    static func submit(queue: String, jobName: String, payloads: [ByteBuffer], attempts: Int32, priority: Int32,
                       notBefore: Date?, delaySeconds: Double) -> PostgresQuery {
        """
        WITH added AS (
            INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts, priority, not_before, state)
            SELECT \(queue), \(jobName), payload, \(attempts), \(priority), due.at,
                   (CASE WHEN due.at > now() THEN 'scheduled' ELSE 'queued' END)::forkpool_job_state
            FROM unnest(\(payloads)::bytea[]) WITH ORDINALITY AS given(payload, position),
                 (SELECT coalesce(\(notBefore)::timestamptz, now() + make_interval(secs => \(delaySeconds))) AS at) AS due
            ORDER BY position
            RETURNING id
        ), notified AS (
            SELECT pg_notify('forkpool_ready', \(queue)) WHERE EXISTS (SELECT 1 FROM added)
        )
        SELECT id FROM added UNION ALL SELECT -1 FROM notified
        """
    }

    /// Inserts the job unless a scheduled, queued or running job of the queue holds `key`; the
    /// new id or none.
    static func submitUnique(queue: String, jobName: String, payload: ByteBuffer, attempts: Int32, priority: Int32,
                             notBefore: Date?, delaySeconds: Double, key: String) -> PostgresQuery {
        """
        WITH added AS (
            INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts, priority, not_before, state, unique_key)
            SELECT \(queue), \(jobName), \(payload), \(attempts), \(priority), due.at,
                   (CASE WHEN due.at > now() THEN 'scheduled' ELSE 'queued' END)::forkpool_job_state, \(key)
            FROM (SELECT coalesce(\(notBefore)::timestamptz, now() + make_interval(secs => \(delaySeconds))) AS at) AS due
            ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running') DO NOTHING
            RETURNING id
        ), notified AS (
            SELECT pg_notify('forkpool_ready', \(queue)) WHERE EXISTS (SELECT 1 FROM added)
        )
        SELECT id FROM added UNION ALL SELECT -1 FROM notified
        """
    }

    /// The scheduled, queued or running job holding unique `key`: (id, job name).
    static func holderOfUniqueKey(queue: String, key: String) -> PostgresQuery {
        """
        SELECT id, job_name FROM forkpool_jobs
        WHERE queue = \(queue) AND unique_key = \(key) AND state IN ('scheduled', 'queued', 'running')
        """
    }

    /// Cancels a scheduled or queued job (state 'cancelled') or marks a running one; the state
    /// after it.
    static func cancel(id: Int64) -> PostgresQuery {
        """
        UPDATE forkpool_jobs SET
            cancel_requested = true,
            lease_token = CASE WHEN state <> 'running' THEN NULL ELSE lease_token END,
            error_code = CASE WHEN state <> 'running' THEN 'cancelled' ELSE error_code END,
            error_message = CASE WHEN state <> 'running' THEN 'cancelled before it ran' ELSE error_message END,
            finished_at = CASE WHEN state <> 'running' THEN now() ELSE finished_at END,
            state = CASE WHEN state <> 'running' THEN 'cancelled'::forkpool_job_state ELSE state END
        WHERE id = \(id) AND state IN ('scheduled', 'queued', 'running')
        RETURNING state::text
        """
    }

    static func notifyDone(ids: String) -> PostgresQuery {
        "SELECT pg_notify('forkpool_done', \(ids))"
    }

    /// (id, state, result when succeeded, error code, error message) of each of `ids` that exists.
    static func lookUp(ids: [Int64]) -> PostgresQuery {
        """
        SELECT id, state::text, CASE WHEN state = 'succeeded' THEN result END, error_code, error_message
        FROM forkpool_jobs WHERE id = ANY(\(ids))
        """
    }

    // MARK: A worker host

    /// Claims up to `count` queued jobs, highest priority first, then oldest (a job set for later
    /// is 'scheduled' until its time: none is passed over here).
    static func claim(queue: String, owner: String, count: Int, lease: Duration) -> PostgresQuery {
        """
        WITH picked AS (
            SELECT id FROM forkpool_jobs
            WHERE queue = \(queue) AND state = 'queued'
            ORDER BY priority DESC, id
            LIMIT \(Int64(count))
            FOR UPDATE SKIP LOCKED
        )
        UPDATE forkpool_jobs AS job
        SET state = 'running', attempts = job.attempts + 1, lease_owner = \(owner),
            lease_token = nextval('forkpool_lease_tokens'), lease_expires = now() + make_interval(secs => \(lease.seconds))
        WHERE job.id = ANY(ARRAY(SELECT id FROM picked))
        RETURNING job.id, job.job_name, job.payload, job.lease_token, job.attempts, job.max_attempts, job.cancel_requested,
                  job.priority
        """
    }

    /// Extends the leases of the claims still held (by token) and says which were asked to
    /// cancel; records the host as alive.
    static func renew(ids: [Int64], tokens: [Int64], lease: Duration, owner: String, queue: String) -> PostgresQuery {
        """
        WITH renewed AS (
            UPDATE forkpool_jobs AS job SET lease_expires = now() + make_interval(secs => \(lease.seconds))
            FROM unnest(\(ids)::bigint[], \(tokens)::bigint[]) AS held(id, token)
            WHERE job.id = ANY(\(ids)::bigint[]) AND job.id = held.id AND job.lease_token = held.token AND job.state = 'running'
            RETURNING job.lease_token, job.cancel_requested
        ), seen AS (
            INSERT INTO forkpool_hosts (owner, queue, lease_ms) VALUES (\(owner), \(queue), \(Int64(lease.seconds * 1000)))
            ON CONFLICT (owner) DO UPDATE SET last_seen = now(), queue = excluded.queue, lease_ms = excluded.lease_ms
        )
        SELECT lease_token, cancel_requested FROM renewed
        """
    }

    static func hostStopped(owner: String) -> PostgresQuery {
        "DELETE FROM forkpool_hosts WHERE owner = \(owner)"
    }

    /// Writes outcomes of claims (only where the claim still holds: id, token, running) and
    /// notifies the finished ones' waiters, a few hundred ids per notification; answers the
    /// token of each claim written now with true, of each this host had written before with
    /// false (claims no longer held are absent), plus one row of -1 per notification.
    ///
    /// "Written before" reads the rows with a lock (FOR SHARE), not from the statement's
    /// snapshot: when the earlier call is still waiting for the row as this one starts (a row
    /// lock, a slow server) and commits while this one waits behind it, the UPDATE skips the
    /// row (no longer running) and a plain read would still see it running — the host would
    /// take its own write for a lost claim and drop the outcome.
    static func recordOutcomes(_ outcomes: [(claim: JobClaim, settlement: Settlement)], queue: String) -> PostgresQuery {
        var ids: [Int64] = [], tokens: [Int64] = [], kinds: [String] = [], results: [ByteBuffer] = []
        var codes: [String] = [], messages: [String] = [], delays: [Double] = []
        for (claim, settlement) in outcomes {
            ids.append(claim.id)
            tokens.append(claim.token)
            kinds.append(settlement.kind)
            var result = ByteBuffer(), code = "", message = "", delay = 0.0
            switch settlement {
            case .succeeded(let output): result = ByteBuffer(bytes: output)
            case .failed(let error): (code, message) = (error.code.name, storable(error.message))
            case .retry(let error, let after): (code, message, delay) = (error.code.name, storable(error.message), after.seconds)
            case .cancelled: (code, message) = ("cancelled", "cancelled while it ran")
            case .released: break
            }
            results.append(result)
            codes.append(code)
            messages.append(message)
            delays.append(delay)
        }
        return """
            WITH given AS (
                SELECT * FROM unnest(\(ids)::bigint[], \(tokens)::bigint[], \(kinds)::text[], \(results)::bytea[],
                                     \(codes)::text[], \(messages)::text[], \(delays)::float8[])
                    AS g(id, token, kind, result, code, message, delay)
            ), done AS (
                UPDATE forkpool_jobs AS job SET
                    state = (CASE WHEN g.kind = 'retry' AND g.delay > 0 THEN 'scheduled'
                                  WHEN g.kind IN ('retry', 'released') THEN 'queued' ELSE g.kind END)::forkpool_job_state,
                    result = CASE WHEN g.kind = 'succeeded' THEN g.result END,
                    error_code = CASE g.kind WHEN 'succeeded' THEN NULL WHEN 'released' THEN job.error_code ELSE g.code END,
                    error_message = CASE g.kind WHEN 'succeeded' THEN NULL WHEN 'released' THEN job.error_message ELSE g.message END,
                    finished_at = CASE WHEN g.kind IN ('succeeded', 'failed', 'cancelled') THEN now() END,
                    not_before = CASE WHEN g.kind = 'retry' THEN now() + make_interval(secs => g.delay) ELSE job.not_before END,
                    attempts = CASE WHEN g.kind = 'released' THEN job.attempts - 1 ELSE job.attempts END,
                    lease_owner = NULL, lease_expires = NULL
                FROM given AS g
                WHERE job.id = ANY(\(ids)::bigint[]) AND job.id = g.id AND job.lease_token = g.token AND job.state = 'running'
                RETURNING job.id, job.lease_token AS token, job.state
            ), held AS (
                -- Locked, so read as last committed: an earlier call's write that commits while
                -- this statement waits for the row (done then skips it) is seen here, not the
                -- row as it was when this statement began. Filtered apart (earlier): a state
                -- test in here would drop the row before it is locked and read again.
                SELECT job.id, g.token, job.state, g.kind FROM forkpool_jobs AS job
                JOIN given AS g ON job.id = g.id AND job.lease_token = g.token
                FOR SHARE OF job
            ), earlier AS (
                SELECT id, token FROM held
                WHERE state::text = CASE WHEN kind IN ('retry', 'released') THEN 'queued' ELSE kind END
                   OR (kind = 'retry' AND state = 'scheduled')
            ), notified AS (
                SELECT pg_notify('forkpool_done', string_agg(id::text, ',')) FROM (
                    SELECT id, (row_number() OVER ()) / 400 AS chunk FROM done WHERE state IN ('succeeded', 'failed', 'cancelled')
                ) AS finished GROUP BY chunk
                UNION ALL
                SELECT pg_notify('forkpool_ready', \(queue)) WHERE EXISTS (SELECT 1 FROM done WHERE state = 'queued')
            )
            SELECT token, true FROM done
            UNION ALL SELECT token, false FROM earlier
            UNION ALL SELECT -1, false FROM notified
            """
    }

    /// Takes back up to `limit` claims whose lease lapsed (their host died, stalled or lost the
    /// database): queued again while attempts are left, else failed (or cancelled, if asked);
    /// the token cleared. Answers (requeued, finished).
    static func rescueLapsed(queue: String, limit: Int) -> PostgresQuery {
        """
        WITH lapsed AS (
            SELECT id FROM forkpool_jobs
            WHERE queue = \(queue) AND state = 'running' AND lease_expires < now()
            ORDER BY lease_expires LIMIT \(Int64(limit))
            FOR UPDATE SKIP LOCKED
        ), rescued AS (
            UPDATE forkpool_jobs AS job SET
                state = (CASE WHEN job.cancel_requested THEN 'cancelled'
                              WHEN job.attempts >= job.max_attempts THEN 'failed' ELSE 'queued' END)::forkpool_job_state,
                error_code = CASE WHEN job.cancel_requested THEN 'cancelled' ELSE 'workerDied' END,
                error_message = CASE WHEN job.cancel_requested THEN 'cancelled while it ran (its host stopped renewing its lease)'
                                ELSE 'its host stopped renewing its lease on attempt ' || job.attempts || ' of ' || job.max_attempts END,
                finished_at = CASE WHEN job.cancel_requested OR job.attempts >= job.max_attempts THEN now() END,
                lease_owner = NULL, lease_expires = NULL, lease_token = NULL
            WHERE job.id = ANY(ARRAY(SELECT id FROM lapsed))
            RETURNING job.id, job.state
        ), notified AS (
            SELECT pg_notify('forkpool_done', string_agg(id::text, ',')) FROM (
                SELECT id, (row_number() OVER ()) / 400 AS chunk FROM rescued WHERE state <> 'queued'
            ) AS finished GROUP BY chunk
            UNION ALL
            SELECT pg_notify('forkpool_ready', \(queue)) WHERE EXISTS (SELECT 1 FROM rescued WHERE state = 'queued')
        )
        SELECT (SELECT count(*) FROM rescued WHERE state = 'queued'), (SELECT count(*) FROM rescued WHERE state <> 'queued'),
               (SELECT count(*) FROM notified)
        """
    }

    /// Deletes up to `limit` of the queue's finished rows that finished more than `retention` ago,
    /// oldest first; answers how many.
    static func deleteExpired(queue: String, retention: Duration, limit: Int) -> PostgresQuery {
        """
        WITH expired AS (
            SELECT id FROM forkpool_jobs
            WHERE queue = \(queue) AND state IN ('succeeded', 'failed', 'cancelled')
              AND finished_at < now() - make_interval(secs => \(retention.seconds))
            ORDER BY finished_at LIMIT \(Int64(limit))
            FOR UPDATE SKIP LOCKED
        ), deleted AS (
            DELETE FROM forkpool_jobs AS job WHERE job.id = ANY(ARRAY(SELECT id FROM expired)) RETURNING 1
        )
        SELECT count(*) FROM deleted
        """
    }

    /// Forgets the queue's hosts silent for ten leases and at least an hour (killed, not
    /// stopped: a stopped host removes itself).
    static func forgetSilentHosts(queue: String) -> PostgresQuery {
        """
        DELETE FROM forkpool_hosts
        WHERE queue = \(queue) AND last_seen < now() - greatest(lease_ms * 10, 3600000) * interval '1 millisecond'
        """
    }

    /// Queues up to `limit` of the queue's scheduled jobs whose time has come; answers how many,
    /// and the seconds until the next scheduled one's time (nil: none).
    static func queueDueJobs(queue: String, limit: Int) -> PostgresQuery {
        """
        WITH due AS (
            SELECT id FROM forkpool_jobs
            WHERE queue = \(queue) AND state = 'scheduled' AND not_before <= now()
            ORDER BY not_before LIMIT \(Int64(limit))
            FOR UPDATE SKIP LOCKED
        ), queued AS (
            UPDATE forkpool_jobs AS job SET state = 'queued' WHERE job.id = ANY(ARRAY(SELECT id FROM due)) RETURNING 1
        ), notified AS (
            SELECT pg_notify('forkpool_ready', \(queue)) WHERE EXISTS (SELECT 1 FROM queued)
        )
        SELECT (SELECT count(*) FROM queued),
               (SELECT extract(epoch FROM min(not_before) - now())::float8 FROM forkpool_jobs
                WHERE queue = \(queue) AND state = 'scheduled' AND not_before > now()),
               (SELECT count(*) FROM notified)
        """
    }

    // MARK: Periodic jobs (ticks as milliseconds since the Unix epoch: compared exactly)

    /// The database's clock, in milliseconds since the epoch.
    static var clock: PostgresQuery { "SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint" }

    /// Adds the schedule with its first tick, or resets its next tick when its spec changed.
    static func registerSchedule(queue: String, name: String, schedule: String, firstTick: Int64) -> PostgresQuery {
        """
        INSERT INTO forkpool_schedules (queue, name, schedule, next_tick)
        VALUES (\(queue), \(name), \(schedule), to_timestamp(\(firstTick) / 1000.0))
        ON CONFLICT (queue, name) DO UPDATE SET schedule = excluded.schedule, next_tick = excluded.next_tick
        WHERE forkpool_schedules.schedule <> excluded.schedule
        """
    }

    /// (name, next tick) of the queue's schedules, and the database's clock.
    static func schedules(queue: String) -> PostgresQuery {
        """
        SELECT name, (extract(epoch FROM next_tick) * 1000)::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint
        FROM forkpool_schedules WHERE queue = \(queue)
        """
    }

    /// Enqueues the job of tick `due` of a schedule and moves the schedule to `next` — only if
    /// its tick is still `due` and has come (another host did both otherwise): exactly once per
    /// tick. The new id (and -1 per notification), or nothing.
    static func fireSchedule(queue: String, name: String, due: Int64, next: Int64, jobName: String, payload: ByteBuffer,
                             attempts: Int32, priority: Int32) -> PostgresQuery {
        """
        WITH advanced AS (
            UPDATE forkpool_schedules SET next_tick = to_timestamp(\(next) / 1000.0), last_tick = next_tick
            WHERE queue = \(queue) AND name = \(name) AND (extract(epoch FROM next_tick) * 1000)::bigint = \(due)
              AND next_tick <= statement_timestamp()
            RETURNING last_tick
        ), added AS (
            INSERT INTO forkpool_jobs (queue, job_name, payload, max_attempts, priority, unique_key)
            SELECT \(queue), \(jobName), \(payload), \(attempts), \(priority),
                   'periodic:' || \(name) || ':' || to_char(last_tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            FROM advanced
            RETURNING id
        ), notified AS (
            SELECT pg_notify('forkpool_ready', \(queue)) WHERE EXISTS (SELECT 1 FROM added)
        )
        SELECT id FROM added UNION ALL SELECT -1 FROM notified
        """
    }
}

extension QueueSQL {
    // MARK: Operating (PostgresJobQueue+Operations, the PostgresJobHost command line)

    static let recordColumns = """
        id, queue, job_name, state::text, attempts, max_attempts, priority, not_before, created_at, finished_at,
        lease_owner, error_code, error_message, unique_key
        """

    static func job(id: Int64) -> PostgresQuery {
        "SELECT \(unescaped: recordColumns) FROM forkpool_jobs WHERE id = \(id)"
    }

    /// The newest `limit` jobs of `queue` (every queue: nil) in `state` (any: nil).
    static func jobs(queue: String?, state: String?, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: recordColumns) FROM forkpool_jobs
        WHERE (\(queue)::text IS NULL OR queue = \(queue)::text)
          AND (\(state)::text IS NULL OR state = \(state)::text::forkpool_job_state)
        ORDER BY id DESC LIMIT \(Int64(limit))
        """
    }

    /// (queue, state, count, seconds the oldest due queued job has waited) per queue and state.
    static func counts(queue: String?) -> PostgresQuery {
        """
        SELECT queue, state::text, count(*),
               extract(epoch FROM now() - min(not_before) FILTER (WHERE state = 'queued'))::float8
        FROM forkpool_jobs WHERE \(queue)::text IS NULL OR queue = \(queue)::text
        GROUP BY queue, state ORDER BY queue, state
        """
    }

    /// (owner, queue, started at, seconds since last seen, alive: seen within its lease).
    static func hosts(queue: String?) -> PostgresQuery {
        """
        SELECT owner, queue, started_at, extract(epoch FROM now() - last_seen)::float8,
               last_seen + lease_ms * interval '1 millisecond' > now()
        FROM forkpool_hosts WHERE \(queue)::text IS NULL OR queue = \(queue)::text
        ORDER BY queue, owner
        """
    }

    /// Queues failed or cancelled jobs again (`id`, or every failed one of `queue`): attempts
    /// from zero, errors and token cleared. A job with a unique key takes it back only when no
    /// scheduled, queued or running job holds it (of several with one free key, the newest): the others
    /// stay as they are. The ids queued.
    static func retry(id: Int64?, failedOf queue: String?) -> PostgresQuery {
        """
        WITH candidates AS (
            SELECT id, queue, unique_key FROM forkpool_jobs
            WHERE (id = \(id)::bigint AND state IN ('failed', 'cancelled'))
               OR (\(id)::bigint IS NULL AND queue = \(queue)::text AND state = 'failed')
        ), chosen AS (
            SELECT id FROM candidates WHERE unique_key IS NULL
            UNION ALL
            (SELECT DISTINCT ON (queue, unique_key) id FROM candidates AS job
             WHERE unique_key IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM forkpool_jobs AS holder
                 WHERE holder.queue = job.queue AND holder.unique_key = job.unique_key AND holder.state IN ('scheduled', 'queued', 'running'))
             ORDER BY queue, unique_key, id DESC)
        ), again AS (
            UPDATE forkpool_jobs SET state = 'queued', attempts = 0, not_before = now(), cancel_requested = false,
                   result = NULL, error_code = NULL, error_message = NULL, finished_at = NULL, lease_token = NULL,
                   lease_owner = NULL, lease_expires = NULL
            WHERE id IN (SELECT id FROM chosen) AND state IN ('failed', 'cancelled')
            RETURNING id, queue
        ), notified AS (
            SELECT pg_notify('forkpool_ready', queue) FROM (SELECT DISTINCT queue FROM again) AS queues
        )
        SELECT id FROM again UNION ALL SELECT -1 FROM notified
        """
    }

    /// Deletes up to `limit` finished jobs of `queue` (every queue: nil) that finished before
    /// `date`; how many.
    static func purge(queue: String?, finishedBefore date: Date, limit: Int) -> PostgresQuery {
        """
        WITH old AS (
            SELECT id FROM forkpool_jobs
            WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < \(date)
              AND (\(queue)::text IS NULL OR queue = \(queue)::text)
            LIMIT \(Int64(limit))
        ), deleted AS (
            DELETE FROM forkpool_jobs AS job WHERE job.id = ANY(ARRAY(SELECT id FROM old)) RETURNING 1
        )
        SELECT count(*) FROM deleted
        """
    }
}

extension Duration {
    /// The duration in seconds, as SQL's `make_interval(secs => …)` takes it.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
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
