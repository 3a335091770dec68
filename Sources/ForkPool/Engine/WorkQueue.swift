// WorkQueue: the tasks waiting for a worker, in either engine — the queue, the queued tasks'
// deadlines, the bound on its length with the `submitWhenReady` callers parked for room, and
// the tasks cancelled while queued. Guarded by its owner's one lock (WorkQueueOwner).
//
//   submit ─ room? ─ yes ─▶ append ─▶ popFirst by a worker (or expire at its deadline)
//                  └ no ──▶ .overloaded, nothing queued
//   submitWhenReady ─ no room ─▶ parked, FIFO ─▶ room frees ─▶ appended, caller resumed
//   a queued task's future completes early (cancel) ─▶ abandoned: holds no place, never runs

/// One entry of a ``WorkQueue``: a task, as the queue needs to see it.
protocol QueuedWork {
    /// Whether the task's future completed while queued (cancelled): it holds no place.
    var isAbandoned: Bool { get }
    /// When the task must have started (monotonic ns), if it has a deadline.
    var deadline: UInt64? { get }
    /// Whether the task already left the queue (taken, or expired) though still in its storage.
    var hasLeftQueue: Bool { get }
    /// Marks the task as out of the queue.
    func leaveQueue()
    /// The task joined the queue at `now` (monotonic ns).
    func didEnqueue(at now: UInt64)
}

extension QueuedWork {
    var deadline: UInt64? { nil }
    var hasLeftQueue: Bool { false }
    func leaveQueue() {}
    func didEnqueue(at now: UInt64) {}
}

/// A caller of `submitWhenReady` waiting for room, holding the item it will queue.
struct ParkedSubmission<Item> {
    let id: UInt64
    let item: Item
    let continuation: UnsafeContinuation<Result<Void, ForkPoolError>, Never>

    /// Resumed with `result` (its item queued, or refused).
    func resumption(_ result: Result<Void, ForkPoolError>) -> ParkedResumption {
        ParkedResumption(continuation: continuation, result: result)
    }
}

/// A parked caller to resume, once the owner's lock is let go: its task queued, or why not.
struct ParkedResumption {
    let continuation: UnsafeContinuation<Result<Void, ForkPoolError>, Never>
    let result: Result<Void, ForkPoolError>

    func resume() { continuation.resume(returning: result) }

    /// The error a parked caller gets when its Swift task is cancelled.
    static var cancelled: ForkPoolError {
        ForkPoolError(.cancelled, "submitWhenReady was cancelled while it waited for room in the queue; nothing was queued")
    }
}

struct WorkQueue<Item: QueuedWork> {
    /// The most tasks that may wait; nil: no bound.
    let limit: Int?
    private var items = FIFOQueue<Item>()
    /// Queued tasks with a deadline, checked by `expire(now:)`.
    private var watched: [Item] = []
    private var parked: [ParkedSubmission<Item>] = []
    private var nextParkID: UInt64 = 0
    /// Tasks abandoned while queued since the queue was last cleaned of them: it is scanned
    /// only when there are some.
    private var abandoned = 0

    init(limit: Int?) {
        self.limit = limit
    }

    var count: Int { items.count }
    var isEmpty: Bool { items.isEmpty }
    /// The oldest task, left in the queue.
    var first: Item? { items.first }
    /// How many callers wait for room.
    var parkedCount: Int { parked.count }
    var hasParked: Bool { !parked.isEmpty }
    /// Queued tasks whose deadline is watched (for the tests that check none is held too long).
    var watchedCount: Int { watched.count }

    mutating func append(_ item: Item, now: UInt64) {
        item.didEnqueue(at: now)
        items.append(item)
        if item.deadline != nil { watched.append(item) }
    }

    /// The oldest task that has not left the queue (those at the head that have — expired,
    /// dropped — are let go of first).
    mutating func firstLive() -> Item? {
        while let item = items.first, item.hasLeftQueue { _ = items.popFirst() }
        return items.first
    }

    /// Takes out the oldest task that has not left the queue already, marking it as out.
    mutating func popFirst() -> Item? {
        while let item = items.popFirst() {
            guard !item.hasLeftQueue else { continue }
            item.leaveQueue()
            return item
        }
        return nil
    }

    /// Takes out every queued task (to fail them: shutdown, a broken pool).
    mutating func removeAll() -> [Item] {
        watched.removeAll()
        abandoned = 0
        return items.removeAll()
    }

    // MARK: Deadlines

    /// Takes the queued tasks past their deadline out of the watch (marked as out of the
    /// queue, to fail outside the lock), and returns them with the nearest deadline still
    /// watched. Tasks that left the queue otherwise are let go (or every finished task would
    /// be kept alive until its deadline).
    mutating func expire(now: UInt64) -> (expired: [Item], nextDeadline: UInt64?) {
        var expired: [Item] = []
        var nextDeadline: UInt64?
        watched.removeAll { item in
            guard let deadline = item.deadline, !item.hasLeftQueue else { return true }
            if deadline <= now {
                item.leaveQueue()
                expired.append(item)
                return true
            }
            nextDeadline = min(nextDeadline ?? deadline, deadline)
            return false
        }
        return (expired, nextDeadline)
    }

    // MARK: Admission

    /// Throws `.overloaded` when one more task does not fit (abandoned tasks dropped first).
    mutating func checkRoom() throws(ForkPoolError) {
        guard !hasRoom() else { return }
        throw ForkPoolError(.overloaded, "the pool's queue is full: \(items.count) tasks wait (maximumQueuedTasks is \(limit ?? 0))")
    }

    /// Whether one more task fits beside the queued ones, and nobody parked came first.
    mutating func hasRoom() -> Bool {
        guard let limit else { return true }
        if parked.isEmpty && items.count < limit { return true }
        dropAbandoned()
        return parked.isEmpty && items.count < limit
    }

    /// A queued task's future completed: the queue is cleaned of it when room is judged.
    mutating func noteAbandoned() {
        abandoned += 1
    }

    private mutating func dropAbandoned() {
        guard abandoned > 0 else { return }
        abandoned = 0
        _ = items.removeAll { item in
            guard item.isAbandoned else { return false }
            item.leaveQueue()
            return true
        }
    }

    /// A fresh id for a submission about to park (its cancellation handler finds it by id).
    mutating func makeParkID() -> UInt64 {
        nextParkID &+= 1
        return nextParkID
    }

    mutating func park(_ submission: ParkedSubmission<Item>) {
        parked.append(submission)
    }

    /// Takes out the submission `id` if it is still parked (its caller was cancelled).
    mutating func withdraw(_ id: UInt64) -> ParkedSubmission<Item>? {
        guard let index = parked.firstIndex(where: { $0.id == id }) else { return nil }
        return parked.remove(at: index)
    }

    /// Takes out every parked submission (the pool shut down or broke).
    mutating func withdrawAll() -> [ParkedSubmission<Item>] {
        defer { parked = [] }
        return parked
    }

    /// The parked submissions that fit now join the queue, oldest first; returns their callers
    /// to resume.
    mutating func admitParked(now: UInt64) -> [ParkedResumption] {
        guard let limit, !parked.isEmpty else { return [] }
        dropAbandoned()
        guard items.count < limit else { return [] }
        let count = min(limit - items.count, parked.count)
        let admitted = parked.prefix(count)
        parked.removeFirst(count)
        for submission in admitted { append(submission.item, now: now) }
        return admitted.map { $0.resumption(.success(())) }
    }
}

/// An engine that keeps its waiting tasks in a ``WorkQueue`` under its one lock: the process
/// pool's dispatcher and the thread engine. The calls below are both engines' backpressure.
protocol WorkQueueOwner: AnyObject, Sendable {
    associatedtype Item: QueuedWork
    var lock: ConditionLock { get }
    /// Guarded by `lock`.
    var queue: WorkQueue<Item> { get set }
    /// Under the lock: throws when the engine takes no more work (shut down, broken).
    func checkAcceptingLocked() throws(ForkPoolError)
    /// Under the lock: tasks were queued; wake whoever takes them.
    func didQueueLocked()
    /// Queues one task the fastest way the engine has (it may skip the queue), throwing
    /// `.overloaded` when the queue is full.
    func submit(_ item: Item) throws(ForkPoolError)
}

extension WorkQueueOwner {
    /// Queues `item`, or throws `.overloaded` when the queue is full (nothing queued).
    func enqueue(_ item: Item, now: UInt64) throws(ForkPoolError) {
        try lock.withLock { () throws(ForkPoolError) in
            try checkAcceptingLocked()
            try queue.checkRoom()
            queue.append(item, now: now)
            didQueueLocked()
        }
    }

    /// Queues `item` like `submit`, but when the queue is full suspends until there is room
    /// instead of throwing `.overloaded`; callers waiting for room are served first come, first
    /// served. Cancelling the calling Swift task while it waits throws `.cancelled` with
    /// nothing queued.
    func submitWhenReady(_ item: Item) async throws(ForkPoolError) {
        // A caller cancelled before it asks is refused at once, even with room.
        if Task.isCancelled { throw ParkedResumption.cancelled }
        do {
            return try submit(item)
        } catch where error.code == .overloaded {
            // Full: park below (the room is judged again under the lock).
        }
        let id = lock.withLock { queue.makeParkID() }
        let result: Result<Void, ForkPoolError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let now: Result<Void, ForkPoolError>? = lock.withLock {
                    if Task.isCancelled { return .failure(ParkedResumption.cancelled) }
                    do throws(ForkPoolError) {
                        try checkAcceptingLocked()
                    } catch {
                        return .failure(error)
                    }
                    guard queue.hasRoom() else {
                        queue.park(ParkedSubmission(id: id, item: item, continuation: continuation))
                        return nil
                    }
                    queue.append(item, now: monotonicNanoseconds())
                    didQueueLocked()
                    return .success(())
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let parked = lock.withLock { queue.withdraw(id) }
            parked?.continuation.resume(returning: .failure(ParkedResumption.cancelled))
        }
        try result.get()
    }

    /// Under the lock: parked tasks join the queue while there is room, or all fail once the
    /// engine stops accepting. The callers are to be resumed outside the lock.
    func admitParkedLocked(now: UInt64) -> [ParkedResumption] {
        guard queue.hasParked else { return [] }
        do {
            try checkAcceptingLocked()
        } catch {
            return queue.withdrawAll().map { $0.resumption(.failure(error)) }
        }
        let admitted = queue.admitParked(now: now)
        if !admitted.isEmpty { didQueueLocked() }
        return admitted
    }

    /// A queued task's future completed before it ran (cancelled): its place goes to a caller
    /// waiting for room, if any. Never called under the lock.
    func queuedTaskLeftEarly() {
        let resumptions = lock.withLock {
            queue.noteAbandoned()
            return admitParkedLocked(now: monotonicNanoseconds())
        }
        for resumption in resumptions { resumption.resume() }
    }

    /// Fails every parked caller with `error` (the engine stopped); call outside the lock.
    func refuseParked(_ error: ForkPoolError) {
        let parked = lock.withLock { queue.withdrawAll() }
        for submission in parked { submission.resumption(.failure(error)).resume() }
    }
}
