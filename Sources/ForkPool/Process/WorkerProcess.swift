// WorkerProcess: the parent's record of one worker — its pid and pidfd (signals that cannot hit
// a recycled pid), its socket (parent end, non-blocking), its FrameInbox (the frames read from
// it; its lane, when it has one, borrows the inbox while a caller reads a reply), the frames
// being sent to it (OutgoingFrames), and where it is in its life (`WorkerLife`, with `Departure` for
// how the parent is ending it). Transitions are its methods; the dispatcher thread owns it.
//
//   starting ─ready─▶ idle ─assign─▶ running(task, sent behind it) ─taskDone─▶ idle | running
//   idle ─lend─▶ lent ─giveBack─▶ idle      idle ─retire─▶ retiring ─dismiss─▶ (exits)
//   any stage ─stop(because:)─▶ given up on (its tasks fail with the fault) ─▶ killed, exits
import CForkShim
import ForkPoolWire
import Glibc

struct WorkerProcess {
    /// The worker slot (0..<workerCount) this process fills; a replacement takes over the slot
    /// of the worker it replaces. Stats are kept per slot.
    let slot: Int
    /// Parent end of the socketpair; nil once closed (end of stream, a fault, or dismissed).
    private(set) var socket: CInt?
    /// The process, signalled through its pidfd.
    let process: ProcessHandle
    /// The frames received from this worker (read by the dispatcher, or by a caller on the lane).
    let inbox: FrameInbox
    /// The lane that lends this worker to submitting threads; nil when the pool has lanes off
    /// (or the socket could not be duplicated for it).
    let lane: DirectLane?
    /// Its stage: starting, idle, lent, running or retiring.
    private(set) var life = WorkerLife.starting(initializerError: nil)
    /// How the parent is ending it, whatever its stage: given up on, asked to exit, a kill armed.
    private(set) var departure = Departure()
    /// The frames being sent to it.
    private(set) var outgoing = OutgoingFrames()
    /// Tasks completed, and how many it may complete before it is recycled.
    private(set) var recycling: Recycling
    /// How long this worker's recent tasks took, from hand-out to reply (a moving average, ns);
    /// nil before its first. Only short ones get tasks sent behind them.
    private(set) var recentTaskNanoseconds: UInt64?
    /// The async jobs it runs at once, by task id (life `.serving`); changed only in
    /// WorkerProcess+Serving.
    var served: [UInt64: ServedTask] = [:]
    /// Due for recycling while it ran jobs at once: takes no more, and retires once they are
    /// done. Changed only in WorkerProcess+Serving.
    var drainingJobs = false

    /// The parent's side of a worker's end, independent of its stage: a worker given up on keeps
    /// its task until its exit is reported, and shutdown dismisses workers given up on too.
    struct Departure {
        /// Given up on: why (a bad frame, a dead socket, a time-out, a cancellation, a failed
        /// dispatcher; its tasks fail with this rather than "worker died"), and the task it was
        /// stopped for (a time-out, a cancellation), if it was. The first reason stands.
        fileprivate(set) var givenUp: (fault: ForkPoolError, stoppedTaskID: UInt64?)?
        /// Asked to exit (`shutdown` frame): recycled, or the pool is shutting down.
        fileprivate(set) var dismissed = false
        /// When to SIGKILL it if it has not exited (it was asked to stop, or its socket ended).
        fileprivate(set) var killDeadline: UInt64?
    }

    init(pid: pid_t, slot: Int = 0, socket: CInt?, pidfd: CInt, maximumFrameBytes: Int, ring: SharedRing? = nil,
         lendable: Bool = false, taskLimit: Int = .max) {
        self.slot = slot
        self.socket = socket
        self.process = ProcessHandle(pid: pid, pidfd: pidfd)
        let inbox = FrameInbox(maximumPayloadBytes: maximumFrameBytes, ring: ring)
        self.inbox = inbox
        self.lane = lendable ? socket.map { DirectLane(pid: pid, slot: slot, socket: $0, inbox: inbox) } : nil
        self.recycling = Recycling(taskLimit: taskLimit)
    }

    // MARK: - What it is

    var pid: pid_t { process.pid }
    /// True once the worker's initializer ran and it said `ready`.
    var isReady: Bool { if case .starting = life { false } else { true } }
    /// The initializer's error, when it threw.
    var startError: String? { if case .starting(let error) = life { error } else { nil } }
    /// Why its sandbox could not be applied, when that kept it from starting.
    var sandboxFailure: String? {
        if case .sandboxFailed(let message)? = inbox.notes.latest { message } else { nil }
    }
    var isLent: Bool { if case .lent = life { true } else { false } }
    var isRetiring: Bool { if case .retiring = life { true } else { false } }
    /// The task this worker runs, if any.
    var task: PendingTask? { if case .running(let run) = life { run.task } else { nil } }
    /// When the running task must be done, if it has a time limit.
    var taskDeadline: UInt64? { if case .running(let run) = life { run.deadline } else { nil } }
    /// The running task never reached the worker (see `Run.delivered`).
    var headUndelivered: Bool { if case .running(let run) = life { !run.delivered } else { false } }
    /// Whether its shared ring says it never took `task` (the id it recorded last, before
    /// running a task, is another's), so `task` never ran. Without a ring, or with a frame no
    /// longer kept to send again, it is taken to have run.
    func neverTook(_ task: PendingTask) -> Bool {
        guard let ring = inbox.reader.ring, !task.frame.isEmpty, !task.reruns.neverTaken else { return false }
        return ring.takenTaskID != task.id
    }
    /// The tasks sent behind the running one.
    var pipeline: FIFOQueue<PendingTask> { if case .running(let run) = life { run.pipeline } else { FIFOQueue() } }
    /// The same, as an array (for a worker that has left the books).
    var tasksSentBehind: [PendingTask] {
        var queue = pipeline
        return queue.removeAll()
    }
    var fault: ForkPoolError? { departure.givenUp?.fault }
    var stoppedTaskID: UInt64? { departure.givenUp?.stoppedTaskID }
    var dismissed: Bool { departure.dismissed }
    var killDeadline: UInt64? { departure.killDeadline }

    var isIdle: Bool { if case .idle = life { socket != nil && fault == nil } else { false } }
    /// Counts towards the pool's strength: not leaving, not given up on.
    var isServing: Bool { socket != nil && fault == nil && !isRetiring }
    var hasOutgoing: Bool { outgoing.hasPending }
    /// Frames wait for the socket to take more (poll for POLLOUT).
    var waitsForSocket: Bool { outgoing.waitsForSocket }
    /// Frames wait for a slot in the shared ring (try again on the next turn).
    var waitsForRing: Bool { outgoing.waitsForRing }
    /// The tasks sent to this worker and not answered yet.
    var tasksInFlight: Int { if case .running(let run) = life { 1 + run.pipeline.count } else { served.count } }
    // MARK: - Transitions

    /// Changes the running task's record in place (its queue stays uniquely held: no copy).
    private mutating func changeRun(_ change: (inout WorkerRun) -> Void) {
        guard case .running(var run) = life else { return }
        life = .idle
        change(&run)
        life = .running(run)
    }

    /// Starts sending `task` to this idle worker.
    mutating func assign(_ task: PendingTask, deadline: UInt64?) {
        life = .running(WorkerRun(task: task, deadline: deadline))
        outgoing.start(task.frame, tail: task.tail)
    }

    /// Takes up a task a caller sent this worker by lane, as if the dispatcher had assigned it.
    mutating func adopt(_ task: PendingTask) {
        life = .running(WorkerRun(task: task))
    }

    /// Sends `task` behind the ones in flight (the caller checked that nothing raw is being
    /// sent: its frame goes after whatever is not out yet). Its frame stays with the task, so
    /// it can run elsewhere if this worker dies first.
    mutating func pipeline(_ task: PendingTask) {
        outgoing.append(task.frame)
        changeRun { $0.pipeline.append(task) }
    }

    /// The running task, handed out at `startedAt`, was answered: the next task sent behind it
    /// runs now, if any.
    private mutating func taskDone(startedAt: UInt64?, now: UInt64) {
        guard case .running(var run) = life else { return }
        if let started = startedAt, now > started {
            let took = now - started
            recentTaskNanoseconds = recentTaskNanoseconds.map { ($0 * 3 + took) / 4 } ?? took
        }
        recycling.count()
        life = .idle
        if let next = run.pipeline.popFirst() {
            next.handedOutAt = now
            next.markSentAhead(false)  // it runs now
            life = .running(WorkerRun(task: next, pipeline: run.pipeline))
        }
    }

    /// The running task (a lane's, given back) never reached the worker: it leaves this worker
    /// to run elsewhere.
    mutating func dropUndeliveredTask() {
        if case .running = life { life = .idle }
    }

    /// An idle worker starts running async jobs at once (WorkerProcess+Serving).
    mutating func beginServing() {
        if case .idle = life { life = .serving }
    }

    /// Sends `frame` after whatever is not out yet (a served job's task, a `cancel`).
    mutating func sendAlso(_ frame: [UInt8]) {
        outgoing.append(frame)
    }

    /// Lends this idle worker to its lane.
    mutating func lend() {
        if case .idle = life { life = .lent }
    }

    /// The lane is back: the worker is the dispatcher's again, idle (until it adopts a task).
    mutating func giveBack() {
        if case .lent = life { life = .idle }
    }

    /// Recycles this worker: it takes no more tasks. (Recycling limits keep one task in flight,
    /// so a worker is idle when its last task is answered.)
    mutating func retire() {
        if case .idle = life { life = .retiring }
    }

    /// Gives up on this worker because of `fault` (the first reason counts): its tasks fail with
    /// it. `stoppingTask`: it is stopped for the task it runs (a time-out, a cancellation).
    /// Returns false when it had been given up on already.
    @discardableResult
    mutating func stop(because fault: ForkPoolError, stoppingTask: Bool = false, stoppingJob job: UInt64? = nil) -> Bool {
        guard departure.givenUp == nil else { return false }
        departure.givenUp = (fault, job ?? (stoppingTask ? task?.id : nil))
        return true
    }

    /// The running task's time limit no longer applies (its worker is being stopped).
    mutating func disarmDeadline() {
        changeRun { $0.deadline = nil }
    }

    /// Arms a SIGKILL at `deadline`, or disarms it (nil: the kill was sent).
    mutating func armKill(at deadline: UInt64?) {
        departure.killDeadline = deadline
    }

    // MARK: - Talking to it

    /// Sends as much of the outgoing frames as the socket takes now; once they are all out, the
    /// running task's copy is released unless `keepSent` (a task that may be retried keeps it).
    /// Throws when the socket is dead.
    mutating func flush(keepSent: Bool) throws(ForkPoolError) {
        guard let socket else { throw ForkPoolError(.workerDied, "the socket to worker process \(pid) is closed") }
        guard try outgoing.send(on: socket, ring: inbox.reader.ring) else { return }
        // The worker has it: no second copy of a large input. A small frame is kept until the
        // reply, so a task that turns out never to have reached the worker can run elsewhere.
        if !keepSent, let task, task.frame.count + task.tail.count > DirectLane.maximumFrameBytes {
            task.frame = []
            task.tail = []
        }
    }

    /// Sends nothing more: the worker is being stopped, or its end of the socket is gone.
    mutating func discardOutgoing() {
        if outgoing.discard() { changeRun { $0.delivered = false } }
    }

    /// What one step of reading the worker's socket found.
    enum Event {
        /// The handshake: the initializer ran (the worker is idle now).
        case ready
        /// The initializer threw (`startError` holds why); the worker exits next.
        case initializerFailed
        /// The running task's reply was handled (its future completed, counted first).
        case taskDone
        /// The reply of one of the async jobs it runs at once was handled.
        case servedDone
        /// The socket reached end of stream: the worker is exiting (the socket is closed, and
        /// the worker killed if it has not exited by `killDeadline`).
        case endOfStream
        /// A frame that breaks the protocol, or a failed socket.
        case fault(ForkPoolError)
    }

    /// Handles the next complete frame, receiving more from the socket when none is buffered:
    /// nil when nothing more has arrived. A task's reply completes its future, counted first
    /// through `record`.
    mutating func receive(record: (PendingTask, ForkPoolError.Code?) -> Void) -> Event? {
        var fills = 0
        while true {
            let (task, isReady, pid, served) = (self.task, self.isReady, self.pid, self.served)
            var servedID: UInt64?
            let startedAt = task?.handedOutAt  // counting the reply clears it
            let outcome: Event?
            var startMessage: String?
            do {
                outcome = try inbox.reader.nextFrame { header, payload, tail -> Event in
                    if !isReady {
                        switch header.kind {
                        case .ready: return .ready
                        case .initializerFailed:
                            startMessage = String(decoding: payload, as: UTF8.self)
                            return .initializerFailed
                        default: break
                        }
                    } else if let task, task.complete(from: header, payload: payload, tail: tail, worker: pid,
                                                      recordOutcome: { record(task, $0) }) {
                        return .taskDone
                    } else if let job = served[header.taskID], [FrameKind.result, .resultBatch, .failure].contains(header.kind) {
                        servedID = header.taskID
                        // A job whose caller has its answer already (cancelled, timed out): dropped.
                        if job.answered || job.task.complete(from: header, payload: payload, tail: tail, worker: pid,
                                                            recordOutcome: { record(job.task, $0) }) {
                            return .servedDone
                        }
                    }
                    return .fault(unexpectedFrame(header, worker: pid))
                }
            } catch {
                return .fault(error)
            }
            switch outcome {
            case .ready?:
                life = .idle
                return .ready
            case .initializerFailed?:
                life = .starting(initializerError: startMessage)
                return .initializerFailed
            case .taskDone?:
                taskDone(startedAt: startedAt, now: monotonicNanoseconds())
                return .taskDone
            case .servedDone?:
                self.served[servedID!] = nil
                recycling.count()
                if self.served.isEmpty, case .serving = life { life = .idle }
                return .servedDone
            case let other?:
                return other
            case nil:
                break  // no complete frame buffered: receive more
            }
            guard let socket else { return .endOfStream }
            fills += 1
            if fills > Self.fillsPerReceive { return nil }  // a worker flooding its socket: the loop goes on
            do {
                switch try inbox.reader.fill(from: socket) {
                case .received:
                    continue
                case .wouldBlock:
                    return nil
                case .endOfStream:
                    socketEnded(now: monotonicNanoseconds())
                case .endOfStreamWithOursUnread:
                    // With nothing sent behind it, the unread bytes can only be the running
                    // task's own frame: the worker never read it, so never ran it. (With a ring
                    // they may be a doorbell only: its `taken` id decides instead.)
                    if inbox.reader.ring == nil { changeRun { if $0.pipeline.isEmpty { $0.delivered = false } } }
                    socketEnded(now: monotonicNanoseconds())
                }
            } catch {
                return .fault(error)
            }
            // The worker is gone: everything it published is in its ring, read to the end first.
            if !inbox.reader.ringHasFrame { return .endOfStream }
        }
    }

    /// How many times one `receive` fills from the socket with nothing to hand on (notes,
    /// doorbells) before it lets the poll loop go on.
    static let fillsPerReceive = 64

    /// Whether frames wait to be read: on the socket, or in the ring after it reached end of
    /// stream (never from a worker given up on: what it sent since counts for nothing).
    var hasFramesToRead: Bool { socket != nil || (fault == nil && inbox.reader.ringHasFrame) }

    /// The socket reached end of stream: the process is exiting (the fork server will report
    /// it). Closes the socket and arms a kill in case it does not exit; a worker this thread
    /// had already stopped (its socket closed) keeps the deadline it has.
    mutating func socketEnded(now: UInt64) {
        guard socket != nil else { return }
        closeSocket()
        departure.killDeadline = now + ProcessKill.gracePeriodNanoseconds
    }

    /// Asks the worker to exit (`shutdown` frame) and closes the socket.
    mutating func dismiss() {
        guard let socket else { return }
        departure.dismissed = true
        var farewell = FrameHeader.emptyFrame()
        FrameHeader(kind: .shutdown, length: 0, taskID: 0).write(into: &farewell)
        if let ring = inbox.reader.ring {
            // Through the ring, behind what is there; a full ring or frames still going out
            // leave it to end of stream, which ends the worker as well.
            if !outgoing.hasPending, (try? farewell.withUnsafeBytes { try ring.publish($0) }) == .published {
                ring.wakeConsumer(through: socket)
            }
        } else {
            _ = farewell.withUnsafeBytes { forkpool_send(socket, $0.baseAddress, $0.count, 1) }
        }
        closeSocket()
        departure.killDeadline = monotonicNanoseconds() + ProcessKill.dismissedGracePeriodNanoseconds
    }

    /// Stops talking to the worker: closes the socket. The fork server reports its exit.
    mutating func closeSocket() {
        if let socket {
            PoolDescriptors.close(socket)
            self.socket = nil
        }
    }

    /// The worker has left the pool's books: closes its socket and pidfd, killing it first
    /// unless it is known to have exited.
    mutating func release(killing: Bool) {
        closeSocket()
        if killing { signal(SIGKILL) }
        process.close()
    }

    /// Sends `signal` through the pidfd (no risk of hitting a recycled pid).
    func signal(_ signal: Int32) {
        process.signal(signal)
    }

    /// What describes this worker's death (WorkerObituary), apart from its record.
    var obituary: WorkerObituary { WorkerObituary(pid: pid, notes: inbox.notes) }

    /// Resident memory in bytes (0 if unreadable).
    func residentBytes() -> Int { process.residentBytes() }
}
