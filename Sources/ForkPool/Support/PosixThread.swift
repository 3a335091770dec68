// PosixThread: starts a pthread running a Swift closure (joinable, or detached).
//
// Both pools own their threads directly (no Dispatch, no Swift concurrency): the process
// pool's dispatcher must be a thread that lives exactly as long as the pool, because the
// workers' parent-death signal follows the thread that forked them.
import CForkShim
import Glibc

package struct PosixThread: @unchecked Sendable {
    private let handle: pthread_t

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread, named `name` (at most 15 bytes are kept); a detached one
    /// cleans up after itself and must not be joined. The corresponding C function is
    /// `pthread_create`.
    package static func start(name: String, detached: Bool = false,
                              _ body: @escaping @Sendable () -> Void) throws(ForkPoolError) -> PosixThread {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        var handle = pthread_t()
        let result = pthread_create(&handle, &attributes, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw ForkPoolError(.systemCallFailed, "pthread_create failed", errno: result)
        }
        // Names show in `top -H`, debuggers and /proc/self/task/*/comm.
        forkpool_set_thread_name(handle, name)
        return PosixThread(handle: handle)
    }

    /// Waits for a joinable thread to finish. Called on that very thread (a pool dropped by
    /// the last callback its own thread ran), it cannot wait for itself: it detaches instead,
    /// so the thread still cleans up after itself when it ends. The corresponding C functions
    /// are `pthread_join` and `pthread_detach`.
    package func join() {
        if pthread_equal(handle, pthread_self()) != 0 {
            pthread_detach(handle)
        } else {
            pthread_join(handle, nil)
        }
    }
}

/// A thread that any number of callers may join, once: the first join waits, the others wait
/// for it, later ones return at once.
final class JoinableThread: @unchecked Sendable {
    private let lock = ConditionLock()
    private var thread: PosixThread?
    private var joined = false

    /// The thread has started (before anyone can join it).
    func started(_ thread: PosixThread) {
        lock.withLock { self.thread = thread }
    }

    func join() {
        lock.withLock {
            guard !joined, let thread else { return }
            thread.join()
            joined = true
        }
    }
}
