// CancellationRelay: carries a Swift Task's cancellation to the pool tasks it queued.
//
// An async call registers a cancel action per task it queues and removes it when the task is
// done; `withTaskCancellationHandler`'s handler (any thread) calls `cancelAll()`, which runs
// every registered action and makes later registrations cancel at once.

final class CancellationRelay: @unchecked Sendable {
    private let lock = ConditionLock()
    private var cancelled = false
    private var actions: [UInt64: @Sendable () -> Void] = [:]

    /// Registers `action` for task `id`; runs it now if cancellation already came.
    func add(_ id: UInt64, _ action: @escaping @Sendable () -> Void) {
        let now: Bool = lock.withLock {
            if cancelled { return true }
            actions[id] = action
            return false
        }
        if now { action() }
    }

    func remove(_ id: UInt64) {
        _ = lock.withLock { actions.removeValue(forKey: id) }
    }

    /// Runs every registered action once, outside the lock.
    func cancelAll() {
        let pending: [@Sendable () -> Void] = lock.withLock {
            cancelled = true
            defer { actions = [:] }
            return Array(actions.values)
        }
        for action in pending { action() }
    }
}
