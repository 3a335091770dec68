// WorkerLife: the stages of a worker's life as the parent sees them, and WorkerRun, the record
// of the task a running worker holds with what is sent behind it. The transitions between them
// are WorkerProcess's methods.
//
//   starting ─ready─▶ idle ─assign─▶ running(WorkerRun) ─answered─▶ idle | running(next)
//   idle ─lend─▶ lent ─giveBack─▶ idle      idle ─▶ serving (async jobs) ─▶ idle      idle ─▶ retiring

/// A worker's stage. Impossible mixes (a lent worker running a task, a starting one idle)
/// cannot be written down.
enum WorkerLife {
    /// Forked; its initializer has not said `ready`. With the initializer's error when it
    /// threw (the worker exits next, and its exit counts as a failed start).
    case starting(initializerError: String?)
    /// Ready and holding no task: takes the next one, or is lent.
    case idle
    /// Lent to its lane: a submitting thread sends it a task and a caller reads the reply;
    /// the dispatcher neither hands it tasks nor polls its socket.
    case lent
    /// Running a task, with more perhaps sent behind it.
    case running(WorkerRun)
    /// Recycled: takes no more tasks, and is dismissed once its replacement is ready.
    case retiring
    /// Running async jobs at once (`served`), up to the pool's `jobsPerWorker`.
    case serving
}

/// The task a worker runs and what is sent behind it.
struct WorkerRun {
    var task: PendingTask
    /// Tasks sent behind the running one, oldest first (under load, to a worker whose
    /// recent tasks were short: see `WorkerSet.sendAhead`); each becomes `task`
    /// when the one before it is answered. A worker that dies runs none of them.
    var pipeline = FIFOQueue<PendingTask>()
    /// When the task must be done (monotonic ns), if it has a time limit.
    var deadline: UInt64?
    /// False when the task never reached the worker: its frame had not all been sent when the
    /// socket turned out dead, or the worker closed its end with that frame unread.
    var delivered = true
}
