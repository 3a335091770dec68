// PoolAccounting: what a process pool counts and tells — its stats (`PoolStats`), its metrics
// (`PoolMetrics`) and its log events — in one place.
//
//   dispatcher thread: a worker spawned / ready / gone, a task handed out, a task's outcome
//   caller's thread (a task read by lane): that task's outcome
//        ─▶ recordOutcome ─▶ stats (under this type's lock) + metrics ─▶ then the future completes
//   `pool.stats` ─▶ snapshot (never holds up `submit`: a lock of its own)
//
// A task is counted once (not at all if it was cancelled), before its future completes, so a
// caller woken by the future finds it counted. Log events are all `debug`, with `forkpool.*`
// metadata keys.
import CoreMetrics
import Glibc
import Logging
import Synchronization

final class PoolAccounting: @unchecked Sendable {
    let logger: Logger
    /// Which way tasks went (tests watch these).
    let paths = TaskPaths()
    private let metrics: PoolMetrics
    private let lock = ConditionLock()
    private var statistics: PoolStats
    /// Which worker slots have had a worker: the next one in such a slot is a restart.
    /// Dispatcher thread only.
    private var slotsFilled: [Bool]

    /// Made at pool creation, so a logging or metrics bootstrap done before then is honoured.
    init(configuration: ProcessPoolConfiguration, workerCount: Int) {
        logger = configuration.logger ?? Logger(label: "ForkPool")
        metrics = PoolMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory, pool: "process",
                              dimensions: configuration.metricsDimensions)
        statistics = PoolStats(workerCount: workerCount)
        slotsFilled = Array(repeating: false, count: workerCount)
    }

    /// The counts now (the caller adds the queue's length).
    var snapshot: PoolStats { lock.withLock { statistics } }

    /// Counts how `task` ended (`failure` nil for success) in the stats and metrics — once per
    /// task, and not at all if it was cancelled — with the time it ran on the worker in `slot`
    /// (nil: it ended off any worker, in the queue or waiting for a retry). Called before the
    /// task's future is completed, so a caller woken by it finds it counted.
    func recordOutcome(of task: PendingTask, failure: ForkPoolError.Code?, slot: Int?) {
        let ranFor = takeOffWorker(task)
        let counts = !task.isSettled && failure != .cancelled
        task.isSettled = true
        guard counts || ranFor != nil else { return }
        lock.withLock {
            if let slot, let ranFor { statistics.workers[slot].busyTime += .nanoseconds(Int64(clamping: ranFor)) }
            guard counts else { return }
            statistics.tasksCompleted += 1
            if failure != nil { statistics.tasksFailed += 1 }
            if let slot {
                statistics.workers[slot].tasksCompleted += 1
                if failure != nil { statistics.workers[slot].tasksFailed += 1 }
            }
        }
        if counts { metrics.taskEnded(failure: failure, runNanoseconds: ranFor) }
    }

    /// The task lost its worker in `slot` and will run again (a retry): only the slot's busy
    /// time grows.
    func recordAttemptEnded(of task: PendingTask, slot: Int) {
        guard let ranFor = takeOffWorker(task) else { return }
        lock.withLock { statistics.workers[slot].busyTime += .nanoseconds(Int64(clamping: ranFor)) }
    }

    /// Nanoseconds since the task was handed to its worker, and it is no longer on one; nil if
    /// it was not (already taken off: a stopped task whose worker's exit comes later).
    private func takeOffWorker(_ task: PendingTask) -> UInt64? {
        guard let start = task.handedOutAt else { return nil }
        task.handedOutAt = nil
        let now = monotonicNanoseconds()
        return now > start ? now - start : 0
    }

    /// A task waited `queuedNanoseconds` before it went to a worker.
    func recordHandedOut(queuedNanoseconds: UInt64) {
        metrics.taskHandedOut(queuedNanoseconds: queuedNanoseconds)
    }

    /// A new worker process fills `slot`: a restart if the slot had a worker before.
    func recordSpawned(_ pid: pid_t, slot: Int) {
        logger.debug("worker spawned", metadata: ["forkpool.pid": "\(pid)", "forkpool.worker": "\(slot)"])
        guard slotsFilled[slot] else {
            slotsFilled[slot] = true
            return
        }
        lock.withLock {
            statistics.workers[slot].restarts += 1
        }
        metrics.workerRestarted()
    }

    /// The worker in `slot` is ready: the stats show its pid.
    func recordReady(_ pid: pid_t, slot: Int) {
        lock.withLock { statistics.workers[slot].processID = pid }
    }

    /// The worker `pid` left `slot` (nil: every worker is gone).
    func recordGone(_ pid: pid_t? = nil, slot: Int? = nil) {
        lock.withLock {
            if let slot, let pid {
                if statistics.workers[slot].processID == pid { statistics.workers[slot].processID = nil }
            } else {
                for slot in statistics.workers.indices { statistics.workers[slot].processID = nil }
            }
        }
    }

    /// Which way tasks went, beyond the stats: by lane or sent behind a running task.
    final class TaskPaths: Sendable {
        /// Tasks sent by lane, and callers reading a lane now.
        let laneSends = Atomic<Int>(0)
        let laneReaders = Atomic<Int>(0)
        /// Tasks sent behind a running one, and such tasks run elsewhere after their worker died.
        let pipelinedSends = Atomic<Int>(0)
        let pipelinedReruns = Atomic<Int>(0)
        /// Turns of the dispatcher's loop (each wake-up), and threads that blocked in `get()`
        /// on a queued task (which a lane may then be handed to).
        let dispatcherTurns = Atomic<Int>(0)
        let blockedReaders = Atomic<Int>(0)
        /// Tasks a caller sent from its lane for another caller (serving the queue).
        let servedByLane = Atomic<Int>(0)
    }

    /// "worker crashed": it died of a signal nobody sent on the pool's behalf. "worker exited":
    /// any other end, with the reason — recycled, shutdown, killed by the pool (timed out,
    /// cancelled, a bad frame: the error code), failed to start, or unexpected (the work or the
    /// initializer called exit).
    func logExit(of worker: WorkerProcess, status: WaitStatus, runningTask: PendingTask?) {
        var metadata: Logger.Metadata = ["forkpool.pid": "\(worker.pid)", "forkpool.worker": "\(worker.slot)"]
        switch status {
        case .signaled(let signal): metadata["forkpool.signal"] = "\(signal)"
        case .exited(let code): metadata["forkpool.exit_status"] = "\(code)"
        }
        if let task = runningTask { metadata["forkpool.task_id"] = "\(task.id)" }
        if let startError = worker.startError { metadata["forkpool.error"] = "\(startError)" }
        if worker.dismissed {
            metadata["forkpool.reason"] = worker.isRetiring ? "recycled" : "shutdown"
        } else if let fault = worker.fault {
            metadata["forkpool.reason"] = "\(fault.code.name)"
        } else if case .signaled = status {
            logger.debug("worker crashed", metadata: metadata)
            return
        } else {
            metadata["forkpool.reason"] = worker.isReady ? "unexpected" : "failed to start"
        }
        logger.debug("worker exited", metadata: metadata)
    }
}
