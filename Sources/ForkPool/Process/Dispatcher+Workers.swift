// Dispatcher+Workers: the workers' lives from the dispatcher thread — the fork server's reports,
// each worker's socket, deadlines and kills, deaths and what the crash policy makes of them.
//
//   missing workers ─▶ requestWorkers ─▶ fork server ─▶ spawned ─▶ WorkerSet.add
//   socket readable ─▶ service ─▶ WorkerProcess.receive ─▶ ready | task done (retire?) | fault ─▶ giveUp (SIGKILL)
//   deadline passed / cancelled ─▶ stop ─▶ terminate (SIGTERM, grace, SIGKILL through the pidfd)
//   exited(pid, status) ─▶ workerExited ─▶ CrashPolicy ─▶ fail | retry | break
//   fork server gone ─▶ forkServerDied ─▶ its workers' tasks fail ─▶ a new fork server
import CForkShim
import Glibc
import Logging

extension Dispatcher {
    /// Reads everything the socket has and handles the frames that arrived, one at a time
    /// (a frame's consequences — a recycled worker dismissed — come before the next is read).
    func service(_ index: Int, events: Int16) {
        if events & Int16(POLLOUT) != 0 { flush(index) }
        guard workers[index].hasFramesToRead, events & ~Int16(POLLOUT) != 0 else { return }
        let (pid, slot) = (workers[index].pid, workers[index].slot)
        while workers[index].hasFramesToRead {
            let event = workers[index].receive { [accounting] task, failure in
                accounting.recordOutcome(of: task, failure: failure, slot: slot)
            }
            switch event {
            case nil, .endOfStream?:
                return
            case .initializerFailed?:
                break  // the worker exits next; its exit is a failed start
            case .ready?:
                accounting.recordReady(pid, slot: slot)
                workers.startFailures.reset()
                publishWorkers()
                workers.dismissOneRetiringWorker()
            case .taskDone?:
                if workers.retireIfDue(index, logger: accounting.logger) && lock.withLock({ shutdownRequest.asked }) {
                    workers[index].dismiss()
                }
            case .servedDone?:
                // Recycling waits for the jobs it runs: it takes no more, and retires once idle.
                if workers[index].isServingJobs {
                    if workers[index].recycling.isDue || workers.isOverMemoryCeiling(index) { workers[index].drainJobs() }
                } else if workers.retireIfDue(index, logger: accounting.logger) {
                    if lock.withLock({ shutdownRequest.asked }) { workers[index].dismiss() }
                } else {
                    workers[index].undrainJobs()  // back under its memory ceiling: it takes jobs again
                }
            case .fault(let error)?:
                giveUp(on: index, error)
                return
            }
        }
    }

    /// The worker broke the protocol or its socket: kill it; its task fails with `fault` once
    /// the process is reaped.
    func giveUp(on index: Int, _ fault: ForkPoolError) {
        if workers[index].fault == nil {
            workers[index].stop(because: DirectLane.describe(fault, worker: workers[index].pid, task: workers[index].task?.id))
        }
        workers[index].closeSocket()
        workers[index].signal(SIGKILL)
    }

    /// Stops a worker whose task timed out or was cancelled: the task fails with `fault` now;
    /// the worker gets SIGTERM (then SIGKILL after the grace period) or SIGKILL at once.
    func stop(_ index: Int, _ fault: ForkPoolError, now: UInt64) {
        guard workers[index].stop(because: fault, stoppingTask: true) else { return }
        if let task = workers[index].task {
            accounting.recordOutcome(of: task, failure: fault.code, slot: workers[index].slot)
            task.fail(fault)
        }
        terminate(index, now: now)
    }

    /// Signals the worker: SIGTERM (SIGKILL after the grace period) or SIGKILL at once, and
    /// sends it nothing more. Its socket is closed (a caller reading its lane sees end of
    /// stream) — unless tasks were sent behind the one it runs: then what it wrote before it
    /// died is still read to the end, so a task it finished counts, and one it had started by
    /// then is judged by the crash policy rather than run a second time elsewhere.
    func terminate(_ index: Int, now: UInt64) {
        workers[index].disarmDeadline()
        workers[index].discardOutgoing()
        // (Nor while it runs async jobs: what the others finished before it died still counts.)
        if workers[index].pipeline.isEmpty && workers[index].served.isEmpty { workers[index].closeSocket() }
        if workers[index].isLent { workers[index].lane?.connection.shutDown() }
        if configuration.terminationGracePeriod > .zero {
            workers[index].signal(SIGTERM)
            workers[index].armKill(at: now + configuration.terminationGracePeriod.nanoseconds)
        } else {
            workers[index].signal(SIGKILL)
        }
    }

    func enforceDeadlines(now: UInt64) {
        for index in workers.indices where workers[index].isServingJobs {
            let expired = workers[index].expireServedJobs(now: now, taskTimeout: configuration.taskTimeout)
            for (task, error) in expired.timedOut { fail(task, with: error, slot: workers[index].slot) }
            if expired.terminate { terminate(index, now: now) } else if !expired.timedOut.isEmpty { flush(index) }
        }
        for index in workers.indices {
            if let deadline = workers[index].taskDeadline, deadline <= now, let task = workers[index].task {
                accounting.logger.debug("task timed out", metadata: ["forkpool.task_id": "\(task.id)", "forkpool.pid": "\(workers[index].pid)",
                                                          "forkpool.worker": "\(workers[index].slot)"])
                let limit = configuration.taskTimeout.map { "its time limit of \($0)" } ?? "its deadline"
                stop(index, ForkPoolError(.timedOut, "task \(task.id) ran past \(limit) in worker process \(workers[index].pid), "
                                          + "which was killed", taskID: task.id, processID: workers[index].pid), now: now)
            }
            if let deadline = workers[index].killDeadline, deadline <= now {
                workers[index].signal(SIGKILL)
                workers[index].armKill(at: nil)
            }
        }
    }

    func startForkServer() throws(ForkPoolError) {
        let firstStart = lock.withLock { if case .starting = phase { true } else { false } }
        let server = if let fresh = settings.fresh {
            try ForkServerClient.startFresh(settings: fresh, sandboxSpec: settings.sandboxSpec, checkingBinary: firstStart)
        } else {
            try ForkServerClient.start(serverOptions: configuration.forkServerOptions, workerOptions: configuration.workerForkOptions,
                                       sandboxSpec: settings.sandboxSpec, workerMain: workerMain)
        }
        workers.forkServer = server
        lock.withLock { published.forkServer = server.pid }
    }

    /// Asks the fork server for the workers the pool lacks (none while broken, or when
    /// shutting down with nothing left to run), pacing restarts after failed starts. A worker
    /// that died while a caller read its reply by lane keeps its slot until that caller has
    /// handed the task back and the crash policy has judged it: under `.breakPool` a
    /// replacement must not take a queued task first.
    func requestWorkers(now: UInt64) {
        guard let forkServer = workers.forkServer, !workers.stopping, workers.missingWorkers > 0, now >= workers.startFailures.nextSpawnTime else { return }
        let wanted = lock.withLock { () -> Int in
            let judging = lanes.detachedReaders + lanes.orphans.count
            switch phase {
            case .broken, .failedToStart, .stopped: return 0
            case .starting: return workers.missingWorkers - judging
            case .running: return !shutdownRequest.asked || !queue.isEmpty || !workers.retries.isEmpty ? workers.missingWorkers - judging : 0
            }
        }
        guard wanted > 0 else { return }
        for _ in 0..<wanted {
            guard forkServer.requestWorker() else {
                forkServerDied()
                return
            }
            workers.spawnsInFlight += 1
        }
    }

    /// Handles every report the fork server has sent.
    func readForkServer() {
        while let server = workers.forkServer {
            switch server.nextReport() {
            case .success(nil):
                return
            case .failure:
                forkServerDied()
                return
            case .success(.spawned(let pid, let socket, let pidfd, let rings)?):
                let (index, unmapped) = workers.add(pid: pid, socket: socket, pidfd: pidfd, rings: rings, lendable: settings.lanesEnabled)
                accounting.recordSpawned(pid, slot: workers[index].slot)
                if let unmapped { giveUp(on: index, unmapped) } else if workers.stopping { workers[index].dismiss() }
            case .success(.spawnFailed(let number)?):
                workers.spawnsInFlight -= 1
                startFailed(ForkPoolError(.systemCallFailed, "the fork server could not fork a worker", errno: number))
            case .success(.exited(let pid, let status)?):
                if let index = workers.firstIndex(where: { $0.pid == pid }) { workerExited(index, status: status) }
            }
        }
    }

    /// A worker ended: fail, retry or break on its task, and count failed starts.
    func workerExited(_ index: Int, status: WaitStatus) {
        let fault = workers[index].fault
        // The lane keeps this until its caller is done: the obituary, not the worker's record
        // (which holds the lane).
        let callersTask = withdrawLane(index, error: { [obituary = workers[index].obituary] task in
            guard var fault else { return obituary.error(status: status, task: task) }
            fault.taskID = task.id
            return fault
        }, crashed: fault == nil, now: monotonicNanoseconds())
        // Whatever it wrote before it exited (a result, `initializerFailed`) counts: read it
        // first, even when the exit report overtook the socket's turn in the poll loop. (Not
        // while a caller reads it by lane.)
        if workers[index].hasFramesToRead && callersTask == nil { service(index, events: Int16(POLLIN)) }
        var worker = workers.remove(at: index)
        worker.release(killing: false)
        accounting.logExit(of: worker, status: status, runningTask: worker.task ?? callersTask)
        accounting.recordGone(worker.pid, slot: worker.slot)
        if !worker.isReady {
            let cause = worker.startError.map { "the initializer threw: \($0)" }
                ?? worker.sandboxFailure.map { "its sandbox could not be applied: \($0)" }
                ?? worker.obituary.error(status: status, task: worker.task).message
            startFailed(ForkPoolError(.poolBroken, "worker process \(worker.pid) failed to start: \(cause)",
                                      processID: worker.pid))
        }
        if let task = worker.task {
            if worker.headUndelivered && !task.frame.isEmpty {
                // Its frame never got there (the worker was already gone): it runs elsewhere.
                rerunPipelined([task], slot: worker.slot, error: worker.obituary.error(status: status, task: worker.task))
            } else if let stopped = worker.stoppedTaskID, stopped != task.id {
                // The pool stopped the worker for another task, which had just finished: this
                // one, sent behind it, may have started. The pool's own kill is no crash of
                // this task's (no retry, no broken pool), so it fails saying exactly that.
                fail(task, with: ForkPoolError(.workerDied, "worker process \(worker.pid) was stopped for task \(stopped) just "
                                               + "as it moved on to task \(task.id), which was sent behind it and may have started",
                                               taskID: task.id, processID: worker.pid), slot: worker.slot)
            } else if let fault = worker.fault {
                fail(task, with: fault, slot: worker.slot)
            } else if worker.neverTook(task) {  // died between tasks: runs elsewhere (once only)
                task.reruns.neverTaken = true
                rerunPipelined([task], slot: worker.slot, error: worker.obituary.error(status: status, task: worker.task))
            } else {
                handleCrash(of: task, error: worker.obituary.error(status: status, task: worker.task), slot: worker.slot)
            }
        }
        rerunPipelined(worker.tasksSentBehind, slot: worker.slot, error: worker.fault ?? worker.obituary.error(status: status, task: worker.task))
        for (task, error, crashed) in worker.endServedJobs(status: status, crashPolicyBreaksPool: configuration.crashPolicy == .breakPool) {
            if crashed { handleCrash(of: task, error: error, slot: worker.slot) } else { fail(task, with: error, slot: worker.slot) }
        }
        publishWorkers()
    }

    func handleCrash(of task: PendingTask, error: ForkPoolError, slot: Int) {
        switch configuration.crashPolicy.decide(for: task, error: error) {
        case .fail(let failure):
            fail(task, with: failure, slot: slot)
        case .retry:
            accounting.recordAttemptEnded(of: task, slot: slot)
            task.enqueuedAt = monotonicNanoseconds()
            workers.retries.append(task)
        case .breakPool(let failure, let broken):
            fail(task, with: failure, slot: slot)
            breakPool(broken)
        }
    }

    /// Counts a failed start; past the limit the pool breaks instead of restarting forever.
    func startFailed(_ error: ForkPoolError) {
        if let broken = workers.startFailures.count(error, now: monotonicNanoseconds()) { breakPool(broken) }
    }

    func breakPool(_ error: ForkPoolError) {
        accounting.logger.debug("pool broken", metadata: ["forkpool.error": "\(error.message)"])
        lock.withLock {
            switch phase {
            case .starting:
                phase = .failedToStart(error)
                shutdownRequest.ask(cancelPending: false)
                lock.broadcast()
            case .running:
                phase = .broken(error)
            default:
                break
            }
        }
    }

    /// The fork server died (it never should): its workers died with it. Fail their tasks,
    /// reap it and start a new one, counting it as a failed start.
    func forkServerDied() {
        guard let server = workers.forkServer else { return }
        workers.forkServer = nil
        let status = server.stop()
        accounting.logger.debug("fork server died", metadata: ["forkpool.pid": "\(server.pid)", "forkpool.wait_status": "\(status)"])
        func diedWithServer(_ worker: pid_t, _ task: PendingTask) -> ForkPoolError {
            ForkPoolError(.workerDied, "worker process \(worker) died with the pool's fork server (process \(server.pid), "
                          + "which ended with \(status)) while running task \(task.id)", taskID: task.id, processID: worker)
        }
        for index in workers.indices.reversed() {
            withdrawLane(index, error: { [pid = workers[index].pid] in diedWithServer(pid, $0) },
                         crashed: false, now: monotonicNanoseconds())
            var worker = workers.remove(at: index)
            worker.release(killing: true)
            if let task = worker.task {
                let error = worker.fault ?? diedWithServer(worker.pid, task)
                fail(task, with: error, slot: worker.slot)
                rerunPipelined(worker.tasksSentBehind, slot: worker.slot, error: error)
            }
            for job in worker.takeServed() where !job.answered {
                fail(job.task, with: worker.fault ?? diedWithServer(worker.pid, job.task), slot: worker.slot)
            }
        }
        accounting.recordGone()
        workers.spawnsInFlight = 0
        publishWorkers()
        lock.withLock { published.forkServer = nil }
        guard !workers.stopping else { return }
        startFailed(ForkPoolError(.poolBroken, "the fork server (process \(server.pid)) ended with \(status)"))
        if case .broken = lock.withLock({ phase }) { return }
        do {
            try startForkServer()
        } catch {
            breakPool(error)
        }
    }

    func flush(_ index: Int) {
        do {
            try workers[index].flush(keepSent: configuration.crashPolicy.keepsSentFrames)
        } catch where error.errno == EPIPE || error.errno == ECONNRESET {
            // The worker's end is gone: it died. Send nothing more, but read what it wrote
            // before (a finished task's reply counts) until end of stream; its exit report
            // then judges the task it ran.
            workers[index].discardOutgoing()
        } catch {
            giveUp(on: index, error)
        }
    }

    // MARK: - Tasks sent ahead (Pipelines.swift picks them)

    /// Sends what `WorkerSet.sendAhead` queued for each worker (one send per worker), then
    /// records how long each task waited in the queue.
    func handOutPipelined(_ sent: [(index: Int, task: PendingTask)]) {
        guard !sent.isEmpty else { return }
        accounting.paths.pipelinedSends.add(sent.count, ordering: .relaxed)
        var flushed = Set<Int>()
        for (index, _) in sent where flushed.insert(index).inserted { flush(index) }
        let now = monotonicNanoseconds()
        for (_, task) in sent {
            accounting.recordHandedOut(queuedNanoseconds: task.waitedInQueue(until: now))
        }
    }

    /// Tasks sent ahead to a worker that is gone: they never ran, so they run elsewhere first
    /// (not counted as crashes); if the pool cannot run anything more (its dispatcher failed,
    /// or it is stopping), they fail with `error`. One cancelled meanwhile is only settled.
    func rerunPipelined(_ tasks: [PendingTask], slot: Int, error: @autoclosure () -> ForkPoolError) {
        guard !tasks.isEmpty else { return }
        let runnable = !workers.stopping && lock.withLock { dispatcherFailure == nil }
        for task in tasks {
            if task.completion.hasCompleted {
                lock.withLock { _ = cancelledRunning.remove(task.id) }
                accounting.recordOutcome(of: task, failure: .cancelled, slot: nil)
            } else if runnable {
                accounting.paths.pipelinedReruns.add(1, ordering: .relaxed)
                task.enqueuedAt = monotonicNanoseconds()
                workers.retries.append(task)
            } else {
                fail(task, with: error(), slot: slot)
            }
        }
    }

    // MARK: - Stopping: every worker asked to exit, killed after the grace period, the fork server reaped

    /// Asks every worker to exit, waits up to the grace period for the fork server to report
    /// each exit, then kills the rest.
    func stopWorkers() {
        workers.stopping = true
        // A pool that failed to start has no task to finish: what it started is killed at once.
        let killAtOnce = lock.withLock {
            if case .failedToStart = phase { return true }
            return dispatcherFailure != nil
        }
        let deadline = monotonicNanoseconds() + (killAtOnce ? 0 : configuration.shutdownGracePeriod.nanoseconds)
        var killedAt: UInt64?
        while (!workers.isEmpty || workers.spawnsInFlight > 0), let control = workers.forkServer?.control {
            for index in workers.indices where workers[index].socket != nil { workers[index].dismiss() }
            let now = monotonicNanoseconds()
            if now >= deadline && killedAt == nil {
                workers.forEach { $0.signal(SIGKILL) }
                killedAt = now
            }
            if let killedAt, now > killedAt + 5_000_000_000 { break }  // the server stopped reporting
            if SystemCall.waitReadable(control, until: killedAt == nil ? deadline : now + 100_000_000) { readForkServer() }
        }
        for index in workers.indices.reversed() {
            withdrawLane(index, error: { task in
                ForkPoolError(.poolShutDown, "the pool shut down while task \(task.id) ran", taskID: task.id)
            }, crashed: false, now: monotonicNanoseconds())
            var worker = workers.remove(at: index)
            worker.release(killing: true)
            // Never reported as exited (the fork server stopped answering): what it held fails.
            let error = lock.withLock { dispatcherFailure } ?? ForkPoolError(.poolShutDown, "the pool shut down")
            let jobs = worker.takeServed().filter { !$0.answered }.map(\.task)
            for task in [worker.task].compactMap({ $0 }) + worker.tasksSentBehind + jobs {
                fail(task, with: error, slot: worker.slot)
            }
        }
        publishWorkers()
    }

    /// Closes the control socket; the fork server exits on end of stream and is reaped.
    func stopForkServer() {
        guard let server = workers.forkServer else { return }
        workers.forkServer = nil
        _ = server.stop()
        lock.withLock { published.forkServer = nil }
    }
}
