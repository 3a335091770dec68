// PoolDescriptors: every file descriptor any ProcessPool in this process owns.
//
// SOCK_CLOEXEC does nothing for a fork without exec, so each freshly forked worker closes all
// of these but its own socket: otherwise worker A would hold a copy of worker B's (or another
// pool's) parent end and B would never see end-of-stream. Creating a descriptor and forking
// take the same lock, so no child can be forked between a socketpair and its registration.
import CForkShim
import Glibc

enum PoolDescriptors {
    private static let lock = ConditionLock()
    nonisolated(unsafe) private static var open = Set<CInt>()

    /// A new AF_UNIX socketpair (stream, or seqpacket for the fork server), both ends
    /// registered and owned by the returned pair.
    static func makeSocketPair(seqpacket: Bool = false) throws(ForkPoolError) -> SocketPair {
        let (parent, child) = try lock.withLock { () throws(ForkPoolError) in
            var fds: [CInt] = [-1, -1]
            let made = seqpacket ? forkpool_seqpacket_pair(&fds) : forkpool_socketpair(&fds)
            guard made == 0 else { throw ForkPoolError.systemCall("socketpair") }
            open.insert(fds[0])
            open.insert(fds[1])
            return (fds[0], fds[1])
        }
        return SocketPair(parent: Descriptor(registered: parent), child: Descriptor(registered: child))
    }

    /// Registers a descriptor made elsewhere (an eventfd, a pidfd).
    static func register(_ make: () -> CInt, name: String) throws(ForkPoolError) -> CInt {
        try lock.withLock { () throws(ForkPoolError) in
            let fd = make()
            guard fd >= 0 else { throw ForkPoolError.systemCall(name) }
            open.insert(fd)
            return fd
        }
    }

    /// Runs `receive` (which may create descriptors, e.g. by SCM_RIGHTS) and registers the
    /// descriptors it returns, all under the lock, so no fork can slip in between.
    static func adopt<T>(_ receive: () -> (T, [CInt])) -> T {
        lock.withLock {
            let (result, fds) = receive()
            for fd in fds { open.insert(fd) }
            return result
        }
    }

    /// Unregisters and closes `fd`, in that order, so its number cannot be reused meanwhile.
    static func close(_ fd: CInt) {
        lock.withLock {
            open.remove(fd)
            _ = Glibc.close(fd)
        }
    }

    /// Unregisters `fd` without closing it: someone else already closed it (the number may
    /// be another file's by now).
    static func forget(_ fd: CInt) {
        _ = lock.withLock { open.remove(fd) }
    }

    /// What `startForkServer` returns: in the pool's process, the server's pid; in a worker the
    /// server forked (the only place that call returns into Swift), the worker's socket.
    enum ForkServerStart {
        case server(pid_t)
        case worker(socket: CInt)
    }

    /// Starts a fork server that keeps `control` and closes every other pool descriptor; its
    /// loop runs in C (`forkpool_start_fork_server`). In a worker it forked, the registry is
    /// reset to that worker's own socket: everything else listed here was closed at fork, and
    /// a pool made inside the worker must never close a number that is reused meanwhile.
    static func startForkServer(control: CInt, serverOptions: CInt, workerOptions: CInt, sandboxSpec: String?) throws(ForkPoolError)
        -> ForkServerStart {
        lock.lock()
        let closing = open.filter { $0 != control }.map { CInt($0) }
        var workerSocket: CInt = -1
        // The spec's bytes stay where they are in the server, a copy of this process.
        let pid = withOptionalCString(sandboxSpec) { sandbox in
            closing.withUnsafeBufferPointer { fds in
                forkpool_start_fork_server(fds.baseAddress, CInt(fds.count), control, serverOptions, workerOptions, sandbox,
                                           &workerSocket)
            }
        }
        let forkErrno = errno
        if pid == 0 {
            // A worker: the lock was taken by the pool's thread that forked the server; this
            // is a copy of that thread, and the only one, so it lets it go.
            open = [workerSocket]
            lock.unlock()
            return .worker(socket: workerSocket)
        }
        lock.unlock()
        guard pid > 0 else { throw ForkPoolError(.systemCallFailed, "fork failed", errno: forkErrno) }
        return .server(pid)
    }

    /// A worker of a fresh fork server: a new process whose one pool descriptor is its socket.
    static func resetToWorker(socket: CInt) {
        lock.withLock { open = [socket] }
    }

    /// The registered descriptors (tests check that a worker's are all its own and open).
    static var registered: Set<CInt> { lock.withLock { open } }

    /// The number of registered descriptors (tests use it to prove nothing leaks).
    static var count: Int { lock.withLock { open.count } }

}

/// Runs `body` with `text` as a C string, or with nil.
func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
