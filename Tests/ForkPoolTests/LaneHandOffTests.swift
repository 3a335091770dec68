// Lane hand-off: a caller whose reply came in by lane serves the queue from the same lane (it
// sends the next task and reads its reply for that task's blocked caller), leaves a slow reply
// to its blocked owner, woken to read it, and the dispatcher gives an idle worker's lane to a
// queued task whose caller blocks. The tests count the dispatcher's turns to show it is off the
// path, and provoke each way a served task can end otherwise: its worker killed, the task
// cancelled, a reply slower than the serving window.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// A thread blocked in `get()` on `future`, from its start to `join()`.
final class BlockedCaller: @unchecked Sendable {
    private let outcome = LockedBox<Result<Int, ForkPoolError>>()
    private var thread: PosixThread?

    init(_ future: Future<Int>) throws {
        thread = try PosixThread.start(name: "blocked-caller") { [outcome] in
            outcome.value = Result { () throws(ForkPoolError) -> Int in try future.get() }
        }
    }

    /// Waits for the thread to return from `get()`.
    func join() {
        thread?.join()
        thread = nil
    }

    var value: Int? { try? outcome.value?.get() }
    var error: ForkPoolError? {
        if case .failure(let error)? = outcome.value { error } else { nil }
    }
}

/// A one-worker pool whose first task went by lane and waits at `gate`, its caller reading the
/// reply by lane on its own thread (`reader`). `second` is a gate for a later task (made before
/// the pool, as a worker has only the descriptors its pool's fork server had).
final class GatedLane {
    let pids = PIDPipe()
    let gate = Gate()
    let second = Gate()
    let pool: ProcessPool<Command, Int>
    let reader: BlockedCaller
    let pid: pid_t

    init(configuration: ProcessPoolConfiguration = .with { $0.workerCrashBacktraces = false }) throws {
        let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
        precondition(waitUntil { pool.openLaneCount == 1 })
        let future = try pool.submit(.passGate(reportFD: pids.writeEnd, gateFD: gate.readEnd, value: 1))
        self.pool = pool
        reader = try BlockedCaller(future)
        pid = pids.nextPID()
        precondition(waitUntil { pool.callersReadingByLane == 1 })
    }

    /// Queues `commands`, a thread blocking on each, and returns once every one of them blocks.
    func queueBlockedCallers(_ commands: [Command]) throws -> [BlockedCaller] {
        let before = pool.blockedReaders
        let callers = try commands.map { try BlockedCaller(pool.submit($0)) }
        precondition(waitUntil { pool.blockedReaders == before + commands.count })
        return callers
    }

    deinit {
        gate.open(8)
        second.open(8)
        reader.join()
        pool.shutdown()
    }
}

extension ForkPoolTests {
    @Suite struct LaneHandOffTests {
        @Test func queuedTasksWhoseCallersBlockAreServedByLaneWithoutTheDispatcher() throws {
            let lane = try GatedLane()
            let turns = lane.pool.dispatcherTurns
            let callers = try lane.queueBlockedCallers((2...6).map { .echo($0) })
            lane.gate.open()
            lane.reader.join()
            for caller in callers { caller.join() }
            #expect(lane.reader.value == 1)
            #expect(callers.map(\.value) == (2...6).map { $0 })
            #expect(lane.pool.tasksSentByLane == 6)
            #expect(lane.pool.tasksServedByLane >= 1, "the first caller did not serve the queue")
            #expect(lane.pool.dispatcherTurns == turns, "the dispatcher woke for tasks the lane's callers served")
            #expect(lane.pool.stats.tasksCompleted == 6)
        }

        /// The serving caller does not wait for a reply past its window: it returns, and the
        /// task's own caller, woken, reads it. (Were the serving caller to wait, `reader.join()`
        /// would return only once the gate's 60-second guard let the second task go.)
        @Test func aSlowReplyGoesToItsOwnCallerAndTheServingCallerReturns() throws {
            let lane = try GatedLane()
            let turns = lane.pool.dispatcherTurns
            let callers = try lane.queueBlockedCallers([.passGate(reportFD: lane.pids.writeEnd, gateFD: lane.second.readEnd, value: 2)])
            lane.gate.open()
            lane.reader.join()
            #expect(lane.reader.value == 1)
            #expect(lane.pids.nextPID() == lane.pid)  // the second task runs, on the same worker
            lane.second.open()
            callers[0].join()
            #expect(callers[0].value == 2)
            #expect(lane.pool.tasksSentByLane == 2)
            #expect(lane.pool.dispatcherTurns == turns, "the dispatcher took over a reply a woken caller should read")
        }

        /// A lane comes back to the dispatcher when the queue's next task is not one for a lane
        /// (it has a deadline); once that task is done, the dispatcher gives the idle worker's
        /// lane to the queued task whose caller blocks, rather than reading its reply itself.
        @Test func theDispatcherGivesAnIdleWorkersLaneToATaskWhoseCallerBlocks() throws {
            let lane = try GatedLane()
            let timed = try lane.pool.submit(.echo(10), timeout: .seconds(60))
            let callers = try lane.queueBlockedCallers([.echo(11)])
            lane.gate.open()
            lane.reader.join()
            callers[0].join()
            #expect(try timed.get() == 10)
            #expect(callers[0].value == 11)
            #expect(lane.pool.tasksSentByLane == 2, "the blocked caller's task went through the dispatcher")
        }

        /// The worker of a served task exits between the serving caller's giving up on its reply
        /// and its handing the read over: the lane is detached by then, so the task goes back
        /// as the worker's crash instead of to a caller who can no longer read it (which once
        /// left that caller blocked for good and shutdown waiting for it).
        @Test func aServedTaskWhoseWorkerExitsAsItsReadIsHandedOverFailsAsACrash() throws {
            let lane = try GatedLane()
            let (pool, pid, pids) = (lane.pool, lane.pid, lane.pids)
            Dispatcher.testPauseAfterServedReadStopped = {
                Dispatcher.testPauseAfterServedReadStopped = nil
                _ = pids.nextPID()  // the served task runs (a task its worker never took would run again elsewhere)
                kill(pid, SIGKILL)
                _ = waitUntil { pool.dispatcher.lock.withLock { pool.dispatcher.lanes.detachedReaders == 1 } }
            }
            defer { Dispatcher.testPauseAfterServedReadStopped = nil }
            let callers = try lane.queueBlockedCallers([.passGate(reportFD: lane.pids.writeEnd, gateFD: lane.second.readEnd, value: 2)])
            lane.gate.open()
            lane.reader.join()
            callers[0].join()
            #expect(lane.reader.value == 1)
            #expect(callers[0].error?.code == .workerDied)
            #expect(callers[0].error?.signal == SIGKILL)
            #expect(pool.dispatcher.lock.withLock { pool.dispatcher.lanes.detachedReaders == 0 && pool.dispatcher.lanes.unreadTasks == 0 })
            #expect(try pool.submit(.echo(3)).get() == 3)
        }

        @Test func aServedTaskThatKillsItsWorkerFailsAloneAndTheQueueGoesOn() throws {
            let lane = try GatedLane()
            let callers = try lane.queueBlockedCallers([.echo(2), .segfault, .echo(4)])
            lane.gate.open()
            lane.reader.join()
            for caller in callers { caller.join() }
            #expect(lane.reader.value == 1)
            #expect(callers[0].value == 2)
            #expect(callers[1].error?.code == .workerDied)
            #expect(callers[1].error?.signal == SIGSEGV)
            #expect(callers[2].value == 4)
            #expect(try lane.pool.submit(.echo(5)).get() == 5)
            #expect(lane.pool.stats.restarts == 1)
        }

        @Test func cancellingATaskServedFromAnotherCallersLaneKillsItsWorker() throws {
            let lane = try GatedLane()
            let future = try lane.pool.submit(.passGate(reportFD: lane.pids.writeEnd, gateFD: lane.second.readEnd, value: 2))
            let before = lane.pool.blockedReaders
            let caller = try BlockedCaller(future)
            #expect(waitUntil { lane.pool.blockedReaders == before + 1 })
            lane.gate.open()
            lane.reader.join()
            let pid = lane.pids.nextPID()
            #expect(future.cancel())
            caller.join()
            #expect(caller.error?.code == .cancelled)
            #expect(waitUntil { !lane.pool.workerProcessIDs.contains(pid) })
            #expect(try lane.pool.submit(.echo(3)).get() == 3)
        }

        /// Callers that block, wait with a time-out, await or poll share two workers; every
        /// result is right, nothing is left queued or read, and the pool shuts down cleanly.
        @Test func manyCallersWaitingEveryWayGetEveryResult() async throws {
            let pool = try ProcessPool(workers: 2, work: obey)
            let perCaller = 300
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<8 {
                    group.addTask {
                        try await offCooperativePool {
                            for index in 0..<perCaller {
                                let value = caller * 10_000 + index
                                let future = try pool.submit(.echo(value))
                                let answer: Int? = switch (caller + index) % 4 {
                                case 0, 1: try future.get()
                                case 2: try future.get(timeout: .seconds(60))
                                default: waitUntil { future.isDone } ? try future.get() : nil
                                }
                                #expect(answer == value)
                            }
                        }
                    }
                }
                for caller in 8..<10 {
                    group.addTask {
                        for index in 0..<perCaller {
                            let value = caller * 10_000 + index
                            let answer = try await pool.submit(.echo(value)).value
                            #expect(answer == value)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(pool.stats.tasksCompleted == 10 * perCaller)
            #expect(pool.stats.queuedTasks == 0)
            #expect(pool.callersReadingByLane == 0)
            pool.shutdown()
        }
    }
}
