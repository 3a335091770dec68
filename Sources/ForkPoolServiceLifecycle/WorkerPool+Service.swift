// ForkPoolServiceLifecycle: ProcessPool and ThreadPool as swift-service-lifecycle `Service`s.
//
//   ServiceGroup ─▶ pool.run() ─ suspends (holds no thread) until…
//     graceful shutdown (SIGTERM) ─▶ stop(cancelPending: false) ─┐
//     cancellation of run()'s task ─▶ stop(cancelPending: true)  ─┤
//   a "forkpool-stop" pthread runs the blocking shutdown ◀────────┘ ─▶ run() returns
//
// `shutdown` joins threads and reaps processes, so it never runs on the cooperative pool; a
// cancellation during a graceful drain escalates it (shutdown is idempotent).
import ForkPool
import ServiceLifecycle
import Synchronization

extension ProcessPool: Service {
    /// Runs the pool as a long-running service of a `ServiceGroup`.
    ///
    /// Suspends, without holding a thread, until one of two things happens:
    /// * **graceful shutdown** of the service — a graceful-shutdown signal of the group such as
    ///   SIGTERM, or `ServiceGroup.triggerGracefulShutdown()`: the pool stops accepting tasks,
    ///   runs every task already queued, waits for the running ones and for every worker process
    ///   to exit (`shutdown(cancelPending:)` with `cancelPending: false`);
    /// * **cancellation** of the task running `run()` (for example the group's task): the same,
    ///   but the queued tasks fail with `ForkPoolError.Code.cancelled` instead of running
    ///   (`cancelPending: true`). Tasks already running still finish. A cancellation during a
    ///   graceful shutdown cancels the tasks still queued.
    ///
    /// Returns once the pool has shut down and every worker process has been reaped — also after
    /// a cancellation: it does not throw `CancellationError`, so a `ServiceGroup` that is being
    /// cancelled sees the service finish normally. The blocking shutdown runs on a dedicated
    /// thread, never on a thread of Swift's cooperative pool.
    ///
    /// Outside a `ServiceGroup` (or another source of graceful shutdown for its task) there is
    /// no graceful shutdown to wait for: `run()` then returns only when its task is cancelled. A pool shut down by other means meanwhile (`shutdown()`)
    /// does not make `run()` return.
    public func run() async {
        await runUntilShutdown(self)
    }
}

extension ThreadPool: Service {
    /// Runs the pool as a long-running service of a `ServiceGroup`.
    ///
    /// Suspends, without holding a thread, until graceful shutdown of the service (a
    /// graceful-shutdown signal of the group such as SIGTERM, or
    /// `ServiceGroup.triggerGracefulShutdown()`) — then stops accepting tasks, runs every task
    /// already queued and joins the pool's threads (`shutdown(cancelPending:)` with
    /// `cancelPending: false`) — or until the task running `run()` is cancelled, which does the
    /// same but fails the queued tasks with `ForkPoolError.Code.cancelled` (`cancelPending:
    /// true`). A running task is never interrupted: a thread cannot be stopped. A cancellation
    /// during a graceful shutdown cancels the tasks still queued.
    ///
    /// Returns once every thread of the pool has been joined, also after a cancellation (it does
    /// not throw `CancellationError`). The blocking join runs on a dedicated thread, never on a
    /// thread of Swift's cooperative pool. Outside a `ServiceGroup`, `run()` returns only when its
    /// task is cancelled.
    public func run() async {
        await runUntilShutdown(self)
    }
}

/// The body of both `run()`s: wait for graceful shutdown or cancellation, whichever comes first,
/// then for the pool's shutdown to finish.
private func runUntilShutdown<Pool: WorkerPool>(_ pool: Pool) async {
    let stopper = PoolStopper(pool)
    // Either handler runs at once if its event has already happened, before the wait begins.
    await withTaskCancellationHandler {
        await withGracefulShutdownHandler {
            await stopper.waitUntilStopped()
        } onGracefulShutdown: {
            stopper.stop(cancelPending: false)
        }
    } onCancel: {
        stopper.stop(cancelPending: true)
    }
}

/// Shuts one pool down on a thread of its own and wakes the suspended `run()` when it is down.
/// `stop` is called from the graceful-shutdown and cancellation handlers, which must not block.
private final class PoolStopper<Pool: WorkerPool>: Sendable {
    private struct State {
        var gracefulStarted = false
        var cancellingStarted = false
        var stopped = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let pool: Pool
    private let state = Mutex(State())

    init(_ pool: Pool) {
        self.pool = pool
    }

    /// Starts a shutdown unless one at least as strong has started; returns at once.
    func stop(cancelPending: Bool) {
        let start = state.withLock { state -> Bool in
            if state.stopped || state.cancellingStarted { return false }
            if cancelPending {
                state.cancellingStarted = true
                return true
            }
            if state.gracefulStarted { return false }
            state.gracefulStarted = true
            return true
        }
        guard start else { return }
        let body: @Sendable () -> Void = { [self] in
            // Returns only once every worker is gone, whichever of two concurrent calls it is.
            pool.shutdown(cancelPending: cancelPending)
            markStopped()
        }
        // A thread that may block, as `shutdown` does, without taking one of the cooperative
        // pool's few threads; with no thread to be had, block a cooperative one rather than
        // never stop.
        if (try? PosixThread.start(name: "forkpool-stop", detached: true, body)) == nil {
            Task.detached { body() }
        }
    }

    /// Suspends until a shutdown started by `stop` has finished.
    func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyStopped = state.withLock { state -> Bool in
                if state.stopped { return true }
                state.waiter = continuation
                return false
            }
            if alreadyStopped { continuation.resume() }
        }
    }

    private func markStopped() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.stopped = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
