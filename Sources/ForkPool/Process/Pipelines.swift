// Pipelines: short queued tasks sent behind a running one under load, so a worker never waits
// for the dispatcher between tasks (several frames per write, replies per read). The worker
// set picks who gets what; the dispatcher sends it (handOutPipelined) and reruns what a dead
// worker never ran (rerunPipelined).
//
//   takeWork ─▶ WorkerSet.sendAhead: busy workers with short recent tasks get more, level by
//             level, up to the in-flight limit ─▶ handOutPipelined: one send per worker
//   a reply ─▶ WorkerProcess.receive: the next one runs   the worker dies ─▶ they run elsewhere
//
// Never sent ahead: a task with a deadline, a raw tail or a large frame, nor to a worker whose
// recent or running task is long. Replies are not batched (a crash would lose a finished one).
extension WorkerSet {
    /// Takes queued tasks off `queue` and sends them ahead to busy workers with short recent
    /// tasks, one more per worker per round (so they share the queue evenly), up to
    /// `inFlightLimit` per worker. Stops at the first queued task that cannot go ahead (a
    /// deadline, a raw tail, a large frame), so the queue's order is kept. Under the
    /// dispatcher's lock (the queue is shared).
    mutating func sendAhead(from queue: inout WorkQueue<PendingTask>, inFlightLimit: Int) -> [(index: Int, task: PendingTask)] {
        guard inFlightLimit > 1, !queue.isEmpty else { return [] }
        var sent: [(index: Int, task: PendingTask)] = []
        let now = monotonicNanoseconds()
        let candidates = indices.filter { self[$0].acceptsPipelinedTask(now: now) }
        guard !candidates.isEmpty else { return [] }
        for level in 1..<inFlightLimit {
            for index in candidates where self[index].tasksInFlight == level {
                guard let next = queue.startFirst(if: \.mayBeSentAhead) else { return sent }
                next.markSentAhead(true)  // on its way: cancel() cannot stop it
                self[index].pipeline(next)
                sent.append((index, next))
                if queue.isEmpty { return sent }
            }
        }
        return sent
    }
}

extension WorkerProcess {
    /// A worker whose recent tasks took longer than this, or whose running task has run this
    /// long already, gets nothing sent ahead. (A variable only so that tests can make a task
    /// held at a gate count as short.)
    nonisolated(unsafe) static var pipelineTaskNanoseconds: UInt64 = 100_000

    /// Whether the dispatcher may send this worker a task behind the ones it has: it runs one
    /// without a deadline (a deadline may kill it), is healthy, nothing raw is being sent to it,
    /// its recent tasks were short and the one it runs has not run long yet (one just handed
    /// out has no start time yet: it starts now).
    func acceptsPipelinedTask(now: UInt64) -> Bool {
        guard let running = task, running.deadline == nil, socket != nil, fault == nil, outgoing.tail.isEmpty,
              let recent = recentTaskNanoseconds else { return false }
        let limit = WorkerProcess.pipelineTaskNanoseconds
        let runningFor = running.handedOutAt.map { now > $0 ? now - $0 : 0 } ?? 0
        return recent <= limit && runningFor <= limit
    }

    /// Whether task `id` waits in this worker's pipeline.
    func isPipelining(_ id: UInt64) -> Bool {
        pipeline.contains { $0.id == id }
    }
}
