// Dispatcher: the process pool's one parent-side thread.
//
//   submit() ─▶ queue (locked) ─▶ eventfd wake ─┐
//                                               ▼
//   ┌──────────────── poll([eventfd, worker sockets, worker pidfds]) ◀──────────────┐
//   │ idle worker + queued task ─▶ send task frame                                  │
//   │ socket readable ─▶ FrameReader ─▶ result / failure frame ─▶ complete Future ──┘
//   │ pidfd readable  ─▶ waitpid ─▶ fail the task it held ─▶ fork a replacement
//   └ shutdown: drain (or cancel) the queue, send `shutdown`, close sockets, reap all
//
// It forks every worker itself, because PR_SET_PDEATHSIG follows the forking thread and this
// thread lives exactly as long as the pool. Worker state is touched by this thread only; the
// queue, phase and published pids are shared under `lock`.
import CForkShim
import Glibc
import Synchronization

final class Dispatcher: @unchecked Sendable {
    struct Settings: Sendable {
        var workerCount: Int
        var maximumFrameBytes: Int
        var forkOptions: CInt
        /// How long idle workers get to exit at shutdown before SIGKILL.
        var shutdownGracePeriod: Double
    }

    private enum Phase {
        case starting
        case running
        case failedToStart(ForkPoolError)
        case broken(ForkPoolError)
        case stopped
    }

    let settings: Settings
    private let workerMain: @Sendable (CInt) -> Never
    private let wakeFD: CInt
    private let taskIDs = Atomic<UInt64>(1)

    // Shared state, guarded by `lock`.
    private let lock = ConditionLock()
    private var queue = FIFOQueue<PendingTask>()
    private var phase = Phase.starting
    private var shutdownRequested = false
    private var cancelRequested = false
    private var wakePending = false
    private var publishedPIDs: [pid_t] = []

    private let joinLock = ConditionLock()
    private var thread: PosixThread?
    private var joined = false

    // Dispatcher thread only.
    private var workers: [WorkerProcess] = []
    private var missingWorkers = 0

    init(settings: Settings, workerMain: @escaping @Sendable (CInt) -> Never) throws(ForkPoolError) {
        self.settings = settings
        self.workerMain = workerMain
        wakeFD = try PoolDescriptors.register(forkpool_eventfd, name: "eventfd")
        do {
            thread = try PosixThread.start(name: "forkpool-disp") { [self] in run() }
        } catch {
            PoolDescriptors.close(wakeFD)
            throw error
        }
        let failure: ForkPoolError? = lock.withLock {
            while case .starting = phase { lock.wait() }
            if case .failedToStart(let error) = phase { return error }
            return nil
        }
        if let failure {
            join()
            throw failure
        }
    }

    /// The pids of the live workers, as last published by the dispatcher.
    var workerProcessIDs: [pid_t] { lock.withLock { publishedPIDs } }

    // MARK: - Called by any thread

    /// A fresh pool-wide task id.
    func makeTaskID() -> UInt64 {
        taskIDs.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Queues `tasks` in order and wakes the dispatcher once.
    func enqueue(_ tasks: some Sequence<PendingTask>) throws(ForkPoolError) {
        try lock.withLock { () throws(ForkPoolError) in
            try checkAccepting()
            for task in tasks { queue.append(task) }
            wakeLocked()
        }
    }

    /// Stops accepting tasks, lets queued ones run (or cancels them), then waits until every
    /// worker has exited and been reaped. Idempotent; concurrent callers all wait.
    func shutdown(cancelPending: Bool) {
        lock.withLock {
            shutdownRequested = true
            if cancelPending { cancelRequested = true }
            if case .stopped = phase {} else { wakeLocked() }
        }
        join()
    }

    private func checkAccepting() throws(ForkPoolError) {
        if shutdownRequested {
            throw ForkPoolError(.poolShutDown, "the pool has been shut down")
        }
        if case .broken(let error) = phase { throw error }
    }

    /// Writes the eventfd unless a wake-up is already pending. Under `lock`, so it can never
    /// race with the dispatcher closing the eventfd.
    private func wakeLocked() {
        guard !wakePending else { return }
        wakePending = true
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func join() {
        joinLock.withLock {
            guard !joined, let thread else { return }
            thread.join()
            joined = true
        }
    }

    // MARK: - The dispatcher thread

    private func run() {
        do {
            for _ in 0..<settings.workerCount {
                workers.append(try spawnWorker())
            }
        } catch {
            stopWorkers()
            lock.withLock {
                phase = .failedToStart(error)
                PoolDescriptors.close(wakeFD)
                lock.broadcast()
            }
            return
        }
        lock.withLock {
            phase = .running
            publishedPIDs = workers.map(\.pid)
            lock.broadcast()
        }
        serve()
        stopWorkers()
        lock.withLock {
            phase = .stopped
            publishedPIDs = []
            PoolDescriptors.close(wakeFD)
            lock.broadcast()
        }
    }

    private func spawnWorker() throws(ForkPoolError) -> WorkerProcess {
        try WorkerProcess.spawn(maximumFrameBytes: settings.maximumFrameBytes,
                                forkOptions: settings.forkOptions, workerMain: workerMain)
    }

    /// The poll loop; returns once shutdown was requested and no task is left.
    private func serve() {
        var pollSet: [pollfd] = []
        // For each pollfd after the eventfd: which worker, and whether it is the pidfd.
        var owners: [(worker: Int, isPidfd: Bool)] = []
        while true {
            let (assigned, dropped, finished) = takeWork()
            for (task, error) in dropped { task.fail(error) }
            if finished { return }
            for index in assigned { flush(index) }

            pollSet.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            var timeout: Int32 = missingWorkers > 0 ? 100 : -1
            let now = monotonicNanoseconds()
            for (index, worker) in workers.enumerated() {
                if worker.socket >= 0 {
                    var events = Int16(POLLIN)
                    if worker.hasOutgoing { events |= Int16(POLLOUT) }
                    pollSet.append(pollfd(fd: worker.socket, events: events, revents: 0))
                    owners.append((index, false))
                }
                pollSet.append(pollfd(fd: worker.pidfd, events: Int16(POLLIN), revents: 0))
                owners.append((index, true))
                if let deadline = worker.killDeadline {
                    let milliseconds = deadline > now ? Int32(min((deadline - now) / 1_000_000 + 1, 60_000)) : 0
                    timeout = timeout < 0 ? milliseconds : min(timeout, milliseconds)
                }
            }
            let ready = poll(&pollSet, nfds_t(pollSet.count), timeout)
            if ready < 0 && errno != EINTR {
                fatalError("ForkPool dispatcher: poll failed with errno \(errno)")
            }
            if pollSet[0].revents != 0 {
                var counter: UInt64 = 0
                lock.withLock {
                    _ = read(wakeFD, &counter, 8)
                    wakePending = false
                }
            }
            var exited: [Int] = []
            for (slot, owner) in owners.enumerated() where pollSet[slot + 1].revents != 0 {
                if owner.isPidfd {
                    exited.append(owner.worker)
                } else {
                    service(owner.worker, events: pollSet[slot + 1].revents)
                }
            }
            enforceKillDeadlines()
            // Remove from the highest index down so earlier indices stay valid.
            for index in exited.sorted(by: >) { reap(index) }
            replaceMissingWorkers()
        }
    }

    /// Under the lock: hands queued tasks to idle workers and collects tasks to fail.
    private func takeWork() -> (assigned: [Int], dropped: [(PendingTask, ForkPoolError)], finished: Bool) {
        lock.withLock {
            var dropped: [(PendingTask, ForkPoolError)] = []
            if cancelRequested {
                for task in queue.removeAll() {
                    dropped.append((task, ForkPoolError(.cancelled, "task \(task.id) was cancelled by shutdown", taskID: task.id)))
                }
            }
            if case .broken(let error) = phase {
                for task in queue.removeAll() {
                    var failure = error
                    failure.taskID = task.id
                    dropped.append((task, failure))
                }
            }
            var assigned: [Int] = []
            for index in workers.indices where workers[index].isIdle {
                while let task = queue.popFirst() {
                    if task.start() {
                        workers[index].assign(task)
                        assigned.append(index)
                        break
                    }
                }
                if queue.isEmpty { break }
            }
            let finished = shutdownRequested && queue.isEmpty && !workers.contains { $0.task != nil }
            return (assigned, dropped, finished)
        }
    }

    private func flush(_ index: Int) {
        do {
            try workers[index].flush()
        } catch {
            giveUp(on: index, error)
        }
    }

    /// Reads everything the socket has and completes the tasks whose replies arrived.
    private func service(_ index: Int, events: Int16) {
        if events & Int16(POLLOUT) != 0 { flush(index) }
        guard workers[index].socket >= 0, events & ~Int16(POLLOUT) != 0 else { return }
        while workers[index].socket >= 0 {
            let status: FrameReader.FillStatus
            do {
                status = try workers[index].reader.fill(from: workers[index].socket)
            } catch {
                giveUp(on: index, error)
                return
            }
            switch status {
            case .wouldBlock:
                return
            case .endOfStream:
                // The process is exiting (or closed its socket): wait for its pidfd, but not forever.
                workers[index].closeSocket()
                workers[index].killDeadline = monotonicNanoseconds() + 2_000_000_000
                return
            case .received:
                readFrames(index)
            }
        }
    }

    private func readFrames(_ index: Int) {
        let pid = workers[index].pid
        while true {
            let task = workers[index].task
            let outcome: ForkPoolError??
            do {
                outcome = try workers[index].reader.nextFrame { header, payload -> ForkPoolError? in
                    guard let task, header.taskID == task.id, header.kind == task.replyKind || header.kind == .failure else {
                        return ForkPoolError(.malformedFrame,
                                             "worker process \(pid) sent an unexpected \(header.kind) frame for task \(header.taskID)",
                                             processID: pid)
                    }
                    if header.kind == task.replyKind {
                        task.finish(output: payload, worker: pid)
                    } else {
                        task.fail(Self.failure(from: payload, task: task.id, worker: pid))
                    }
                    return nil
                }
            } catch {
                giveUp(on: index, error)
                return
            }
            guard let outcome else { return }  // no complete frame yet
            if let violation = outcome {
                giveUp(on: index, violation)
                return
            }
            workers[index].task = nil
        }
    }

    /// Decodes a failure frame's payload: reason byte + UTF-8 message.
    private static func failure(from payload: UnsafeRawBufferPointer, task: UInt64, worker: pid_t) -> ForkPoolError {
        guard let first = payload.first else {
            return ForkPoolError(.malformedFrame, "worker process \(worker) sent a failure frame without a reason",
                                 taskID: task, processID: worker)
        }
        return itemFailure(status: first, message: UnsafeRawBufferPointer(rebasing: payload.dropFirst()), task: task, worker: worker)
    }

    /// The worker broke the protocol or its socket: kill it; its task fails with `fault` once
    /// the process is reaped.
    private func giveUp(on index: Int, _ fault: ForkPoolError) {
        if workers[index].fault == nil {
            let pid = workers[index].pid
            workers[index].fault = switch fault.code {
            case .frameTooLarge, .malformedFrame:
                ForkPoolError(fault.code, "worker process \(pid) sent a bad frame: \(fault.message)",
                              taskID: workers[index].task?.id, processID: pid)
            default:
                ForkPoolError(.workerDied, "lost the socket to worker process \(pid): \(fault.message)",
                              taskID: workers[index].task?.id, processID: pid, errno: fault.errno)
            }
        }
        workers[index].closeSocket()
        workers[index].kill()
    }

    private func enforceKillDeadlines() {
        let now = monotonicNanoseconds()
        for index in workers.indices {
            if let deadline = workers[index].killDeadline, deadline <= now {
                workers[index].kill()
                workers[index].killDeadline = nil
            }
        }
    }

    /// Collects an exited worker: fails its task, removes it, and counts it as missing.
    private func reap(_ index: Int) {
        var status: CInt = 0
        let result = forkpool_waitpid(workers[index].pid, &status, 1)
        guard result == workers[index].pid else { return }  // not exited after all
        var worker = workers.remove(at: index)
        worker.closeSocket()
        PoolDescriptors.close(worker.pidfd)
        if let task = worker.task {
            var error = worker.fault ?? worker.deathError(status: status)
            error.taskID = task.id
            task.fail(error)
        }
        missingWorkers += 1
        lock.withLock { publishedPIDs = workers.map(\.pid) }
    }

    private func replaceMissingWorkers() {
        guard missingWorkers > 0 else { return }
        let needed = lock.withLock { () -> Bool in
            if case .broken = phase { return false }
            return !shutdownRequested || !queue.isEmpty
        }
        guard needed else { return }
        while missingWorkers > 0 {
            do {
                workers.append(try spawnWorker())
                missingWorkers -= 1
            } catch {
                if workers.isEmpty {
                    lock.withLock {
                        phase = .broken(ForkPoolError(.poolBroken, "no worker can be started: \(error.message)", errno: error.errno))
                    }
                }
                break
            }
        }
        lock.withLock { publishedPIDs = workers.map(\.pid) }
    }

    /// Asks every worker to exit, waits up to the grace period, then kills and reaps the rest.
    private func stopWorkers() {
        var farewell = FrameHeader.emptyFrame()
        FrameHeader(kind: .shutdown, length: 0, taskID: 0).write(into: &farewell)
        for index in workers.indices where workers[index].socket >= 0 {
            _ = farewell.withUnsafeBytes { raw in
                forkpool_send(workers[index].socket, raw.baseAddress!, raw.count, 1)
            }
            workers[index].closeSocket()
        }
        let deadline = monotonicNanoseconds() + UInt64(settings.shutdownGracePeriod * 1e9)
        var killed = false
        while !workers.isEmpty {
            var pollSet = workers.map { pollfd(fd: $0.pidfd, events: Int16(POLLIN), revents: 0) }
            let now = monotonicNanoseconds()
            if now >= deadline && !killed {
                workers.forEach { $0.kill() }
                killed = true
            }
            let timeout: Int32 = killed ? 1000 : Int32(min((deadline - now) / 1_000_000 + 1, 60_000))
            _ = poll(&pollSet, nfds_t(pollSet.count), timeout)
            for index in workers.indices.reversed() where pollSet[index].revents != 0 {
                var status: CInt = 0
                if forkpool_waitpid(workers[index].pid, &status, 1) == workers[index].pid {
                    let worker = workers.remove(at: index)
                    if let task = worker.task {
                        task.fail(worker.fault ?? worker.deathError(status: status))
                    }
                    PoolDescriptors.close(worker.pidfd)
                }
            }
        }
    }
}
