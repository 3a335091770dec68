// PoolMetrics: one pool's swift-metrics counters and timers, made when the pool is created
// with the application's factory (`MetricsSystem.factory`, a no-op until bootstrapped).
//
//   forkpool_tasks_completed  counter  outcome=success|failure   every task that ended
//   forkpool_task_failures    counter  code=<ForkPoolError.Code>  every task that failed
//   forkpool_queue_wait       timer                               queued → handed to a worker
//   forkpool_run_time         timer                               handed to a worker → its end
//   forkpool_worker_restarts  counter                             a worker process replaced
//
// Each carries ("pool", "process" | "thread") and the application's dimensions.
import CoreMetrics
import Synchronization

final class PoolMetrics: Sendable {
    static let tasksCompletedLabel = "forkpool_tasks_completed"
    static let taskFailuresLabel = "forkpool_task_failures"
    static let queueWaitLabel = "forkpool_queue_wait"
    static let runTimeLabel = "forkpool_run_time"
    static let workerRestartsLabel = "forkpool_worker_restarts"

    private let factory: any MetricsFactory
    private let dimensions: [(String, String)]
    private let succeeded: Counter
    private let failed: Counter
    /// Made on a code's first failure, so a pool exports only the codes it has seen.
    private let failuresByCode = Mutex<[ForkPoolError.Code: Counter]>([:])
    private let queueWait: CoreMetrics.Timer
    private let runTime: CoreMetrics.Timer
    private let restarts: Counter

    /// - Parameters:
    ///   - pool: "process" or "thread", the value of the "pool" dimension.
    ///   - dimensions: the application's own dimensions, added to every metric.
    init(factory: any MetricsFactory, pool: String, dimensions: [(String, String)]) {
        self.factory = factory
        self.dimensions = [("pool", pool)] + dimensions
        succeeded = Counter(label: Self.tasksCompletedLabel, dimensions: self.dimensions + [("outcome", "success")], factory: factory)
        failed = Counter(label: Self.tasksCompletedLabel, dimensions: self.dimensions + [("outcome", "failure")], factory: factory)
        queueWait = Timer(label: Self.queueWaitLabel, dimensions: self.dimensions, factory: factory)
        runTime = Timer(label: Self.runTimeLabel, dimensions: self.dimensions, factory: factory)
        restarts = Counter(label: Self.workerRestartsLabel, dimensions: self.dimensions, factory: factory)
    }

    /// Counts a task that ended: `failure` is nil on success; `runNanoseconds` is how long it
    /// ran on a worker (nil if it never reached one).
    func taskEnded(failure: ForkPoolError.Code?, runNanoseconds: UInt64?) {
        if let runNanoseconds { runTime.recordNanoseconds(Int64(clamping: runNanoseconds)) }
        guard let failure else {
            succeeded.increment()
            return
        }
        failed.increment()
        failureCounter(failure).increment()
    }

    /// Records how long a task waited before it was handed to a worker.
    func taskHandedOut(queuedNanoseconds: UInt64) {
        queueWait.recordNanoseconds(Int64(clamping: queuedNanoseconds))
    }

    /// Counts a worker process started in place of another.
    func workerRestarted() {
        restarts.increment()
    }

    private func failureCounter(_ code: ForkPoolError.Code) -> Counter {
        failuresByCode.withLock { counters in
            if let counter = counters[code] { return counter }
            let counter = Counter(label: Self.taskFailuresLabel, dimensions: dimensions + [("code", code.name)], factory: factory)
            counters[code] = counter
            return counter
        }
    }
}
