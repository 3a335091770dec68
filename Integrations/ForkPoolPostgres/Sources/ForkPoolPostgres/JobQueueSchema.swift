// JobQueueSchema: the tables a PostgresJobQueue keeps, created and migrated by the package —
// an ordered list of versioned migrations, applied once each, in one transaction, under an
// advisory lock so that hosts starting at once do not race.
//
//   migrate() ─ BEGIN ─ pg_advisory_xact_lock ─ forkpool_schema exists? ─ version v ─▶
//               every migration after v, in order ─ INSERT its version ─ COMMIT
//
// Version 1: forkpool_schema(version, applied_at); forkpool_jobs(id, queue, job_name, payload,
//   state text, attempts, max_attempts, not_before, lease_owner, lease_token, lease_expires,
//   cancel_requested, result, error_code, error_message, created_at, finished_at);
//   forkpool_lease_tokens, the sequence every claim draws its token from.
// Version 2 upgrades a version-1 database in place, its jobs kept, in flight or not:
//   state becomes the enum type forkpool_job_state (JobState, with 'scheduled' for jobs set for
//   later); + priority, unique_key; indexes, one per statement that reads them: ready (queue,
//   priority DESC, id) WHERE queued — the claim's; scheduled (queue, not_before) WHERE
//   scheduled — the rescuer's, to queue the due ones; leased (queue, lease_expires) WHERE running — the rescuer's; finished
//   (queue, finished_at) WHERE final — retention's; unique (queue, unique_key) WHERE queued or
//   running — unique jobs'; forkpool_hosts (the hosts alive), forkpool_schedules (periodic
//   jobs' next ticks). Every column is documented in docs/POSTGRES.md of the repository root.
@_spi(Integration) import ForkPool
import PostgresNIO

enum JobQueueSchema {
    /// The schema version this library writes and reads.
    static var currentVersion: Int32 { Int32(migrations.count) }

    /// Migration `i` takes the schema from version `i` to `i + 1`.
    static let migrations: [[PostgresQuery]] = [
        [
            """
            CREATE TABLE forkpool_jobs (
                id               bigserial   PRIMARY KEY,
                queue            text        NOT NULL,
                job_name         text        NOT NULL,
                payload          bytea       NOT NULL,
                state            text        NOT NULL DEFAULT 'queued'
                                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
                attempts         integer     NOT NULL DEFAULT 0,
                max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
                not_before       timestamptz NOT NULL DEFAULT now(),
                lease_owner      text,
                lease_token      bigint,
                lease_expires    timestamptz,
                cancel_requested boolean     NOT NULL DEFAULT false,
                result           bytea,
                error_code       text,
                error_message    text,
                created_at       timestamptz NOT NULL DEFAULT now(),
                finished_at      timestamptz
            )
            """,
            "CREATE SEQUENCE forkpool_lease_tokens",
            "CREATE INDEX forkpool_jobs_ready ON forkpool_jobs (queue, id) WHERE state = 'queued'",
            "CREATE INDEX forkpool_jobs_leased ON forkpool_jobs (queue, lease_expires) WHERE state = 'running'",
        ],
        [
            "CREATE TYPE forkpool_job_state AS ENUM ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled')",
            "DROP INDEX forkpool_jobs_ready",
            "DROP INDEX forkpool_jobs_leased",
            "ALTER TABLE forkpool_jobs DROP CONSTRAINT forkpool_jobs_state_check",
            """
            ALTER TABLE forkpool_jobs
                ALTER COLUMN state DROP DEFAULT,
                ALTER COLUMN state TYPE forkpool_job_state USING state::forkpool_job_state,
                ALTER COLUMN state SET DEFAULT 'queued',
                ADD COLUMN priority smallint NOT NULL DEFAULT 0,
                ADD COLUMN unique_key text
            """,
            "CREATE INDEX forkpool_jobs_ready ON forkpool_jobs (queue, priority DESC, id) WHERE state = 'queued'",
            "CREATE INDEX forkpool_jobs_scheduled ON forkpool_jobs (queue, not_before) WHERE state = 'scheduled'",
            "CREATE INDEX forkpool_jobs_leased ON forkpool_jobs (queue, lease_expires) WHERE state = 'running'",
            "CREATE INDEX forkpool_jobs_finished ON forkpool_jobs (queue, finished_at) WHERE state IN ('succeeded', 'failed', 'cancelled')",
            """
            CREATE UNIQUE INDEX forkpool_jobs_unique ON forkpool_jobs (queue, unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running')
            """,
            """
            CREATE TABLE forkpool_hosts (
                owner      text        PRIMARY KEY,
                queue      text        NOT NULL,
                lease_ms   bigint      NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now(),
                last_seen  timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE forkpool_schedules (
                queue      text        NOT NULL,
                name       text        NOT NULL,
                schedule   text        NOT NULL,
                next_tick  timestamptz NOT NULL,
                last_tick  timestamptz,
                PRIMARY KEY (queue, name)
            )
            """,
        ],
    ]

    /// Brings the database's schema to `target` (default ``currentVersion``); does nothing when
    /// it is there or past it.
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` when the database was migrated by a
    ///   newer version of this library; the database's own errors as they come.
    static func migrate(_ client: PostgresClient, to target: Int32 = currentVersion, logger: Logger) async throws {
        do {
            try await migrateInTransaction(client, to: target, logger: logger)
        } catch let failed as PostgresTransactionError {
            // The migration's own refusal, rolled back: give it as it is.
            if let refusal = failed.closureError as? ForkPoolError, failed.rollbackError == nil { throw refusal }
            throw failed
        }
    }

    private static func migrateInTransaction(_ client: PostgresClient, to target: Int32, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            _ = try await connection.query("SELECT pg_advisory_xact_lock(7301996155)", logger: logger)
            _ = try await connection.query(
                "CREATE TABLE IF NOT EXISTS forkpool_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var version: Int32 = 0
            for try await row in try await connection.query("SELECT coalesce(max(version), 0) FROM forkpool_schema", logger: logger)
                .decode(Int32.self) {
                version = row
            }
            guard version <= currentVersion else {
                throw ForkPoolError(.invalidArgument, "the database's forkpool schema is at version \(version), newer than this "
                                    + "library's \(currentVersion): upgrade ForkPoolPostgres")
            }
            for step in Int(version)..<Int(max(version, min(target, currentVersion))) {
                for statement in migrations[step] { _ = try await connection.query(statement, logger: logger) }
                let next = Int32(step + 1)
                _ = try await connection.query("INSERT INTO forkpool_schema (version) VALUES (\(next))", logger: logger)
                logger.info("forkpool schema migrated", metadata: ["version": "\(next)"])
            }
        }
    }
}
