// Dispatcher: the process pool's one parent-side thread, and its poll loop.
//
//   submit() ─▶ queue (locked) ─▶ eventfd wake ─▶ poll([eventfd, fork server, worker sockets])
//     ─▶ takeWork: idle worker + queued task ─▶ send its frame ─▶ reply ─▶ complete the Future
//     ─▶ fork server reports (spawned, exited) ─▶ deadlines and cancellations ─▶ kills
//   shutdown: drain (or cancel) the queue, dismiss every worker, wait for the exits, reap the fork server
//
// Here: the shared state (under `lock`: queue, phase, published pids, lane books), the calls any
// thread makes, the loop and its failure. Beside it: WorkerSet and WorkerProcess (the workers,
// what is sent ahead, which worker serves which async job), +Workers (reports, faults, deaths,
// stopping), +Lanes (callers that carry tasks themselves), PoolAccounting.
// This thread starts the fork server: PR_SET_PDEATHSIG follows the forking thread.
import CForkShim
import Glibc
import Synchronization

final class Dispatcher: @unchecked Sendable {
    typealias Settings = DispatcherSettings
    typealias Phase = DispatcherPhase

    let settings: Settings
    var configuration: ProcessPoolConfiguration { settings.configuration }
    let workerMain: @Sendable (CInt) -> Never
    /// Wakes the poll loop from other threads (a test closes its eventfd from outside).
    let wake: WakeEvent
    let taskIDs = Atomic<UInt64>(1)

    // Shared state, guarded by `lock`.
    let lock = ConditionLock()
    /// The tasks waiting for a worker, their deadlines and the queue's bound.
    var queue: WorkQueue<PendingTask>
    var phase = Phase.starting
    /// Whether shutdown was asked for, and whether queued tasks are to be cancelled.
    var shutdownRequest = ShutdownRequest.none
    /// Why the dispatcher could not go on (its poll failed): the pool stays broken with it.
    var dispatcherFailure: ForkPoolError?
    var published = PublishedProcesses()
    /// Running tasks whose futures were cancelled: their workers are to be killed.
    var cancelledRunning: Set<UInt64> = []
    /// The direct lanes' books: which idle workers are lent, and what callers hold.
    var lanes = LaneBooks()
    /// The dispatcher thread, joined once by whoever shuts the pool down first.
    let loop = JoinableThread()

    // Dispatcher thread only.
    /// The workers, the fork server and the tasks to run again.
    var workers: WorkerSet

    /// Stats, metrics and log events.
    let accounting: PoolAccounting

    init(settings: Settings, workerMain: @escaping @Sendable (CInt) -> Never) throws(ForkPoolError) {
        self.settings = try settings.withSandboxSpec()
        self.workerMain = workerMain
        let configuration = settings.configuration
        accounting = PoolAccounting(configuration: configuration, workerCount: settings.workerCount)
        workers = WorkerSet(workerCount: settings.workerCount, configuration: configuration)
        queue = WorkQueue(limit: configuration.maximumQueuedTasks)
        wake = try WakeEvent.make()
        do {
            loop.started(try PosixThread.start(name: "forkpool-disp") { [self] in run() })
        } catch {
            wake.close()
            throw error
        }
        let startTimeout = configuration.startTimeout
        let startDeadline = monotonicNanoseconds() + startTimeout.nanoseconds
        let failure: ForkPoolError? = lock.withLock {
            while case .starting = phase {
                guard !lock.wait(untilMonotonicNanoseconds: startDeadline), case .starting = phase else { continue }
                // The dispatcher gives up on the start: it kills what it started and leaves.
                wakeLocked()
                phase = .failedToStart(ForkPoolError(
                    .poolBroken, "the pool did not start within its startTimeout of \(startTimeout): the fork server or "
                    + "first worker did not become ready"))
                shutdownRequest.ask(cancelPending: false)
            }
            if case .failedToStart(let error) = phase { return error }
            return nil
        }
        if let failure {
            join()
            throw failure
        }
    }

    /// The pids of the live, ready workers, as last published by the dispatcher.
    var workerProcessIDs: [pid_t] { lock.withLock { published.workers } }
    /// Publishes the serving workers' pids (dispatcher thread).
    func publishWorkers() {
        let pids = workers.servingProcessIDs
        lock.withLock { published.workers = pids }
    }

    /// The pid of the fork server, while it runs.
    var forkServerProcessID: pid_t? { lock.withLock { published.forkServer } }

    /// A snapshot of the counts, with the queue's length now.
    var stats: PoolStats {
        var snapshot = accounting.snapshot
        snapshot.queuedTasks = lock.withLock {
            if lanes.unreadTasks > 0 { wakeLocked() }  // count tasks sent by lane that nobody waits for
            return queue.count
        }
        return snapshot
    }

    // MARK: - Called by any thread

    /// Counts `task` as failed with `error` (on the worker in `slot`, if any), then fails it —
    /// in that order, so a caller woken by the failure finds it counted.
    func fail(_ task: PendingTask, with error: ForkPoolError, slot: Int?) {
        accounting.recordOutcome(of: task, failure: error.code, slot: slot)
        task.fail(error)
    }

    /// A fresh pool-wide task id.
    func makeTaskID() -> UInt64 {
        taskIDs.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Queues one chunk of `map` and wakes the dispatcher. Not refused when the queue is full:
    /// `map` bounds its own window.
    func enqueueChunk(_ task: PendingTask) throws(ForkPoolError) {
        try lock.withLock { () throws(ForkPoolError) in
            try checkAcceptingLocked()
            queue.append(task, now: monotonicNanoseconds())
            wakeLocked()
        }
    }

    /// Asks the dispatcher to kill the worker running task `id` (its future is already
    /// completed as cancelled).
    func stopRunningTask(_ id: UInt64) {
        lock.withLock {
            switch phase {
            case .stopped, .failedToStart: return
            default: break
            }
            cancelledRunning.insert(id)
            wakeLocked()
        }
    }

    /// Stops accepting tasks, lets queued ones run (or cancels them), then waits until every
    /// worker and the fork server have exited and been reaped. Idempotent; concurrent
    /// callers all wait.
    func shutdown(cancelPending: Bool) {
        lock.withLock {
            shutdownRequest.ask(cancelPending: cancelPending)
            if case .stopped = phase {} else { wakeLocked() }
        }
        join()
    }

    func checkAcceptingLocked() throws(ForkPoolError) {
        if shutdownRequest.asked {
            throw ForkPoolError(.poolShutDown, "the pool has been shut down")
        }
        if case .broken(let error) = phase { throw error }
    }

    /// Writes the eventfd unless a wake-up is already pending. Under `lock`, so it can never
    /// race with the dispatcher closing the eventfd.
    func wakeLocked() { wake.signal() }

    func join() { loop.join() }

    // MARK: - The dispatcher thread

    func run() {
        do {
            try startForkServer()
        } catch {
            lock.withLock {
                phase = .failedToStart(error)
                wake.close()
                lock.broadcast()
            }
            return
        }
        serve()
        stopWorkers()
        stopForkServer()
        if let failure = lock.withLock({ dispatcherFailure }) { failLeftovers(failure) }
        // Callers still parked for room (the loop ended before a turn could refuse them).
        refuseParked(lock.withLock { dispatcherFailure } ?? ForkPoolError(.poolShutDown, "the pool has been shut down"))
        accounting.recordGone()
        lock.withLock {
            switch phase {
            case .failedToStart: break
            case .broken where dispatcherFailure != nil: break  // submit keeps saying why
            default: phase = .stopped
            }
            published.workers = []
            wake.close()  // a lost descriptor is only forgotten: the number is not ours to close
            lock.broadcast()
        }
    }

    /// The poll loop; returns once shutdown was requested and no task is left, or the pool
    /// failed to start.
    func serve() {
        var pollSet: [pollfd] = []
        var owners: [Int] = []  // worker index of each pollfd after the first two
        while true {
            accounting.paths.dispatcherTurns.add(1, ordering: .relaxed)
            let now = monotonicNanoseconds()
            // Lanes first: a task a caller gave back is judged (crash policy) before a
            // replacement for its dead worker is asked for.
            reclaimLanes(now: now)
            requestWorkers(now: now)
            let turn = takeWork(now: now)
            for (task, error) in turn.dropped {
                fail(task, with: error, slot: nil)
            }
            for task in turn.expired where task.failIfQueued(
                ForkPoolError(.timedOut, "task \(task.id) reached its deadline before a worker was free", taskID: task.id)) {
                accounting.logger.debug("task timed out", metadata: ["forkpool.task_id": "\(task.id)", "forkpool.queued": "true"])
                accounting.recordOutcome(of: task, failure: .timedOut, slot: nil)
            }
            for resumption in turn.resumptions { resumption.resume() }
            if turn.finished { return }
            handOut(turn.assigned)
            for (lane, task) in turn.handedOver where sendOnLane(lane, task, reader: .wokenOwner) { task.wakeReader() }
            handOutPipelined(turn.pipelined)
            for index in workers.cancelServedJobs(turn.cancelled, killAt: now + WorkerProcess.cancelledJobGracePeriod) { flush(index) }
            for index in workers.indices where workers[index].task.map({ turn.cancelled.contains($0.id) }) == true {
                stop(index, ForkPoolError(.cancelled, "task \(workers[index].task!.id) was cancelled while running",
                                          taskID: workers[index].task!.id, processID: workers[index].pid), now: now)
            }

            pollSet.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wake.descriptor, events: Int16(POLLIN), revents: 0))
            pollSet.append(pollfd(fd: workers.forkServer?.control ?? -1, events: Int16(POLLIN), revents: 0))
            for (index, worker) in workers.enumerated() where !worker.isLent {
                guard let socket = worker.socket else { continue }
                var events = Int16(POLLIN)
                if worker.waitsForSocket { events |= Int16(POLLOUT) }
                pollSet.append(pollfd(fd: socket, events: events, revents: 0))
                owners.append(index)
            }
            let timeout = workers.ringsReadyToSleep(owners, timeout: pollTimeout(now: now, nextQueuedDeadline: turn.nextQueuedDeadline))
            let polled = retryingInterrupts({ poll(&pollSet, nfds_t(pollSet.count), timeout) })
            workers.ringsWokeUp(owners)
            if polled < 0 {
                dispatcherFailed(ForkPoolError(.poolBroken, "the pool's dispatcher cannot wait for events: poll failed",
                                               errno: errno), wakeLost: false)
                return
            }
            if pollSet[0].revents & Int16(POLLNVAL) != 0 {
                dispatcherFailed(ForkPoolError(.poolBroken, "the pool's eventfd (descriptor \(wake.descriptor)) was closed by "
                                               + "someone else", errno: EBADF), wakeLost: true)
                return
            }
            if pollSet[0].revents != 0 { lock.withLock { wake.drain() } }
            for (slot, index) in owners.enumerated() where pollSet[slot + 2].revents | workers.ringEvents(index) != 0 {
                service(index, events: pollSet[slot + 2].revents | workers.ringEvents(index))
            }
            if pollSet[1].revents != 0 { readForkServer() }
            enforceDeadlines(now: monotonicNanoseconds())
        }
    }

    /// Milliseconds until the nearest deadline: a task's time limit, a kill, the next spawn.
    func pollTimeout(now: UInt64, nextQueuedDeadline: UInt64?) -> Int32 {
        let nearest = [nextQueuedDeadline, workers.nextWake(now: now)].compactMap { $0 }.min()
        return ForkPool.pollTimeout(until: nearest, now: now)
    }

    /// Under the lock: expires, cancels and hands out tasks; says whether the loop is done.
    func takeWork(now: UInt64) -> DispatcherTurn {
        lock.withLock {
            var turn = DispatcherTurn()
            if shutdownRequest == .cancelPending {
                for task in queue.removeAll() {
                    turn.dropped.append((task, .cancelledByShutdown(taskID: task.id)))
                }
            }
            if case .broken(let error) = phase {
                for task in queue.removeAll() + workers.retries.removeAll() {
                    var failure = error
                    failure.taskID = task.id
                    turn.dropped.append((task, failure))
                }
            }
            (turn.expired, turn.nextQueuedDeadline) = queue.expire(now: now)
            fillJobSlotsLocked(now: now, into: &turn)  // async jobs to workers running some: idle ones may be needed
            for index in workers.indices where workers[index].isIdle {
                if let retry = popRetryLocked() {
                    assign(retry, to: index, now: now)
                    turn.assigned.append(index)
                    continue
                }
                if handOverToBlockedReaderLocked(index, now: now, into: &turn) { continue }
                if let task = queue.startFirst(if: { _ in true }) {
                    assign(task, to: index, now: now)
                    turn.assigned.append(index)
                }
                if queue.isEmpty && workers.retries.isEmpty { break }
            }
            fillJobSlotsLocked(now: now, into: &turn)
            turn.pipelined = workers.retries.isEmpty
                ? workers.sendAhead(from: &queue, inFlightLimit: settings.tasksInFlightPerWorker) : []
            turn.resumptions = admitParkedLocked(now: now)
            turn.cancelled = cancelledRunning
            // A task a caller still holds on its lane is cancelled by `reclaimLanes` on a later
            // turn, one sent behind a running task once it runs: keep its id until then.
            cancelledRunning = cancelledRunning.filter { id in
                workers.contains { $0.isLent && $0.lane?.callersTask?.id == id || $0.isPipelining(id) }
            }
            if case .starting = phase, workers.filter(\.isReady).count >= settings.workerCount {
                phase = .running
                lock.broadcast()
            }
            lanes.mayLend = lanesMayOpen
            if lanes.mayLend && queue.isEmpty { openIdleLanesLocked() }
            // A stopped worker's pipeline counts: its tasks run elsewhere once its exit is reported.
            let busy = workers.contains { ($0.task != nil && $0.fault == nil) || !$0.pipeline.isEmpty || $0.isLent || !$0.served.isEmpty }
                || lanes.holdsWork
            if case .failedToStart = phase {
                turn.finished = true
            } else {
                turn.finished = shutdownRequest.asked && queue.isEmpty && workers.retries.isEmpty && !busy
            }
            return turn
        }
    }

    /// Under the lock: the next task to run again whose future is still open; one cancelled
    /// meanwhile is dropped (its cancellation is settled: it does not run again).
    func popRetryLocked() -> PendingTask? {
        while let retry = workers.retries.popFirst() {
            guard retry.completion.hasCompleted else { return retry }
            retry.isSettled = true
            cancelledRunning.remove(retry.id)
        }
        return nil
    }

    func assign(_ task: PendingTask, to index: Int, now: UInt64) {
        let deadline = task.runDeadline(taskTimeout: configuration.taskTimeout, now: now)
        if task.concurrent { workers[index].serve(task, deadline: deadline, now: now) } else { workers[index].assign(task, deadline: deadline) }
    }

    /// Under the lock: async jobs to workers already running some, with room (WorkerSet).
    func fillJobSlotsLocked(now: UInt64, into turn: inout DispatcherTurn) {
        let filled = workers.fillJobSlots(from: &queue, limit: configuration.jobsPerWorker, taskTimeout: configuration.taskTimeout, now: now)
        for index in filled.served where !turn.assigned.contains(index) { turn.assigned.append(index) }
        for id in filled.settled { cancelledRunning.remove(id) }
    }

    /// Starts sending the tasks just assigned to these workers, then records how long each
    /// waited in the queue (after the sends, so metrics never delay a task).
    func handOut(_ assigned: [Int]) {
        guard !assigned.isEmpty else { return }
        let now = monotonicNanoseconds()
        for index in assigned {
            workers[index].task?.handedOutAt = now
            flush(index)
        }
        for index in assigned {
            guard let task = workers[index].task else { continue }
            accounting.recordHandedOut(queuedNanoseconds: task.waitedInQueue(until: now))
        }
    }

}

extension Dispatcher {
    /// The poll loop cannot go on (`poll` failed, or the pool's eventfd was closed from
    /// outside): the pool breaks with the errno, lanes close, queued tasks fail now and running
    /// ones when their workers, killed at once, are reported dead. Never a crash of the host.
    func dispatcherFailed(_ error: ForkPoolError, wakeLost: Bool) {
        accounting.logger.debug("pool broken", metadata: ["forkpool.error": "\(error.message)"])
        let queued = lock.withLock { () -> [PendingTask] in
            dispatcherFailure = error
            if wakeLost { wake.markLost() }
            switch phase {
            case .starting: phase = .failedToStart(error)
            case .running: phase = .broken(error)
            default: break
            }
            lanes.mayLend = false
            lock.broadcast()
            return queue.removeAll()
        }
        for task in queued + workers.retries.removeAll() { fail(task, with: error, slot: nil) }  // the error names each task
        for index in workers.indices { workers[index].stop(because: error) }
    }
}

extension Dispatcher: WorkQueueOwner {
    func didQueueLocked() { wakeLocked() }
}

extension Dispatcher: _PoolControl {
    var workerCount: Int { settings.workerCount }
}
