// Dispatcher+Pipelines: short queued tasks sent behind a running one under load, so a worker
// never waits for the dispatcher between tasks (several frames per write, replies per read).
//
//   takeWork ─▶ fillPipelinesLocked: busy workers with short recent tasks get more, level by
//             level, up to `settings.tasksInFlightPerWorker` ─▶ handOutPipelined: one send per worker
//   a reply ─▶ WorkerProcess.receive: the next one runs   the worker dies ─▶ the ones behind it
//             never ran: they run elsewhere (retries)     sent ahead ─▶ cancel() returns false
//
// Never sent ahead: a task with a deadline, a raw tail or a large frame, nor to a worker whose
// recent or running task is long. Replies are not batched (a crash would lose a finished one).
extension Dispatcher {
    /// A worker whose recent tasks took longer than this, or whose running task has run this
    /// long already, gets nothing sent ahead. (A variable only so that tests can make a task
    /// held at a gate count as short.)
    nonisolated(unsafe) static var pipelineTaskNanoseconds: UInt64 = 100_000

    /// Under the lock: sends queued tasks ahead to busy workers with short recent tasks, one
    /// more per worker per round (so they share the queue evenly), up to the in-flight limit.
    /// Stops at the first queued task that cannot go ahead (a deadline, a raw tail, a large
    /// frame), so the queue's order is kept.
    func fillPipelinesLocked() -> [(index: Int, task: PendingTask)] {
        guard settings.tasksInFlightPerWorker > 1, !queue.isEmpty else { return [] }
        var sent: [(index: Int, task: PendingTask)] = []
        let now = monotonicNanoseconds()
        let candidates = workers.indices.filter { workers[$0].acceptsPipelinedTask(now: now) }
        guard !candidates.isEmpty else { return [] }
        for level in 1..<settings.tasksInFlightPerWorker {
            for index in candidates where workers[index].tasksInFlight == level {
                while let next = queue.first {
                    if next.leftQueue {  // expired this turn
                        _ = queue.popFirst()
                        continue
                    }
                    guard next.deadline == nil, next.tail.isEmpty, next.frame.count <= DirectLane.maximumFrameBytes else { return sent }
                    _ = queue.popFirst()
                    guard next.start() else { continue }  // cancelled while queued
                    next.markSentAhead(true)  // on its way: cancel() cannot stop it
                    workers[index].pipeline(next)
                    sent.append((index, next))
                    break
                }
                if queue.isEmpty { return sent }
            }
        }
        return sent
    }

    /// Sends what `fillPipelinesLocked` queued for each worker (one send per worker), then
    /// records how long each task waited in the queue.
    func handOutPipelined(_ sent: [(index: Int, task: PendingTask)]) {
        guard !sent.isEmpty else { return }
        accounting.paths.pipelinedSends.add(sent.count, ordering: .relaxed)
        var flushed = Set<Int>()
        for (index, _) in sent where flushed.insert(index).inserted { flush(index) }
        let now = monotonicNanoseconds()
        for (_, task) in sent {
            accounting.recordHandedOut(queuedNanoseconds: now > task.enqueuedAt ? now - task.enqueuedAt : 0)
        }
    }

    /// Tasks sent ahead to a worker that is gone: they never ran, so they run elsewhere first
    /// (not counted as crashes); if the pool cannot run anything more (its dispatcher failed,
    /// or it is stopping), they fail with `error`. One cancelled meanwhile is only settled.
    func rerunPipelined(_ tasks: [PendingTask], slot: Int, error: @autoclosure () -> ForkPoolError) {
        guard !tasks.isEmpty else { return }
        let runnable = !workers.stopping && lock.withLock { dispatcherFailure == nil }
        for task in tasks {
            if task.completion.hasCompleted {
                lock.withLock { _ = cancelledRunning.remove(task.id) }
                accounting.recordOutcome(of: task, failure: .cancelled, slot: nil)
            } else if runnable {
                accounting.paths.pipelinedReruns.add(1, ordering: .relaxed)
                task.enqueuedAt = monotonicNanoseconds()
                workers.retries.append(task)
            } else {
                fail(task, with: error(), slot: slot)
            }
        }
    }
}

extension WorkerProcess {
    /// Whether the dispatcher may send this worker a task behind the ones it has: it runs one
    /// without a deadline (a deadline may kill it), is healthy, nothing raw is being sent to it,
    /// its recent tasks were short and the one it runs has not run long yet (one just handed
    /// out has no start time yet: it starts now).
    func acceptsPipelinedTask(now: UInt64) -> Bool {
        guard let running = task, running.deadline == nil, socket != nil, fault == nil, outgoing.tail.isEmpty,
              let recent = recentTaskNanoseconds else { return false }
        let limit = Dispatcher.pipelineTaskNanoseconds
        let runningFor = running.handedOutAt.map { now > $0 ? now - $0 : 0 } ?? 0
        return recent <= limit && runningFor <= limit
    }

    /// Whether task `id` waits in this worker's pipeline.
    func isPipelining(_ id: UInt64) -> Bool {
        pipeline.contains { $0.id == id }
    }
}
