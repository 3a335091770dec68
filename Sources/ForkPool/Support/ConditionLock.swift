// ConditionLock: a pthread mutex with one condition variable — the lock for state that threads
// wait on (futures, queues, the dispatcher's phase), and for the descriptor registry, whose
// lock is held across `fork` and let go in the child (a pthread mutex can be; the stdlib's
// `Mutex` promises nothing there). State that is only ever guarded, never waited on, in code
// that never forks (the metrics' counters, the service's stopper) uses the stdlib's `Mutex`.
//
// Both pools and every Future block callers on this. It is a class so its address is stable
// (pthread objects must never move) and it is shared by reference between threads.
import Glibc

final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        // Deadlines are measured on the monotonic clock, immune to wall-clock changes.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(condition, &attributes) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal; the caller holds the lock and re-checks its predicate after.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits until signalled or `deadline` (monotonic nanoseconds) passes; false on time-out.
    func wait(untilMonotonicNanoseconds deadline: UInt64) -> Bool {
        var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &time) != ETIMEDOUT
    }

    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}
