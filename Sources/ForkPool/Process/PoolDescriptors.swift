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

    /// A new AF_UNIX socketpair (stream, or seqpacket for the fork server), both ends registered.
    static func makeSocketPair(seqpacket: Bool = false) throws(ForkPoolError) -> (parent: CInt, child: CInt) {
        try lock.withLock { () throws(ForkPoolError) in
            var fds: [CInt] = [-1, -1]
            let made = seqpacket ? forkpool_seqpacket_pair(&fds) : forkpool_socketpair(&fds)
            guard made == 0 else { throw ForkPoolError.systemCall("socketpair") }
            open.insert(fds[0])
            open.insert(fds[1])
            return (fds[0], fds[1])
        }
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

    /// Forks a worker that keeps `childSocket` and closes every other pool descriptor.
    /// Returns the pid in the parent and 0 in the child (whose registry is then emptied).
    static func forkWorker(keeping childSocket: CInt, options: CInt) throws(ForkPoolError) -> pid_t {
        lock.lock()
        let closing = open.filter { $0 != childSocket }.map { CInt($0) }
        let pid = closing.withUnsafeBufferPointer { fds in
            forkpool_fork_worker(fds.baseAddress, CInt(fds.count), options)
        }
        let forkErrno = errno
        if pid == 0 {
            // The child owns none of the parent's pool descriptors any more.
            open = [childSocket]
        }
        lock.unlock()
        guard pid >= 0 else { throw ForkPoolError(.systemCallFailed, "fork failed", errno: forkErrno) }
        return pid
    }

    /// The number of registered descriptors (tests use it to prove nothing leaks).
    static var count: Int { lock.withLock { open.count } }

    /// The registered descriptors (tests check a worker's registry against what it has open).
    static var registered: Set<CInt> { lock.withLock { open } }
}
