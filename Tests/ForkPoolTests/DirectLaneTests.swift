// The direct lane: a lone `submit` goes from the submitting thread straight to an idle worker
// and the thread that waits reads the reply itself. Each way that read can end other than
// with a reply is provoked for real here: the worker killed, the worker's exit reported while
// a grandchild still holds its socket, a cancellation, a time-out, a bad frame, bytes after
// the reply, a worker that died idle before the frame got there, the fork server dying, and
// shutdown while a caller reads.
import ForkPoolTestSupport
import Glibc
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

/// What a lane test's task does, inside the worker.
/// Runs `body` on a new thread once a caller is reading `pool`'s lane.
func whileACallerReadsByLane<Input, Output>(_ pool: ProcessPool<Input, Output>,
                                            _ body: @escaping @Sendable () -> Void) throws -> PosixThread {
    try PosixThread.start(name: "lane-test") {
        if waitUntil({ pool.callersReadingByLane == 1 }) { body() }
    }
}

/// The descriptors a held-up lane reader's signal handler uses (a handler captures nothing):
/// it reports on `heldUpReaderEntered` and then waits at `heldUpReaderGate`.
private let heldUpReaderEntered = Atomic<Int32>(-1)
private let heldUpReaderGate = Atomic<Int32>(-1)

/// A thread that reads a future's reply by lane and can be held up on request — a signal
/// handler that waits at a gate — so that its worker's exit report reaches the dispatcher
/// before the reader sees the end of stream: the lane is detached and the reader gives the task
/// back. The test opens the gate (`join`) once the dispatcher has seen the exit.
final class HeldUpLaneReader: @unchecked Sendable {
    private let outcome = LockedBox<Result<Int, ForkPoolError>>()
    private let handle = LockedBox<pthread_t>()
    private let entered = TestPipe()
    private let gate = Gate()
    private let previousHandler: sighandler_t?
    private var thread: PosixThread?

    init(_ future: Future<Int>) throws {
        heldUpReaderEntered.store(entered.writeEnd, ordering: .sequentiallyConsistent)
        heldUpReaderGate.store(gate.readEnd, ordering: .sequentiallyConsistent)
        previousHandler = signal(SIGUSR2) { _ in
            let savedErrno = errno
            var byte: UInt8 = 1
            _ = write(heldUpReaderEntered.load(ordering: .sequentiallyConsistent), &byte, 1)
            while read(heldUpReaderGate.load(ordering: .sequentiallyConsistent), &byte, 1) < 0 && errno == EINTR {}
            errno = savedErrno
        }
        thread = try PosixThread.start(name: "lane-reader") { [outcome, handle] in
            var holdUp = sigset_t()  // the test runner's threads may block it: this one must not
            sigemptyset(&holdUp)
            sigaddset(&holdUp, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &holdUp, nil)
            handle.value = pthread_self()
            outcome.value = Result { () throws(ForkPoolError) -> Int in try future.get() }
        }
    }

    /// Holds the reader in its signal handler; returns once it is there.
    func holdUp() {
        precondition(waitUntil { handle.value != nil })
        pthread_kill(handle.value!, SIGUSR2)
        var byte: UInt8 = 0
        precondition(read(entered.readEnd, &byte, 1) == 1)
    }

    /// Lets the reader go on (if held up) and waits for it to finish.
    func join() {
        guard let thread else { return }
        gate.open()
        thread.join()
        self.thread = nil
        signal(SIGUSR2, previousHandler)
    }

    var value: Int? { try? outcome.value?.get() }
    var error: ForkPoolError? {
        if case .failure(let error)? = outcome.value { error } else { nil }
    }
}

/// A one-worker pool under `.retry(times: 1)` whose only task went by lane: its first run
/// reports its worker's pid and hangs; run again, it returns 42.
final class HangOnceLaneTask {
    let pids = PIDPipe()
    let marker: String
    let pool: ProcessPool<Command, Int>
    let future: Future<Int>
    let pid: pid_t

    init(configuration: ProcessPoolConfiguration, name: String) throws {
        marker = "/tmp/forkpool-\(name)-\(getpid())"
        unlink(marker)
        var retrying = configuration
        retrying.crashPolicy = .retry(times: 1)
        pool = try ProcessPool(workers: 1, configuration: retrying, work: obey)
        future = try pool.submit(.hangOnce(marker: marker, fd: pids.writeEnd, value: 42))
        pid = pids.nextPID()
    }

    deinit {
        pool.shutdown()
        unlink(marker)
    }
}

/// A one-worker pool whose only task went by lane, reported its worker's pid and hangs.
struct HangingLaneTask {
    let pids = PIDPipe()
    let pool: ProcessPool<Command, Int>
    let future: Future<Int>
    let pid: pid_t

    init(configuration: ProcessPoolConfiguration) throws {
        pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
        future = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
        pid = pids.nextPID()
    }
}

extension ForkPoolTests {
    @Suite struct DirectLaneTests {
        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        @Test func anAdaptiveSpinHalvesAfterLateAnswersAndRecoversAfterAQuickOne() {
            var spin = AdaptiveSpin(limit: 40_000)
            #expect(spin.budget == 40_000)
            spin.learn(waited: 30_000)
            #expect(spin.budget == 40_000)
            var budgets: [UInt64] = []
            for _ in 0..<17 {
                spin.learn(waited: 5_000_000)
                budgets.append(spin.budget)
            }
            #expect(budgets.prefix(3) == [20_000, 10_000, 5_000])
            #expect(budgets.last == 0)
            spin.learn(waited: 12_000)
            #expect(spin.budget == 40_000)
        }

        /// Under `.breakPool`, a crash that a lane reader gives back breaks the pool before a
        /// replacement can run a queued task: the dead worker's slot stays taken until the task
        /// is judged. (Without that rule, a replacement starts and runs the queued tasks while
        /// the held-up reader still holds the crashed one.)
        @Test func aCrashALaneReaderGivesBackBreaksThePoolBeforeAReplacementRunsQueuedTasks() throws {
            var configuration = quiet
            configuration.crashPolicy = .breakPool
            let task = try HangingLaneTask(configuration: configuration)
            let reader = try HeldUpLaneReader(task.future)
            defer { reader.join() }
            #expect(waitUntil { task.pool.callersReadingByLane == 1 })
            // Queued only once the caller reads by lane (a task nobody reads yet would be
            // taken over by the dispatcher as soon as it wakes for them).
            let queued = try (1...3).map { try task.pool.submit(.echo($0)) }
            #expect(task.pool.workerProcessIDs.contains(task.pid))
            reader.holdUp()
            #expect(kill(task.pid, SIGKILL) == 0)
            // The reader goes on only once the dispatcher has had the exit report (and so
            // detached the lane): the worker has left the pool's list.
            #expect(waitUntil { !task.pool.workerProcessIDs.contains(task.pid) })
            reader.join()
            #expect(reader.error?.signal == SIGKILL)
            for future in queued {
                #expect(expectForkPoolError { _ = try future.get() }?.code == .poolBroken)
            }
            task.pool.shutdown()
        }

        /// The same hand-back under `.retry`: once the task is judged (to run again), a
        /// replacement is asked for at once — the pool must not wait for a wake-up that never
        /// comes (the replacement was once withheld on the turn the task came back, and the
        /// retry then waited forever).
        @Test func aCrashALaneReaderGivesBackIsRetriedOnAReplacement() throws {
            let task = try HangOnceLaneTask(configuration: quiet, name: "lane-held-retry")
            let (pool, pid) = (task.pool, task.pid)
            let reader = try HeldUpLaneReader(task.future)
            defer { reader.join() }
            #expect(waitUntil { pool.callersReadingByLane == 1 })
            #expect(pool.workerProcessIDs.contains(pid))
            reader.holdUp()
            #expect(kill(pid, SIGKILL) == 0)
            #expect(waitUntil { !pool.workerProcessIDs.contains(pid) })  // the exit report is in: let the reader go on
            reader.join()
            #expect(reader.value == 42)
            #expect(pool.stats.restarts == 1)
        }

        @Test func loneSubmitsGoByLaneAndTheQueueStillServesWhenLanesAreOff() throws {
            let pool = try ProcessPool(workers: 1, work: obey)
            defer { pool.shutdown() }
            for value in 0..<200 {
                #expect(try pool.submit(.echo(value)).get() == value)
            }
            #expect(pool.tasksSentByLane == 200)
            // Tasks with a deadline go through the dispatcher.
            #expect(try pool.submit(.echo(7), timeout: .seconds(10)).get() == 7)
            #expect(pool.tasksSentByLane == 200)

            var off = ProcessPoolConfiguration()
            off.usesDirectLanes = false
            let queued = try ProcessPool(workers: 1, configuration: off, work: obey)
            defer { queued.shutdown() }
            for value in 0..<50 {
                #expect(try queued.submit(.echo(value)).get() == value)
            }
            #expect(queued.tasksSentByLane == 0)
        }

        @Test func manyThreadsSubmittingAtOnceAllGetTheirOwnResults() throws {
            let pool = try ProcessPool(workers: 2, work: obey)
            defer { pool.shutdown() }
            let wrong = ConditionLockedCounter()
            let threads = try (0..<4).map { thread in
                try PosixThread.start(name: "submitter") {
                    for round in 0..<300 {
                        let value = thread * 10_000 + round
                        if (try? pool.submit(.echo(value)).get()) != value { wrong.add(1) }
                    }
                }
            }
            // A map alongside takes workers from the lanes and gives them back.
            #expect(try pool.map((0..<2000).map { Command.echo($0) }) == Array(0..<2000))
            threads.forEach { $0.join() }
            #expect(wrong.value == 0)
            #expect(pool.tasksSentByLane > 0)
            #expect(pool.stats.tasksCompleted >= 1200)
        }

        @Test func aWorkerKilledWhileItsCallerReadsFailsTheTaskWithTheSignal() throws {
            let task = try HangingLaneTask(configuration: quiet)
            let (pool, future, pid) = (task.pool, task.future, task.pid)
            defer { pool.shutdown() }
            let killer = try whileACallerReadsByLane(pool) { _ = kill(pid, SIGKILL) }
            let error = expectForkPoolError { _ = try future.get() }
            killer.join()
            #expect(error?.code == .workerDied)
            #expect(error?.signal == SIGKILL)
            #expect(error?.taskID == future.taskID)
            #expect(error?.processID == pid)
            #expect(try pool.submit(.echo(3)).get() == 3)
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && !pool.workerProcessIDs.contains(pid) })
        }

        @Test func aWorkerThatExitsWhileAGrandchildHoldsItsSocketStillEndsTheRead() throws {
            // The caller sees no end of stream (the grandchild keeps the socket open): only the
            // fork server's exit report can end its read, through the dispatcher.
            let pids = PIDPipe()
            let recorder = LogRecorder()
            var configuration = quiet
            configuration.logger = recorder.logger
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let future = try pool.submit(.shareSocketWithGrandchild(fd: pids.writeEnd))
            let grandchild = pids.nextPID()
            defer { kill(grandchild, SIGKILL) }
            let pid = pids.nextPID()
            let killer = try whileACallerReadsByLane(pool) { _ = kill(pid, SIGKILL) }
            let error = expectForkPoolError { _ = try future.get() }
            killer.join()
            #expect(error?.code == .workerDied)
            #expect(error?.signal == SIGKILL)
            #expect(error?.processID == pid)
            #expect(liveness(of: grandchild) == .running)
            // The crash is logged with the task the caller was reading.
            let crash = recorder.events("worker crashed").first
            #expect(crash?["forkpool.pid"] == "\(pid)")
            #expect(crash?["forkpool.task_id"] == "\(future.taskID)")
            #expect(try pool.submit(.echo(4)).get() == 4)
        }

        @Test func aTaskWhoseWorkerIsKilledWhileItsCallerReadsIsRetriedUnderARetryPolicy() throws {
            let task = try HangOnceLaneTask(configuration: quiet, name: "lane-retry")
            let (pool, pid) = (task.pool, task.pid)
            let killer = try whileACallerReadsByLane(pool) { _ = kill(pid, SIGKILL) }
            #expect(try task.future.get() == 42)
            killer.join()
            #expect(pool.stats.restarts == 1)
        }

        @Test func cancellingATaskWhileItsCallerReadsKillsItsWorker() throws {
            let task = try HangingLaneTask(configuration: quiet)
            let (pool, future, pid) = (task.pool, task.future, task.pid)
            defer { pool.shutdown() }
            let cancelled = LockedBox<Bool>()
            let canceller = try whileACallerReadsByLane(pool) { cancelled.value = future.cancel() }
            let error = expectForkPoolError { _ = try future.get() }
            canceller.join()
            #expect(cancelled.value == true)
            #expect(error?.code == .cancelled)
            #expect(waitUntil { liveness(of: pid) != .running })
            #expect(try pool.submit(.echo(5)).get() == 5)
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && !pool.workerProcessIDs.contains(pid) })
        }

        @Test func aCallerWhoseTimeOutEndsLeavesTheReplyToThePool() throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, work: obey)
            defer { pool.shutdown() }
            let future = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: 300))
            let pid = pids.nextPID()
            #expect(try future.get(timeout: .milliseconds(20)) == nil)
            #expect(pool.callersReadingByLane == 0)
            #expect(try future.get() == Int(pid))
            #expect(try pool.submit(.echo(6)).get() == 6)
        }

        @Test func aFutureNobodyBlocksOnCompletesAnyway() async throws {
            let pool = try ProcessPool(workers: 2, work: obey)
            defer { pool.shutdown() }
            // Polled, never waited on: the pool reads the reply.
            let polled = try pool.submit(.echo(8))
            #expect(waitUntil { polled.isDone })
            #expect(try polled.get() == 8)
            // Awaited: the pool reads the reply and resumes the task.
            let awaited = try pool.submit(.echo(9))
            #expect(try await awaited.value == 9)
            #expect(pool.tasksSentByLane == 2)
            // Never looked at: still counted, once anyone reads the stats.
            #expect(waitUntil { pool.openLaneCount > 0 })
            _ = try pool.submit(.echo(10))
            #expect(pool.tasksSentByLane == 3)
            #expect(waitUntil { pool.stats.tasksCompleted == 3 })
        }

        @Test func anUnexpectedFrameOnTheLaneFailsTheTaskAndReplacesTheWorker() throws {
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let pid = pool.workerProcessIDs[0]
            var ready = FrameHeader.emptyFrame()
            FrameHeader(kind: .ready, length: 0, taskID: pool.tasksCreated + 1).write(into: &ready)
            let error = expectForkPoolError { _ = try pool.submit(.writeThenReturn(ready, value: 1)).get() }
            #expect(error?.code == .malformedFrame)
            #expect(error?.message.contains("unexpected") == true)
            #expect(error?.processID == pid)
            #expect(pool.tasksSentByLane == 1)
            #expect(try pool.submit(.echo(2)).get() == 2)
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && pool.workerProcessIDs != [pid] })
        }

        @Test func bytesAfterTheReplyGetTheWorkerReplaced() throws {
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let pid = pool.workerProcessIDs[0]
            // A reply forged for the task itself, and three stray bytes, in one write: they
            // arrive together, ahead of the real reply.
            var forged = FrameHeader.emptyFrame()
            try PayloadCodec<Int>().encode(777, into: &forged)
            FrameHeader(kind: .result, length: forged.count - FrameHeader.size, taskID: pool.tasksCreated + 1).write(into: &forged)
            #expect(try pool.submit(.writeThenReturn(forged + [1, 2, 3], value: 1)).get() == 777)
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && pool.workerProcessIDs != [pid] })
            #expect(try pool.submit(.echo(3)).get() == 3)
        }

        @Test func aTaskSentToAWorkerThatDiedIdleRunsOnItsReplacement() throws {
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            let pid = pool.workerProcessIDs[0]
            // The fork server, stopped, cannot report the death: the lane stays open.
            #expect(kill(server, SIGSTOP) == 0)
            #expect(kill(pid, SIGKILL) == 0)
            #expect(waitUntil { liveness(of: pid) == .zombie })
            let future = try pool.submit(.echo(11))
            #expect(pool.tasksSentByLane == 1)
            #expect(kill(server, SIGCONT) == 0)
            #expect(try future.get() == 11)
            #expect(pool.stats.tasksFailed == 0)
        }

        @Test func theForkServerDyingWhileACallerReadsFailsTheTask() throws {
            let task = try HangingLaneTask(configuration: quiet)
            let (pool, future) = (task.pool, task.future)
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            let killer = try whileACallerReadsByLane(pool) { _ = kill(server, SIGKILL) }
            let error = expectForkPoolError { _ = try future.get() }
            killer.join()
            #expect(error?.code == .workerDied)
            #expect(error?.message.contains("fork server") == true)
            #expect(try pool.submit(.echo(12)).get() == 12)
        }

        @Test func shutdownWaitsForACallerReadingByLane() throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, work: obey)
            let future = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: 200))
            let pid = pids.nextPID()
            let result = LockedBox<Int>()
            let reader = try PosixThread.start(name: "lane-reader") { result.value = try? future.get() }
            #expect(waitUntil { pool.callersReadingByLane == 1 })
            pool.shutdown()
            reader.join()
            #expect(result.value == Int(pid))
            #expect(expectForkPoolError { _ = try pool.submit(.echo(1)) }?.code == .poolShutDown)
        }
    }
}
