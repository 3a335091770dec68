// QueueAdmission: the backpressure of both pools — a bound on the tasks waiting in a pool's
// queue, and the async submitters suspended until there is room.
//
//   submit()           ─▶ room? ─ yes ─▶ queue
//                                └ no ──▶ throw .overloaded (nothing queued)
//   submitWhenReady()  ─▶ room? ─ yes ─▶ queue
//                                └ no ──▶ parked here (FIFO) ─▶ a task leaves the queue ─▶ the
//                                         oldest parked item joins the queue, its caller resumes
//                                         cancelled while parked ─▶ removed, throws .cancelled
//                                         shutdown / broken pool ─▶ every parked caller throws
//
// The pool guards this with its own lock and resumes the returned continuations after it lets
// go of the lock. A queued task that is cancelled leaves room at once: the pool drops such
// tasks from its queue before it judges the room (`removeAll(where:)` on its FIFOQueue).

/// A caller of `submitWhenReady` waiting for room, holding the item it will queue.
struct ParkedSubmission<Item> {
    let id: UInt64
    let item: Item
    let continuation: UnsafeContinuation<Result<Void, ForkPoolError>, Never>
}

struct QueueAdmission<Item> {
    /// The most tasks that may wait in the queue; nil: no bound.
    let limit: Int?
    private var parked: [ParkedSubmission<Item>] = []
    private var nextID: UInt64 = 0

    init(limit: Int?) {
        self.limit = limit
    }

    /// Whether anyone waits for room.
    var hasParked: Bool { !parked.isEmpty }
    var parkedCount: Int { parked.count }

    /// Whether `adding` more tasks fit beside the `queued` ones (and nobody parked came first).
    func hasRoom(queued: Int, adding: Int = 1) -> Bool {
        guard let limit else { return true }
        return parked.isEmpty && queued + adding <= limit
    }

    /// The error a full queue gives `submit`.
    func overloaded(queued: Int) -> ForkPoolError {
        ForkPoolError(.overloaded, "the pool's queue is full: \(queued) tasks wait (maximumQueuedTasks is \(limit ?? 0))")
    }

    /// A fresh id for a submission about to park (its cancellation handler finds it by id).
    mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    mutating func park(_ submission: ParkedSubmission<Item>) {
        parked.append(submission)
    }

    /// The parked submissions that fit now beside `queued` tasks, oldest first, taken out; the
    /// pool queues their items and resumes them with success.
    mutating func admit(queued: Int) -> [ParkedSubmission<Item>] {
        guard let limit, !parked.isEmpty, queued < limit else { return [] }
        let count = min(limit - queued, parked.count)
        defer { parked.removeFirst(count) }
        return Array(parked.prefix(count))
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
}

/// A parked caller to resume, once the pool's lock is let go: its task queued, or why not.
struct ParkedResumption {
    let continuation: UnsafeContinuation<Result<Void, ForkPoolError>, Never>
    let result: Result<Void, ForkPoolError>

    func resume() { continuation.resume(returning: result) }
}

extension ParkedSubmission {
    /// Resumed with `result` (its item queued, or refused).
    func resumption(_ result: Result<Void, ForkPoolError>) -> ParkedResumption {
        ParkedResumption(continuation: continuation, result: result)
    }

    /// The error a parked caller gets when its Swift task is cancelled.
    static var cancelled: ForkPoolError {
        ForkPoolError(.cancelled, "submitWhenReady was cancelled while it waited for room in the queue; nothing was queued")
    }
}
