// Dispatcher+Admission: the process pool's backpressure — `maximumQueuedTasks` refusing a
// `submit` when the queue is full, and `submitWhenReady` callers parked until there is room.
//
//   submit ─▶ checkRoomLocked ─ full ─▶ drop cancelled tasks from the queue ─ still full ─▶ .overloaded
//   submitWhenReady ─▶ submit ─ .overloaded ─▶ park (QueueAdmission), suspended
//   each turn (takeWork) ─▶ admitParkedLocked: parked tasks join the queue while there is room
//                           (or fail: shutdown, broken) ─▶ resumed outside the lock
//   a queued task cancelled ─▶ its future's `leftQueueEarly` ─▶ queuedTaskLeftEarly ─▶ a turn
//   a parked caller cancelled ─▶ withdrawn, throws .cancelled, nothing queued
//
// Everything here runs under the dispatcher's `lock`, except the suspension itself.
extension Dispatcher {
    /// Under the lock: throws `.overloaded` when one more task does not fit in the queue. Tasks
    /// cancelled while queued hold no place: they are dropped from the queue first.
    func checkRoomLocked() throws(ForkPoolError) {
        guard !admission.hasRoom(queued: queue.count) else { return }
        dropCompletedQueuedLocked()
        guard admission.hasRoom(queued: queue.count) else { throw admission.overloaded(queued: queue.count) }
    }

    /// Under the lock: removes the queued tasks whose futures already completed (cancelled,
    /// expired); they would never run anyway.
    /// Only when some did (`queuedLeftEarly` counts them): no scan of a full queue otherwise.
    func dropCompletedQueuedLocked() {
        guard queuedLeftEarly > 0 else { return }
        queuedLeftEarly = 0
        queue.removeAll { task in
            guard task.completion.hasCompleted else { return false }
            task.leftQueue = true
            return true
        }
    }

    /// Queues `task` like `submit`, but when the queue is full suspends until there is room
    /// instead of throwing `.overloaded`. Cancelling the calling Swift task while it waits
    /// throws `.cancelled` with nothing queued.
    func submitWhenReady(_ task: PendingTask) async throws(ForkPoolError) {
        do {
            return try submit(task)
        } catch where error.code == .overloaded {
            // Full: park below (the room is judged again under the lock).
        }
        let id = lock.withLock { admission.makeID() }
        let result: Result<Void, ForkPoolError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let now: Result<Void, ForkPoolError>? = lock.withLock {
                    if Task.isCancelled { return .failure(ParkedSubmission<PendingTask>.cancelled) }
                    do throws(ForkPoolError) {
                        try checkAccepting()
                        try checkRoomLocked()
                    } catch where error.code == .overloaded {
                        admission.park(ParkedSubmission(id: id, item: task, continuation: continuation))
                        return nil
                    } catch {
                        return .failure(error)
                    }
                    appendLocked(task, now: monotonicNanoseconds())
                    wakeLocked()
                    return .success(())
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let parked = lock.withLock { admission.withdraw(id) }
            parked?.continuation.resume(returning: .failure(ParkedSubmission<PendingTask>.cancelled))
        }
        try result.get()
    }

    /// Under the lock, each turn: parked tasks join the queue while there is room, or all
    /// fail once the pool stops accepting. The callers are resumed outside the lock.
    func admitParkedLocked(now: UInt64) -> [ParkedResumption] {
        guard admission.hasParked else { return [] }
        do {
            try checkAccepting()
        } catch {
            return admission.withdrawAll().map { $0.resumption(.failure(error)) }
        }
        dropCompletedQueuedLocked()
        let admitted = admission.admit(queued: queue.count)
        for parked in admitted { appendLocked(parked.item, now: now) }
        if !admitted.isEmpty { wakeLocked() }  // the next turn hands them out
        return admitted.map { $0.resumption(.success(())) }
    }

    /// A queued task's future completed before it ran (cancelled): if anyone waits for room,
    /// the dispatcher's next turn gives them its place. Never called under the lock.
    func queuedTaskLeftEarly() {
        lock.withLock {
            queuedLeftEarly += 1
            if admission.hasParked { wakeLocked() }
        }
    }
}
