// Dispatcher: the process pool's one parent-side thread.
//
//   submit() ─▶ queue (locked) ─▶ eventfd wake ─┐
//                                               ▼
//   ┌──────── poll([eventfd, fork-server control socket, worker sockets], next deadline) ◀──┐
//   │ fewer workers than wanted ─▶ `spawn` to the fork server                                │
//   │ control: spawned(pid)+[socket, pidfd] ─▶ new worker ─▶ `ready` frame ─▶ idle          │
//   │ idle worker + queued task ─▶ send task frame (deadline armed)                          │
//   │ socket readable ─▶ FrameReader ─▶ result / failure frame ─▶ complete Future ──────────┘
//   │ control: exited(pid, status) ─▶ fail or retry its task ─▶ spawn a replacement
//   │ deadline passed / task cancelled ─▶ SIGTERM/SIGKILL via pidfd ─▶ exited(...) as above
//   │ each turn: lanes — idle workers lent to submitting threads while the queue is empty
//   │ (DirectLane); tasks sent by lane that nobody reads are taken over here, lanes given back
//   │ (a fault, end of stream, a time-out) are handled as this thread's own workers
//   └ shutdown: drain (or cancel) the queue, `shutdown` frames, wait for every exit (and every
//     caller still reading a lane), stop the fork server and reap it
//
// Worker state is touched by this thread only, except a lent worker's lane, whose state is
// shared under `lock`; the queue, phase and published pids are shared under `lock` too. A task
// that goes by lane is counted (PoolAccounting) and completed on the thread that reads its
// reply. This thread forks the fork server, because PR_SET_PDEATHSIG follows the forking
// thread and this thread lives exactly as long as the pool.
import CForkShim
import CoreMetrics
import Glibc
import Logging
import Synchronization

final class Dispatcher: @unchecked Sendable {
    struct Settings: Sendable {
        var workerCount: Int
        var configuration: ProcessPoolConfiguration
    }

    private enum Phase {
        case starting
        case running
        case failedToStart(ForkPoolError)
        case broken(ForkPoolError)
        case stopped
    }

    let settings: Settings
    private var configuration: ProcessPoolConfiguration { settings.configuration }
    private let workerMain: @Sendable (CInt) -> Never
    /// The eventfd that wakes the poll loop (a test closes it from outside).
    let wakeFD: CInt
    private let taskIDs = Atomic<UInt64>(1)
    /// Tasks sent by lane, and callers reading a lane now (tests watch both).
    private let laneSends = Atomic<Int>(0)
    private let laneReaders = Atomic<Int>(0)

    // Shared state, guarded by `lock`.
    private let lock = ConditionLock()
    private var queue = FIFOQueue<PendingTask>()
    /// Queued tasks that carry a deadline, checked for expiry each turn.
    private var queuedWithDeadline: [PendingTask] = []
    private var phase = Phase.starting
    private var shutdownRequested = false
    private var cancelRequested = false
    private var wakePending = false
    /// The eventfd is closed (the dispatcher left) or lost (closed by someone else): never
    /// written again.
    private var wakeClosed = false
    /// Why the dispatcher could not go on (its poll failed): the pool stays broken with it.
    private var dispatcherFailure: ForkPoolError?
    private var publishedPIDs: [pid_t] = []
    private var publishedForkServerPID: pid_t?
    /// Running tasks whose futures were cancelled: their workers are to be killed.
    private var cancelledRunning: Set<UInt64> = []
    /// Idle workers lent to submitting threads (DirectLane), in state `.open`.
    private var openLanes: [DirectLane] = []
    /// Whether submitting threads may take open lanes (while the queue is also empty): the
    /// pool runs, is not shutting down and has no crashed task waiting for a retry.
    private var lanesAllowed = false
    /// Callers still reading from a lane whose worker has exited, and the tasks such readers
    /// gave back without a reply (to fail, or retry, here).
    private var detachedReaders = 0
    /// Lanes in `.sent`: tasks sent by lane whose replies nobody reads yet (`stats` has the
    /// dispatcher collect them, so they are counted).
    private var unreadLaneTasks = 0
    private var orphans: [DirectLane.Orphan] = []

    private let joinLock = ConditionLock()
    private var thread: PosixThread?
    private var joined = false

    // Dispatcher thread only.
    private var workers: [WorkerProcess] = []
    private var forkServer: ForkServerClient?
    private var spawnsInFlight = 0
    private var startFailures: StartFailures
    private var retries = FIFOQueue<PendingTask>()
    private var stopping = false
    private var random = SystemRandomNumberGenerator()
    /// Whether single tasks may go by lane: not when the pool has deadlines or recycling
    /// limits to keep, which only this thread keeps.
    private let lanesEnabled: Bool

    /// Stats, metrics and log events.
    private let accounting: PoolAccounting

    init(settings: Settings, workerMain: @escaping @Sendable (CInt) -> Never) throws(ForkPoolError) {
        self.settings = settings
        self.workerMain = workerMain
        let configuration = settings.configuration
        accounting = PoolAccounting(configuration: configuration, workerCount: settings.workerCount)
        startFailures = StartFailures(limit: configuration.maximumConsecutiveStartFailures)
        lanesEnabled = configuration.usesDirectLanes && configuration.taskTimeout == nil
            && configuration.maximumTasksPerWorker == nil && configuration.maximumWorkerResidentBytes == nil
        wakeFD = try PoolDescriptors.register(forkpool_eventfd, name: "eventfd")
        do {
            thread = try PosixThread.start(name: "forkpool-disp") { [self] in run() }
        } catch {
            PoolDescriptors.close(wakeFD)
            throw error
        }
        let startTimeout = configuration.startTimeout
        let startDeadline = monotonicNanoseconds() + UInt64(startTimeout * 1e9)
        let failure: ForkPoolError? = lock.withLock {
            while case .starting = phase {
                guard !lock.wait(untilMonotonicNanoseconds: startDeadline), case .starting = phase else { continue }
                // The dispatcher gives up on the start: it kills what it started and leaves.
                wakeLocked()
                phase = .failedToStart(ForkPoolError(
                    .poolBroken, "the pool did not start within its startTimeout of \(startTimeout) s: the fork server or "
                    + "first worker did not become ready"))
                shutdownRequested = true
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
    var workerProcessIDs: [pid_t] { lock.withLock { publishedPIDs } }
    /// The pid of the fork server, while it runs.
    var forkServerProcessID: pid_t? { lock.withLock { publishedForkServerPID } }

    /// A snapshot of the counts, with the queue's length now.
    var stats: PoolStats {
        var snapshot = accounting.snapshot
        snapshot.queuedTasks = lock.withLock {
            if unreadLaneTasks > 0 { wakeLocked() }  // count tasks sent by lane that nobody waits for
            return queue.count
        }
        return snapshot
    }

    // MARK: - Called by any thread

    /// Queued tasks the deadline watch holds (tests check that finished ones are let go).
    var tasksWatchedForDeadline: Int { lock.withLock { queuedWithDeadline.count } }

    /// How many tasks went by lane, straight from the submitting thread to a worker.
    var tasksSentByLane: Int { laneSends.load(ordering: .relaxed) }
    /// How many callers are reading a reply by lane now.
    var callersReadingByLane: Int { laneReaders.load(ordering: .relaxed) }
    /// How many idle workers are lent to submitting threads now.
    var openLaneCount: Int { lock.withLock { openLanes.count } }

    /// How many task ids were handed out (tests count frames with it).
    var taskIDsIssued: UInt64 { taskIDs.load(ordering: .relaxed) - 1 }

    /// A fresh pool-wide task id.
    func makeTaskID() -> UInt64 {
        taskIDs.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Queues `tasks` in order and wakes the dispatcher once.
    func enqueue(_ tasks: some Sequence<PendingTask>) throws(ForkPoolError) {
        let now = monotonicNanoseconds()
        try lock.withLock { () throws(ForkPoolError) in
            try checkAccepting()
            for task in tasks {
                task.enqueuedAt = now
                queue.append(task)
                if task.deadline != nil { queuedWithDeadline.append(task) }
            }
            wakeLocked()
        }
    }

    /// Sends `task` straight to an idle worker from this thread when the queue is empty and a
    /// lane is open (its future then lets the first waiting caller read the reply itself);
    /// otherwise queues it.
    func submit(_ task: PendingTask) throws(ForkPoolError) {
        guard lanesEnabled, task.deadline == nil, task.tail.isEmpty, task.frame.count <= DirectLane.maximumFrameBytes else {
            return try enqueue(CollectionOfOne(task))
        }
        let now = monotonicNanoseconds()
        let sending = try lock.withLock { () throws(ForkPoolError) -> (lane: DirectLane, frame: [UInt8])? in
            try checkAccepting()
            task.enqueuedAt = now
            guard lanesAllowed, queue.isEmpty, let lane = openLanes.popLast() else {
                queue.append(task)
                wakeLocked()
                return nil
            }
            task.frame[3] = FrameHeader.directFlag  // the worker may spin for this caller's next task
            lane.beginSending(task)
            task.leftQueue = true
            _ = task.start()
            task.handedOutAt = now
            return (lane, task.frame)
        }
        guard let (lane, frame) = sending else { return }
        task.bind(LaneClaim(dispatcher: self, lane: lane, task: task))
        let delivered = lane.send(frame)
        laneSends.add(1, ordering: .relaxed)
        accounting.recordHandedOut(queuedNanoseconds: monotonicNanoseconds() - now)
        lock.withLock {
            switch lane.endSending(task, delivered: delivered) {
            case .sent:
                unreadLaneTasks += 1
            case .undelivered:
                wakeLocked()
            case .orphaned(let orphan):
                detachedReaders -= 1
                orphans.append(orphan)
                wakeLocked()
            }
        }
    }

    /// A waiting caller reads `task`'s reply from its lane, unless the dispatcher has taken
    /// the task over; then gives the lane back (open again, or to the dispatcher).
    func receiveByLane(_ task: PendingTask, from lane: DirectLane, until deadline: UInt64?) {
        let claimed = lock.withLock { () -> Bool in
            guard lane.claimForReading(task) else { return false }
            unreadLaneTasks -= 1
            return true
        }
        guard claimed else { return }
        laneReaders.add(1, ordering: .relaxed)
        defer { laneReaders.subtract(1, ordering: .relaxed) }
        let count = { (failure: ForkPoolError.Code?) in self.accounting.recordOutcome(of: task, failure: failure, slot: lane.slot) }
        var outcome = lane.receiveReply(for: task, until: deadline, settle: count)
        if case .stoppedWaiting = outcome, lock.withLock({ lane.isDetached }) {
            // The worker is gone and its socket shut down: what it wrote before it exited is
            // all there, and counts. Read it to the end before giving up.
            outcome = lane.receiveReply(for: task, until: nil, settle: count)
        }
        lock.withLock {
            switch lane.endReading(task, outcome: outcome, mayReopen: lanesAllowed && queue.isEmpty) {
            case .reopened:
                openLanes.append(lane)
            case .returned:
                wakeLocked()
            case .detached(let orphan):
                detachedReaders -= 1
                if let orphan { orphans.append(orphan) }
                wakeLocked()
            }
        }
    }

    /// The caller will not read `task`'s reply: the dispatcher takes it over on its next turn.
    func handBack(_ task: PendingTask, from lane: DirectLane) {
        lock.withLock {
            if lane.holdsUnread(task) { wakeLocked() }
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
            shutdownRequested = true
            if cancelPending { cancelRequested = true }
            if case .stopped = phase {} else { wakeLocked() }
        }
        join()
    }

    private func checkAccepting() throws(ForkPoolError) {
        if shutdownRequested {
            throw ForkPoolError(.poolShutDown, "the pool has been shut down")
        }
        if case .broken(let error) = phase { throw error }
    }

    /// Writes the eventfd unless a wake-up is already pending. Under `lock`, so it can never
    /// race with the dispatcher closing the eventfd.
    private func wakeLocked() {
        guard !wakeClosed, !wakePending else { return }
        wakePending = true
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func join() {
        joinLock.withLock {
            guard !joined, let thread else { return }
            thread.join()
            joined = true
        }
    }

    // MARK: - The dispatcher thread

    private func run() {
        do {
            try startForkServer()
        } catch {
            lock.withLock {
                phase = .failedToStart(error)
                wakeClosed = true
                PoolDescriptors.close(wakeFD)
                lock.broadcast()
            }
            return
        }
        serve()
        stopWorkers()
        stopForkServer()
        if let failure = lock.withLock({ dispatcherFailure }) { failLeftovers(failure) }
        accounting.recordGone()
        lock.withLock {
            switch phase {
            case .failedToStart: break
            case .broken where dispatcherFailure != nil: break  // submit keeps saying why
            default: phase = .stopped
            }
            publishedPIDs = []
            if wakeClosed {
                PoolDescriptors.forget(wakeFD)  // lost: the number is not ours to close
            } else {
                wakeClosed = true
                PoolDescriptors.close(wakeFD)
            }
            lock.broadcast()
        }
    }

    /// The poll loop cannot go on (`poll` failed, or the pool's eventfd was closed from
    /// outside): the pool breaks with the errno, lanes close, queued tasks fail now and running
    /// ones when their workers, killed at once, are reported dead. Never a crash of the host.
    private func dispatcherFailed(_ error: ForkPoolError, wakeLost: Bool) {
        accounting.logger.debug("pool broken", metadata: ["forkpool.error": "\(error.message)"])
        let queued = lock.withLock { () -> [PendingTask] in
            dispatcherFailure = error
            if wakeLost { wakeClosed = true }
            switch phase {
            case .starting: phase = .failedToStart(error)
            case .running: phase = .broken(error)
            default: break
            }
            lanesAllowed = false
            queuedWithDeadline.removeAll()
            lock.broadcast()
            return queue.removeAll()
        }
        for task in queued + retries.removeAll() {
            var failure = error
            failure.taskID = task.id
            accounting.recordOutcome(of: task, failure: failure.code, slot: nil)
            task.fail(failure)
        }
        for index in workers.indices where workers[index].fault == nil {
            workers[index].fault = error
        }
    }

    /// After a dispatcher failure: waits for callers still reading lanes of killed workers and
    /// fails the tasks they gave back (nobody else is left to run them).
    private func failLeftovers(_ error: ForkPoolError) {
        let leftovers = lock.withLock { () -> [DirectLane.Orphan] in
            while detachedReaders > 0 { _ = lock.wait(untilMonotonicNanoseconds: monotonicNanoseconds() + 100_000_000) }
            defer { orphans.removeAll() }
            return orphans
        }
        for orphan in leftovers {
            var failure = orphan.error ?? error
            failure.taskID = orphan.task.id
            accounting.recordOutcome(of: orphan.task, failure: failure.code, slot: orphan.slot)
            orphan.task.fail(failure)
        }
    }

    /// The poll loop; returns once shutdown was requested and no task is left, or the pool
    /// failed to start.
    private func serve() {
        var pollSet: [pollfd] = []
        var owners: [Int] = []  // worker index of each pollfd after the first two
        while true {
            let now = monotonicNanoseconds()
            requestWorkers(now: now)
            reclaimLanes(now: now)
            let turn = takeWork(now: now)
            for (task, error) in turn.dropped {
                accounting.recordOutcome(of: task, failure: error.code, slot: nil)
                task.fail(error)
            }
            for task in turn.expired {
                accounting.logger.debug("task timed out", metadata: ["forkpool.task_id": "\(task.id)", "forkpool.queued": "true"])
                accounting.recordOutcome(of: task, failure: .timedOut, slot: nil)
            }
            if turn.finished { return }
            handOut(turn.assigned)
            for index in workers.indices where workers[index].task.map({ turn.cancelled.contains($0.id) }) == true {
                stop(index, ForkPoolError(.cancelled, "task \(workers[index].task!.id) was cancelled while running",
                                          taskID: workers[index].task!.id, processID: workers[index].pid), now: now)
            }

            pollSet.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            pollSet.append(pollfd(fd: forkServer?.control ?? -1, events: Int16(POLLIN), revents: 0))
            for (index, worker) in workers.enumerated() where worker.socket >= 0 && !worker.lent {
                var events = Int16(POLLIN)
                if worker.hasOutgoing { events |= Int16(POLLOUT) }
                pollSet.append(pollfd(fd: worker.socket, events: events, revents: 0))
                owners.append(index)
            }
            let timeout = pollTimeout(now: now, nextQueuedDeadline: turn.nextQueuedDeadline)
            if retryingInterrupts({ poll(&pollSet, nfds_t(pollSet.count), timeout) }) < 0 {
                dispatcherFailed(ForkPoolError(.poolBroken, "the pool's dispatcher cannot wait for events: poll failed",
                                               errno: errno), wakeLost: false)
                return
            }
            if pollSet[0].revents & Int16(POLLNVAL) != 0 {
                dispatcherFailed(ForkPoolError(.poolBroken, "the pool's eventfd (descriptor \(wakeFD)) was closed by "
                                               + "someone else", errno: EBADF), wakeLost: true)
                return
            }
            if pollSet[0].revents != 0 {
                var counter: UInt64 = 0
                lock.withLock {
                    _ = read(wakeFD, &counter, 8)
                    wakePending = false
                }
            }
            for (slot, index) in owners.enumerated() where pollSet[slot + 2].revents != 0 {
                service(index, events: pollSet[slot + 2].revents)
            }
            if pollSet[1].revents != 0 { readForkServer() }
            enforceDeadlines(now: monotonicNanoseconds())
        }
    }

    /// Milliseconds until the nearest deadline: a task's time limit, a kill, the next spawn.
    private func pollTimeout(now: UInt64, nextQueuedDeadline: UInt64?) -> Int32 {
        var nearest = nextQueuedDeadline
        for worker in workers {
            for deadline in [worker.taskDeadline, worker.killDeadline].compactMap({ $0 }) {
                nearest = min(nearest ?? deadline, deadline)
            }
        }
        if missingWorkers > 0 && startFailures.nextSpawnTime > now {
            nearest = min(nearest ?? startFailures.nextSpawnTime, startFailures.nextSpawnTime)
        }
        if workers.contains(where: \.lent) {
            // A task sent by lane that nobody waits for is collected (and counted) within a
            // second, even if nothing else happens in the pool.
            nearest = min(nearest ?? now + 1_000_000_000, now + 1_000_000_000)
        }
        return ForkPool.pollTimeout(until: nearest, now: now)
    }

    /// Under the lock: expires, cancels and hands out tasks; says whether the loop is done.
    /// `expired`: queued tasks just failed for passing their deadline (to be counted outside the lock).
    private func takeWork(now: UInt64) -> (assigned: [Int], dropped: [(PendingTask, ForkPoolError)], expired: [PendingTask],
                                           cancelled: Set<UInt64>, nextQueuedDeadline: UInt64?, finished: Bool) {
        lock.withLock {
            var dropped: [(PendingTask, ForkPoolError)] = []
            var expired: [PendingTask] = []
            if cancelRequested {
                for task in queue.removeAll() {
                    dropped.append((task, .cancelledByShutdown(taskID: task.id)))
                }
                queuedWithDeadline.removeAll()
            }
            if case .broken(let error) = phase {
                for task in queue.removeAll() + retries.removeAll() {
                    var failure = error
                    failure.taskID = task.id
                    dropped.append((task, failure))
                }
                queuedWithDeadline.removeAll()
            }
            // Queued tasks past their deadline fail without ever running.
            var nextQueuedDeadline: UInt64?
            queuedWithDeadline.removeAll { task in
                // A task that left the queue is the running-task deadline's business (or done):
                // holding it here until its deadline would keep every finished task alive.
                guard let deadline = task.deadline, !task.leftQueue else { return true }
                if deadline <= now {
                    if task.failIfQueued(ForkPoolError(.timedOut, "task \(task.id) reached its deadline before a worker was free",
                                                       taskID: task.id)) {
                        expired.append(task)
                    }
                    return true
                }
                nextQueuedDeadline = min(nextQueuedDeadline ?? deadline, deadline)
                return false
            }
            var assigned: [Int] = []
            for index in workers.indices where workers[index].isIdle {
                if let retry = retries.popFirst() {
                    assign(retry, to: index, now: now)
                    assigned.append(index)
                    continue
                }
                while let task = queue.popFirst() {
                    task.leftQueue = true
                    if task.start() {
                        assign(task, to: index, now: now)
                        assigned.append(index)
                        break
                    }
                }
                if queue.isEmpty && retries.isEmpty { break }
            }
            let cancelled = cancelledRunning
            // A task a caller still holds on its lane is cancelled by `reclaimLanes` on a later
            // turn: keep its id until then.
            cancelledRunning = cancelledRunning.filter { id in
                workers.contains { $0.lent && $0.lane.callersTask?.id == id }
            }
            if case .starting = phase, workers.filter(\.isReady).count >= settings.workerCount {
                phase = .running
                lock.broadcast()
            }
            lanesAllowed = lanesMayOpen
            if lanesAllowed && queue.isEmpty {
                for index in workers.indices where workers[index].isIdle && workers[index].lane.socket >= 0 {
                    workers[index].lent = true
                    workers[index].lane.open()
                    openLanes.append(workers[index].lane)
                }
            }
            let busy = workers.contains { ($0.task != nil && $0.fault == nil) || $0.lent } || detachedReaders > 0 || !orphans.isEmpty
            let finished: Bool
            if case .failedToStart = phase {
                finished = true
            } else {
                finished = shutdownRequested && queue.isEmpty && retries.isEmpty && !busy
            }
            return (assigned, dropped, expired, cancelled, nextQueuedDeadline, finished)
        }
    }

    /// Under the lock: whether idle workers may be lent to submitting threads.
    private var lanesMayOpen: Bool {
        guard lanesEnabled, !shutdownRequested, retries.isEmpty, case .running = phase else { return false }
        return true
    }

    // MARK: Direct lanes

    /// Takes back what submitting threads hold or gave back: tasks sent by lane that nobody
    /// reads yet (this thread reads their replies from now on), lanes returned after a reply,
    /// a time-out or a fault, and open lanes when they may not stay open (queued work,
    /// shutdown, a retry). Kills a worker whose lane task was cancelled while a caller reads,
    /// and settles the tasks that readers of exited workers gave back.
    private func reclaimLanes(now: UInt64) {
        guard lanesEnabled else { return }
        var returned: [(index: Int, task: PendingTask?, why: DirectLane.Return)] = []
        var cancelled: [(index: Int, task: PendingTask)] = []
        let orphaned = lock.withLock { () -> [DirectLane.Orphan] in
            let mayStayOpen = lanesMayOpen && queue.isEmpty
            for index in workers.indices where workers[index].lent {
                switch workers[index].lane.reclaim(mayStayOpen: mayStayOpen, cancelled: cancelledRunning) {
                case .keep:
                    break
                case .closed:
                    workers[index].lent = false
                case .adopt(let task):
                    unreadLaneTasks -= 1
                    workers[index].lent = false
                    adopt(task, at: index)
                case .returned(let task, let why):
                    workers[index].lent = false
                    returned.append((index, task, why))
                case .cancel(let task):
                    cancelled.append((index, task))
                }
            }
            openLanes.removeAll { if case .open = $0.state { false } else { true } }
            lanesAllowed = mayStayOpen
            defer { orphans.removeAll() }
            return orphans
        }
        for (index, task, why) in returned { laneReturned(index, task: task, why, now: now) }
        for (index, task) in cancelled {
            workers[index].fault = ForkPoolError(.cancelled, "task \(task.id) was cancelled while running", taskID: task.id,
                                                 processID: workers[index].pid)
            terminate(index, now: now)
        }
        for orphan in orphaned {
            switch orphan.error {
            case nil:
                accounting.recordAttemptEnded(of: orphan.task, slot: orphan.slot)
                orphan.task.frame[3] = 0
                retries.append(orphan.task)
            case let error? where orphan.crashed:
                handleCrash(of: orphan.task, error: error, slot: orphan.slot)
            case let error?:
                accounting.recordOutcome(of: orphan.task, failure: error.code, slot: orphan.slot)
                orphan.task.fail(error)
            }
        }
    }

    /// The worker at `index` takes up a task a caller sent it by lane, as if this thread had
    /// assigned it; a resend (a retry) no longer asks the worker to spin.
    private func adopt(_ task: PendingTask, at index: Int) {
        workers[index].task = task
        if task.frame.count > 3 { task.frame[3] = 0 }
    }

    /// A lane came back to this thread: the worker takes up `task` (if any) as if it had been
    /// assigned here, and what ended the caller's read is dealt with as for any worker.
    private func laneReturned(_ index: Int, task: PendingTask?, _ why: DirectLane.Return, now: UInt64) {
        workers[index].task = nil
        if let task { adopt(task, at: index) }
        switch why {
        case .idle, .stoppedWaiting:
            break
        case .endOfStream:
            workers[index].socketEnded(now: now)
        case .undelivered:
            // The worker's end was closed before the frame got there: it is exiting, and the
            // task, which never ran, goes to the next free worker.
            workers[index].task = nil
            workers[index].socketEnded(now: now)
            if let task {
                task.handedOutAt = nil
                retries.append(task)
            }
        case .fault(let fault):
            giveUp(on: index, fault)
        }
    }

    /// The worker at `index` is leaving the pool (it exited, or the fork server died): takes
    /// its lane back. A caller still sending or reading is left to finish with what the socket
    /// holds (shut down, so a blocked send or read ends at once), its task to fail with `error`
    /// if no reply is there (`crashed`: through the crash policy). Returns the task of a caller
    /// that still uses the socket (this thread must not read it then).
    @discardableResult
    private func withdrawLane(_ index: Int, error: (PendingTask) -> ForkPoolError, crashed: Bool, now: UInt64) -> PendingTask? {
        guard workers[index].lent else { return nil }
        workers[index].lent = false
        let lane = workers[index].lane
        var heldByCaller: PendingTask?
        let returned = lock.withLock { () -> (task: PendingTask?, why: DirectLane.Return)? in
            defer { openLanes.removeAll { $0 === lane } }
            switch lane.withdraw(error: error, crashed: crashed) {
            case .closed:
                break
            case .adopt(let task):
                unreadLaneTasks -= 1
                adopt(task, at: index)
            case .returned(let task, let why):
                return (task, why)
            case .detached(let task):
                detachedReaders += 1
                heldByCaller = task
            }
            return nil
        }
        if let returned { laneReturned(index, task: returned.task, returned.why, now: now) }
        return heldByCaller
    }

    private func assign(_ task: PendingTask, to index: Int, now: UInt64) {
        var deadline = task.deadline
        if let limit = configuration.taskTimeout {
            let end = now + UInt64(limit * 1e9)
            deadline = min(deadline ?? end, end)
        }
        workers[index].assign(task, deadline: deadline)
    }

    /// Starts sending the tasks just assigned to these workers, then records how long each
    /// waited in the queue (after the sends, so metrics never delay a task).
    private func handOut(_ assigned: [Int]) {
        guard !assigned.isEmpty else { return }
        let now = monotonicNanoseconds()
        for index in assigned {
            workers[index].task?.handedOutAt = now
            flush(index)
        }
        for index in assigned {
            guard let task = workers[index].task else { continue }
            accounting.recordHandedOut(queuedNanoseconds: now > task.enqueuedAt ? now - task.enqueuedAt : 0)
        }
    }

    /// Under a retry policy a task's frame must survive its first send.
    private var keepsSentFrames: Bool {
        if case .retry = configuration.crashPolicy { true } else { false }
    }

    private func flush(_ index: Int) {
        do {
            try workers[index].flush(keepSent: keepsSentFrames)
        } catch {
            giveUp(on: index, error)
        }
    }

    // MARK: Worker sockets

    /// Reads everything the socket has and handles the frames that arrived, one at a time
    /// (a frame's consequences — a recycled worker dismissed — come before the next is read).
    private func service(_ index: Int, events: Int16) {
        if events & Int16(POLLOUT) != 0 { flush(index) }
        guard workers[index].socket >= 0, events & ~Int16(POLLOUT) != 0 else { return }
        let (pid, slot) = (workers[index].pid, workers[index].slot)
        while workers[index].socket >= 0 {
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
                startFailures.reset()
                publishWorkers()
                dismissOneRetiringWorker()
            case .taskDone?:
                checkRecycling(index)
            case .fault(let error)?:
                giveUp(on: index, error)
                return
            }
        }
    }

    /// The worker broke the protocol or its socket: kill it; its task fails with `fault` once
    /// the process is reaped.
    private func giveUp(on index: Int, _ fault: ForkPoolError) {
        if workers[index].fault == nil {
            workers[index].fault = DirectLane.describe(fault, worker: workers[index].pid, task: workers[index].task?.id)
        }
        workers[index].closeSocket()
        workers[index].signal(SIGKILL)
    }

    /// Stops a worker whose task timed out or was cancelled: the task fails with `fault` now;
    /// the worker gets SIGTERM (then SIGKILL after the grace period) or SIGKILL at once.
    private func stop(_ index: Int, _ fault: ForkPoolError, now: UInt64) {
        guard workers[index].fault == nil else { return }
        workers[index].fault = fault
        if let task = workers[index].task {
            accounting.recordOutcome(of: task, failure: fault.code, slot: workers[index].slot)
            task.fail(fault)
        }
        terminate(index, now: now)
    }

    /// Closes the socket and signals the worker: SIGTERM (SIGKILL after the grace period) or
    /// SIGKILL at once. A caller reading its lane sees end of stream.
    private func terminate(_ index: Int, now: UInt64) {
        workers[index].taskDeadline = nil
        workers[index].closeSocket()
        if workers[index].lent { _ = Glibc.shutdown(workers[index].lane.socket, CInt(SHUT_RDWR)) }
        if configuration.terminationGracePeriod > 0 {
            workers[index].signal(SIGTERM)
            workers[index].killDeadline = now + UInt64(configuration.terminationGracePeriod * 1e9)
        } else {
            workers[index].signal(SIGKILL)
        }
    }

    private func enforceDeadlines(now: UInt64) {
        for index in workers.indices {
            if let deadline = workers[index].taskDeadline, deadline <= now, let task = workers[index].task {
                accounting.logger.debug("task timed out", metadata: ["forkpool.task_id": "\(task.id)", "forkpool.pid": "\(workers[index].pid)",
                                                          "forkpool.worker": "\(workers[index].slot)"])
                let limit = configuration.taskTimeout.map { "its time limit of \($0) s" } ?? "its deadline"
                stop(index, ForkPoolError(.timedOut, "task \(task.id) ran past \(limit) in worker process \(workers[index].pid), "
                                          + "which was killed", taskID: task.id, processID: workers[index].pid), now: now)
            }
            if let deadline = workers[index].killDeadline, deadline <= now {
                workers[index].signal(SIGKILL)
                workers[index].killDeadline = nil
            }
        }
    }

    // MARK: Recycling

    private func checkRecycling(_ index: Int) {
        guard !workers[index].retiring else { return }
        var metadata: Logger.Metadata
        if workers[index].tasksDone >= workers[index].taskLimit {
            metadata = ["forkpool.reason": "task limit"]
        } else if let ceiling = configuration.maximumWorkerResidentBytes, case let resident = workers[index].residentBytes(),
                  resident > ceiling {
            metadata = ["forkpool.reason": "memory", "forkpool.resident_bytes": "\(resident)"]
        } else {
            return
        }
        metadata["forkpool.pid"] = "\(workers[index].pid)"
        metadata["forkpool.worker"] = "\(workers[index].slot)"
        metadata["forkpool.tasks_done"] = "\(workers[index].tasksDone)"
        accounting.logger.debug("worker recycled", metadata: metadata)
        // The replacement is requested now (the retiring worker no longer counts); the old one
        // leaves when a new worker is ready.
        workers[index].retiring = true
        if lock.withLock({ shutdownRequested }) { workers[index].dismiss() }
    }

    private func dismissOneRetiringWorker() {
        if let index = workers.firstIndex(where: { $0.retiring && $0.task == nil && $0.socket >= 0 }) {
            workers[index].dismiss()
        }
    }

    // MARK: The fork server

    private func startForkServer() throws(ForkPoolError) {
        let server = try ForkServerClient.start(serverOptions: configuration.forkServerOptions,
                                                workerOptions: configuration.workerForkOptions, workerMain: workerMain)
        forkServer = server
        lock.withLock { publishedForkServerPID = server.pid }
    }

    /// Workers to ask for. A dead or killed worker keeps its slot until the fork server reports
    /// its exit (so a crash is judged before a replacement can take queued tasks); a retiring
    /// one gives its slot up at once (its replacement starts before it leaves).
    private var missingWorkers: Int {
        settings.workerCount - workers.filter { !$0.retiring }.count - spawnsInFlight
    }

    /// Asks the fork server for the workers the pool lacks (none while broken, or when
    /// shutting down with nothing left to run), pacing restarts after failed starts.
    private func requestWorkers(now: UInt64) {
        guard let forkServer, !stopping, missingWorkers > 0, now >= startFailures.nextSpawnTime else { return }
        let wanted = lock.withLock { () -> Bool in
            switch phase {
            case .broken, .failedToStart, .stopped: return false
            case .starting: return true
            case .running: return !shutdownRequested || !queue.isEmpty || !retries.isEmpty
            }
        }
        guard wanted else { return }
        for _ in 0..<missingWorkers {
            guard forkServer.requestWorker() else {
                forkServerDied()
                return
            }
            spawnsInFlight += 1
        }
    }

    /// Handles every report the fork server has sent.
    private func readForkServer() {
        while let server = forkServer {
            switch server.nextReport() {
            case .success(nil):
                return
            case .failure:
                forkServerDied()
                return
            case .success(.spawned(let pid, let socket, let pidfd)?):
                spawnsInFlight -= 1
                let slot = freeSlot()
                accounting.recordSpawned(pid, slot: slot)
                var worker = WorkerProcess(pid: pid, slot: slot, socket: socket, pidfd: pidfd,
                                           maximumFrameBytes: configuration.maximumFrameBytes, lendable: lanesEnabled)
                if let limit = configuration.maximumTasksPerWorker {
                    worker.taskLimit = limit + Int.random(in: 0...(limit / 10), using: &random)
                }
                workers.append(worker)
                if stopping { workers[workers.count - 1].dismiss() }
            case .success(.spawnFailed(let number)?):
                spawnsInFlight -= 1
                startFailed(ForkPoolError(.systemCallFailed, "the fork server could not fork a worker", errno: number))
            case .success(.exited(let pid, let status)?):
                if let index = workers.firstIndex(where: { $0.pid == pid }) { workerExited(index, status: status) }
            }
        }
    }

    /// A worker ended: fail, retry or break on its task, and count failed starts.
    private func workerExited(_ index: Int, status: WaitStatus) {
        let fault = workers[index].fault
        let callersTask = withdrawLane(index, error: { [worker = workers[index]] task in
            var running = worker
            running.task = task
            guard var fault else { return running.deathError(status: status) }
            fault.taskID = task.id
            return fault
        }, crashed: fault == nil, now: monotonicNanoseconds())
        // Whatever it wrote before it exited (a result, `initializerFailed`) counts: read it
        // first, even when the exit report overtook the socket's turn in the poll loop. (Not
        // while a caller reads it by lane.)
        if workers[index].socket >= 0 && callersTask == nil { service(index, events: Int16(POLLIN)) }
        var worker = workers.remove(at: index)
        worker.closeSocket()
        PoolDescriptors.close(worker.pidfd)
        accounting.logExit(of: worker, status: status, runningTask: worker.task ?? callersTask)
        accounting.recordGone(worker.pid, slot: worker.slot)
        if !worker.isReady {
            let cause = worker.startError.map { "the initializer threw: \($0)" } ?? worker.deathError(status: status).message
            startFailed(ForkPoolError(.poolBroken, "worker process \(worker.pid) failed to start: \(cause)",
                                      processID: worker.pid))
        }
        if let task = worker.task {
            if var fault = worker.fault {
                fault.taskID = task.id
                accounting.recordOutcome(of: task, failure: fault.code, slot: worker.slot)
                task.fail(fault)
            } else {
                handleCrash(of: task, error: worker.deathError(status: status), slot: worker.slot)
            }
        }
        publishWorkers()
    }

    private func handleCrash(of task: PendingTask, error: ForkPoolError, slot: Int) {
        switch configuration.crashPolicy.decide(for: task, error: error) {
        case .fail(let failure):
            accounting.recordOutcome(of: task, failure: failure.code, slot: slot)
            task.fail(failure)
        case .retry:
            accounting.recordAttemptEnded(of: task, slot: slot)
            task.enqueuedAt = monotonicNanoseconds()
            retries.append(task)
        case .breakPool(let failure, let broken):
            accounting.recordOutcome(of: task, failure: failure.code, slot: slot)
            task.fail(failure)
            breakPool(broken)
        }
    }

    /// Counts a failed start; past the limit the pool breaks instead of restarting forever.
    private func startFailed(_ error: ForkPoolError) {
        if let broken = startFailures.count(error, now: monotonicNanoseconds()) { breakPool(broken) }
    }

    private func breakPool(_ error: ForkPoolError) {
        accounting.logger.debug("pool broken", metadata: ["forkpool.error": "\(error.message)"])
        lock.withLock {
            switch phase {
            case .starting:
                phase = .failedToStart(error)
                shutdownRequested = true
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
    private func forkServerDied() {
        guard let server = forkServer else { return }
        forkServer = nil
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
            worker.closeSocket()
            worker.signal(SIGKILL)
            PoolDescriptors.close(worker.pidfd)
            if let task = worker.task {
                let error = worker.fault ?? diedWithServer(worker.pid, task)
                accounting.recordOutcome(of: task, failure: error.code, slot: worker.slot)
                task.fail(error)
            }
        }
        accounting.recordGone()
        spawnsInFlight = 0
        publishWorkers()
        lock.withLock { publishedForkServerPID = nil }
        guard !stopping else { return }
        startFailed(ForkPoolError(.poolBroken, "the fork server (process \(server.pid)) ended with \(status)"))
        if case .broken = lock.withLock({ phase }) { return }
        do {
            try startForkServer()
        } catch {
            breakPool(error)
        }
    }

    // MARK: Slots and published pids

    /// The lowest slot that no worker still counted towards the pool holds (a retiring worker
    /// has handed its slot to its replacement already). There always is one: a worker is asked
    /// for only when one is missing.
    private func freeSlot() -> Int {
        let taken = workers.filter { !$0.retiring }.map(\.slot)
        return (0..<settings.workerCount).first { !taken.contains($0) } ?? 0
    }

    private func publishWorkers() {
        let pids = workers.filter { $0.isReady && $0.isServing }.map(\.pid)
        lock.withLock { publishedPIDs = pids }
    }

    // MARK: Shutdown

    /// Asks every worker to exit, waits up to the grace period for the fork server to report
    /// each exit, then kills the rest.
    private func stopWorkers() {
        stopping = true
        // A pool that failed to start has no task to finish: what it started is killed at once.
        let killAtOnce = lock.withLock {
            if case .failedToStart = phase { return true }
            return dispatcherFailure != nil
        }
        let deadline = monotonicNanoseconds() + (killAtOnce ? 0 : UInt64(configuration.shutdownGracePeriod * 1e9))
        var killedAt: UInt64?
        while (!workers.isEmpty || spawnsInFlight > 0), let control = forkServer?.control {
            for index in workers.indices where workers[index].socket >= 0 { workers[index].dismiss() }
            let now = monotonicNanoseconds()
            if now >= deadline && killedAt == nil {
                workers.forEach { $0.signal(SIGKILL) }
                killedAt = now
            }
            if let killedAt, now > killedAt + 5_000_000_000 { break }  // the server stopped reporting
            var pollSet = [pollfd(fd: control, events: Int16(POLLIN), revents: 0)]
            let timeout = killedAt == nil ? ForkPool.pollTimeout(until: deadline, now: now) : 100
            _ = retryingInterrupts { poll(&pollSet, 1, timeout) }
            if pollSet[0].revents != 0 { readForkServer() }
        }
        for index in workers.indices.reversed() {
            withdrawLane(index, error: { task in
                ForkPoolError(.poolShutDown, "the pool shut down while task \(task.id) ran", taskID: task.id)
            }, crashed: false, now: monotonicNanoseconds())
            var worker = workers.remove(at: index)
            worker.closeSocket()
            worker.signal(SIGKILL)
            PoolDescriptors.close(worker.pidfd)
        }
        publishWorkers()
    }

    /// Closes the control socket; the fork server exits on end of stream and is reaped.
    private func stopForkServer() {
        guard let server = forkServer else { return }
        forkServer = nil
        _ = server.stop()
        lock.withLock { publishedForkServerPID = nil }
    }
}
