// PendingTask: one task as the dispatcher sees it — a ready-to-send frame, the dispatcher's
// bookkeeping, and its TaskCompletion: the caller's side, which the pool makes (one input's
// typed Future, or a chunk of `map`). The dispatcher deals only in bytes; the completion
// decodes the output and completes the future. The task is also its future's hook: cancel
// and a lane read go future → task → dispatcher → lane → frame reader.
import ForkPoolWire
import Glibc
import Synchronization

final class PendingTask: TaskHook, QueuedWork, @unchecked Sendable {
    let id: UInt64
    /// The frame, header + encoded input; released once sent.
    var frame: [UInt8]
    /// A large `[UInt8]` input's own bytes, sent after `frame` (the header counts them) with
    /// no copy; empty for every other input.
    var tail: [UInt8]
    /// Completes the caller's side.
    let completion: any TaskCompletion

    /// The caller's deadline (monotonic ns) from `submit(_:timeout:)`, if any.
    var deadline: UInt64?
    /// An async job's task (a fresh job pool's): it runs beside others on a worker, up to
    /// `jobsPerWorker`, never by lane or sent ahead.
    var concurrent = false
    /// Set (under the dispatcher's lock) once the task left the queue: started, or dropped as
    /// cancelled. From then on the queue's deadline watch lets go of it.
    var leftQueue = false
    /// The task's runs again after its worker died.
    var reruns = Reruns()

    struct Reruns {
        /// Through ``CrashPolicy/retry(times:)``.
        var retries = 0
        /// Once because its worker's ring said it never took it (never a second time).
        var neverTaken = false
    }

    // Dispatcher bookkeeping for stats and metrics (monotonic ns).
    /// When the task was queued (or queued again for a retry).
    var enqueuedAt: UInt64 = 0
    /// When the task was handed to its worker; nil while it is not on one.
    var handedOutAt: UInt64?
    /// Counted as ended (or cancelled): a later failure of the same task is not counted again.
    var isSettled = false

    /// The pool that runs the task: what stops it, and where a lane reply is read. Weak: the
    /// dispatcher holds its tasks (queued, running, on a lane) while it runs.
    private weak var dispatcher: Dispatcher?
    /// The lane the task went by while nobody reads its reply: the first caller to block on
    /// the future reads it itself. Guarded by the dispatcher's lock; `signals` says without
    /// the lock whether it may be set (most tasks never have one).
    private var laneClaim: DirectLane?
    /// What the task's callers and its dispatcher tell each other without a lock.
    private let signals = Atomic<UInt8>(0)

    /// The bits of `signals`.
    private enum Signal: UInt8 {
        /// `laneClaim` may be set.
        case laneClaimed = 1
        /// Sent to a busy worker behind the task it runs: on its way, so `cancel()` cannot stop it.
        case sentAhead = 2
        /// A thread blocks in `get()` on the future while the task is queued (set under the
        /// dispatcher's lock): a lane may be handed to that thread to read the reply.
        case blockedReader = 4
    }

    private func raise(_ signal: Signal) {
        signals.bitwiseOr(signal.rawValue, ordering: .sequentiallyConsistent)
    }

    private func lower(_ signal: Signal) {
        signals.bitwiseAnd(~signal.rawValue, ordering: .sequentiallyConsistent)
    }

    private func has(_ signal: Signal) -> Bool {
        signals.load(ordering: .sequentiallyConsistent) & signal.rawValue != 0
    }

    init(id: UInt64, frame: [UInt8], tail: [UInt8] = [], completion: any TaskCompletion, dispatcher: Dispatcher? = nil) {
        self.id = id
        self.frame = frame
        self.tail = tail
        self.completion = completion
        self.dispatcher = dispatcher
        completion.attach(self)
    }

    /// The task was never queued (refused: overloaded, shut down, cancelled while waiting for
    /// room): its future, which nobody will see, lets go of it.
    func refused() { completion.detach() }

    /// The task was sent behind the running one (true), or now runs (false).
    func markSentAhead(_ ahead: Bool) { if ahead { raise(.sentAhead) } else { lower(.sentAhead) } }

    /// Whether the task may be sent ahead of a running one: no deadline, and a frame one send
    /// takes (deadlines and async jobs are the dispatcher's to watch).
    var mayBeSentAhead: Bool {
        !concurrent && deadline == nil && tail.isEmpty && frame.count <= DirectLane.maximumFrameBytes
    }

    /// Whether the task may go by lane: one that may be sent ahead, and one input (a `map`
    /// chunk goes through the dispatcher, which sends chunks ahead).
    var fitsLane: Bool { mayBeSentAhead && completion.replyKind == .result }

    /// Under the dispatcher's lock: a thread blocks in `get()` on this task (and stays until
    /// it is done), so a caller or the dispatcher may send it on a lane and wake that thread to
    /// read the reply itself.
    var awaitsLaneReader: Bool { has(.blockedReader) }

    /// Under the dispatcher's lock: a thread blocks in `get()` on this queued task.
    func noteBlockedReaderLocked() {
        if !leftQueue && !completion.hasCompleted { raise(.blockedReader) }
    }

    /// The task was sent on a lane for its blocked reader: wakes that thread to read it.
    func wakeReader() { completion.wakeToReadReply() }

    /// Under the dispatcher's lock: the task went by `lane`; the first caller to block on its
    /// future reads the reply.
    func bindLocked(_ lane: DirectLane) {
        laneClaim = lane
        raise(.laneClaimed)
    }

    /// Under the dispatcher's lock: the lane claim, taken (nil once the task is done).
    func takeLaneClaimLocked() -> DirectLane? {
        defer {
            laneClaim = nil
            lower(.laneClaimed)
        }
        return completion.hasCompleted ? nil : laneClaim
    }

    /// Under the dispatcher's lock: whether a caller may still come to read the reply by lane.
    var holdsLaneClaimLocked: Bool { laneClaim != nil && !completion.hasCompleted }

    // MARK: QueuedWork (under the dispatcher's lock)

    var isAbandoned: Bool { completion.hasCompleted }
    var hasLeftQueue: Bool { leftQueue }
    func leaveQueue() { leftQueue = true }
    func didEnqueue(at now: UInt64) { enqueuedAt = now }

    /// When the task must end if handed to a worker at `now`: its own deadline or the pool's
    /// `taskTimeout` from now, whichever comes first.
    func runDeadline(taskTimeout: Duration?, now: UInt64) -> UInt64? {
        guard let limit = taskTimeout else { return deadline }
        let end = now + limit.nanoseconds
        return min(deadline ?? end, end)
    }

    /// How long the task waited in the queue, up to `now` (monotonic ns).
    func waitedInQueue(until now: UInt64) -> UInt64 { now > enqueuedAt ? now - enqueuedAt : 0 }

    // MARK: TaskHook

    var canStopRunning: Bool { !has(.sentAhead) && dispatcher != nil }

    func stopRunning() { dispatcher?.stopRunningTask(id) }

    var cancelsInPlace: Bool { concurrent }

    var cancelledCallerStopsRunning: Bool { dispatcher?.configuration.cancellationKillsRunningTasks ?? false }

    func leftQueueEarly() {
        guard let dispatcher, dispatcher.configuration.maximumQueuedTasks != nil else { return }
        dispatcher.queuedTaskLeftEarly()
    }

    func willBlock(until deadline: UInt64?) {
        guard let dispatcher else { return }
        if has(.laneClaimed) {
            dispatcher.receiveByLane(self, until: deadline)
        } else if deadline == nil && !has(.blockedReader) && dispatcher.settings.lanesEnabled {
            dispatcher.noteBlockedReader(self)
        }
    }

    func willNotBlock() {
        guard has(.laneClaimed), let dispatcher else { return }
        dispatcher.handBack(self)
    }

    /// Moves the task to running; false if it was cancelled while queued.
    func start() -> Bool { completion.start() }
    /// Completes with an error, which names this task.
    func fail(_ error: ForkPoolError) { completion.fail(naming(error)) }
    /// Fails the task only if it has not started; true if it did.
    func failIfQueued(_ error: ForkPoolError) -> Bool { completion.failIfQueued(naming(error)) }

    private func naming(_ error: ForkPoolError) -> ForkPoolError {
        var failure = error
        failure.taskID = id
        failure.jobName = completion.jobName
        return failure
    }

    /// Completes the task from a frame its worker sent, if the frame is its reply — this task's
    /// id, and its reply kind or a failure — counting it through `recordOutcome` first. False when the
    /// frame is not its reply (a protocol violation for whoever reads it).
    func complete(from header: FrameHeader, payload: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t,
                  recordOutcome: (ForkPoolError.Code?) -> Void) -> Bool {
        guard header.taskID == id else { return false }
        if header.kind == completion.replyKind {
            completion.finish(output: payload, tail: tail, worker: worker, recordOutcome: recordOutcome)
        } else if header.kind == .failure {
            let failure = taskFailure(from: payload, task: id, worker: worker)
            recordOutcome(failure.code)
            fail(failure)
        } else {
            return false
        }
        return true
    }
}

extension WorkQueue where Item == PendingTask {
    /// Under the owner's lock: takes out and starts the oldest queued task if it `fits`; nil
    /// when the queue's head does not (it stays queued) or the queue is empty. Tasks cancelled
    /// while queued are dropped on the way.
    mutating func startFirst(if fits: (PendingTask) -> Bool) -> PendingTask? {
        while let next = firstLive() {
            guard fits(next) else { return nil }
            _ = popFirst()
            if next.start() { return next }
        }
        return nil
    }
}
