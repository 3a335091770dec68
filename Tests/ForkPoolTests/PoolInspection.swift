// What the tests look at inside a process pool, kept out of the product: each reads the
// dispatcher's own state (reachable through `@testable import`).
import Synchronization
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ProcessPool {
    /// Queued tasks whose deadline the dispatcher watches (finished ones must be let go).
    var tasksWatchedForDeadline: Int { dispatcher.lock.withLock { dispatcher.queue.watchedCount } }
    /// How many tasks went straight from the submitting thread to an idle worker (by lane).
    var tasksSentByLane: Int { dispatcher.accounting.paths.laneSends.load(ordering: .relaxed) }
    /// How many callers read a reply by lane now.
    var callersReadingByLane: Int { dispatcher.accounting.paths.laneReaders.load(ordering: .relaxed) }
    /// How many idle workers are lent to submitting threads now.
    var openLaneCount: Int { dispatcher.lock.withLock { dispatcher.lanes.open.count } }
    /// How many tasks (single inputs or chunks) the pool has created.
    var tasksCreated: UInt64 { dispatcher.taskIDs.load(ordering: .relaxed) - 1 }
    /// How many `submitWhenReady` callers wait for room now.
    var parkedSubmissions: Int { dispatcher.lock.withLock { dispatcher.queue.parkedCount } }
    /// How many tasks were sent behind a running one, and how many of those ran elsewhere
    /// because their worker died first.
    var tasksPipelined: Int { dispatcher.accounting.paths.pipelinedSends.load(ordering: .relaxed) }
    var pipelinedTasksRerun: Int { dispatcher.accounting.paths.pipelinedReruns.load(ordering: .relaxed) }
    /// How many turns the dispatcher's loop has taken (one per wake-up).
    var dispatcherTurns: Int { dispatcher.accounting.paths.dispatcherTurns.load(ordering: .relaxed) }
    /// How many times a thread blocked in `get()` on a queued task.
    var blockedReaders: Int { dispatcher.accounting.paths.blockedReaders.load(ordering: .relaxed) }
    /// How many tasks a caller sent from its lane for another caller.
    var tasksServedByLane: Int { dispatcher.accounting.paths.servedByLane.load(ordering: .relaxed) }
}

extension ThreadPool {
    /// How many `submitWhenReady` callers wait for room now.
    var parkedSubmissions: Int { engine.parkedCount }
    /// How many tasks (single inputs or chunks) the pool has created.
    var tasksCreated: UInt64 { engine.lock.withLock { engine.nextTaskID - 1 } }
}

extension ProcessPoolConfiguration {
    /// The defaults, changed by `change`: the tests' one-line configurations.
    static func with(_ change: (inout ProcessPoolConfiguration) -> Void) -> ProcessPoolConfiguration {
        var configuration = ProcessPoolConfiguration()
        change(&configuration)
        return configuration
    }
}
