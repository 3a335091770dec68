// Short tasks sent behind a running one (`tasksInFlightPerWorker`), provoked for real: they go
// ahead only under load and only to a worker whose tasks are short (moderate ones: one task
// behind the running one), come back in order, and when the worker dies the crash is blamed on
// the task it ran while the ones sent behind it run on its replacement; a task cancelled while
// sent ahead leaves the others whole. Gates hold the running task; where a gated task must
// count as short (or moderate), the limits are raised for the test (`withShortTaskLimit`,
// `withTaskLimits`). Every wait is bounded.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct PipelineTests {
        /// One worker, every task through the dispatcher (no lane), crashes quiet.
        var oneAtATimeThroughTheQueue: ProcessPoolConfiguration {
            var configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            configuration.usesDirectLanes = false
            return configuration
        }

        /// Runs `body` with tasks of up to `milliseconds` counting as short (a gated task then
        /// has tasks sent behind it), restoring the limit after.
        func withShortTaskLimit<T>(milliseconds: UInt64, _ body: () throws -> T) rethrows -> T {
            try withTaskLimits(short: milliseconds * 1_000_000, moderate: WorkerProcess.oneAheadTaskNanoseconds, body)
        }

        /// Runs `body` with tasks of up to `short` nanoseconds counting as short and of up to
        /// `moderate` as moderate (one task sent behind the running one), restoring both after.
        func withTaskLimits<T>(short: UInt64, moderate: UInt64, _ body: () throws -> T) rethrows -> T {
            let saved = (WorkerProcess.pipelineTaskNanoseconds, WorkerProcess.oneAheadTaskNanoseconds)
            (WorkerProcess.pipelineTaskNanoseconds, WorkerProcess.oneAheadTaskNanoseconds) = (short, moderate)
            defer { (WorkerProcess.pipelineTaskNanoseconds, WorkerProcess.oneAheadTaskNanoseconds) = saved }
            return try body()
        }

        /// A one-worker pool (lanes off) whose tasks are known to be short, its worker held at
        /// `gate` by a running task (which returns 1 once let through), and the worker's pid.
        func poolWithAHeldTask() throws -> (pool: ProcessPool<Command, Int>, gate: Gate, held: Future<Int>, worker: pid_t) {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its worker inherits them
            let pool = try ProcessPool(workers: 1, configuration: oneAtATimeThroughTheQueue, work: obey)
            #expect(try pool.submit(.echo(0)).get() == 0)
            let held = try pool.submit(.passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 1))
            return (pool, gate, held, reports.nextPID())
        }

        @Test func shortTasksUnderLoadGoBehindTheRunningOneAndComeBackInOrder() throws {
            // Short: up to 50 ms, so that the echoes count as short even under a sanitizer.
            try withShortTaskLimit(milliseconds: 50) {
                let pool = try ProcessPool(workers: 1, configuration: oneAtATimeThroughTheQueue, work: obey)
                defer { pool.shutdown() }
                #expect(try pool.submit(.echo(-1)).get() == -1)  // the worker's tasks are known to be short
                let futures = try (0..<300).map { try pool.submit(.echo($0)) }
                #expect(try futures.map { try $0.get(timeout: .seconds(30)) } == Array(0..<300))
                #expect(pool.tasksPipelined > 0)
                #expect(pool.stats.tasksCompleted == 301 && pool.stats.tasksFailed == 0)
            }
        }

        @Test func oneTaskInFlightPerWorkerSendsNothingAhead() throws {
            var configuration = oneAtATimeThroughTheQueue
            configuration.tasksInFlightPerWorker = 1
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let futures = try (0..<300).map { try pool.submit(.echo($0)) }
            #expect(try futures.map { try $0.get(timeout: .seconds(30)) } == Array(0..<300))
            #expect(pool.tasksPipelined == 0)
            for bad in [0, 65] {
                let error = expectForkPoolError {
                    _ = try ProcessPool(workers: 1, configuration: .with { $0.tasksInFlightPerWorker = bad }, work: obey)
                }
                #expect(error?.code == .invalidArgument)
            }
        }

        @Test func nothingGoesBehindATaskThatHasRunLong() throws {
            // Short: up to 20 ms (however slow this machine); the held task runs past that.
            try withShortTaskLimit(milliseconds: 20) {
                let (pool, gate, held, _) = try poolWithAHeldTask()  // short tasks so far
                defer { pool.shutdown() }
                usleep(100_000)  // the running task has now run far longer than a short one
                let behind = try pool.submit(.echo(2))
                #expect(waitUntil { pool.stats.queuedTasks == 1 })
                // Gates for the dispatcher's turns: probes queued behind it with a 1 ms deadline,
                // one after the other. The dispatcher fails each in the turn that also sends
                // ahead whatever may go, so once the second has failed, a whole turn has passed
                // with `behind` queued and this worker busy.
                for value in [3, 4] {
                    let probe = try pool.submit(.echo(value), timeout: .milliseconds(1))
                    #expect(expectForkPoolError { _ = try probe.get(timeout: .seconds(30)) }?.code == .timedOut)
                }
                #expect(pool.tasksPipelined == 0 && !behind.isDone)  // still waiting in the pool's queue
                gate.open(1)
                #expect(try held.get(timeout: .seconds(30)) == 1)
                #expect(try behind.get(timeout: .seconds(30)) == 2)
            }
        }

        @Test func aWorkerWhoseTasksAreModerateGetsOneTaskBehindItsRunningOne() throws {
            // Nothing counts as short; tasks up to a minute count as moderate (the held one too).
            try withTaskLimits(short: 0, moderate: 60_000_000_000) {
                let (pool, gate, held, _) = try poolWithAHeldTask()
                defer { pool.shutdown() }
                let behind = try (2..<6).map { try pool.submit(.echo($0)) }
                #expect(waitUntil { pool.tasksPipelined == 1 && pool.stats.queuedTasks == 3 })
                // Probes with a 1 ms deadline queued behind them, one after the other: once the
                // second has failed, a whole turn has passed with the rest queued.
                for value in [10, 11] {
                    let probe = try pool.submit(.echo(value), timeout: .milliseconds(1))
                    #expect(expectForkPoolError { _ = try probe.get(timeout: .seconds(30)) }?.code == .timedOut)
                }
                #expect(pool.tasksPipelined == 1 && !behind.contains(where: \.isDone))  // one ahead, the rest still queued
                gate.open(1)
                #expect(try held.get(timeout: .seconds(30)) == 1)
                #expect(try behind.map { try $0.get(timeout: .seconds(30)) } == [2, 3, 4, 5])
            }
        }

        @Test func aCrashIsBlamedOnTheTaskThatRanAndTheTasksBehindItRunElsewhere() throws {
            try withShortTaskLimit(milliseconds: 60_000) {
                let (pool, gate, held, worker) = try poolWithAHeldTask()
                defer { pool.shutdown() }
                let first = [worker]
                let crash = try pool.submit(.raise(SIGKILL))
                let behind = try [2, 3].map { try pool.submit(.echo($0)) }
                #expect(waitUntil { pool.tasksPipelined == 3 })  // all three sent behind the held one
                gate.open(1)
                #expect(try held.get(timeout: .seconds(30)) == 1)
                let error = expectForkPoolError { _ = try crash.get(timeout: .seconds(30)) }
                #expect(error?.code == .workerDied && error?.signal == SIGKILL)
                #expect(error?.taskID == crash.taskID && error?.processID == first.first)
                #expect(try behind.map { try $0.get(timeout: .seconds(30)) } == [2, 3])
                #expect(pool.pipelinedTasksRerun == 2)
                #expect(waitUntil { pool.workerProcessIDs.count == 1 && pool.workerProcessIDs != first })
                let stats = pool.stats
                #expect(stats.tasksFailed == 1 && stats.tasksCompleted == 5)
                #expect(stats.workers[0].restarts == 1)
            }
        }

        @Test func shutdownRightAfterCancellingARunningTaskStillRunsTheTasksSentBehindIt() throws {
            try withShortTaskLimit(milliseconds: 60_000) {
                let (pool, gate, held, _) = try poolWithAHeldTask()
                defer { withExtendedLifetime(gate) {} }  // the held task stays held until killed
                let behind = try [2, 3].map { try pool.submit(.echo($0)) }
                #expect(waitUntil { pool.tasksPipelined == 2 })
                #expect(held.cancel())  // kills the worker; the two behind it must run elsewhere
                pool.shutdown()
                #expect(try behind.map { try $0.get(timeout: .seconds(30)) } == [2, 3])
            }
        }

        @Test func aTaskSentAheadCannotBeCancelledAndRunsElsewhereWhenItsWorkerDies() throws {
            try withShortTaskLimit(milliseconds: 60_000) {
                let ran = PIDPipe()  // before the pool: its worker inherits it
                let (pool, gate, held, worker) = try poolWithAHeldTask()
                defer { pool.shutdown() }
                defer { withExtendedLifetime(gate) {} }  // the held task stays held until killed
                let sentAhead = try pool.submit(.reportPID(fd: ran.writeEnd, sleepMilliseconds: 0))
                let kept = try pool.submit(.echo(4))
                #expect(waitUntil { pool.tasksPipelined == 2 })
                #expect(!sentAhead.cancel())  // on its way, as in Python's call queue: not cancelled
                #expect(!sentAhead.isCancelled)
                #expect(kill(worker, SIGKILL) == 0)
                // Judged as a crash by its signal, though the worker died with frames unread
                // (the kernel reports ECONNRESET then, not end of stream).
                let died = expectForkPoolError { _ = try held.get(timeout: .seconds(30)) }
                #expect(died?.code == .workerDied && died?.signal == SIGKILL)
                let replacement = try #require(try sentAhead.get(timeout: .seconds(30)))  // ran on the replacement
                #expect(replacement != Int(worker) && ran.nextPID() == pid_t(replacement))
                #expect(try kept.get(timeout: .seconds(30)) == 4)
                #expect(pool.stats.workers[0].restarts == 1)  // only the one that was killed
            }
        }

        @Test func aTaskThatFinishedBeforeItsWorkerDiedCountsAndTheCrashIsBlamedOnTheNext() throws {
            // The worker answers the held task, then dies in the next one while the pool still
            // has more to send it: the answer counts, the crash is the next task's.
            try withShortTaskLimit(milliseconds: 60_000) {
                let (pool, gate, held, _) = try poolWithAHeldTask()
                defer { pool.shutdown() }
                let crash = try pool.submit(.raise(SIGKILL))
                let behind = try (2...7).map { try pool.submit(.echo($0)) }
                #expect(waitUntil { pool.tasksPipelined == 7 })
                gate.open(1)
                #expect(try held.get(timeout: .seconds(30)) == 1)
                let error = expectForkPoolError { _ = try crash.get(timeout: .seconds(30)) }
                #expect(error?.code == .workerDied && error?.taskID == crash.taskID)
                #expect(try behind.map { try $0.get(timeout: .seconds(30)) } == Array(2...7))
            }
        }

        @Test func aWorkerKilledWithTasksUnreadInItsSocketIsJudgedByTheCrashPolicy() throws {
            try withShortTaskLimit(milliseconds: 60_000) {
                let gate = Gate(), reports = PIDPipe()
                var configuration = oneAtATimeThroughTheQueue
                configuration.crashPolicy = .retry(times: 1)
                let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
                defer { pool.shutdown() }
                #expect(try pool.submit(.echo(0)).get() == 0)
                let held = try pool.submit(.passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 1))
                let first = reports.nextPID()
                let behind = try (2...5).map { try pool.submit(.echo($0)) }
                #expect(waitUntil { pool.tasksPipelined == 4 })  // in the worker's socket, unread
                #expect(kill(first, SIGKILL) == 0)
                let again = reports.nextPID()  // the held task runs again, on the replacement
                #expect(again != first)
                gate.open(1)
                #expect(try held.get(timeout: .seconds(30)) == 1)
                #expect(try behind.map { try $0.get(timeout: .seconds(30)) } == Array(2...5))
                #expect(pool.stats.tasksFailed == 0)
            }
        }

        @Test func aTaskSentToAWorkerThatHadJustDiedRunsOnItsReplacement() throws {
            // The worker is killed while idle; the next task may go out before its death is
            // known (EPIPE): it never reached the worker, so it runs on the replacement.
            let pool = try ProcessPool(workers: 1, configuration: oneAtATimeThroughTheQueue, work: obey)
            defer { pool.shutdown() }
            for round in 0..<20 {
                let worker = try #require(pool.workerProcessIDs.first)
                #expect(kill(worker, SIGKILL) == 0)
                #expect(try pool.submit(.echo(round)).get(timeout: .seconds(30)) == round, "round \(round)")
                #expect(waitUntil { pool.workerProcessIDs.count == 1 && pool.workerProcessIDs.first != worker })
            }
        }

        @Test func cancellingATaskSentAheadReturnsFalseAndItsResultArrives() throws {
            try withShortTaskLimit(milliseconds: 60_000) {
                let (pool, gate, held, worker) = try poolWithAHeldTask()
                defer { pool.shutdown() }
                let sentAhead = try pool.submit(.echo(5))
                let kept = try pool.submit(.echo(6))
                #expect(waitUntil { pool.tasksPipelined == 2 })
                #expect(!sentAhead.cancel())
                gate.open(1)
                #expect(try held.get(timeout: .seconds(30)) == 1)
                #expect(try sentAhead.get(timeout: .seconds(30)) == 5)
                #expect(try kept.get(timeout: .seconds(30)) == 6)
                #expect(pool.workerProcessIDs == [worker])  // nobody was killed
                #expect(try pool.submit(.echo(7)).get(timeout: .seconds(30)) == 7)
            }
        }
    }
}
