// CrashPolicy: what happens when a worker dies — to the task it ran (the public policy and its
// decision), and to the pool when workers keep failing to start (the back-off and its limit);
// beside them, when a healthy worker is recycled after a number of tasks.
//
//   worker died running a task ─▶ CrashPolicy.decide ─▶ fail it | run it again | fail it and break the pool
//   worker died before `ready`  ─▶ StartFailures.count ─▶ wait 10 ms, 20 ms … 1 s | break the pool at the limit
//   a task answered ─▶ Recycling.count ─▶ at its limit: the worker retires

/// What a ``ProcessPool`` does with the task of a worker that died while running it.
public enum CrashPolicy: Sendable, Equatable {
    /// Fail that task with ``ForkPoolError/Code/workerDied``; replace the worker. The default.
    case failTask
    /// Run the task again on a fresh worker, up to `times` more times, then fail it.
    case retry(times: Int)
    /// Fail that task and break the pool: queued tasks fail and `submit` throws
    /// ``ForkPoolError/Code/poolBroken`` (Python's `BrokenProcessPool` behaviour).
    case breakPool
}

extension CrashPolicy {
    /// What becomes of a task whose worker died with `error`.
    enum Decision {
        /// Fail the task with this error.
        case fail(ForkPoolError)
        /// Run it again on a fresh worker (its retry count is already raised).
        case retry
        /// Fail the task with `task`, then break the pool with `pool`.
        case breakPool(task: ForkPoolError, pool: ForkPoolError)
    }

    func decide(for task: PendingTask, error: ForkPoolError) -> Decision {
        switch self {
        case .failTask:
            return .fail(error)
        case .retry(let times) where task.reruns.retries < times:
            task.reruns.retries += 1
            return .retry
        case .retry(let times):
            return .fail(ForkPoolError(error.code, "\(error.message) (after \(times) retries)", taskID: task.id,
                                       processID: error.processID, signal: error.signal, exitStatus: error.exitStatus))
        case .breakPool:
            return .breakPool(task: error, pool: ForkPoolError(.poolBroken, "the pool is broken: \(error.message)",
                                                               processID: error.processID, signal: error.signal,
                                                               exitStatus: error.exitStatus))
        }
    }
}

/// Workers that failed to start in a row (an initializer that throws, a worker that dies
/// before `ready`, a fork that fails): the pool waits longer after each, and gives up — breaks
/// — at the limit rather than respawning forever.
struct StartFailures {
    let limit: Int
    private(set) var inARow = 0
    /// No worker is requested before this (monotonic ns).
    private(set) var nextSpawnTime: UInt64 = 0

    init(limit: Int) {
        self.limit = limit
    }

    /// A worker started: the count begins again.
    mutating func reset() { inARow = 0 }

    /// Counts a failed start; returns the error to break the pool with at the limit, else nil
    /// (and the next spawn waits 10 ms, 20 ms, 40 ms … at most 1 s).
    mutating func count(_ error: ForkPoolError, now: UInt64) -> ForkPoolError? {
        inARow += 1
        guard inARow < limit else {
            return ForkPoolError(.poolBroken, "workers failed to start \(inARow) times in a row; the last: \(error.message)",
                                 errno: error.errno)
        }
        nextSpawnTime = now + min(UInt64(10_000_000) << UInt64(min(inARow - 1, 7)), 1_000_000_000)
        return nil
    }
}

/// A worker's recycling by task count (`maximumTasksPerWorker`): the tasks it completed and how
/// many it may complete (the pool's limit plus up to a tenth more, so that workers started
/// together do not all leave together).
struct Recycling {
    private(set) var tasksDone = 0
    let taskLimit: Int

    init(taskLimit: Int) {
        self.taskLimit = taskLimit
    }

    /// The limit for a new worker: `limit` plus a random part of a tenth of it; no limit: `.max`.
    static func taskLimit(_ limit: Int?, using random: inout some RandomNumberGenerator) -> Int {
        guard let limit else { return .max }
        let (jittered, overflow) = limit.addingReportingOverflow(Int.random(in: 0...(limit / 10), using: &random))
        return overflow ? .max : jittered
    }

    /// Whether the worker has done all the tasks it may.
    var isDue: Bool { tasksDone >= taskLimit }

    /// Counts a completed task.
    mutating func count() { tasksDone += 1 }
}

extension CrashPolicy {
    /// Under a retry policy a task's frame must survive its first send.
    var keepsSentFrames: Bool {
        if case .retry = self { true } else { false }
    }
}
