// PoolStats: a snapshot of what a pool has done since it was created, per worker and in total.
//
// The pool keeps the counts itself (no metrics backend needed): ProcessPool's dispatcher
// updates them under a lock of their own as tasks end and workers come and go; ThreadPool's
// threads each update their own atomic counters. Reading `stats` copies them.
import Glibc

/// What a pool has done since it was created: a snapshot from ``Pool/stats``.
///
/// A task counts once, when it ends: succeeded, or failed for any reason (the work threw, its
/// worker died, it timed out, the pool broke). Tasks that were cancelled — by
/// ``Future/cancel()`` or by `shutdown(cancelPending: true)` — are not counted. A chunk of
/// `map` is one task: its worker ran it as one unit, and it fails with its first failing input.
///
/// A task that ran on a worker is counted before its future completes, so a snapshot taken
/// after ``Future/get()`` returns includes it.
public struct PoolStats: Sendable, Equatable {
    /// One entry per worker: index `i` is the `i`-th worker slot of the pool. A
    /// ``ProcessPool`` worker that is replaced (after a crash, a time-out or recycling) hands
    /// its slot to its replacement, so an entry adds up every process that held the slot.
    public internal(set) var workers: [WorkerStats]

    /// Tasks that ended, successfully or not: the sum of the workers'
    /// ``WorkerStats/tasksCompleted``, plus tasks that failed without ever reaching a worker
    /// (a deadline that passed in the queue, a broken pool).
    public internal(set) var tasksCompleted: Int

    /// How many of ``tasksCompleted`` failed.
    public internal(set) var tasksFailed: Int

    /// Tasks submitted and not yet handed to a worker (at the moment of the snapshot).
    public internal(set) var queuedTasks: Int

    /// How many times a worker process was replaced, all slots together.
    var restarts: Int { workers.reduce(0) { $0 + $1.restarts } }

    init(workerCount: Int) {
        workers = Array(repeating: WorkerStats(), count: workerCount)
        tasksCompleted = 0
        tasksFailed = 0
        queuedTasks = 0
    }
}

/// What one worker slot of a pool has done: an entry of ``PoolStats/workers``.
public struct WorkerStats: Sendable, Equatable {
    /// The pid of the worker process that holds the slot now, once it is ready; nil between a
    /// worker's death and its replacement's start, after shutdown, and always for a
    /// ``ThreadPool`` thread.
    public internal(set) var processID: pid_t?

    /// Tasks this worker slot ended, successfully or not (a `map` chunk counts as one).
    public internal(set) var tasksCompleted = 0

    /// How many of ``tasksCompleted`` failed.
    public internal(set) var tasksFailed = 0

    /// The time this slot spent running tasks: from handing a task to the worker to its
    /// reply, its death or the pool giving up on it.
    public internal(set) var busyTime = Duration.zero

    /// How many times the process in this slot was replaced: after it crashed, exited, failed
    /// to start, was killed for a time-out or a cancellation, or was recycled. Always 0 for a
    /// ``ThreadPool``.
    public internal(set) var restarts = 0

    init() {}
}
