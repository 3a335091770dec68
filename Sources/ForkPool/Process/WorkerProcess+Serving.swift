// WorkerProcess+Serving: a worker running async jobs, up to `jobsPerWorker` at once (a fresh pool;
// Dispatcher+ConcurrentJobs decides when) — its jobs by task id, their deadlines and
// cancellations, and whether it takes one more.
//
//   idle ─serve─▶ serving(served: id → job) ─ reply (any order) ─▶ removed ─ none left ─▶ idle
//   cancel / deadline ─▶ `cancel` frame, the job answered already ─ deadline + grace ─▶ killed
import ForkPoolWire

extension WorkerProcess {
    /// An async job's task on a worker that runs several at once.
    struct ServedTask {
        var task: PendingTask
        var deadline: UInt64?
        /// The caller has had its answer (cancelled; or timed out, and the job's Task was
        /// cancelled): the worker's reply is dropped when it comes.
        var answered = false
        /// Its deadline passed and its Task was cancelled: the worker is killed if the job has
        /// not ended by then.
        var killAt: UInt64?
    }

    var isServingJobs: Bool { if case .serving = life { true } else { false } }
    /// Can take one more async job to run beside the ones it runs (or as its first).
    func acceptsConcurrentTask(limit: Int) -> Bool {
        // Never past its recycling limit: the jobs it runs count toward it.
        guard socket != nil, fault == nil, !drainingJobs, recycling.tasksDone + served.count < recycling.taskLimit else { return false }
        if case .idle = life { return true }
        return isServingJobs && served.count < limit
    }
    /// The earliest deadline among its jobs that are still owed an answer, or kill after one.
    var nearestServedDeadline: UInt64? {
        served.values.lazy.compactMap { $0.answered ? $0.killAt : $0.deadline }.min()
    }

    /// A job past its deadline: its Task is cancelled (a `cancel` frame), and the worker is to
    /// be killed at `killAt` unless the job has ended by then.
    mutating func expireServed(_ id: UInt64, killAt: UInt64) {
        cancelServed(id)
        served[id]?.killAt = killAt
    }

    /// Starts sending an async job's task to this idle or serving worker, to run beside the
    /// others (its frame has no raw tail).
    mutating func serve(_ task: PendingTask, deadline: UInt64?, now: UInt64) {
        task.handedOutAt = now
        beginServing()
        served[task.id] = ServedTask(task: task, deadline: deadline)
        sendAlso(task.frame)
    }

    /// Tells the worker to cancel job `id`'s Task; the caller has had its answer already.
    mutating func cancelServed(_ id: UInt64) {
        guard served[id] != nil, !served[id]!.answered else { return }
        served[id]!.answered = true
        var frame = FrameHeader.emptyFrame()
        FrameHeader(kind: .cancel, length: 0, taskID: id).write(into: &frame)
        sendAlso(frame)
    }

    /// Its jobs' deadlines and kills no longer apply (it is being stopped).
    mutating func disarmServed() {
        for id in served.keys {
            served[id]?.deadline = nil
            served[id]?.killAt = nil
        }
    }

    /// Takes jobs at once again (it was not retired after all).
    mutating func undrainJobs() { drainingJobs = false }

    /// Takes no more jobs at once (due for recycling); it retires once its jobs are done.
    mutating func drainJobs() { drainingJobs = true }

    /// Its async jobs, taken off its books (it died).
    mutating func takeServed() -> [ServedTask] {
        defer { served = [:] }
        return Array(served.values).sorted { $0.task.id < $1.task.id }
    }
}
