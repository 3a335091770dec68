// WorkerSet: the pool's worker processes and what decides how many there are — the fork server
// that forks them, the spawns asked for, failed starts in a row, the slots they fill, their
// recycling — and the tasks waiting to run again once a worker is free (retries).
//
//   missingWorkers ─▶ Dispatcher.requestWorkers ─▶ fork server ─▶ spawned ─▶ add (lowest free slot)
//   a task answered ─▶ retireIfDue ─▶ retiring (its slot is free) ─▶ a new worker ready ─▶ dismissOneRetiringWorker
//
// Dispatcher thread only. A collection of WorkerProcess, each changed in place through its index.
import Glibc
import Logging

struct WorkerSet: RandomAccessCollection, MutableCollection {
    private var members: [WorkerProcess] = []
    /// How many workers the pool keeps.
    let workerCount: Int
    private let configuration: ProcessPoolConfiguration
    /// The fork server, while it runs.
    var forkServer: ForkServerClient?
    /// Workers asked of the fork server and not reported yet.
    var spawnsInFlight = 0
    /// Failed starts in a row, and when the next worker may be asked for.
    var startFailures: StartFailures
    /// Tasks to run again before queued ones: retried after a crash, sent behind a running task
    /// whose worker died, or sent by lane to a worker that was already gone.
    var retries = FIFOQueue<PendingTask>()
    /// The pool is stopping: every worker is being asked to leave, and none is replaced.
    var stopping = false
    private var random = SystemRandomNumberGenerator()

    init(workerCount: Int, configuration: ProcessPoolConfiguration) {
        self.workerCount = workerCount
        self.configuration = configuration
        startFailures = StartFailures(limit: configuration.maximumConsecutiveStartFailures)
    }

    var startIndex: Int { members.startIndex }
    var endIndex: Int { members.endIndex }

    subscript(index: Int) -> WorkerProcess {
        _read { yield members[index] }
        _modify { yield &members[index] }
    }

    /// A worker the fork server forked joins in the lowest free slot (a worker that will
    /// recycle after a number of tasks gets its own limit), its shared rings mapped from `rings`
    /// (when it has them). Returns its index, and the error to give it up with if the region
    /// could not be mapped.
    mutating func add(pid: pid_t, socket: CInt, pidfd: CInt, rings: CInt?, lendable: Bool) -> (index: Int, unmapped: ForkPoolError?) {
        let mapped = Result { () throws(ForkPoolError) in try rings.map(SharedRing.mapping) }
        spawnsInFlight -= 1
        let taskLimit = Recycling.taskLimit(configuration.maximumTasksPerWorker, using: &random)
        members.append(WorkerProcess(pid: pid, slot: freeSlot(), socket: socket, pidfd: pidfd,
                                     maximumFrameBytes: configuration.maximumFrameBytes, ring: try? mapped.get(), lendable: lendable,
                                     taskLimit: taskLimit))
        if case .failure(let error) = mapped { return (members.count - 1, error) }
        return (members.count - 1, nil)
    }

    /// The worker leaves the books (it exited, or it is given up on for good).
    mutating func remove(at index: Int) -> WorkerProcess {
        members.remove(at: index)
    }

    /// Workers to ask for. A dead or killed worker keeps its slot until the fork server reports
    /// its exit (so a crash is judged before a replacement can take queued tasks); a retiring
    /// one gives its slot up at once (its replacement starts before it leaves).
    var missingWorkers: Int {
        workerCount - members.filter { !$0.isRetiring }.count - spawnsInFlight
    }

    /// The lowest slot that no worker still counted towards the pool holds (a retiring worker
    /// has handed its slot to its replacement already). There always is one: a worker is asked
    /// for only when one is missing.
    func freeSlot() -> Int {
        let taken = members.filter { !$0.isRetiring }.map(\.slot)
        return (0..<workerCount).first { !taken.contains($0) } ?? 0
    }

    /// The pids of the ready workers that count towards the pool (not retiring, not given up on).
    var servingProcessIDs: [pid_t] {
        members.filter { $0.isReady && $0.isServing }.map(\.pid)
    }

    /// The nearest running task's deadline or armed kill among the workers.
    var nearestDeadline: UInt64? {
        members.lazy.flatMap { [$0.taskDeadline, $0.killDeadline, $0.nearestServedDeadline] }.compactMap { $0 }.min()
    }

    /// Retires the worker at `index` if it has done its number of tasks or grown past the
    /// memory ceiling; true if it retired now (its replacement is asked for next; it leaves
    /// when a new worker is ready).
    mutating func retireIfDue(_ index: Int, logger: Logger) -> Bool {
        guard !members[index].isRetiring else { return false }
        var metadata: Logger.Metadata
        if members[index].recycling.isDue {
            metadata = ["forkpool.reason": "task limit"]
        } else if let ceiling = configuration.maximumWorkerResidentBytes, case let resident = members[index].residentBytes(),
                  resident > ceiling {
            metadata = ["forkpool.reason": "memory", "forkpool.resident_bytes": "\(resident)"]
        } else {
            return false
        }
        metadata["forkpool.pid"] = "\(members[index].pid)"
        metadata["forkpool.worker"] = "\(members[index].slot)"
        metadata["forkpool.tasks_done"] = "\(members[index].recycling.tasksDone)"
        logger.debug("worker recycled", metadata: metadata)
        members[index].retire()
        return true
    }

    /// Whether the worker at `index` has grown past the pool's memory ceiling.
    func isOverMemoryCeiling(_ index: Int) -> Bool {
        guard let ceiling = configuration.maximumWorkerResidentBytes else { return false }
        return members[index].residentBytes() > ceiling
    }

    /// A new worker is ready: one retiring worker with no task left leaves.
    mutating func dismissOneRetiringWorker() {
        if let index = members.firstIndex(where: { $0.isRetiring && $0.socket != nil }) {
            members[index].dismiss()
        }
    }

    /// When the dispatcher must wake for its workers at the latest: a task's deadline or a
    /// kill, the next spawn after failed starts, and within a second while a worker is lent
    /// (a task sent by lane that nobody waits for is collected, and counted, by then).
    func nextWake(now: UInt64) -> UInt64? {
        var nearest = nearestDeadline
        if missingWorkers > 0 && startFailures.nextSpawnTime > now {
            nearest = Swift.min(nearest ?? startFailures.nextSpawnTime, startFailures.nextSpawnTime)
        }
        if contains(where: \.isLent) { nearest = Swift.min(nearest ?? now + 1_000_000_000, now + 1_000_000_000) }
        return nearest
    }
}

// MARK: - Shared rings around the poll loop's sleep

extension WorkerSet {
    /// Before the poll loop sleeps: raises the `asleep` flag of each polled worker's ring, so
    /// the worker rings for its next frame. 0 if a frame came meanwhile (poll only looks), at
    /// most 1 ms while frames wait for room in a ring; else `timeout`.
    func ringsReadyToSleep(_ polled: [Int], timeout: Int32) -> Int32 {
        var timeout = timeout
        for index in polled where !self[index].inbox.reader.prepareToSleep() { timeout = 0 }
        if timeout != 0, polled.contains(where: { self[$0].waitsForRing }) { timeout = 1 }
        return timeout
    }

    /// After the sleep: the flags come down, so busy workers stop ringing.
    func ringsWokeUp(_ polled: [Int]) {
        for index in polled { self[index].inbox.reader.wokeUp() }
    }

    /// What the worker's ring adds to its socket's poll events: a frame to read (POLLIN), or
    /// room to wait for (POLLOUT: try sending again).
    func ringEvents(_ index: Int) -> Int16 {
        (self[index].waitsForRing ? Int16(POLLOUT) : 0) | (self[index].inbox.reader.ringHasFrame ? Int16(POLLIN) : 0)
    }
}

extension WorkerSet {
    /// Under the dispatcher's lock (the queue is shared): hands async jobs to run again (a crash
    /// policy's retries), then queued ones, to workers already running jobs and with room, oldest
    /// first; stops at the first task that is not one (it waits for an idle worker, keeping the
    /// order). Idle workers are the dispatcher's idle loop's: a sync task needs one. Returns the
    /// workers that got one, and the retries found cancelled meanwhile (settled, not run again).
    mutating func fillJobSlots(from queue: inout WorkQueue<PendingTask>, limit: Int, taskTimeout: Duration?,
                               now: UInt64) -> (served: [Int], settled: [UInt64]) {
        var served: [Int] = []
        var settled: [UInt64] = []
        for index in indices where self[index].isServingJobs && self[index].acceptsConcurrentTask(limit: limit) {
            while self[index].acceptsConcurrentTask(limit: limit), let head = retries.first, head.concurrent {
                let retry = retries.popFirst()!
                guard !retry.completion.hasCompleted else {
                    retry.isSettled = true
                    settled.append(retry.id)
                    continue
                }
                self[index].serve(retry, deadline: retry.runDeadline(taskTimeout: taskTimeout, now: now), now: now)
                served.append(index)
            }
            guard retries.isEmpty else { continue }  // a retry waits for a worker with room
            while self[index].acceptsConcurrentTask(limit: limit), let next = queue.startFirst(if: \.concurrent) {
                self[index].serve(next, deadline: next.runDeadline(taskTimeout: taskTimeout, now: now), now: now)
                served.append(index)
            }
            if let next = queue.firstLive(), !next.concurrent { break }
        }
        return (served, settled)
    }

    /// Sends `cancel` frames for the async jobs among `ids` (their callers cancelled them; the
    /// worker lives: only the job's Task is cancelled, and the worker is killed at `killAt` if
    /// the job ignores it). Returns the workers with frames to send.
    mutating func cancelServedJobs(_ ids: Set<UInt64>, killAt: UInt64) -> [Int] {
        var touched: [Int] = []
        for id in ids {
            guard let index = firstIndex(where: { $0.served[id] != nil }) else { continue }
            self[index].expireServed(id, killAt: killAt)
            touched.append(index)
        }
        return touched
    }
}
