// DirectLane: an idle worker lent to the submitting threads, so that a lone `submit` + `get`
// costs what the raw socket round trip costs.
//
//   dispatcher: worker idle, queue empty ─▶ lane .open (in `openLanes`)
//   submit():   queue empty, a lane open ─▶ .sending(task) ─▶ frame sent on the lane's own dup
//               of the socket, from the submitting thread (no eventfd, no dispatcher wake-up)
//               ─▶ .sent(task)
//   get():      .sent ─▶ .reading ─▶ spin briefly (on the shared ring, with no system call, when
//               the worker has one), then poll on the socket ─▶ reply decoded,
//               future completed on this thread ─▶ .open again (or .returned if the dispatcher
//               wants the worker: queue not empty, shutdown, cancellation)
//   hand-off:   the reader, its reply in, sends the queue's next task itself ─▶ .reading(next)
//               (it reads that reply for its caller) or, past `servingWindow`, ─▶ .sent(next,
//               readerComing) for the caller blocked on it, woken to read it (Dispatcher+Lanes)
//   anything else (isDone, await, onCompletion, a second waiter, the dispatcher's next turn):
//               .sent ─▶ the dispatcher takes the task over and reads the reply as for any task
//   end of stream, a bad frame, get(timeout:) running out ─▶ .returned(task, why) ─▶ the
//               dispatcher attaches the task to the worker and handles it as its own
//   the worker exits while a caller sends or reads ─▶ .detached(error), the socket shut down:
//               the caller finishes with what the socket holds; a task left without a reply
//               goes back to the dispatcher as an orphan (crash policy, stats; rerun if its
//               frame never got there), which waits for such callers at shutdown
//
// Every transition of `state` is a method here (open, beginSending/endSending,
// claimForReading/endReading, reclaim, withdraw), each returning what the dispatcher must do
// with its books (open lanes, unread tasks, detached readers, orphans). `state` and
// `withdrawn` are guarded by the dispatcher's lock. The worker's transport as a caller uses it
// (a dup of the socket, the borrowed frame reader, the spin) is its `LaneConnection`, which
// belongs to whoever the state says reads (the dispatcher in .closed/.open/.returned, the
// caller in .sending, .reading and .detached); the lock's hand-over orders their accesses.
// Lanes are off for tasks with deadlines and under recycling limits, whose bookkeeping only
// the dispatcher does; a pool with lanes off gives its workers none.
import Glibc

final class DirectLane: @unchecked Sendable {
    enum State {
        /// The dispatcher's: busy with one of its tasks, starting, leaving, or faulted.
        case closed
        /// Idle and up for grabs.
        case open
        /// A caller is sending this task's frame.
        case sending(PendingTask)
        /// A caller sent this task; nobody reads the reply yet. `readerComing`: a thread blocked
        /// on its future was woken to read it (the dispatcher leaves it to that thread).
        case sent(PendingTask, readerComing: Bool)
        /// A caller reads this task's reply.
        case reading(PendingTask)
        /// Given back to the dispatcher, with the task still to finish (if any) and why.
        case returned(PendingTask?, Return)
        /// The worker exited while a caller sent or read; a task left without a reply fails with
        /// the error this makes (`crashed`: through the crash policy), or runs elsewhere if its
        /// frame never got there. Made only once the caller is done: what the caller read last
        /// (a note from the worker's sandbox) can still be in it.
        case detached((PendingTask) -> ForkPoolError, crashed: Bool)
    }

    enum Return {
        /// The reply was handled; the worker is idle.
        case idle
        /// The caller stopped waiting (`get(timeout:)`); the task still runs.
        case stoppedWaiting
        /// The socket reached end of stream: the worker is exiting.
        case endOfStream
        /// The frame never reached the worker (its end was closed): the task is to run elsewhere.
        case undelivered
        /// A bad frame or a socket error (the task, if any, fails with it once the worker is gone).
        case fault(ForkPoolError)
    }


    let pid: pid_t
    let slot: Int
    /// The caller's end of the worker's transport: whoever the state says reads uses it.
    let connection: LaneConnection
    private(set) var state = State.closed
    /// Set when the dispatcher killed the worker while a caller read (a cancellation): the
    /// lane must not open again.
    var withdrawn = false

    /// How long a caller whose reply is in goes on serving the queue from its lane (sending
    /// the next task and reading its reply for its owner) before it returns: long enough to
    /// keep the worker busy through several tasks, short enough not to delay the caller much.
    static let servingWindow: UInt64 = 100_000
    /// Frames up to this size go by lane (one `send` takes them); larger ones, and inputs with
    /// a raw `[UInt8]` tail, go through the queue.
    static let maximumFrameBytes = 64 * 1024

    init(pid: pid_t, slot: Int, socket: CInt, inbox: FrameInbox) {
        self.pid = pid
        self.slot = slot
        connection = LaneConnection(pid: pid, socket: socket, inbox: inbox)
    }

    /// Whether the lane can be lent at all.
    var isLendable: Bool { connection.socket != nil }

    // MARK: The state machine — every transition, each called under the dispatcher's lock

    /// A task left without a reply by a worker that exited while a caller used this lane,
    /// going back to the dispatcher: to fail with `error` (through the crash policy if
    /// `crashed`), or, with no error, to run elsewhere because its frame never got there.
    struct Orphan {
        var task: PendingTask
        var error: ForkPoolError?
        var slot: Int
        var crashed: Bool
    }

    /// The dispatcher lends its idle worker.
    func open() { state = .open }

    /// submit(): this open lane takes `task`, whose frame the caller sends next.
    func beginSending(_ task: PendingTask) { state = .sending(task) }

    /// How a caller's send ended, for the dispatcher's books.
    enum SendEnd {
        /// The frame is out; a reader will come (`.sent`).
        case sent
        /// The frame did not get there (`.returned`, `.undelivered`).
        case undelivered
        /// The frame never got there and the worker exited meanwhile (the lane was
        /// `.detached`): the task goes back, to run elsewhere.
        case orphaned(Orphan)
        /// The frame got there and the worker exited meanwhile (`.detached`): the sender reads
        /// what the worker wrote before it went (its reply, or the note saying why it died) and
        /// ends as a reader of the detached lane (`endReading`).
        case detached
    }

    /// Who reads the reply of a task sent on the lane.
    enum Reader {
        /// The first caller to block on its future (`submit`'s task: nobody has the future yet).
        case firstToBlock
        /// The thread that sent it, at once (a caller serving the queue from its lane).
        case sender
        /// The thread blocked on its future, woken for it (`PendingTask.wakeReader`).
        case wokenOwner
    }

    func endSending(_ task: PendingTask, delivered: Bool, reader: Reader) -> SendEnd {
        switch state {
        case .detached where delivered:
            return .detached
        case .detached(_, let crashed):
            return .orphaned(Orphan(task: task, error: nil, slot: slot, crashed: crashed))
        case .sending where delivered:
            switch reader {
            case .sender: state = .reading(task)
            case .firstToBlock: state = .sent(task, readerComing: false)
            case .wokenOwner: state = .sent(task, readerComing: true)
            }
            return .sent
        default:
            state = .returned(task, .undelivered)
            return .undelivered
        }
    }

    /// get(): the caller takes the reply over, if `task` still waits on this lane unread.
    func claimForReading(_ task: PendingTask) -> Bool {
        guard case .sent(let sent, _) = state, sent === task else { return false }
        state = .reading(task)
        return true
    }

    /// A caller serving the queue stops waiting for `task`'s reply: its blocked owner, woken
    /// next, reads it (`.sent`, reader coming).
    func handOverRead(_ task: PendingTask) {
        if case .reading(let reading) = state, reading === task { state = .sent(task, readerComing: true) }
    }

    /// The caller that reopened the lane gives the idle worker back to the dispatcher (the
    /// queue's next task is not one for a lane).
    func returnIdle() {
        if case .open = state { state = .returned(nil, .idle) }
    }

    /// Whether a caller is on the lane who will end it through `endReading` or `endSending`
    /// (reading, or woken to read): the dispatcher need not be woken for work queued meanwhile,
    /// since that caller takes it or gives the lane back.
    var isDriven: Bool {
        switch state {
        case .reading, .sent(_, readerComing: true): true
        default: false
        }
    }

    /// Whether `task` was sent on this lane and nobody reads its reply yet.
    func holdsUnread(_ task: PendingTask) -> Bool {
        if case .sent(let sent, _) = state { sent === task } else { false }
    }

    /// The task a caller sends, sent, or reads on this lane.
    var callersTask: PendingTask? {
        switch state {
        case .sending(let task), .sent(let task, _), .reading(let task): task
        default: nil
        }
    }

    /// Whether the worker exited while a caller used the lane.
    var isDetached: Bool { if case .detached = state { true } else { false } }

    /// How a caller's read ended, for the dispatcher's books.
    enum ReadEnd {
        /// Open again for the next caller.
        case reopened
        /// Given back to the dispatcher (`.returned`).
        case returned
        /// The worker had exited (`.detached`); a task left without a reply goes back.
        case detached(Orphan?)
    }

    func endReading(_ task: PendingTask, outcome: LaneConnection.ReadOutcome, mayReopen: Bool) -> ReadEnd {
        if case .detached(let error, let crashed) = state {
            switch outcome {
            case .replied, .repliedThenFault:
                return .detached(nil)
            case .fault(let fault):
                return .detached(Orphan(task: task, error: Self.describe(fault, worker: pid, task: task.id), slot: slot, crashed: false))
            case .stoppedWaiting, .endOfStream:
                return .detached(Orphan(task: task, error: neverTook(task) ? nil : error(task), slot: slot, crashed: crashed))
            }
        }
        switch outcome {
        case .replied where mayReopen && !withdrawn:
            state = .open
            return .reopened
        case .replied: state = .returned(nil, .idle)
        case .repliedThenFault(let fault): state = .returned(nil, .fault(fault))
        case .stoppedWaiting: state = .returned(task, .stoppedWaiting)
        case .endOfStream: state = .returned(task, .endOfStream)
        case .fault(let fault): state = .returned(task, .fault(fault))
        }
        return .returned
    }

    /// What the dispatcher's turn does with a lent lane.
    enum Reclaim {
        /// Nothing now: still open, being sent on or read.
        case keep
        /// Closed (an open lane that may not stay open): the worker is the dispatcher's again.
        case closed
        /// Closed; the dispatcher reads the reply of this task nobody reads.
        case adopt(PendingTask)
        /// Closed; given back with this task (if any) and why.
        case returned(PendingTask?, Return)
        /// A caller reads the reply of this task, which was cancelled: the worker is to be
        /// killed, and the lane never opens again.
        case cancel(PendingTask)
    }

    func reclaim(mayStayOpen: Bool, cancelled: Set<UInt64>) -> Reclaim {
        switch state {
        case .open where !mayStayOpen:
            state = .closed
            return .closed
        case .sent(let task, readerComing: true) where task.holdsLaneClaimLocked && !cancelled.contains(task.id):
            return .keep  // its owner was woken to read it
        case .sent, .returned:
            return switch takeBack() {
            case .adopt(let task): .adopt(task)
            case .returned(let task, let why): .returned(task, why)
            default: .keep
            }
        case .reading(let task) where cancelled.contains(task.id) && !withdrawn:
            withdrawn = true
            return .cancel(task)
        default:
            return .keep
        }
    }

    /// What withdrawing the lane (its worker is leaving the pool) left to do.
    enum Withdrawal {
        /// Closed, nothing pending.
        case closed
        /// Closed; the dispatcher reads the reply of this task nobody reads.
        case adopt(PendingTask)
        /// Closed; given back with this task (if any) and why.
        case returned(PendingTask?, Return)
        /// A caller still sends or reads this task: the socket is shut down so a blocked send
        /// or read ends at once; the caller finishes with what it holds and gives back a task
        /// left without a reply, to fail with `error(task)` (`crashed`: through the crash policy).
        case detached(PendingTask)
    }

    func withdraw(error: @escaping (PendingTask) -> ForkPoolError, crashed: Bool) -> Withdrawal {
        switch state {
        case .open, .closed, .detached:
            state = .closed
            return .closed
        case .sent, .returned:
            return takeBack()
        case .sending(let task), .reading(let task):
            state = .detached(error, crashed: crashed)
            connection.shutDown()
            return .detached(task)
        }
    }

    /// Closes a lane in `.sent` or `.returned`: the dispatcher has its worker, and its task, back.
    private func takeBack() -> Withdrawal {
        switch state {
        case .sent(let task, _):
            state = .closed
            return .adopt(task)
        case .returned(let task, let why):
            state = .closed
            return .returned(task, why)
        default:
            return .closed
        }
    }

    /// Whether the worker, gone now, never took `task` (its ring's `taken` id is another's): the
    /// task runs elsewhere, once (a second time it is judged as the worker's crash).
    private func neverTook(_ task: PendingTask) -> Bool {
        guard let ring = connection.inbox.reader.ring, !task.reruns.neverTaken, ring.takenTaskID != task.id else { return false }
        task.reruns.neverTaken = true
        return true
    }

    /// The error a task gets when its worker broke the protocol or its socket failed.
    static func describe(_ fault: ForkPoolError, worker pid: pid_t, task: UInt64?) -> ForkPoolError {
        switch fault.code {
        case .frameTooLarge, .malformedFrame:
            ForkPoolError(fault.code, "worker process \(pid) sent a bad frame: \(fault.message)", taskID: task, processID: pid)
        default:
            ForkPoolError(.workerDied, "lost the socket to worker process \(pid): \(fault.message)",
                          taskID: task, processID: pid, errno: fault.errno)
        }
    }
}
