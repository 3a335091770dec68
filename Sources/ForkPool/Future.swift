// Future: the caller's handle on one submitted task.
//
// A pool creates it at `submit`, the pool's thread completes it exactly once (result, error
// or cancellation), and any number of callers wait on it: blocking with `get()` or
// suspending with `await value`. State moves queued → running → done, or queued → done
// when cancelled. `cancel()` wins while the task is queued; on a ProcessPool it also wins
// while the task runs, by killing the worker that runs it. An awaiting caller whose Swift
// `Task` is cancelled cancels the future the same way, the running case only when the pool
// was configured to (`cancellationKillsRunningTasks`). Completion callbacks feed
// `results(for:)`, which hands results over in the order they complete.

import CForkShim
import Synchronization

/// The eventual result of one task submitted to a ``WorkerPool``.
public final class Future<Value: Sendable>: @unchecked Sendable {
    private enum State {
        case queued
        case running
        case done(Result<Value, ForkPoolError>)
    }

    /// The pool-wide id of the task; its errors carry it (``ForkPoolError/taskID``).
    let taskID: UInt64
    private let lock = ConditionLock()
    private var state = State.queued
    private var waiters: [UnsafeContinuation<Result<Value, ForkPoolError>, Never>] = []
    /// Called once each, outside the lock, when the future completes.
    private var completionHandlers: [@Sendable (Result<Value, ForkPoolError>) -> Void] = []
    /// Whether a cancelled awaiting `Task` may stop the task while it runs (ProcessPool's
    /// `cancellationKillsRunningTasks`); queued tasks are always dropped.
    let taskCancellationStopsRunning: Bool
    /// Set by pools that can stop a running task (ProcessPool kills its worker); called once,
    /// outside the lock, when `cancel()` wins against a running task.
    private let stopRunning: (@Sendable () -> Void)?
    /// Mirrors `state == .done` for the lock-free spin in `waitForResult`.
    private let isCompleted = Atomic<Bool>(false)
    /// At most about 20–40 µs of `pause` on current x86: longer than a wake-up costs, far
    /// shorter than any task worth a pool. Measured by `make bench` (round trip p50).
    static var maximumSpins: Int { 2000 }
    /// Whether `get()` spins briefly before sleeping (single tasks yes, `map` chunks no).
    private let spinsWhileWaiting: Bool
    /// Set while a task that went straight to an idle worker (ProcessPool's direct lane) has
    /// no reader: the first caller to block on it reads the reply itself; anyone else who asks
    /// (isDone, await, a callback) hands the reply to the pool's dispatcher. Cleared on use
    /// and on completion.
    private var laneClaim: (LaneClaim)?
    /// Set by a pool with a bound on its queue: called once, outside the lock, when the future
    /// completes while its task is still queued (cancelled, dropped), so the pool can give its
    /// place to a caller waiting for room. Never called with the pool's lock held.
    private let leftQueueEarly: (@Sendable () -> Void)?

    init(taskID: UInt64, spinsWhileWaiting: Bool = true, stopRunning: (@Sendable () -> Void)? = nil,
         taskCancellationStopsRunning: Bool = false, leftQueueEarly: (@Sendable () -> Void)? = nil) {
        self.taskID = taskID
        self.spinsWhileWaiting = spinsWhileWaiting
        self.stopRunning = stopRunning
        self.taskCancellationStopsRunning = taskCancellationStopsRunning
        self.leftQueueEarly = leftQueueEarly
    }

    /// Whether the future has completed, without handing a lane reply back (for the pool's
    /// own queue, whose tasks have none).
    var hasCompleted: Bool { isCompleted.load(ordering: .acquiring) }

    /// Set while the task waits in a worker's socket behind the task it runs (a process pool's
    /// pipeline): on its way, so `cancel()` cannot stop it and returns false, as Python's
    /// executor does for its call queue.
    private var sentAhead = false

    /// The pool sent the task ahead (true), or the task now runs on its worker (false).
    func markSentAhead(_ ahead: Bool) {
        lock.withLock { sentAhead = ahead }
    }

    /// Whether the task has finished: succeeded, failed or been cancelled.
    public var isDone: Bool {
        observe { if case .done = $0 { true } else { false } }
    }

    /// Whether the task was cancelled (its error is ``ForkPoolError/Code/cancelled``).
    var isCancelled: Bool {
        observe { if case .done(.failure(let error)) = $0 { error.code == .cancelled } else { false } }
    }

    /// Reads the state under the lock, handing a reply nobody reads yet to the pool (a caller
    /// who polls will not block reading it).
    private func observe(_ read: (State) -> Bool) -> Bool {
        let (answer, reply) = lock.withLock { () -> (Bool, (LaneClaim)?) in
            defer { laneClaim = nil }
            return (read(state), laneClaim)
        }
        reply?.handBack()
        return answer
    }

    /// Blocks the calling thread until the task finishes and returns its output.
    ///
    /// - Throws: ``ForkPoolError``: ``ForkPoolError/Code/workFailed`` with the thrown error's
    ///   description, ``ForkPoolError/Code/workerDied`` naming the pid and signal or exit
    ///   status, ``ForkPoolError/Code/cancelled``, or a coding error.
    public func get() throws(ForkPoolError) -> Value {
        try waitForResult().get()
    }

    /// Blocks until the task finishes or `timeout` passes; `nil` on time-out (the task goes
    /// on: wait again, or ``cancel()`` it).
    public func get(timeout: Duration) throws(ForkPoolError) -> Value? {
        let deadline = monotonicNanoseconds() + timeout.nanoseconds
        takeLaneClaim()?.receive(until: deadline)
        let outcome: Result<Value, ForkPoolError>? = lock.withLock {
            while true {
                if case .done(let result) = state { return result }
                if !lock.wait(untilMonotonicNanoseconds: deadline) {
                    if case .done(let result) = state { return result }
                    return nil
                }
            }
        }
        return try outcome?.get()
    }



    /// The task's output, suspending (not blocking) the calling task until it is ready.
    ///
    /// If the calling `Task` is cancelled meanwhile, the task is cancelled too: dropped if it
    /// is still queued (this then throws ``ForkPoolError/Code/cancelled``), and killed with
    /// its worker if it runs on a ``ProcessPool`` configured with
    /// ``ProcessPoolConfiguration/cancellationKillsRunningTasks``. Otherwise a running task
    /// finishes and its result is returned: cancellation is cooperative.
    public var value: Value {
        get async throws(ForkPoolError) {
            try await result.get()
        }
    }

    /// The task's outcome as a `Result`, suspending until it is ready; cancelling the calling
    /// `Task` cancels the task as ``value`` describes.
    var result: Result<Value, ForkPoolError> {
        get async {
            await withTaskCancellationHandler {
                await completion
            } onCancel: {
                cancelForCancelledCaller()
            }
        }
    }

    /// Suspends until the future completes, ignoring cancellation of the calling task.
    var completion: Result<Value, ForkPoolError> {
        get async {
            handBackLaneClaim()
            return await withUnsafeContinuation { continuation in
                lock.lock()
                if case .done(let result) = state {
                    lock.unlock()
                    continuation.resume(returning: result)
                } else {
                    waiters.append(continuation)
                    lock.unlock()
                }
            }
        }
    }

    /// What a cancelled awaiting `Task` does: drop the task if queued; stop it while running
    /// only where the pool allows (``taskCancellationStopsRunning``).
    func cancelForCancelledCaller() {
        if taskCancellationStopsRunning {
            cancel()
        } else {
            cancelIfQueued()
        }
    }

    /// Calls `handler` once with the result: now if the future is done, else when it completes
    /// (on the completing thread, outside the lock).
    func onCompletion(_ handler: @escaping @Sendable (Result<Value, ForkPoolError>) -> Void) {
        handBackLaneClaim()
        lock.lock()
        if case .done(let result) = state {
            lock.unlock()
            handler(result)
            return
        }
        completionHandlers.append(handler)
        lock.unlock()
    }

    /// Cancels the task; returns whether it was cancelled. A queued task is dropped. A running
    /// task is stopped only on a ``ProcessPool``, which kills the worker running it (and
    /// replaces it); a ``ThreadPool`` cannot interrupt a thread, so there `cancel()` returns
    /// false once the task runs. A task a process pool has sent to a busy worker behind the one
    /// it runs (``ProcessPoolConfiguration/tasksInFlightPerWorker``) is on its way: `cancel()`
    /// returns false and it runs. A cancelled task's waiters get ``ForkPoolError/Code/cancelled``.
    @discardableResult
    public func cancel() -> Bool {
        if cancelIfQueued() { return true }
        guard let stopRunning, !lock.withLock({ sentAhead }) else { return false }
        let running = ForkPoolError(.cancelled, "task \(taskID) was cancelled while running; its worker was killed",
                                    taskID: taskID)
        guard complete(.failure(running)) else { return false }
        stopRunning()
        return true
    }

    /// Cancels the task only if it has not started; returns whether it was cancelled.
    @discardableResult
    func cancelIfQueued() -> Bool {
        complete(.failure(ForkPoolError(.cancelled, "task \(taskID) was cancelled before it ran", taskID: taskID)),
                 onlyIfQueued: true)
    }

    /// Fails the task as cancelled by `shutdown(cancelPending: true)`.
    func cancelByShutdown() {
        complete(.failure(.cancelledByShutdown(taskID: taskID)))
    }

    func waitForResult() -> Result<Value, ForkPoolError> {
        takeLaneClaim()?.receive(until: nil)
        // A short bounded spin first, for a lone task whose reply lands within microseconds:
        // it is picked up without sleeping on the condition variable and being woken, which
        // on these machines costs more than the socket round trip itself. `map`'s chunk
        // futures do not spin: their replies take milliseconds, and a spinning caller would
        // take a core from the workers.
        // Only a few waiters spin at once, and only while waits are short (SpinSlots): with
        // many callers waiting, they all sleep at once.
        guard spinsWhileWaiting && !isCompleted.load(ordering: .acquiring) else {
            return lock.withLock {
                while !isCompleted.load(ordering: .relaxed) { lock.wait() }
                return doneResult()
            }
        }
        let budget = SpinSlots.budget(maximum: Self.maximumSpins)
        if budget > 0 && SpinSlots.acquire() {
            var spins = 0
            while spins < budget && !isCompleted.load(ordering: .acquiring) {
                forkpool_cpu_relax()
                spins += 1
            }
            SpinSlots.release()
            SpinSlots.learn(answeredWhileSpinning: spins < budget, maximum: Self.maximumSpins)
        }
        return lock.withLock {
            while !isCompleted.load(ordering: .relaxed) { lock.wait() }
            return doneResult()
        }
    }

    /// Lets the first caller to block on a task sent by lane read its reply.
    func attach(_ reply: LaneClaim) {
        lock.withLock {
            if case .done = state { return }
            laneClaim = reply
        }
    }

    private func takeLaneClaim() -> (LaneClaim)? {
        lock.withLock {
            defer { laneClaim = nil }
            return laneClaim
        }
    }

    private func handBackLaneClaim() {
        takeLaneClaim()?.handBack()
    }

    /// The result of a completed future; the caller holds the lock.
    private func doneResult() -> Result<Value, ForkPoolError> {
        guard case .done(let result) = state else { preconditionFailure("future \(taskID) is not done") }
        return result
    }

    /// Moves queued → running; false if the task was cancelled (or finished) meanwhile.
    func markRunning() -> Bool {
        lock.withLock {
            guard case .queued = state else { return false }
            state = .running
            return true
        }
    }

    /// Completes the future once; later completions are ignored. Returns whether this one won.
    @discardableResult
    func complete(_ result: Result<Value, ForkPoolError>, onlyIfQueued: Bool = false) -> Bool {
        lock.lock()
        switch state {
        case .done:
            lock.unlock()
            return false
        case .running where onlyIfQueued:
            lock.unlock()
            return false
        case .queued, .running:
            let wasQueued = if case .queued = state { true } else { false }
            state = .done(result)
            laneClaim = nil
            isCompleted.store(true, ordering: .releasing)
            let waiting = waiters
            waiters = []
            let handlers = completionHandlers
            completionHandlers = []
            lock.broadcast()
            lock.unlock()
            if wasQueued { leftQueueEarly?() }
            for continuation in waiting { continuation.resume(returning: result) }
            for handler in handlers { handler(result) }
            return true
        }
    }
}
