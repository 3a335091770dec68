// DispatcherTurn: what one turn of the dispatcher's loop decided under its lock, for the loop
// to act on outside it (where futures may call back into the pool).
import Glibc

/// What one turn decided under the lock, for the loop to act on outside it (where futures
/// may call back into the pool).
struct DispatcherTurn {
    /// Workers just handed a task, to start sending it.
    var assigned: [Int] = []
    /// Tasks dropped from the queue (shutdown with cancelPending, a broken pool), to fail.
    var dropped: [(PendingTask, ForkPoolError)] = []
    /// Queued tasks past their deadline, to fail as timed out.
    var expired: [PendingTask] = []
    /// Running tasks whose futures were cancelled: their workers are to be stopped.
    var cancelled: Set<UInt64> = []
    /// The nearest deadline of a task still queued.
    var nextQueuedDeadline: UInt64?
    /// `submitWhenReady` callers whose tasks were queued (or refused), to resume.
    var resumptions: [ParkedResumption] = []
    /// Queued tasks whose owners block in `get()`, each given an idle worker's lane: to send
    /// from this thread and wake the owner, who reads the reply (and serves the queue) itself.
    var handedOver: [(lane: DirectLane, task: PendingTask)] = []
    /// Tasks sent behind busy workers' running ones.
    var pipelined: [(index: Int, task: PendingTask)] = []
    /// Whether the loop is done: shut down with nothing left, or the pool failed to start.
    var finished = false
}
