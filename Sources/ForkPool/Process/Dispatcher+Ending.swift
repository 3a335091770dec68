// Dispatcher+Ending: how the dispatcher thread ends — a graceful stop (every worker asked to
// exit, killed after the grace period, the fork server stopped and reaped) and a failure of
// the poll loop itself (the pool breaks with the errno; nothing crashes the host).
//
//   serve() returns ─▶ stopWorkers ─▶ stopForkServer ─▶ (after a failure) failLeftovers ─▶ run() ends
//
// Dispatcher thread only.
import CForkShim
import Glibc

extension Dispatcher {
    /// The poll loop cannot go on (`poll` failed, or the pool's eventfd was closed from
    /// outside): the pool breaks with the errno, lanes close, queued tasks fail now and running
    /// ones when their workers, killed at once, are reported dead. Never a crash of the host.
    func dispatcherFailed(_ error: ForkPoolError, wakeLost: Bool) {
        accounting.logger.debug("pool broken", metadata: ["forkpool.error": "\(error.message)"])
        let queued = lock.withLock { () -> [PendingTask] in
            dispatcherFailure = error
            if wakeLost { wake.markLost() }
            switch phase {
            case .starting: phase = .failedToStart(error)
            case .running: phase = .broken(error)
            default: break
            }
            lanes.mayLend = false
            lock.broadcast()
            return queue.removeAll()
        }
        for task in queued + workers.retries.removeAll() { fail(task, with: error, slot: nil) }  // the error names each task
        for index in workers.indices { workers[index].stop(because: error) }
    }

    /// After a dispatcher failure: waits for callers still reading lanes of killed workers and
    /// fails the tasks they gave back (nobody else is left to run them).
    func failLeftovers(_ error: ForkPoolError) {
        let leftovers = lock.withLock { () -> [DirectLane.Orphan] in
            while lanes.detachedReaders > 0 { _ = lock.wait(untilMonotonicNanoseconds: monotonicNanoseconds() + 100_000_000) }
            defer { lanes.orphans.removeAll() }
            return lanes.orphans
        }
        for orphan in leftovers { fail(orphan.task, with: orphan.error ?? error, slot: orphan.slot) }
    }

    /// Asks every worker to exit, waits up to the grace period for the fork server to report
    /// each exit, then kills the rest.
    func stopWorkers() {
        workers.stopping = true
        // A pool that failed to start has no task to finish: what it started is killed at once.
        let killAtOnce = lock.withLock {
            if case .failedToStart = phase { return true }
            return dispatcherFailure != nil
        }
        let deadline = monotonicNanoseconds() + (killAtOnce ? 0 : configuration.shutdownGracePeriod.nanoseconds)
        var killedAt: UInt64?
        while (!workers.isEmpty || workers.spawnsInFlight > 0), let control = workers.forkServer?.control {
            for index in workers.indices where workers[index].socket != nil { workers[index].dismiss() }
            let now = monotonicNanoseconds()
            if now >= deadline && killedAt == nil {
                workers.forEach { $0.signal(SIGKILL) }
                killedAt = now
            }
            if let killedAt, now > killedAt + 5_000_000_000 { break }  // the server stopped reporting
            var pollSet = [pollfd(fd: control, events: Int16(POLLIN), revents: 0)]
            let timeout = killedAt == nil ? ForkPool.pollTimeout(until: deadline, now: now) : 100
            _ = retryingInterrupts { poll(&pollSet, 1, timeout) }
            if pollSet[0].revents != 0 { readForkServer() }
        }
        for index in workers.indices.reversed() {
            withdrawLane(index, error: { task in
                ForkPoolError(.poolShutDown, "the pool shut down while task \(task.id) ran", taskID: task.id)
            }, crashed: false, now: monotonicNanoseconds())
            var worker = workers.remove(at: index)
            worker.release(killing: true)
            // Never reported as exited (the fork server stopped answering): what it held fails.
            let error = lock.withLock { dispatcherFailure } ?? ForkPoolError(.poolShutDown, "the pool shut down")
            for task in [worker.task].compactMap({ $0 }) + worker.tasksSentBehind {
                fail(task, with: error, slot: worker.slot)
            }
        }
        publishWorkers()
    }

    /// Closes the control socket; the fork server exits on end of stream and is reaped.
    func stopForkServer() {
        guard let server = workers.forkServer else { return }
        workers.forkServer = nil
        _ = server.stop()
        lock.withLock { published.forkServer = nil }
    }
}
