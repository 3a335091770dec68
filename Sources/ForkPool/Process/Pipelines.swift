// Pipelines: queued tasks sent behind a running one under load, so a worker never waits for the
// dispatcher between tasks (several frames per write, replies per read). The worker set picks
// who gets what; the dispatcher sends it (handOutPipelined) and reruns what a dead worker never
// ran (rerunPipelined).
//
//   takeWork ─▶ WorkerSet.sendAhead: busy workers get more, level by level, as deep as their
//             recent tasks allow (short: up to the in-flight limit; moderate: one behind the
//             running one) ─▶ handOutPipelined: one send per worker
//   a reply ─▶ WorkerProcess.receive: the next one runs   the worker dies ─▶ they run elsewhere
//
// Never sent ahead: a task with a deadline, a raw tail or a large frame, nor to a worker whose
// recent or running task is long. Replies are not batched (a crash would lose a finished one).
extension WorkerSet {
    /// Takes queued tasks off `queue` and sends them ahead to busy workers, one more per worker
    /// per round (so they share the queue evenly), each as deep as its `pipelineDepth` allows
    /// (at most `inFlightLimit`). Stops at the first queued task that cannot go ahead (a
    /// deadline, a raw tail, a large frame), so the queue's order is kept. Under the
    /// dispatcher's lock (the queue is shared).
    mutating func sendAhead(from queue: inout WorkQueue<PendingTask>, inFlightLimit: Int) -> [(index: Int, task: PendingTask)] {
        guard inFlightLimit > 1, !queue.isEmpty else { return [] }
        var sent: [(index: Int, task: PendingTask)] = []
        let now = monotonicNanoseconds()
        let candidates = indices.map { (index: $0, depth: self[$0].pipelineDepth(now: now, inFlightLimit: inFlightLimit)) }
            .filter { $0.depth > 1 }
        guard !candidates.isEmpty else { return [] }
        for level in 1..<inFlightLimit {
            for (index, depth) in candidates where level < depth && self[index].tasksInFlight == level {
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
    /// Short tasks: a worker whose recent tasks took at most this, and whose running task has
    /// not run longer, gets up to the in-flight limit. (Variables only so that tests can make a
    /// task held at a gate count as short or moderate.)
    nonisolated(unsafe) static var pipelineTaskNanoseconds: UInt64 = 100_000
    /// Moderate tasks: up to this, the worker gets one task behind its running one, so it
    /// never waits for the dispatcher between tasks (as Python's executor keeps a call queued
    /// per worker); the task sent ahead waits for one such task at most. Longer: nothing goes
    /// ahead.
    nonisolated(unsafe) static var oneAheadTaskNanoseconds: UInt64 = 1_000_000

    /// How many tasks this worker may have in flight, its running one included, when the
    /// dispatcher sends more behind it: `inFlightLimit` while its tasks are short, 2 while they
    /// are moderate, else 1 (nothing ahead). Only a worker that runs a task without a deadline
    /// (a deadline may kill it), is healthy, has nothing raw being sent to it and has finished
    /// a task before gets any (one just handed out has no start time yet: it starts now).
    func pipelineDepth(now: UInt64, inFlightLimit: Int) -> Int {
        guard let running = task, running.deadline == nil, socket != nil, fault == nil, outgoing.tail.isEmpty,
              let recent = recentTaskNanoseconds else { return 1 }
        let runningFor = running.handedOutAt.map { now > $0 ? now - $0 : 0 } ?? 0
        let longest = max(recent, runningFor)
        if longest <= WorkerProcess.pipelineTaskNanoseconds { return inFlightLimit }
        if longest <= WorkerProcess.oneAheadTaskNanoseconds { return min(2, inFlightLimit) }
        return 1
    }

    /// Whether task `id` waits in this worker's pipeline.
    func isPipelining(_ id: UInt64) -> Bool {
        pipeline.contains { $0.id == id }
    }
}
