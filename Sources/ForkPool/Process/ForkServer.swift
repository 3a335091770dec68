// ForkServer: the single-threaded "zygote" that forks every worker of one pool.
//
//   dispatcher ── spawn ──────────────▶ fork server (one thread, forked once at pool creation)
//              ◀─ spawned(pid) + [socket, pidfd] via SCM_RIGHTS ─┘   │ fork
//              ◀─ exited(pid, wait status) ── SIGCHLD/waitpid ◀───── worker
//
// After creation the parent is multi-threaded (dispatcher, callers, the application's own
// threads); a fork from it can leave the child holding a lock some other thread held at that
// instant. The fork server is forked once, early, and stays single-threaded, so every worker —
// the first ones and every replacement — is forked from a process where no other thread can
// hold a lock. Workers are the server's children: it reaps them and reports each wait status.
// Its own parent-death signal fires when the pool's dispatcher thread (hence the pool's
// process) dies; the workers' fires when the server dies: no orphans either way.
import CForkShim
import Glibc

/// One control message: 16 bytes, little-endian on the wire (same machine, but explicit).
struct ForkServerMessage: Equatable {
    enum Operation: UInt32 {
        /// Dispatcher → server: fork one worker.
        case spawn = 1
        /// Server → dispatcher: a worker was forked; its socket and pidfd are attached.
        case spawned = 2
        /// Server → dispatcher: a fork failed; `value` is the errno.
        case spawnFailed = 3
        /// Server → dispatcher: worker `pid` ended; `value` is its wait status.
        case exited = 4
    }

    static let size = 16
    var operation: Operation
    var pid: pid_t = 0
    var value: Int64 = 0

    var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: operation.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: pid.littleEndian, toByteOffset: 4, as: Int32.self)
            raw.storeBytes(of: value.littleEndian, toByteOffset: 8, as: Int64.self)
        }
        return bytes
    }

    init(_ operation: Operation, pid: pid_t = 0, value: Int64 = 0) {
        self.operation = operation
        self.pid = pid
        self.value = value
    }

    init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count == Self.size,
              let operation = Operation(rawValue: UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self))) else { return nil }
        self.operation = operation
        pid = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: Int32.self))
        value = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: Int64.self))
    }
}

enum ForkServer {
    /// Exit status of a fork server that could not set itself up.
    static let setupFailedStatus: Int32 = 71  // EX_OSERR

    /// The server's life: serve spawn requests and report exits until the dispatcher closes
    /// the control socket, then exit (its workers follow through their parent-death signal).
    static func run(control: CInt, workerForkOptions: CInt, workerMain: (CInt) -> Never) -> Never {
        // Named for ps, top and perf (a forked thread keeps its forker's name: the dispatcher's).
        forkpool_set_thread_name(pthread_self(), "forkpool-server")
        let childSignals = forkpool_child_signal_fd()
        guard childSignals >= 0 else { forkpool_exit(setupFailedStatus) }
        var pollSet = [pollfd(fd: control, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: childSignals, events: Int16(POLLIN), revents: 0)]
        var incoming = [UInt8](repeating: 0, count: ForkServerMessage.size)
        while true {
            pollSet[0].revents = 0
            pollSet[1].revents = 0
            if poll(&pollSet, 2, -1) < 0 && errno != EINTR { forkpool_exit(setupFailedStatus) }
            if pollSet[1].revents != 0 {
                forkpool_drain_signal_fd(childSignals)
                reportExits(control)
            }
            guard pollSet[0].revents != 0 else { continue }
            while true {
                var fdCount: CInt = 0
                var unexpected: [CInt] = [-1, -1, -1, -1]
                let count = incoming.withUnsafeMutableBytes { raw in
                    forkpool_receive_with_fds(control, raw.baseAddress, raw.count, &unexpected, 4, &fdCount)
                }
                for index in 0..<Int(fdCount) { close(unexpected[index]) }
                if count == 0 { forkpool_exit(0) }  // the pool is gone or done
                if count < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    forkpool_exit(0)
                }
                let message = incoming.withUnsafeBytes { ForkServerMessage(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                if message?.operation == .spawn {
                    spawnWorker(control: control, childSignals: childSignals, options: workerForkOptions, workerMain: workerMain)
                }
            }
        }
    }

    private static func spawnWorker(control: CInt, childSignals: CInt, options: CInt, workerMain: (CInt) -> Never) {
        var fds: [CInt] = [-1, -1]
        guard forkpool_socketpair(&fds) == 0 else {
            send(control, ForkServerMessage(.spawnFailed, value: Int64(errno)))
            return
        }
        let (parentEnd, childEnd) = (fds[0], fds[1])
        let closing = [control, childSignals, parentEnd]
        let pid = closing.withUnsafeBufferPointer { forkpool_fork_worker($0.baseAddress, CInt($0.count), options) }
        if pid == 0 {
            workerMain(childEnd)
        }
        let forkErrno = errno
        close(childEnd)
        guard pid > 0 else {
            close(parentEnd)
            send(control, ForkServerMessage(.spawnFailed, value: Int64(forkErrno)))
            return
        }
        // Opened before this server can reap the worker, so the pidfd always names this worker.
        let pidfd = forkpool_pidfd_open(pid)
        guard pidfd >= 0 else {
            let openErrno = errno
            close(parentEnd)
            _ = kill(pid, SIGKILL)
            send(control, ForkServerMessage(.spawnFailed, value: Int64(openErrno)))
            return
        }
        let attached = [parentEnd, pidfd]
        let message = ForkServerMessage(.spawned, pid: pid).bytes
        let sent = message.withUnsafeBytes { raw in
            attached.withUnsafeBufferPointer { forkpool_send_with_fds(control, raw.baseAddress, raw.count, $0.baseAddress, 2) }
        }
        close(parentEnd)
        close(pidfd)
        if sent < 0 { forkpool_exit(0) }  // the dispatcher is gone
    }

    /// Reaps every exited child and reports its wait status.
    private static func reportExits(_ control: CInt) {
        while true {
            var status: CInt = 0
            let pid = forkpool_waitpid(-1, &status, 1)
            guard pid > 0 else { return }
            send(control, ForkServerMessage(.exited, pid: pid, value: Int64(status)))
        }
    }

    private static func send(_ control: CInt, _ message: ForkServerMessage) {
        let sent = message.bytes.withUnsafeBytes { forkpool_send_with_fds(control, $0.baseAddress, $0.count, nil, 0) }
        if sent < 0 { forkpool_exit(0) }  // the dispatcher is gone
    }
}
