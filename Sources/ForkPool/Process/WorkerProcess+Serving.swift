// WorkerProcess+Serving: a worker running async jobs, up to `jobsPerWorker` at once (a fresh
// pool; WorkerSet.fillJobSlots hands them out) — its jobs by task id, their deadlines and
// cancellations, whether it takes one more, and what its death makes of the jobs it ran.
//
//   queue head is such a job ─▶ a worker with room (idle, or serving fewer than jobsPerWorker)
//     ─▶ serve: its frame appended to what goes out ─▶ replies in any order, by task id
//   idle ─serve─▶ serving(served: id → job) ─ reply (any order) ─▶ removed ─ none left ─▶ idle
//   cancel / deadline ─▶ the caller answered now, a `cancel` frame for the job's Task
//     ─ not ended within the grace period ─▶ the worker is stopped (its other jobs: siblings)
//   the worker dies ─▶ the job it ran on the faulting thread (its note) or the one it was killed
//     for fails with the death; every other job fails saying a sibling took the worker down,
//     through the crash policy (a retry runs it again elsewhere)
//   due for recycling or over its memory ceiling ─▶ no more jobs; retires once its jobs end
import ForkPoolWire

extension WorkerProcess {
    /// How long a job whose deadline passed may take to end once its Task is cancelled before
    /// its worker is killed.
    static let cancelledJobGracePeriod: UInt64 = 1_000_000_000

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

    /// Its jobs' deadlines at `now`: a job past its deadline times out (returned, to fail; its
    /// Task is cancelled, and the worker is to be killed if it has not ended after the grace
    /// period); a job still running past that grace period stops the worker (`terminate`: the
    /// pool is to signal it).
    mutating func expireServedJobs(now: UInt64, taskTimeout: Duration?) -> (timedOut: [(PendingTask, ForkPoolError)], terminate: Bool) {
        var timedOut: [(PendingTask, ForkPoolError)] = []
        for job in served.values {
            if job.answered, let killAt = job.killAt, killAt <= now {
                let fault = ForkPoolError(.timedOut, "task \(job.task.id) did not end within "
                                          + "\(Self.cancelledJobGracePeriod / 1_000_000) ms of its Task being cancelled: "
                                          + "worker process \(pid) was killed", taskID: job.task.id, processID: pid)
                guard stop(because: fault, stoppingJob: job.task.id) else { return (timedOut, false) }
                disarmServed()
                return (timedOut, true)
            }
            guard !job.answered, let deadline = job.deadline, deadline <= now else { continue }
            let limit = taskTimeout.map { "its time limit of \($0)" } ?? "its deadline"
            timedOut.append((job.task, ForkPoolError(.timedOut, "task \(job.task.id) ran past \(limit) in worker process \(pid); "
                                                     + "its Task was cancelled", taskID: job.task.id, processID: pid)))
            expireServed(job.task.id, killAt: now + Self.cancelledJobGracePeriod)
        }
        return (timedOut, false)
    }

    /// The worker ended (`status`): its jobs still owed an answer, taken off its books, each
    /// with the error it fails with and whether through the crash policy (`crashed`). The job
    /// that brought it down (the one it was killed for, or the one its faulting thread ran)
    /// fails with its death; the others say a sibling took their worker down — through the
    /// crash policy, except after the pool's own kill under a policy that breaks the pool
    /// (`crashPolicyBreaksPool`), which never breaks it. A worker given up on for a fault of
    /// the pool's or its protocol's (no job of its own to blame) fails every job with that fault.
    mutating func endServedJobs(status: WaitStatus, crashPolicyBreaksPool: Bool) -> [(PendingTask, ForkPoolError, crashed: Bool)] {
        let stoppedByPool = stoppedTaskID != nil
        let culprit = stoppedTaskID ?? inbox.notes.crashedTask
        return takeServed().filter { !$0.answered }.map { job in
            if let fault, !stoppedByPool {
                var failure = fault
                failure.taskID = job.task.id
                return (job.task, failure, false)
            }
            let death = obituary.error(status: status, task: job.task)
            if job.task.id == culprit { return (job.task, death, true) }
            let cause = culprit.map { "task \($0), running beside it, took the worker down" }
                ?? "a job running beside it took the worker down (which one is not known)"
            let sibling = ForkPoolError(.workerDied, "task \(job.task.id) did not finish: worker process \(pid) died "
                                        + "(\(death.message)); \(cause)", taskID: job.task.id, processID: pid,
                                        signal: death.signal, exitStatus: death.exitStatus)
            return (job.task, sibling, !(stoppedByPool && crashPolicyBreaksPool))
        }
    }
}
