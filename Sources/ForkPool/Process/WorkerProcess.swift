// WorkerProcess: the parent's record of one worker — its pid, its socket (parent end,
// non-blocking), its pidfd (for signals that cannot hit a recycled pid), its lane (which holds
// the frame being read from it, and lends it to submitting threads while it is idle), the
// frame being written to it, the one task it runs and where it is in its life.
// Owned by the dispatcher thread only; the process itself is a child of the fork server.
import CForkShim
import ForkPoolWire
import Glibc

struct WorkerProcess {
    let pid: pid_t
    /// The worker slot (0..<workerCount) this process fills; a replacement takes over the slot
    /// of the worker it replaces. Stats are kept per slot.
    let slot: Int
    /// Parent end of the socketpair; nil once closed (end of stream, a fault, or dismissed).
    var socket: CInt?
    /// The process, signalled through its pidfd.
    let process: ProcessHandle
    /// The frames received from this worker (read by the dispatcher, or by a caller on the lane).
    let inbox: FrameInbox
    /// The lane that lends this worker to submitting threads; nil when the pool has lanes off
    /// (or the socket could not be duplicated for it).
    let lane: DirectLane?
    /// Lent to the lane (`lane.state` not `.closed`): neither idle nor polled here.
    var lent = false
    /// The frame being sent (its head, and a large input's bytes sent after it with no copy)
    /// and how much of the two is out.
    var outgoing: [UInt8] = []
    var outgoingTail: [UInt8] = []
    var outgoingOffset = 0
    /// True once the worker's initializer ran and it said `ready`.
    var isReady = false
    /// The initializer's error, when it threw.
    var startError: String?
    /// The task this worker runs, if any.
    var task: PendingTask?
    /// Tasks already sent behind the running one, oldest first (under load, to a worker whose
    /// recent tasks were short: see `Dispatcher.fillPipelines`); each becomes `task` when the
    /// one before it is answered. A worker that dies runs none of them: they run elsewhere.
    var pipeline = FIFOQueue<PendingTask>()
    /// How long this worker's recent tasks took, from hand-out to reply (a moving average, ns);
    /// nil before its first.
    var recentTaskNanoseconds: UInt64?
    /// When the running task must be done (monotonic ns), if it has a time limit.
    var taskDeadline: UInt64?
    /// Why the parent gave up on this worker (a bad frame, a dead socket, a time-out, a
    /// cancellation), if it did; its task fails with this rather than a bare "worker died".
    var fault: ForkPoolError?
    /// The task this worker was stopped for (a time-out, a cancellation), if it was.
    var stoppedTaskID: UInt64?
    /// The running task never reached the worker: its frame had not all been sent when the
    /// socket turned out dead, or the worker closed its end with that frame unread.
    var headUndelivered = false
    /// How many bytes of `outgoing` (and its tail) belong to the running task's frame, while it
    /// is being sent.
    var headBytesPending = 0
    /// When to SIGKILL a worker that was asked to stop (SIGTERM, closed socket) but has not.
    var killDeadline: UInt64?
    /// Tasks completed, and how many this worker may complete before it is recycled.
    var tasksDone = 0
    var taskLimit = Int.max
    /// Recycled: takes no more tasks, and leaves once its replacement is ready.
    var retiring = false
    /// Asked to exit (`shutdown` frame): recycled, or the pool is shutting down.
    var dismissed = false

    init(pid: pid_t, slot: Int = 0, socket: CInt?, pidfd: CInt, maximumFrameBytes: Int, lendable: Bool = false) {
        self.pid = pid
        self.slot = slot
        self.socket = socket
        self.process = ProcessHandle(pid: pid, pidfd: pidfd)
        let inbox = FrameInbox(maximumPayloadBytes: maximumFrameBytes)
        self.inbox = inbox
        self.lane = lendable ? socket.map { DirectLane(pid: pid, slot: slot, socket: $0, inbox: inbox) } : nil
    }

    var isIdle: Bool { isReady && task == nil && socket != nil && fault == nil && !retiring && !lent }
    /// Counts towards the pool's strength: not leaving, not given up on.
    var isServing: Bool { socket != nil && fault == nil && !retiring }
    var hasOutgoing: Bool { outgoingOffset < outgoing.count + outgoingTail.count }
    /// The tasks sent to this worker and not answered yet.
    var tasksInFlight: Int { (task == nil ? 0 : 1) + pipeline.count }

    /// Sends `task` behind the ones in flight (the caller checked that nothing raw is being
    /// sent: its frame goes after whatever of `outgoing` is not out yet). Its frame stays with
    /// the task, so it can run elsewhere if this worker dies first.
    mutating func pipeline(_ task: PendingTask) {
        if !hasOutgoing {
            outgoing.removeAll(keepingCapacity: true)
            outgoingOffset = 0
        }
        outgoing.append(contentsOf: task.frame)
        pipeline.append(task)
    }

    /// Starts sending `task` to this worker.
    mutating func assign(_ task: PendingTask, deadline: UInt64?) {
        self.task = task
        taskDeadline = deadline
        outgoing = task.frame
        outgoingTail = task.tail
        outgoingOffset = 0
        headBytesPending = task.frame.count + task.tail.count
    }

    /// Sends as much of the outgoing frame as the socket takes now; once it is all out, the
    /// task's copy is released unless `keepSent` (a task that may be retried keeps it).
    /// Throws when the socket is dead.
    mutating func flush(keepSent: Bool) throws(ForkPoolError) {
        guard let socket else { throw ForkPoolError(.workerDied, "the socket to worker process \(pid) is closed") }
        while hasOutgoing {
            let sent = sendSome(socket, head: outgoing, tail: outgoingTail, from: outgoingOffset, nonblocking: true)
            if sent >= 0 {
                outgoingOffset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else {
                throw ForkPoolError.systemCall("send")  // EINTR is retried by the shim
            }
        }
        outgoing = []
        outgoingTail = []
        outgoingOffset = 0
        headBytesPending = 0
        // The worker has it: no second copy of a large input. A small frame is kept until the
        // reply, so a task that turns out never to have reached the worker can run elsewhere.
        if !keepSent, let task, task.frame.count + task.tail.count > DirectLane.maximumFrameBytes {
            task.frame = []
            task.tail = []
        }
    }

    /// Sends nothing more: the worker is being stopped, or its end of the socket is gone.
    mutating func discardOutgoing() {
        if outgoingOffset < headBytesPending && task != nil { headUndelivered = true }
        headBytesPending = 0
        outgoing = []
        outgoingTail = []
        outgoingOffset = 0
    }

    /// What one step of reading the worker's socket found.
    enum Event {
        /// The handshake: the initializer ran (`isReady` is now true).
        case ready
        /// The initializer threw (`startError` holds why); the worker exits next.
        case initializerFailed
        /// The running task's reply was handled (its future completed, counted first).
        case taskDone
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
        while true {
            let (task, isReady, pid) = (self.task, self.isReady, self.pid)
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
                    }
                    return .fault(unexpectedFrame(header, worker: pid))
                }
            } catch {
                return .fault(error)
            }
            switch outcome {
            case .ready?:
                self.isReady = true
                return .ready
            case .initializerFailed?:
                startError = startMessage
                return .initializerFailed
            case .taskDone?:
                let now = monotonicNanoseconds()
                if let started = startedAt, now > started {
                    let took = now - started
                    recentTaskNanoseconds = recentTaskNanoseconds.map { ($0 * 3 + took) / 4 } ?? took
                }
                // The next task sent behind it is running now.
                self.task = pipeline.popFirst()
                self.task?.handedOutAt = now
                self.task?.markSentAhead(false)  // it runs now
                taskDeadline = nil
                tasksDone += 1
                return .taskDone
            case let other?:
                return other
            case nil:
                break  // no complete frame buffered: receive more
            }
            guard let socket else { return .endOfStream }
            do {
                switch try inbox.reader.fill(from: socket) {
                case .received:
                    continue
                case .wouldBlock:
                    return nil
                case .endOfStream:
                    socketEnded(now: monotonicNanoseconds())
                    return .endOfStream
                case .endOfStreamWithOursUnread:
                    // With nothing sent behind it, the unread bytes can only be the running
                    // task's own frame: the worker never read it, so never ran it.
                    if pipeline.isEmpty && task != nil { headUndelivered = true }
                    socketEnded(now: monotonicNanoseconds())
                    return .endOfStream
                }
            } catch {
                return .fault(error)
            }
        }
    }

    /// The socket reached end of stream: the process is exiting (the fork server will report
    /// it). Closes the socket and arms a kill in case it does not exit; a worker this thread
    /// had already stopped (its socket closed) keeps the deadline it has.
    mutating func socketEnded(now: UInt64) {
        guard socket != nil else { return }
        closeSocket()
        killDeadline = now + ProcessKill.gracePeriodNanoseconds
    }

    /// Asks an idle worker to exit (`shutdown` frame) and closes the socket.
    mutating func dismiss() {
        guard let socket else { return }
        dismissed = true
        var farewell = FrameHeader.emptyFrame()
        FrameHeader(kind: .shutdown, length: 0, taskID: 0).write(into: &farewell)
        _ = farewell.withUnsafeBytes { forkpool_send(socket, $0.baseAddress, $0.count, 1) }
        closeSocket()
        killDeadline = monotonicNanoseconds() + ProcessKill.dismissedGracePeriodNanoseconds
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

    /// Resident memory in bytes, from /proc/<pid>/statm (0 if unreadable).
    func residentBytes() -> Int {
        let fd = open("/proc/\(pid)/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return 0 }
        let fields = buffer[0..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }

    /// Describes how the worker ended, from its wait status.
    func deathError(status: WaitStatus) -> ForkPoolError {
        let running = task.map { " while running task \($0.id)" } ?? ""
        switch status {
        case .signaled(let signal):
            return ForkPoolError(.workerDied, "worker process \(pid) was killed by \(status)\(running)",
                                 taskID: task?.id, processID: pid, signal: signal)
        case .exited(let exitStatus):
            return ForkPoolError(.workerDied, "worker process \(pid) exited with status \(exitStatus)\(running)",
                                 taskID: task?.id, processID: pid, exitStatus: exitStatus)
        }
    }
}
