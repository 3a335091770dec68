// Dispatcher+ConcurrentJobs: async jobs on fresh workers, up to `jobsPerWorker` at once on one
// — the dispatcher's side of ConcurrentJobs.
//
//   queue head is such a job ─▶ a worker with room (idle, or serving fewer than jobsPerWorker)
//     ─▶ WorkerProcess.serve: its frame appended to what goes out ─▶ replies come back in any
//     order, matched by task id
//   deadline passed ─▶ the caller gets .timedOut now, the job's Task a `cancel` frame ─▶ not
//     ended within the grace period ─▶ the worker is killed (its other jobs: siblings)
//   cancel() ─▶ the caller gets .cancelled, the job's Task a `cancel` frame; the worker lives
//     (unless the job ignores it past the grace period, as for a deadline)
//   the worker dies ─▶ the job it ran on the faulting thread (its note) or the one it was killed
//     for fails with the death; every other job in flight fails saying a sibling took the
//     worker down, through the crash policy (a retry runs it again elsewhere)
//   due for recycling or over its memory ceiling ─▶ no more jobs; retires once its jobs end
import Glibc

extension Dispatcher {
    /// How long a job whose deadline passed may take to end once its Task is cancelled before
    /// its worker is killed.
    static let cancelledJobGracePeriod: UInt64 = 1_000_000_000

    /// Under the lock: hands async jobs to run again (a crash policy's retries), then queued
    /// ones, to workers already running jobs and with room, oldest first; stops at the first
    /// task that is not one (it waits for an idle worker, keeping the order). Idle workers are
    /// the idle loop's (Dispatcher.takeWork): a sync task needs one.
    func fillJobSlotsLocked(now: UInt64, into turn: inout DispatcherTurn) {
        let limit = configuration.jobsPerWorker
        for index in workers.indices where workers[index].isServingJobs && workers[index].acceptsConcurrentTask(limit: limit) {
            while workers[index].acceptsConcurrentTask(limit: limit), let head = workers.retries.first, head.concurrent {
                let retry = workers.retries.popFirst()!
                guard !retry.completion.hasCompleted else {  // cancelled meanwhile: settled, not run again
                    retry.isSettled = true
                    cancelledRunning.remove(retry.id)
                    continue
                }
                hand(retry, to: index, now: now, into: &turn)
            }
            guard workers.retries.isEmpty else { continue }  // a retry waits for a worker with room
            while workers[index].acceptsConcurrentTask(limit: limit), let next = queue.startFirst(if: \.concurrent) {
                hand(next, to: index, now: now, into: &turn)
            }
            if let next = queue.firstLive(), !next.concurrent { return }
        }
    }

    private func hand(_ task: PendingTask, to index: Int, now: UInt64, into turn: inout DispatcherTurn) {
        assign(task, to: index, now: now)
        if !turn.assigned.contains(index) { turn.assigned.append(index) }
    }

    /// Sends `cancel` frames for the async jobs whose callers cancelled them; returns the ids it
    /// handled (the worker lives: only the job's Task is cancelled).
    func cancelServedJobs(_ ids: Set<UInt64>, now: UInt64) -> Set<UInt64> {
        var handled = Set<UInt64>()
        for id in ids {
            guard let index = workers.firstIndex(where: { $0.served[id] != nil }) else { continue }
            // Its Task cancelled; a job that ignores that has its worker killed after the grace period.
            workers[index].expireServed(id, killAt: now + Self.cancelledJobGracePeriod)
            flush(index)
            handled.insert(id)
        }
        return handled
    }

    /// The deadlines of a serving worker's jobs: a job past its deadline times out (its Task
    /// cancelled); one still running past the grace period after that gets the worker killed.
    func enforceServedDeadlines(_ index: Int, now: UInt64) {
        for job in workers[index].served.values {
            if job.answered, let killAt = job.killAt, killAt <= now {
                let fault = ForkPoolError(.timedOut, "task \(job.task.id) did not end within "
                                          + "\(Self.cancelledJobGracePeriod / 1_000_000) ms of its Task being cancelled: "
                                          + "worker process \(workers[index].pid) was killed", taskID: job.task.id,
                                          processID: workers[index].pid)
                guard workers[index].stop(because: fault, stoppingJob: job.task.id) else { return }
                workers[index].disarmServed()
                terminate(index, now: now)
                return
            }
            guard !job.answered, let deadline = job.deadline, deadline <= now else { continue }
            let limit = configuration.taskTimeout.map { "its time limit of \($0)" } ?? "its deadline"
            let error = ForkPoolError(.timedOut, "task \(job.task.id) ran past \(limit) in worker process \(workers[index].pid); "
                                      + "its Task was cancelled", taskID: job.task.id, processID: workers[index].pid)
            accounting.recordOutcome(of: job.task, failure: .timedOut, slot: workers[index].slot)
            job.task.fail(error)
            workers[index].expireServed(job.task.id, killAt: now + Self.cancelledJobGracePeriod)
            flush(index)
        }
    }

    /// A serving worker ended: the job that brought it down (the one it was killed for, or the
    /// one its faulting thread ran) fails with its death; the others fail saying a sibling took
    /// their worker down, through the crash policy — except after the pool's own kill, which
    /// never breaks the pool. A worker given up on for a fault of the pool's or its protocol's
    /// (no job of its own to blame) fails every job with that fault.
    func failServedJobs(of worker: inout WorkerProcess, status: WaitStatus) {
        let jobs = worker.takeServed()
        guard !jobs.isEmpty else { return }
        let stoppedByPool = worker.stoppedTaskID != nil
        let culprit = worker.stoppedTaskID ?? worker.inbox.notes.crashedTask
        for job in jobs where !job.answered {
            if let fault = worker.fault, !stoppedByPool {
                var failure = fault
                failure.taskID = job.task.id
                fail(job.task, with: failure, slot: worker.slot)
                continue
            }
            let death = worker.obituary.error(status: status, task: job.task)
            if job.task.id == culprit {
                handleCrash(of: job.task, error: death, slot: worker.slot)
                continue
            }
            let cause = culprit.map { "task \($0), running beside it, took the worker down" }
                ?? "a job running beside it took the worker down (which one is not known)"
            let sibling = ForkPoolError(.workerDied, "task \(job.task.id) did not finish: worker process \(worker.pid) died "
                                        + "(\(death.message)); \(cause)", taskID: job.task.id, processID: worker.pid,
                                        signal: death.signal, exitStatus: death.exitStatus)
            if stoppedByPool, case .breakPool = configuration.crashPolicy {
                fail(job.task, with: sibling, slot: worker.slot)
            } else {
                handleCrash(of: job.task, error: sibling, slot: worker.slot)
            }
        }
    }
}
