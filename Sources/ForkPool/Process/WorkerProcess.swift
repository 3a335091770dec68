// WorkerProcess: the parent's record of one live worker — its pid, its socket (parent end,
// non-blocking), its pidfd (readable once the process exits), the frame being read from it,
// the frame being written to it and the one task it runs. Owned by the dispatcher thread only.
import CForkShim
import Glibc

struct WorkerProcess {
    let pid: pid_t
    /// Parent end of the socketpair; -1 once closed (end of stream or a protocol fault).
    var socket: CInt
    let pidfd: CInt
    var reader: FrameReader
    /// The frame being sent and how much of it is out.
    var outgoing: [UInt8] = []
    var outgoingOffset = 0
    /// The task this worker runs, if any: at most one, so no task waits behind another.
    var task: PendingTask?
    /// Why the parent gave up on this worker (a bad frame, a dead socket), if it did; the
    /// task it held fails with this rather than a bare "worker died".
    var fault: ForkPoolError?
    /// When the socket closed before the process exited: the time to stop waiting and kill it.
    var killDeadline: UInt64?

    var isIdle: Bool { task == nil && socket >= 0 && fault == nil }
    var hasOutgoing: Bool { outgoingOffset < outgoing.count }

    /// Forks a worker running `workerMain` on its end of a new socketpair.
    static func spawn(maximumFrameBytes: Int, forkOptions: CInt,
                      workerMain: (CInt) -> Never) throws(ForkPoolError) -> WorkerProcess {
        let (parentEnd, childEnd) = try PoolDescriptors.makeSocketPair()
        let pid: pid_t
        do throws(ForkPoolError) {
            pid = try PoolDescriptors.forkWorker(keeping: childEnd, options: forkOptions)
        } catch {
            PoolDescriptors.close(parentEnd)
            PoolDescriptors.close(childEnd)
            throw error
        }
        if pid == 0 {
            workerMain(childEnd)
        }
        PoolDescriptors.close(childEnd)
        do throws(ForkPoolError) {
            let pidfd = try PoolDescriptors.register({ forkpool_pidfd_open(pid) }, name: "pidfd_open")
            guard forkpool_set_nonblocking(parentEnd) == 0 else {
                let error = ForkPoolError.systemCall("fcntl(O_NONBLOCK)")
                PoolDescriptors.close(pidfd)
                throw error
            }
            return WorkerProcess(pid: pid, socket: parentEnd, pidfd: pidfd,
                                 reader: FrameReader(maximumPayloadBytes: maximumFrameBytes))
        } catch {
            PoolDescriptors.close(parentEnd)
            _ = Glibc.kill(pid, SIGKILL)
            var status: CInt = 0
            _ = forkpool_waitpid(pid, &status, 0)
            throw error
        }
    }

    /// Starts sending `task` to this worker.
    mutating func assign(_ task: PendingTask) {
        self.task = task
        outgoing = task.frame
        outgoingOffset = 0
    }

    /// Sends as much of the outgoing frame as the socket takes now.
    /// Throws when the socket is dead.
    mutating func flush() throws(ForkPoolError) {
        while hasOutgoing {
            let sent = outgoing.withUnsafeBytes { raw in
                forkpool_send(socket, raw.baseAddress! + outgoingOffset, raw.count - outgoingOffset, 1)
            }
            if sent >= 0 {
                outgoingOffset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else if errno != EINTR {
                throw ForkPoolError.systemCall("send")
            }
        }
        outgoing = []
        outgoingOffset = 0
        task?.frame = []  // the worker has it now; do not hold a second copy of a large input
    }

    /// Stops talking to the worker: closes the socket. The process is reaped via its pidfd.
    mutating func closeSocket() {
        if socket >= 0 {
            PoolDescriptors.close(socket)
            socket = -1
        }
    }

    /// Sends SIGKILL through the pidfd (no risk of hitting a recycled pid).
    func kill() {
        _ = forkpool_pidfd_send_signal(pidfd, SIGKILL)
    }

    /// Describes how the worker ended, from its wait status.
    func deathError(status: CInt) -> ForkPoolError {
        let running = task.map { " while running task \($0.id)" } ?? ""
        if forkpool_wifsignaled(status) != 0 {
            let signal = forkpool_wtermsig(status)
            return ForkPoolError(.workerDied,
                                 "worker process \(pid) was killed by signal \(signal) (\(ForkPoolError.signalName(signal)))\(running)",
                                 taskID: task?.id, processID: pid, signal: signal)
        }
        let exitStatus = forkpool_wexitstatus(status)
        return ForkPoolError(.workerDied, "worker process \(pid) exited with status \(exitStatus)\(running)",
                             taskID: task?.id, processID: pid, exitStatus: exitStatus)
    }
}
