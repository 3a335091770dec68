// ForkServer: the pool's side of the single-threaded "zygote" that forks every worker.
//
//   dispatcher ── spawn ──────────────▶ fork server (one thread, forked once at pool creation)
//              ◀─ spawned(pid) + [socket, pidfd, rings memfd] via SCM_RIGHTS ─┘   │ fork
//              ◀─ exited(pid, wait status) ── SIGCHLD/waitpid ◀───── worker
//
// Every worker is forked from a process where no other thread can hold a lock; the server
// reaps them and reports each wait status. Its loop is C (`forkpool_start_fork_server`): Swift
// there could block on a runtime lock held at the instant of fork. Parent-death signals chain
// pool → server → workers, so no process outlives the pool.
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

/// The pool's side of its fork server: starts it, asks it for workers, reads its reports and
/// stops it. Used by the dispatcher thread only (the thread that started it: the server's
/// parent-death signal follows that thread).
struct ForkServerClient {
    let pid: pid_t
    /// The pool's end of the control channel (non-blocking); the dispatcher polls it.
    let control: CInt
    let pidfd: CInt

    /// What the server reported.
    enum Report {
        /// A worker was forked: its socket (the pool's end, non-blocking) and pidfd, both
        /// registered in PoolDescriptors, and the memfd of its shared rings (when it has them).
        case spawned(pid: pid_t, socket: CInt, pidfd: CInt, rings: CInt?)
        /// A fork failed with this errno.
        case spawnFailed(errno: Int32)
        /// A worker ended.
        case exited(pid: pid_t, WaitStatus)
    }

    /// Starts a fork server. Never returns in a worker the server forks: that process runs
    /// `workerMain` with its socket.
    static func start(serverOptions: CInt, workerOptions: CInt, sandboxSpec: String?,
                      workerMain: (CInt) -> Never) throws(ForkPoolError) -> ForkServerClient {
        let pair = try PoolDescriptors.makeSocketPair(seqpacket: true)
        let pid: pid_t
        // On a throw both ends close as the pair is dropped; a worker never returns here.
        switch try PoolDescriptors.startForkServer(control: pair.child.raw, serverOptions: serverOptions,
                                                   workerOptions: workerOptions, sandboxSpec: sandboxSpec) {
        case .server(let serverPID): pid = serverPID
        case .worker(let socket): workerMain(socket)
        }
        pair.child.close()
        return try adopt(pid: pid, control: pair.parent)
    }

    /// The pool's side of a server just started (either way): its control end made
    /// non-blocking, its pidfd opened; on a failure the server is killed and reaped.
    private static func adopt(pid: pid_t, control: consuming Descriptor) throws(ForkPoolError) -> ForkServerClient {
        do throws(ForkPoolError) {
            guard forkpool_set_nonblocking(control.raw) == 0 else { throw ForkPoolError.systemCall("fcntl(O_NONBLOCK)") }
            let pidfd = try PoolDescriptors.register({ forkpool_pidfd_open(pid) }, name: "pidfd_open")
            return ForkServerClient(pid: pid, control: control.take(), pidfd: pidfd)
        } catch {
            control.close()
            _ = kill(pid, SIGKILL)
            var status: CInt = 0
            _ = forkpool_waitpid(pid, &status, 0)
            throw error
        }
    }

    /// Starts a fresh fork server: the program's binary started anew (FreshStart), its
    /// control socket passed as descriptor 3. Throws `.poolBroken` when the binary cannot be
    /// started, or — `checkingBinary`, at a pool's creation — was deleted or replaced since the
    /// program started (a running pool that must restart its fork server still can: the old
    /// binary's inode stays reachable through /proc/self/exe, and it is the code that runs).
    static func startFresh(settings: FreshStartSettings, sandboxSpec: String?, checkingBinary: Bool) throws(ForkPoolError)
        -> ForkServerClient {
        let path = FreshStart.executablePath
        if checkingBinary, let reason = FreshStart.unusableBinary(at: path) {
            throw ForkPoolError(.poolBroken, "a fresh fork server cannot start: \(reason); use startMethod .snapshot")
        }
        let pair = try PoolDescriptors.makeSocketPair(seqpacket: true)
        let newGroup = settings.serverOptions & CInt(FORKPOOL_NEW_PROCESS_GROUP) != 0 ? CInt(1) : 0
        let encoded = settings.encoded(parent: getpid())
        let pid = withOptionalCString(sandboxSpec) { sandbox in
            forkpool_spawn_fresh_fork_server(path, pair.child.raw, encoded, sandbox, newGroup)
        }
        let number = errno
        pair.child.close()
        guard pid > 0 else {
            throw ForkPoolError(.poolBroken, "a fresh fork server cannot start: posix_spawn of \(path) failed", errno: number)
        }
        return try adopt(pid: pid, control: pair.parent)
    }

    /// Asks for one more worker; false if the server is gone.
    func requestWorker() -> Bool {
        ForkServerMessage(.spawn).bytes.withUnsafeBytes {
            forkpool_send_with_fds(control, $0.baseAddress, $0.count, nil, 0)
        } > 0
    }

    /// The next report, `.success(nil)` when none is waiting, `.failure` when the server is
    /// gone (end of stream, a socket error, or a message that is not the protocol's).
    func nextReport() -> Result<Report?, ForkPoolError> {
        var buffer = [UInt8](repeating: 0, count: ForkServerMessage.size)
        var fds: [CInt] = [-1, -1, -1, -1]
        var fdCount: CInt = 0
        // Received and registered under the registry's lock: no fork can copy them unregistered.
        let count: Int = PoolDescriptors.adopt {
            let count = buffer.withUnsafeMutableBytes { forkpool_receive_with_fds(control, $0.baseAddress, $0.count, &fds, 4, &fdCount) }
            return (count, Array(fds.prefix(Int(fdCount))))
        }
        let receiveErrno = errno
        let passed = Array(fds.prefix(Int(fdCount)))
        if count < 0 && (receiveErrno == EAGAIN || receiveErrno == EWOULDBLOCK) { return .success(nil) }
        let message = count > 0 ? buffer.withUnsafeBytes { ForkServerMessage(UnsafeRawBufferPointer(rebasing: $0[0..<count])) } : nil
        switch message?.operation {
        case .spawned? where passed.count == 2 || passed.count == 3:
            return .success(.spawned(pid: message!.pid, socket: passed[0], pidfd: passed[1], rings: passed.count == 3 ? passed[2] : nil))
        case .spawnFailed?:
            passed.forEach(PoolDescriptors.close)
            return .success(.spawnFailed(errno: Int32(truncatingIfNeeded: message!.value)))
        case .exited?:
            passed.forEach(PoolDescriptors.close)
            return .success(.exited(pid: message!.pid, WaitStatus(raw: CInt(truncatingIfNeeded: message!.value))))
        default:
            passed.forEach(PoolDescriptors.close)
            let reason = count == 0 ? "end of stream" : count < 0 ? "receive failed" : "a message outside the protocol"
            return .failure(ForkPoolError(.poolBroken, "lost the fork server (process \(pid)): \(reason)",
                                          errno: count < 0 ? receiveErrno : nil))
        }
    }

    /// Closes the control channel (the server exits at end of stream, its workers with it),
    /// waits for the server to exit — its pidfd turns readable the moment it does — and kills
    /// it after `ProcessKill.gracePeriod`; reaps it and returns how it ended.
    func stop() -> WaitStatus {
        PoolDescriptors.close(control)
        let server = ProcessHandle(pid: pid, pidfd: pidfd)
        if !server.waitForExit(until: monotonicNanoseconds() + ProcessKill.gracePeriodNanoseconds) {
            server.signal(SIGKILL)
        }
        var status: CInt = 0
        _ = forkpool_waitpid(pid, &status, 0)
        server.close()
        return WaitStatus(raw: status)
    }
}

/// How long the pool waits for a process it asked to go (end of stream, a shutdown frame)
/// before it sends SIGKILL.
enum ProcessKill {
    static let gracePeriodNanoseconds: UInt64 = 2_000_000_000
    /// A worker asked to exit (`shutdown` frame) may first finish flushing its output.
    static let dismissedGracePeriodNanoseconds: UInt64 = 5_000_000_000
}
