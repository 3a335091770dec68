// Dispatcher+Lanes: the direct lanes, from the dispatcher's side — a submitting thread that
// takes an open lane and sends its task itself, a waiting caller that reads the reply itself,
// and the dispatcher's turn that takes back what callers gave back or left unread.
//
//   submit ─▶ lane open? ─ no ─▶ queue; the dispatcher woken unless the lanes carry the queue
//                        └ yes ─▶ beginSending ─▶ send on the lane's socket ─▶ endSending
//   get()  ─▶ queued? note a blocked reader (a lane may be handed to it)
//          ─▶ claimForReading ─▶ LaneConnection.receiveReply ─▶ endReading ─▶ reopened | returned | detached
//          reopened, queue not empty (lane hand-off) ─▶ within the serving window: send the next
//          task, read its reply for its caller, again │ past it: send the next task whose caller
//          blocks and wake that caller to read it │ next task not for a lane: give the lane back
//   each turn: reclaimLanes ─▶ DirectLane.reclaim ─▶ adopt a task nobody reads / laneReturned / kill a cancelled one
//   a worker leaves ─▶ withdrawLane ─▶ DirectLane.withdraw (a caller still on it is detached)
//
// The lane's states and their transitions are DirectLane's; this file keeps the dispatcher's
// books about them (open lanes, tasks sent but unread, detached readers, lanes.orphans), all under
// the dispatcher's `lock`.
import CForkShim
import ForkPoolWire
import Glibc

extension Dispatcher {
    /// Sends `task` straight to an idle worker from this thread when the queue is empty and a
    /// lane is open (its future then lets the first waiting caller read the reply itself);
    /// otherwise queues it — without waking the dispatcher when callers on every lane will
    /// take it from the queue themselves.
    func submit(_ task: PendingTask) throws(ForkPoolError) {
        guard settings.lanesEnabled, task.fitsLane else {
            return try enqueue(task, now: monotonicNanoseconds())
        }
        let now = monotonicNanoseconds()
        let lane = try lock.withLock { () throws(ForkPoolError) -> DirectLane? in
            try checkAcceptingLocked()
            guard lanes.mayLend, queue.isEmpty, let lane = lanes.open.popLast() else {
                try queue.checkRoom()
                queue.append(task, now: now)
                if !lanes.lanesCarryTheQueue(workerCount: settings.workerCount) { wakeLocked() }
                return nil
            }
            task.enqueuedAt = now
            task.leftQueue = true
            _ = task.start()
            startOnLaneLocked(task, lane: lane, now: now)
            task.bindLocked(lane)  // nobody has the future yet: the first to block on it reads the reply
            return lane
        }
        guard let lane else { return }
        _ = sendOnLane(lane, task, reader: .firstToBlock)
    }

    /// Under the lock: `lane` (open) takes `task`, which this thread sends next.
    func startOnLaneLocked(_ task: PendingTask, lane: DirectLane, now: UInt64) {
        FrameHeader.markSentByLane(&task.frame, true)  // the worker may spin for this lane's next task
        lane.beginSending(task)
        task.handedOutAt = now
    }

    /// Sends the frame of `task`, which `lane` took (`.sending`), from this thread, and books
    /// how that went; `reader` reads the reply. Returns whether the frame is out on the lane.
    func sendOnLane(_ lane: DirectLane, _ task: PendingTask, reader: DirectLane.Reader) -> Bool {
        let delivered = lane.connection.send(task.frame)
        Self.testPauseAfterLaneSend?()
        accounting.paths.laneSends.add(1, ordering: .relaxed)
        if reader == .sender { accounting.paths.servedByLane.add(1, ordering: .relaxed) }
        let now = monotonicNanoseconds()
        accounting.recordHandedOut(queuedNanoseconds: task.waitedInQueue(until: now))
        let end = lock.withLock { () -> DirectLane.SendEnd in
            let end = lane.endSending(task, delivered: delivered, reader: reader)
            switch end {
            case .sent:
                if reader != .sender { lanes.unreadTasks += 1 }
                // Its owner stopped blocking meanwhile (and took the claim): the dispatcher reads it.
                if reader == .wokenOwner && !task.holdsLaneClaimLocked { wakeLocked() }
            case .undelivered:
                wakeLocked()
            case .orphaned(let orphan):
                lanes.detachedReaders -= 1
                lanes.orphans.append(orphan)
                wakeLocked()
            case .detached:
                break
            }
            return end
        }
        switch end {
        case .sent: return true
        case .undelivered, .orphaned: return false
        case .detached: break
        }
        // The worker exited after the frame got there: what it wrote before it went (its reply,
        // the note that says why it died) is all on the socket, shut down now. Read it to the end.
        let outcome = lane.connection.receiveReply(for: task, until: nil) { failure in
            self.accounting.recordOutcome(of: task, failure: failure, slot: lane.slot)
        }
        lock.withLock {
            if case .detached(let orphan) = lane.endReading(task, outcome: outcome, mayReopen: false) {
                lanes.detachedReaders -= 1
                if let orphan { lanes.orphans.append(orphan) }
                wakeLocked()
            }
        }
        return false
    }

    /// Under the lock: the queue's next task if it may go by lane (`forBlockedReader`: only if
    /// a thread blocks on it in `get()`), taken out of the queue and started.
    func takeQueuedForLaneLocked(forBlockedReader: Bool) -> PendingTask? {
        let next = queue.startFirst { $0.fitsLane && (!forBlockedReader || $0.awaitsLaneReader) }
        if next != nil && queue.hasParked { wakeLocked() }  // room for a caller waiting to submit
        return next
    }

    /// Tests only: runs after a caller sent a frame by lane, before it books the send (a test
    /// lets the worker die there).
    nonisolated(unsafe) static var testPauseAfterLaneSend: (() -> Void)?

    /// Tests only: runs when a caller serving the queue stopped waiting for a served reply,
    /// before it takes the lock to hand the read over (a test kills the worker there).
    nonisolated(unsafe) static var testPauseAfterServedReadStopped: (() -> Void)?

    /// A thread blocks in `get()` on `task`: while it is queued, a lane may be handed to it.
    func noteBlockedReader(_ task: PendingTask) {
        lock.withLock { task.noteBlockedReaderLocked() }
        accounting.paths.blockedReaders.add(1, ordering: .relaxed)
    }

    /// A waiting caller reads `task`'s reply from its lane, unless the dispatcher has taken
    /// the task over. Then, while the pool may lend and for at most `servingWindow`, it serves
    /// the queue from the same lane: sends the next queued task and reads its reply too
    /// (completing that caller's future); past the window, or when a reply is slow, it leaves
    /// the last task to its blocked owner, woken to read it, or to the dispatcher. Finally it
    /// gives the lane back: open again, or to the dispatcher. The callers it served sleep on
    /// until then (their futures are complete; a waiter that spins sees it at once).
    func receiveByLane(_ task: PendingTask, until deadline: UInt64?) {
        let claimed = lock.withLock { () -> DirectLane? in
            guard let lane = task.takeLaneClaimLocked(), lane.claimForReading(task) else { return nil }
            lanes.unreadTasks -= 1
            return lane
        }
        guard let lane = claimed else { return }
        accounting.paths.laneReaders.add(1, ordering: .relaxed)
        defer { accounting.paths.laneReaders.subtract(1, ordering: .relaxed) }
        var reading = task
        var servingEnd: UInt64?  // set once the caller's own reply is in
        // Callers whose tasks this one serves are woken once it leaves the lane, not as each
        // reply comes: a thread woken mid-window takes a core from this one or from the worker.
        var served: [PendingTask] = []
        defer { for done in served { done.completion.releaseWakes() } }
        while true {
            let current = reading
            if current !== task {
                current.completion.holdWakes()
                served.append(current)
            }
            let count = { (failure: ForkPoolError.Code?) in self.accounting.recordOutcome(of: current, failure: failure, slot: lane.slot) }
            var outcome = lane.connection.receiveReply(for: current, until: servingEnd ?? deadline, spinsOnly: servingEnd != nil, recordOutcome: count)
            if case .stoppedWaiting = outcome, lock.withLock({ lane.isDetached }) {
                // The worker is gone and its socket shut down: what it wrote before it exited is
                // all there, and counts. Read it to the end before giving up.
                outcome = lane.connection.receiveReply(for: current, until: nil, recordOutcome: count)
            }
            if current !== task, case .stoppedWaiting = outcome { Self.testPauseAfterServedReadStopped?() }
            let now = monotonicNanoseconds()
            if servingEnd == nil { servingEnd = now + DirectLane.servingWindow }
            let mayServe = now < servingEnd!
            let next = lock.withLock { () -> (task: PendingTask, reader: DirectLane.Reader)? in
                if current !== task, case .stoppedWaiting = outcome, current.awaitsLaneReader, !lane.isDetached {
                    // A served task's reply is slow: its blocked owner, woken next, reads it.
                    lane.handOverRead(current)
                    current.bindLocked(lane)
                    lanes.unreadTasks += 1
                    return (current, .wokenOwner)
                }
                switch lane.endReading(current, outcome: outcome, mayReopen: lanes.mayLend) {
                case .reopened:
                    guard let next = takeQueuedForLaneLocked(forBlockedReader: !mayServe) else {
                        if queue.isEmpty {
                            lanes.open.append(lane)
                        } else {
                            lane.returnIdle()
                            wakeLocked()
                        }
                        return nil
                    }
                    startOnLaneLocked(next, lane: lane, now: now)
                    if mayServe { return (next, .sender) }
                    next.bindLocked(lane)
                    return (next, .wokenOwner)
                case .returned:
                    wakeLocked()
                case .detached(let orphan):
                    lanes.detachedReaders -= 1
                    if let orphan { lanes.orphans.append(orphan) }
                    wakeLocked()
                }
                return nil
            }
            guard let next else { return }
            if next.task === current {  // handed over, already sent
                current.wakeReader()
                return
            }
            guard sendOnLane(lane, next.task, reader: next.reader) else { return }
            if next.reader == .wokenOwner {
                next.task.wakeReader()
                return
            }
            reading = next.task
        }
    }

    /// The caller will not read `task`'s reply: the dispatcher takes it over on its next turn.
    func handBack(_ task: PendingTask) {
        lock.withLock {
            if let lane = task.takeLaneClaimLocked(), lane.holdsUnread(task) { wakeLocked() }
        }
    }

    /// Under the lock: whether idle workers may be lent to submitting threads.
    var lanesMayOpen: Bool {
        guard settings.lanesEnabled, !shutdownRequest.asked, workers.retries.isEmpty, case .running = phase else { return false }
        return true
    }

    /// Takes back what submitting threads hold or gave back: tasks sent by lane that nobody
    /// reads yet (this thread reads their replies from now on), lanes returned after a reply,
    /// a time-out or a fault, and open lanes when they may not stay open (queued work,
    /// shutdown, a retry). Kills a worker whose lane task was cancelled while a caller reads,
    /// and judges the tasks that readers of exited workers gave back.
    func reclaimLanes(now: UInt64) {
        guard settings.lanesEnabled else { return }
        var returned: [(index: Int, task: PendingTask?, why: DirectLane.Return)] = []
        var cancelled: [(index: Int, task: PendingTask)] = []
        let orphaned = lock.withLock { () -> [DirectLane.Orphan] in
            let mayStayOpen = lanesMayOpen && queue.isEmpty
            for index in workers.indices where workers[index].isLent {
                guard let lane = workers[index].lane else { continue }  // lent implies a lane
                switch lane.reclaim(mayStayOpen: mayStayOpen, cancelled: cancelledRunning) {
                case .keep:
                    break
                case .closed:
                    giveBackLocked(index, lane)
                case .adopt(let task):
                    lanes.unreadTasks -= 1
                    giveBackLocked(index, lane)
                    adopt(task, at: index)
                case .returned(let task, let why):
                    giveBackLocked(index, lane)
                    returned.append((index, task, why))
                case .cancel(let task):
                    cancelled.append((index, task))
                }
            }
            lanes.open.removeAll { if case .open = $0.state { false } else { true } }
            lanes.mayLend = mayStayOpen
            defer { lanes.orphans.removeAll() }
            return lanes.orphans
        }
        for (index, task, why) in returned { laneReturned(index, task: task, why, now: now) }
        for (index, task) in cancelled {
            workers[index].stop(because: ForkPoolError(.cancelled, "task \(task.id) was cancelled while running",
                                                       taskID: task.id, processID: workers[index].pid))
            terminate(index, now: now)
        }
        for orphan in orphaned {
            switch orphan.error {
            case nil:
                accounting.recordAttemptEnded(of: orphan.task, slot: orphan.slot)
                FrameHeader.markSentByLane(&orphan.task.frame, false)
                workers.retries.append(orphan.task)
            case let error? where orphan.crashed:
                handleCrash(of: orphan.task, error: error, slot: orphan.slot)
            case let error?:
                fail(orphan.task, with: error, slot: orphan.slot)
            }
        }
    }

    /// Under the lock, the queue empty: lends every idle worker to submitting threads.
    func openIdleLanesLocked() {
        for index in workers.indices where workers[index].isIdle && !workers[index].hasOutgoing {
            guard let lane = workers[index].lane, lane.isLendable else { continue }
            lendLocked(index, lane)
            lanes.open.append(lane)
        }
    }

    /// Under the lock: if the queue's next task has a caller blocked on it, lends the idle
    /// worker at `index` for it — this thread sends it after the turn and wakes that caller,
    /// who reads the reply and serves the queue itself. Returns whether it did.
    func handOverToBlockedReaderLocked(_ index: Int, now: UInt64, into turn: inout DispatcherTurn) -> Bool {
        guard let lane = workers[index].lane, lane.isLendable, !workers[index].hasOutgoing, lanesMayOpen,
              let task = takeQueuedForLaneLocked(forBlockedReader: true) else { return false }
        lendLocked(index, lane)
        startOnLaneLocked(task, lane: lane, now: now)
        task.bindLocked(lane)
        turn.handedOver.append((lane, task))
        return true
    }

    /// Under the lock: lends the idle worker at `index` to callers (its lane open).
    func lendLocked(_ index: Int, _ lane: DirectLane) {
        workers[index].lend()
        lanes.lend(lane)
        lane.open()
    }

    /// Under the lock: the lent worker at `index` is the dispatcher's again.
    func giveBackLocked(_ index: Int, _ lane: DirectLane) {
        workers[index].giveBack()
        lanes.giveBack(lane)
    }

    /// The worker at `index` takes up a task a caller sent it by lane, as if this thread had
    /// assigned it; a resend (a retry) no longer asks the worker to spin.
    func adopt(_ task: PendingTask, at index: Int) {
        workers[index].adopt(task)
        FrameHeader.markSentByLane(&task.frame, false)
    }

    /// A lane came back to this thread: the worker takes up `task` (if any) as if it had been
    /// assigned here, and what ended the caller's read is dealt with as for any worker.
    func laneReturned(_ index: Int, task: PendingTask?, _ why: DirectLane.Return, now: UInt64) {
        if let task { adopt(task, at: index) }
        switch why {
        case .idle, .stoppedWaiting:
            break
        case .endOfStream:
            workers[index].socketEnded(now: now)
        case .undelivered:
            // The worker's end was closed before the frame got there: it is exiting, and the
            // task, which never ran, goes to the next free worker.
            workers[index].dropUndeliveredTask()
            workers[index].socketEnded(now: now)
            if let task {
                task.handedOutAt = nil
                workers.retries.append(task)
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
    func withdrawLane(_ index: Int, error: @escaping (PendingTask) -> ForkPoolError, crashed: Bool, now: UInt64) -> PendingTask? {
        guard workers[index].isLent else { return nil }
        guard let lane = workers[index].lane else {
            workers[index].giveBack()
            return nil
        }
        var heldByCaller: PendingTask?
        let returned = lock.withLock { () -> (task: PendingTask?, why: DirectLane.Return)? in
            giveBackLocked(index, lane)
            defer { lanes.open.removeAll { $0 === lane } }
            switch lane.withdraw(error: error, crashed: crashed) {
            case .closed:
                break
            case .adopt(let task):
                lanes.unreadTasks -= 1
                adopt(task, at: index)
            case .returned(let task, let why):
                return (task, why)
            case .detached(let task):
                lanes.detachedReaders += 1
                heldByCaller = task
            }
            return nil
        }
        if let returned { laneReturned(index, task: returned.task, returned.why, now: now) }
        return heldByCaller
    }

    // MARK: - After a dispatcher failure

    /// After a dispatcher failure: waits for callers still reading lanes of killed workers and
    /// fails the tasks they gave back (nobody else is left to run them).
    func failLeftovers(_ error: ForkPoolError) {
        let leftovers = lock.withLock { () -> [DirectLane.Orphan] in
            while lanes.detachedReaders > 0 { _ = lock.wait(untilMonotonicNanoseconds: monotonicNanoseconds() + 100_000_000) }
            defer { lanes.orphans.removeAll() }
            return lanes.orphans
        }
        for orphan in leftovers { fail(orphan.task, with: orphan.error ?? error, slot: orphan.slot) }
    }
}
