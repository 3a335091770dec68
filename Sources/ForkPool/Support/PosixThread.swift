// PosixThread: starts a joinable pthread running a Swift closure.
//
// Both pools own their threads directly (no Dispatch, no Swift concurrency): the process
// pool's dispatcher must be a thread that lives exactly as long as the pool, because the
// workers' parent-death signal follows the thread that forked them.
import CForkShim
import Glibc

struct PosixThread: @unchecked Sendable {
    private let handle: pthread_t

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread. The corresponding C function is `pthread_create`.
    static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(ForkPoolError) -> PosixThread {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
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

    /// Waits for the thread to finish. The corresponding C function is `pthread_join`.
    func join() {
        pthread_join(handle, nil)
    }

    static var isCurrentThread: (PosixThread) -> Bool {
        { pthread_equal($0.handle, pthread_self()) != 0 }
    }
}
