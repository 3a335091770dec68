// Future: the caller's handle on one task — a result cell. State (queued → running → done),
// the threads and tasks waiting on it, completion callbacks, and one hook into the pool.
//
//   pool: complete(result) ─▶ state .done ─▶ wake blocked get()s, resume awaiting tasks, run callbacks
//   caller: get() ─▶ hook.willBlock (a process pool may read a lane reply here) ─▶ wait ─▶ result
//   caller: cancel() ─▶ dropped while queued; while running, only if the hook can stop it
//
// Everything that is the pool's business (lanes, pipelines, the queue's bound, killing a
// worker) is behind `TaskHook`; the hook completes the future, never the other way round.

import CForkShim
import Synchronization

/// What a pool does for the futures it makes: the one seam between a ``Future`` and its pool.
/// Called outside the future's lock. Defaults: a task that cannot be stopped once it runs, and
/// no reply to read.
protocol TaskHook: AnyObject, Sendable {
    /// Whether the running task can be stopped now (a process pool kills its worker; not a
    /// task sent ahead behind another, not a thread).
    var canStopRunning: Bool { get }
    /// Stops the running task; its future is already completed as cancelled.
    func stopRunning()
    /// Whether a cancelled awaiting `Task` stops the task while it runs, or only while queued.
    var cancelledCallerStopsRunning: Bool { get }
    /// The task left the queue before it ran (its future completed while queued).
    func leftQueueEarly()
    /// A thread is about to block on the future until `deadline` (monotonic ns): the hook may
    /// read the reply on this thread; afterwards the future is complete or the pool has it.
    func willBlock(until deadline: UInt64?)
    /// Someone waits without blocking (polls, awaits, a callback): the pool must read the reply.
    func willNotBlock()
}

extension TaskHook {
    /// A running task is stopped by cancelling its job's Task in the worker, not by killing the
    /// worker (an async job running beside others). Default false.
    var cancelsInPlace: Bool { false }

    var canStopRunning: Bool { false }
    func stopRunning() {}
    var cancelledCallerStopsRunning: Bool { false }
    func willBlock(until deadline: UInt64?) {}
    func willNotBlock() {}
}

/// The eventual result of one task submitted to a pool.
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
    /// The pool's side; set once before the future is handed out, dropped on completion (it
    /// may refer back to the future).
    private var hook: (any TaskHook)?
    /// Mirrors `state == .done` for the lock-free spin in `waitForResult`.
    private let isCompleted = Atomic<Bool>(false)
    /// Set when the pool sent the task on a lane for a thread blocked in `get()` to read: that
    /// thread wakes and reads the reply itself, through the hook.
    private var replyToRead = false
    /// A caller serving the queue completes this future and wakes its sleeping waiters later,
    /// once it leaves the lane (`releaseWakes`): a woken thread would take a core from it.
    private var holdsWakes = false
    private var wakeHeld = false
    /// At most about 20–40 µs of `pause` on current x86: longer than a wake-up costs, far
    /// shorter than any task worth a pool.
    static var maximumSpins: Int { 2000 }
    /// Whether `get()` spins briefly before sleeping (single tasks yes, `map` chunks no: their
    /// replies take milliseconds, and a spinning caller would take a core from the workers).
    private let spinsWhileWaiting: Bool

    init(taskID: UInt64, spinsWhileWaiting: Bool = true, hook: (any TaskHook)? = nil) {
        self.taskID = taskID
        self.spinsWhileWaiting = spinsWhileWaiting
        self.hook = hook
    }

    /// Sets the pool's hook; only before the future is handed to anyone.
    func attach(_ hook: any TaskHook) {
        lock.withLock { self.hook = hook }
    }

    /// Drops the hook of a future nobody will see (its task was refused): the hook may refer
    /// back to the future.
    func detach() {
        lock.withLock { hook = nil }
    }

    /// The hook while the future is not done.
    private var liveHook: (any TaskHook)? {
        lock.withLock { hook }
    }

    /// Whether the future has completed, without asking the pool for a reply it may hold.
    var hasCompleted: Bool { isCompleted.load(ordering: .acquiring) }

    /// Whether the task has finished: succeeded, failed or been cancelled.
    public var isDone: Bool {
        liveHook?.willNotBlock()
        return hasCompleted
    }

    /// Whether the task was cancelled (its error is ``ForkPoolError/Code/cancelled``).
    var isCancelled: Bool {
        guard isDone else { return false }
        return lock.withLock { if case .done(.failure(let error)) = state { error.code == .cancelled } else { false } }
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
        if !hasCompleted { liveHook?.willBlock(until: deadline) }
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
    /// its worker if it runs on a process pool configured with
    /// ``ProcessPoolConfiguration/cancellationKillsRunningTasks``. Otherwise a running task
    /// finishes and its result is returned: cancellation is cooperative.
    public var value: Value {
        get async throws(ForkPoolError) {
            try await result.get()
        }
    }

    /// The task's outcome, suspending until it is ready; cancelling the calling `Task` cancels
    /// the task as ``value`` describes.
    var result: Result<Value, ForkPoolError> {
        get async {
            await withTaskCancellationHandler {
                await completion
            } onCancel: {
                cancelForCancelledCaller()
            }
        }
    }

    /// Suspends until the future completes, ignoring cancellation of the calling task (a job
    /// queue's host decides itself when to stop a job).
    @_spi(Integration) public var completion: Result<Value, ForkPoolError> {
        get async {
            liveHook?.willNotBlock()
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
    /// only where the pool allows.
    func cancelForCancelledCaller() {
        if liveHook?.cancelledCallerStopsRunning == true {
            cancel()
        } else {
            cancelIfQueued()
        }
    }

    /// Calls `handler` once with the result: now if the future is done, else when it completes
    /// (on the completing thread, outside the lock: for a process pool, its dispatcher thread
    /// or a caller's thread reading replies by lane — the handler must not block).
    @_spi(Integration) public func onCompletion(_ handler: @escaping @Sendable (Result<Value, ForkPoolError>) -> Void) {
        liveHook?.willNotBlock()
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
    /// task is stopped only on a process pool, which kills the worker running it (and
    /// replaces it); a thread cannot be interrupted, so there `cancel()` returns false once the
    /// task runs. A task a process pool has already sent to a busy worker behind the one it
    /// runs is on its way: `cancel()` returns false and it runs. A cancelled task's waiters get
    /// ``ForkPoolError/Code/cancelled``.
    @discardableResult
    public func cancel() -> Bool {
        if cancelIfQueued() { return true }
        guard let hook = liveHook, hook.canStopRunning else { return false }
        let how = hook.cancelsInPlace ? "its Task was cancelled, in its worker" : "its worker was killed"
        let running = ForkPoolError(.cancelled, "task \(taskID) was cancelled while running; \(how)", taskID: taskID)
        guard complete(.failure(running)) else { return false }
        hook.stopRunning()
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
        if !hasCompleted { liveHook?.willBlock(until: nil) }
        // A short bounded spin first, for a lone task whose reply lands within microseconds:
        // picked up without sleeping on the condition variable and being woken, which costs
        // more than the socket round trip itself. Only a few waiters spin at once, and only
        // while waits are short (SpinSlots): with many callers waiting, they all sleep.
        guard spinsWhileWaiting && !isCompleted.load(ordering: .acquiring) else { return sleepUntilDone() }
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
        return sleepUntilDone()
    }

    /// Sleeps until the future completes; woken to read a reply the pool left for this thread
    /// (`wakeToReadReply`), reads it through the hook and sleeps again if that was not all.
    private func sleepUntilDone() -> Result<Value, ForkPoolError> {
        lock.lock()
        while !isCompleted.load(ordering: .relaxed) {
            if replyToRead, let hook {
                replyToRead = false
                lock.unlock()
                hook.willBlock(until: nil)
                lock.lock()
                continue
            }
            lock.wait()
        }
        let result = doneResult()
        lock.unlock()
        return result
    }

    /// A caller serving the queue from its lane is about to read this task's reply: if it
    /// completes the future, threads asleep on it stay asleep until `releaseWakes` (async
    /// waiters and callbacks go on at once).
    func holdWakes() { lock.withLock { holdsWakes = true } }

    /// Wakes the threads asleep on the future if its completion was held back.
    func releaseWakes() {
        lock.withLock {
            holdsWakes = false
            if wakeHeld {
                wakeHeld = false
                lock.broadcast()
            }
        }
    }

    /// The pool sent this task on a lane for the thread blocked in `get()` to read its reply:
    /// wakes it to do so.
    func wakeToReadReply() {
        lock.withLock {
            replyToRead = true
            lock.broadcast()
        }
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
            let released = hook
            hook = nil
            isCompleted.store(true, ordering: .releasing)
            let waiting = waiters
            waiters = []
            let handlers = completionHandlers
            completionHandlers = []
            if holdsWakes { wakeHeld = true } else { lock.broadcast() }
            lock.unlock()
            if wasQueued { released?.leftQueueEarly() }
            for continuation in waiting { continuation.resume(returning: result) }
            for handler in handlers { handler(result) }
            return true
        }
    }
}
