// JobState: where a job of a PostgresJobQueue is in its life — one Swift enum, stored as the
// PostgreSQL enum type `forkpool_job_state` (schema version 2).
//
//   scheduled ─ its time comes (the rescuer) ─▶ queued ─ claim ─▶ running ─┬─ succeeded / failed / cancelled
//     ▲  (notBefore, delay, a retry's back-off)    ▲                       │   (final: kept for the retention)
//     └──────────────── retry after a back-off ────┼───────────────────────┤
//                       lapsed lease, released ────┘   retry / retryFailed (an operator) ◀─ failed / cancelled

/// Where a job is in its life.
public enum JobState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Waiting for its time (`notBefore`, `delay`, a retry's back-off): then queued. Kept apart
    /// from the queued jobs so that jobs set for later cost a claim nothing.
    case scheduled
    /// Waiting for a host to claim it.
    case queued
    /// Claimed: a host holds it under a lease and runs it.
    case running
    /// Finished with a result.
    case succeeded
    /// Finished with an error (it threw, or crashed or timed out on every attempt).
    case failed
    /// Cancelled before or while it ran.
    case cancelled

    /// Whether the job has finished (its row then waits only for the queue's retention).
    public var isFinished: Bool { self == .succeeded || self == .failed || self == .cancelled }

    /// The finished states, as SQL takes them.
    static var finishedSQL: String { "('succeeded', 'failed', 'cancelled')" }
}
