// Isolation, provoked for real: hangs and deadlines, crash policies, recycling, initializers
// and restart storms, the parent's death, Ctrl-C, process groups, and bad input either way.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

/// Global state an initializer sets in each worker.
nonisolated(unsafe) var initializedIn: pid_t = 0

extension ForkPoolTests {
    @Suite struct IsolationTests {
        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        // MARK: Hangs and deadlines

        @Test func taskOverItsTimeLimitIsKilledAndReplaced() throws {
            let pids = PIDPipe()
            var configuration = quiet
            configuration.taskTimeout = .milliseconds(500)
            let pool = try ProcessPool(workers: 2, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let hung = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
            let pid = pids.nextPID()
            let quick = try pool.submit(.square(5))
            let error = expectForkPoolError { _ = try hung.get() }
            #expect(error?.code == .timedOut)
            #expect(error?.processID == pid)
            #expect(error?.message.contains("time limit of 0.5 s") == true)
            #expect(try quick.get() == 25)
            #expect(waitUntil { liveness(of: pid) != .running })
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func terminationGracePeriodEscalatesFromSIGTERMToSIGKILL() throws {
            let pids = PIDPipe()
            var configuration = quiet
            configuration.taskTimeout = .milliseconds(300)
            configuration.terminationGracePeriod = .milliseconds(300)
            // This work ignores SIGTERM, so only the SIGKILL after the grace period stops it.
            let pool = try ProcessPool(workers: 1, configuration: configuration) { (fd: Int32) -> Int in
                signal(SIGTERM, SIG_IGN)
                var pid = getpid()
                _ = write(fd, &pid, MemoryLayout<pid_t>.size)
                while true { pause() }
            }
            defer { pool.shutdown() }
            let hung = try pool.submit(pids.writeEnd)
            let pid = pids.nextPID()
            #expect(expectForkPoolError { _ = try hung.get() }?.code == .timedOut)
            #expect(waitUntil { liveness(of: pid) != .running })
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && !pool.workerProcessIDs.contains(pid) })
        }

        @Test func perCallDeadlineCoversRunningAndQueuedTasks() throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            // The worker is held far longer than the queued task's deadline (no race between the
            // two deadlines): the queued task's own deadline passes before a worker is free.
            let blocking = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1), timeout: .seconds(60))
            let blocker = pids.nextPID()
            let queued = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: 0), timeout: .milliseconds(200))
            let queuedError = expectForkPoolError { _ = try queued.get() }
            #expect(queuedError?.code == .timedOut)
            #expect(queuedError?.message.contains("before a worker was free") == true)
            #expect(kill(blocker, SIGKILL) == 0)
            #expect(expectForkPoolError { _ = try blocking.get() }?.signal == SIGKILL)
            // A running task's own deadline, with nothing else in the pool.
            let running = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1), timeout: .milliseconds(300))
            let pid = pids.nextPID()
            #expect(expectForkPoolError { _ = try running.get() }?.code == .timedOut)
            #expect(waitUntil { liveness(of: pid) != .running })
            try expectPoolServesWithFullStrength(pool)
            // The queued task never ran: no pid beyond the two hung tasks' was reported.
            #expect(forkpool_set_nonblocking(pids.readEnd) == 0)
            var extra: pid_t = 0
            #expect(read(pids.readEnd, &extra, MemoryLayout<pid_t>.size) == -1)
            #expect(expectForkPoolError { _ = try pool.submit(.square(1), timeout: .seconds(0)) }?.code == .invalidArgument)
        }

        @Test func aQueuedTaskPastItsDeadlineNeverReachesAnIdleWorker() throws {
            // The deadline has passed by the dispatcher's first turn, while the worker is idle:
            // the task fails as queued and no worker is killed for it.
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            #expect(try pool.submit(.echo(1)).get() == 1)
            for _ in 0..<20 {
                let error = expectForkPoolError { _ = try pool.submit(.echo(2), timeout: .nanoseconds(1)).get(timeout: .seconds(30)) }
                #expect(error?.code == .timedOut && error?.message.contains("before a worker was free") == true)
            }
            #expect(pool.stats.workers[0].restarts == 0)
            #expect(try pool.submit(.echo(3)).get() == 3)
        }

        @Test func tasksWithLongDeadlinesAreLetGoOnceTheyLeaveTheQueue() throws {
            // Each task's deadline is far away: the queue's deadline watch must still let go of
            // it when it starts, or every finished task (and its output) would stay in memory
            // until its deadline.
            let pool = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let futures = try (1...200).map { try pool.submit(.square($0), timeout: .seconds(3600)) }
            #expect(try futures.map { try $0.get() } == (1...200).map { $0 * $0 })
            #expect(waitUntil { pool.tasksWatchedForDeadline == 0 })
        }

        @Test func durationFormsOfTheDeadlineAndTheBoundedWait() throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let hung = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1), timeout: .milliseconds(300))
            let pid = pids.nextPID()
            #expect(try hung.get(timeout: .milliseconds(1)) == nil)  // still running
            #expect(expectForkPoolError { _ = try hung.get(timeout: .seconds(60)) }?.code == .timedOut)
            #expect(waitUntil { liveness(of: pid) != .running })
            #expect(try pool.submit(.square(3), timeout: .seconds(60)).get(timeout: .seconds(60)) == 9)
            #expect(expectForkPoolError { _ = try pool.submit(.square(1), timeout: .zero) }?.code == .invalidArgument)
        }

        // MARK: Crash policies

        @Test func retryPolicyRunsACrashedTaskAgainOnAFreshWorker() throws {
            var template = Array("/tmp/forkpool-retry-XXXXXX".utf8CString)
            let directory = String(cString: try #require(mkdtemp(&template)))
            defer {
                for n in 1...5 { unlink("\(directory)/\(n)") }
                rmdir(directory)
            }
            var configuration = quiet
            configuration.crashPolicy = .retry(times: 2)
            // Crashes the first time it sees an input, succeeds the second time.
            let pool = try ProcessPool(workers: 2, configuration: configuration) { (n: Int) -> Int in
                let marker = "\(directory)/\(n)"
                if access(marker, F_OK) != 0 {
                    close(open(marker, O_CREAT | O_WRONLY, 0o600))
                    raise(SIGKILL)
                }
                return n * 10
            }
            defer { pool.shutdown() }
            #expect(try pool.map([1, 2, 3]) == [10, 20, 30])
            #expect(try pool.map([4, 5], chunkSize: 2) == [40, 50])
        }

        @Test func retryResendsALargeByteArrayWhole() throws {
            // A large [UInt8] input is sent from the caller's array (not copied into the frame):
            // a retry must send the same bytes again.
            var configuration = quiet
            configuration.crashPolicy = .retry(times: 1)
            let marker = "/tmp/forkpool-retry-bytes-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            defer { unlink(marker) }
            let pool = try ProcessPool(workers: 1, configuration: configuration) { (bytes: [UInt8]) -> Int in
                if access(marker, F_OK) != 0 {  // the first attempt dies
                    close(open(marker, O_CREAT | O_WRONLY, 0o600))
                    raise(SIGKILL)
                }
                return bytes.reduce(0) { $0 &+ Int($1) }
            }
            defer { pool.shutdown() }
            let bytes = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            #expect(try pool.submit(bytes).get() == bytes.reduce(0) { $0 &+ Int($1) })
        }

        @Test func retryPolicyGivesUpAfterItsLimit() throws {
            var configuration = quiet
            configuration.crashPolicy = .retry(times: 2)
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let error = expectForkPoolError { _ = try pool.submit(.exit(4)).get() }
            #expect(error?.code == .workerDied)
            #expect(error?.exitStatus == 4)
            #expect(error?.message.contains("after 2 retries") == true)
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func breakPoolPolicyFailsQueuedTasksAndRefusesNewOnes() throws {
            var configuration = quiet
            configuration.crashPolicy = .breakPool
            let pids = PIDPipe()  // before the pool: its workers inherit the pipe
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            // The worker dies only once the others are queued: a crash that came first would
            // refuse them at `submit` (a race this test once lost).
            let crash = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
            let worker = pids.nextPID()
            let queued = try (1...4).map { try pool.submit(.square($0)) }
            #expect(kill(worker, SIGKILL) == 0)
            #expect(expectForkPoolError { _ = try crash.get() }?.code == .workerDied)
            for future in queued {
                #expect(expectForkPoolError { _ = try future.get() }?.code == .poolBroken)
            }
            let refused = expectForkPoolError { _ = try pool.submit(.square(1)) }
            #expect(refused?.code == .poolBroken)
            #expect(refused?.message.contains("killed by signal 9 (SIGKILL)") == true)  // the crash that broke it
        }

        // MARK: Recycling

        @Test func workersAreRecycledAfterTheirTaskLimit() throws {
            var configuration = quiet
            configuration.maximumTasksPerWorker = 5
            let pool = try ProcessPool(workers: 1, configuration: configuration) { (_: Int) -> Int32 in getpid() }
            defer { pool.shutdown() }
            var served: [pid_t: Int] = [:]
            for index in 0..<30 {
                served[try pool.submit(index).get(), default: 0] += 1
            }
            // A limit of 5 plus 0–10% jitter (0 for 5): exactly 5 tasks per worker.
            #expect(served.count == 6)
            #expect(served.values.allSatisfy { $0 == 5 })
            #expect(waitUntil { served.keys.allSatisfy { liveness(of: $0) != .running } || served.keys.filter { liveness(of: $0) == .running }.count == 1 })
        }

        @Test func aRecycledWorkerLeavesOnlyOnceItsReplacementIsReady() throws {
            // Every worker's initializer waits at a gate: the first is let through, the
            // replacement is held there — not ready — while the test looks at the old worker.
            let gate = Gate()
            var configuration = quiet
            configuration.maximumTasksPerWorker = 1
            configuration.initializer = { [gateFD = gate.readEnd] in
                var entry = pollfd(fd: gateFD, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 60_000) > 0 else { return }  // a gate never opened: a bug, not a hang
                var byte: UInt8 = 0
                _ = read(gateFD, &byte, 1)
            }
            gate.open(1)
            let pool = try ProcessPool(workers: 1, configuration: configuration) { (_: Int) -> Int32 in getpid() }
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            let old = try pool.submit(0).get()  // its one task: the worker retires
            // The replacement exists (forked, held in its initializer) ...
            #expect(waitUntil { childProcessIDs(of: server).contains { $0 != old } })
            // ... and the retiring worker is still there, serving the pool's strength.
            #expect(liveness(of: old) == .running, "the old worker left before its replacement was ready")
            gate.open(8)  // this replacement, and the next ones (each worker does one task)
            let next = try pool.submit(1).get()
            #expect(next != old)
            #expect(waitUntil { liveness(of: old) != .running })
        }

        @Test func workersAreRecycledPastTheirMemoryCeiling() throws {
            let probe = try ProcessPool(workers: 1) { (_: Int) -> Int in 0 }
            let baseline = WorkerProcess(pid: probe.workerProcessIDs[0], socket: nil, pidfd: -1, maximumFrameBytes: 1).residentBytes()
            probe.shutdown()
            #expect(baseline > 0)
            var configuration = quiet
            configuration.maximumWorkerResidentBytes = baseline + (48 << 20)
            // Each task leaks 20 MiB of touched memory: the third one pushes a worker over.
            let pool = try ProcessPool(workers: 1, configuration: configuration) { (_: Int) -> Int32 in
                let leak = UnsafeMutableRawPointer.allocate(byteCount: 20 << 20, alignment: 4096)
                memset(leak, 1, 20 << 20)
                return getpid()
            }
            defer { pool.shutdown() }
            let pids = try (0..<9).map { try pool.submit($0).get() }
            #expect(Set(pids).count == 3)
            #expect(pids[0] == pids[1] && pids[1] == pids[2] && pids[2] != pids[3])
        }

        // MARK: Initializers and restart storms

        @Test func initializerRunsOncePerWorkerBeforeItsTasks() throws {
            let pids = PIDPipe()
            let fd = pids.writeEnd
            var configuration = ProcessPoolConfiguration()
            configuration.initializer = {
                initializedIn = getpid()
                var pid = getpid()
                _ = write(fd, &pid, MemoryLayout<pid_t>.size)
            }
            let pool = try ProcessPool(workers: 3, configuration: configuration) { (_: Int) -> Bool in initializedIn == getpid() }
            defer { pool.shutdown() }
            #expect(try pool.map(Array(0..<30)).allSatisfy { $0 })
            let reported = Set((0..<3).map { _ in pids.nextPID() })
            #expect(reported == Set(pool.workerProcessIDs))
            #expect(initializedIn == 0)  // never in the parent
        }

        @Test(arguments: ["throws", "exits"])
        func failingInitializerBreaksThePoolInsteadOfRespawningForever(how: String) throws {
            let fdsBefore = openFileDescriptorCount()
            var configuration = quiet
            configuration.maximumConsecutiveStartFailures = 4
            configuration.initializer = {
                if how == "throws" { throw TestFailure(description: "no database here") }
                exitLikeUserCode(1)
            }
            let error = expectForkPoolError { _ = try ProcessPool(workers: 2, configuration: configuration) { (n: Int) -> Int in n } }
            #expect(error?.code == .poolBroken)
            #expect(error?.message.contains("4 times in a row") == true)
            if how == "throws" {
                #expect(error?.message.contains("no database here") == true)
            } else {
                #expect(error?.message.contains("exited with status 1") == true)
            }
            #expect(childProcessIDs().isEmpty)
            #expect(openFileDescriptorCount() == fdsBefore)
        }

        @Test func replacementsThatFailToStartBreakARunningPool() throws {
            // The first workers start; every later one (a replacement) throws in its
            // initializer: past the limit, the running pool breaks rather than respawning.
            let marker = "/tmp/forkpool-started-once-\(getpid())"
            defer { unlink(marker) }
            let pids = PIDPipe()
            var configuration = quiet
            configuration.maximumConsecutiveStartFailures = 3
            configuration.initializer = {
                if access(marker, F_OK) == 0 { throw TestFailure(description: "the database is gone") }
            }
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            close(open(marker, O_CREAT | O_WRONLY, 0o600))
            let task = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
            #expect(kill(pids.nextPID(), SIGKILL) == 0)
            #expect(expectForkPoolError { _ = try task.get() }?.signal == SIGKILL)
            // Submits are taken (and queued) until the pool breaks; then they are refused.
            var refused: ForkPoolError?
            #expect(waitUntil {
                do {
                    _ = try pool.submit(.square(2))
                    return false
                } catch {
                    refused = error as? ForkPoolError
                    return true
                }
            })
            #expect(refused?.code == .poolBroken)
            #expect(refused?.message.contains("3 times in a row") == true)
            #expect(refused?.message.contains("the database is gone") == true)
        }

        // MARK: The parent's death, Ctrl-C, process groups

        /// Forks a stand-in application that makes a pool, reports its fork server's and
        /// workers' pids, then waits to be killed with `signal`.
        func poolOrphanedBy(_ signal: Int32) throws -> [pid_t] {
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            defer { close(fds[0]) }
            let application = forkpool_fork_worker(nil, 0, 0)
            if application == 0 {
                close(fds[0])
                guard let pool = try? ProcessPool(workers: 3, work: { (n: Int) -> Int in n }) else { _exit(3) }
                var pids = [pool.forkServerProcessID ?? 0] + pool.workerProcessIDs
                _ = write(fds[1], &pids, pids.count * MemoryLayout<pid_t>.size)
                while true { pause() }
            }
            close(fds[1])
            var pids = [pid_t](repeating: 0, count: 4)
            #expect(read(fds[0], &pids, 4 * MemoryLayout<pid_t>.size) == 4 * MemoryLayout<pid_t>.size)
            #expect(pids.allSatisfy { $0 > 0 && liveness(of: $0) == .running })
            #expect(pids.allSatisfy { getpgid($0) != getpgid(application) })  // their own process group
            #expect(kill(application, signal) == 0)
            var status: Int32 = 0
            #expect(forkpool_waitpid(application, &status, 0) == application)
            #expect(forkpool_wtermsig(status) == signal)
            return pids
        }

        @Test func parentKilledWithSIGKILLLeavesNoOrphans() throws {
            let pids = try poolOrphanedBy(SIGKILL)
            #expect(waitUntil { pids.allSatisfy { liveness(of: $0) != .running } })
        }

        @Test func parentKilledWhileEveryWorkerIsBusyLeavesNoOrphans() throws {
            // Idle workers would leave anyway when their socket closes; these are inside a task
            // that never returns and never reads the socket, so only the parent-death signal
            // (fork server: the pool's dispatcher thread died; workers: the fork server died)
            // can end them.
            let application = try StandInApplication { report in
                guard let pool = try? ProcessPool(workers: 3, configuration: quiet, work: obey),
                      var server = pool.forkServerProcessID else { _exit(3) }
                // The server's pid first; then each busy worker writes its own (4-byte writes
                // to a pipe are atomic).
                _ = write(report, &server, MemoryLayout<pid_t>.size)
                var futures: [Future<Int>] = []
                for _ in 0..<3 {
                    guard let future = try? pool.submit(.reportPID(fd: report, sleepMilliseconds: -1)) else { _exit(4) }
                    futures.append(future)
                }
                while true { withExtendedLifetime((pool, futures)) { _ = pause() } }
            }
            let pids = application.reportedPIDs(count: 4)
            // Strays of a failing run are killed, so later tests see no extra processes.
            defer { for pid in pids where liveness(of: pid) == .running { kill(pid, SIGKILL) } }
            try #require(pids.count == 4, "the stand-in application reported \(pids.count) of 4 pids")
            let server = pids[0]
            let workers = Array(pids[1...])
            #expect(Set(workers).count == 3)
            #expect(pids.allSatisfy { $0 > 0 && liveness(of: $0) == .running })
            #expect(Set(childProcessIDs(of: server)).isSuperset(of: workers))
            // Every worker is busy: it reported from inside its task, which never returns.
            #expect(application.kill(with: SIGKILL).map(forkpool_wtermsig) == SIGKILL)
            // Within one second, not the generous 30 s of `waitUntil`: the death signal is
            // immediate; anything slower is some other, accidental, mechanism.
            let deadline = monotonicNanoseconds() + 1_000_000_000
            while !pids.allSatisfy({ liveness(of: $0) != .running }) && monotonicNanoseconds() < deadline { usleep(5_000) }
            let survivors = pids.filter { liveness(of: $0) == .running }
            #expect(survivors.isEmpty, "still alive 1 s after their application was killed: \(survivors.map { $0 == server ? "fork server \($0)" : "worker \($0)" })")
        }

        @Test func ctrlCInTheParentEndsEveryWorkerOnce() throws {
            // SIGINT's default action ends the application; nothing needs a second Ctrl-C.
            let pids = try poolOrphanedBy(SIGINT)
            #expect(waitUntil { pids.allSatisfy { liveness(of: $0) != .running } })
        }

        @Test func workersAndForkServerAreNotTheCallersProcessGroup() throws {
            let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in n }
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            #expect(getpgid(server) == server)
            #expect(pool.workerProcessIDs.allSatisfy { getpgid($0) == server })
            #expect(getpgid(server) != getpgrp())
        }

        /// In a child process of its own (an exit test) where SIGPIPE has its default action:
        /// this test process ignores it, which would hide a send without MSG_NOSIGNAL. A
        /// SIGPIPE kills the child, and the test fails.
        @Test func writingToAWorkerThatDiedNeverRaisesSIGPIPE() async {
            await #expect(processExitsWith: .success) {
                signal(SIGPIPE, SIG_DFL)
                try writeToAWorkerThatDied()
            }
        }

        // MARK: Bad input, both directions

        @Test func inputThatFailsToEncodeFailsAtSubmitAndQueuesNothing() throws {
            let pool = try ProcessPool(workers: 1) { (value: Unencodable) -> Int in value.number }
            defer { pool.shutdown() }
            let error = expectForkPoolError { _ = try pool.submit(Unencodable(number: -1)) }
            #expect(error?.code == .encodingFailed)
            #expect(error?.message.contains("negative numbers do not travel") == true)
            #expect(expectForkPoolError { _ = try pool.map([Unencodable(number: 1), Unencodable(number: -1)]) }?.code == .encodingFailed)
            #expect(try pool.map([Unencodable(number: 3)]) == [3])
        }

        @Test func outputThatFailsToDecodeInTheParentFailsItsTaskOnly() throws {
            let pool = try ProcessPool(workers: 1) { (n: Int) -> ParentRejects in ParentRejects(number: n) }
            defer { pool.shutdown() }
            let pid = pool.workerProcessIDs[0]
            let error = expectForkPoolError { _ = try pool.submit(1).get() }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message.contains("the parent refuses") == true)
            #expect(pool.workerProcessIDs == [pid])
        }

        @Test func workerReplyTruncatedByItsDeathFailsTheTask() throws {
            var header = [UInt8](repeating: 0, count: FrameHeader.size)
            FrameHeader(kind: .result, length: 100, taskID: 1).write(into: &header)
            let pool = try ProcessPool(workers: 1, configuration: quiet) { (bytes: [UInt8]) -> Int in
                _ = (bytes + [1, 2, 3]).withUnsafeBytes { write(WorkerLoop.socketInThisWorker, $0.baseAddress, $0.count) }
                exitLikeUserCode(9)
            }
            defer { pool.shutdown() }
            let error = expectForkPoolError { _ = try pool.submit(header).get() }
            #expect(error?.code == .workerDied)
            #expect(error?.exitStatus == 9)
        }

        @Test(arguments: [
            ("wrong version", [9, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0] as [UInt8], WorkerLoop.protocolErrorStatus),
            ("unknown kind", [1, 99, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0] as [UInt8], WorkerLoop.protocolErrorStatus),
            ("over the limit", [1, 1, 0, 0, 0, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0] as [UInt8], WorkerLoop.protocolErrorStatus),
            ("truncated", [1, 1, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3] as [UInt8], 0),
        ])
        func workerGivenABadFrameExitsCleanly(name: String, frame: [UInt8], status: Int32) throws {
            let worker = try RawWorker()
            worker.send(frame)
            worker.closeSending()
            #expect(worker.exitStatus() == status, "\(name)")
        }

        @Test func workerGivenAnUndecodableInputRepliesWithAnErrorAndServesOn() throws {
            let worker = try RawWorker()
            var bad = FrameHeader.emptyFrame()
            bad.append(contentsOf: [1, 2, 3])  // not a valid Int payload
            FrameHeader(kind: .task, length: 3, taskID: 5).write(into: &bad)
            worker.send(bad)
            let (badHeader, badPayload) = try worker.receive()
            #expect(badHeader.kind == .failure && badHeader.taskID == 5)
            #expect(badPayload.first == FailureReason.inputDecodingFailed.rawValue)
            var good = FrameHeader.emptyFrame()
            try PayloadCodec<Int>().encode(21, into: &good)
            FrameHeader(kind: .task, length: good.count - FrameHeader.size, taskID: 6).write(into: &good)
            worker.send(good)
            let (goodHeader, goodPayload) = try worker.receive()
            #expect(goodHeader.kind == .result && goodHeader.taskID == 6)
            #expect(try goodPayload.withUnsafeBytes { try PayloadCodec<Int>().decode(from: $0) } == 42)
            worker.closeSending()
            #expect(worker.exitStatus() == 0)
        }
    }
}

struct Unencodable: Codable, Sendable {
    var number: Int
    func encode(to encoder: any Encoder) throws {
        if number < 0 { throw TestFailure(description: "negative numbers do not travel") }
        var container = encoder.singleValueContainer()
        try container.encode(number)
    }
    init(number: Int) { self.number = number }
    init(from decoder: any Decoder) throws { number = try decoder.singleValueContainer().decode(Int.self) }
}

/// Decodes in the worker, but not in the parent.
struct ParentRejects: Codable, Sendable {
    var number: Int
    init(number: Int) { self.number = number }
    init(from decoder: any Decoder) throws {
        if WorkerLoop.socketInThisWorker < 0 { throw TestFailure(description: "the parent refuses") }
        number = try decoder.singleValueContainer().decode(Int.self)
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(number)
    }
}

/// A worker process (Int → Int doubling) driven by hand over its socket, without a pool.
final class RawWorker {
    let socket: Int32
    let pid: pid_t
    private var reaped = false

    init() throws {
        var fds: [Int32] = [0, 0]
        precondition(forkpool_socketpair(&fds) == 0)
        let closing = [fds[0]]
        let pid = closing.withUnsafeBufferPointer { forkpool_fork_worker($0.baseAddress, 1, 0) }
        if pid == 0 {
            let codec = PayloadCodec<Int>()
            WorkerLoop.run(socket: fds[1], maximumFrameBytes: 1 << 20, initializer: nil) { _, payload, _, reply, _ in
                guard let n = try? codec.decode(from: payload) else {
                    WorkerLoop.appendFailure(.inputDecodingFailed, "bad input", to: &reply)
                    return .failure
                }
                try? codec.encode(n * 2, into: &reply)
                return .result
            }
        }
        close(fds[1])
        socket = fds[0]
        self.pid = pid
        let (header, _) = try receive()
        precondition(header.kind == .ready)
    }

    deinit {
        close(socket)
        if !reaped {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = forkpool_waitpid(pid, &status, 0)
        }
    }

    func send(_ bytes: [UInt8]) { _ = try? sendAll(socket, bytes) }
    func closeSending() { shutdown(socket, Int32(SHUT_WR)) }

    func receive() throws -> (FrameHeader, [UInt8]) {
        var reader = FrameReader(maximumPayloadBytes: 1 << 20)
        while true {
            if let frame = try reader.nextFrame({ header, payload in (header, Array(payload)) }) { return frame }
            guard try reader.fill(from: socket) == .received else { throw TestFailure(description: "worker closed") }
        }
    }

    /// The worker's exit status (or 128 + signal).
    func exitStatus() -> Int32 {
        var status: Int32 = 0
        _ = forkpool_waitpid(pid, &status, 0)
        reaped = true
        return forkpool_wifexited(status) != 0 ? forkpool_wexitstatus(status) : 128 + forkpool_wtermsig(status)
    }
}

/// A stand-in application: a forked child of this test process that runs `body` with the write
/// end of a pipe (to report the pids the test needs, 4 bytes each, atomically) and never
/// returns; killed and reaped when the test lets go of it, whatever happened.
final class StandInApplication {
    let pid: pid_t
    private let reports: Int32
    private var reaped = false

    init(_ body: (_ report: Int32) -> Never) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestFailure(description: "pipe failed") }
        let child = forkpool_fork_worker(nil, 0, 0)
        if child == 0 {
            close(fds[0])
            body(fds[1])
        }
        close(fds[1])
        pid = child
        reports = fds[0]
    }

    deinit {
        if !reaped {
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = forkpool_waitpid(pid, &status, 0)
        }
        close(reports)
    }

    /// Up to `count` pids it reported (fewer if it stays silent for 30 s).
    func reportedPIDs(count: Int) -> [pid_t] {
        readPIDs(from: reports, count: count, timeoutMilliseconds: 30_000)
    }

    /// Sends `signal` and reaps it: its wait status, nil if it could not be signalled.
    func kill(with signal: Int32) -> Int32? {
        guard Glibc.kill(pid, signal) == 0 else { return nil }
        var status: Int32 = 0
        guard forkpool_waitpid(pid, &status, 0) == pid else { return nil }
        reaped = true
        return status
    }
}

/// Reads up to `count` pids from `fd`, giving up once `timeoutMilliseconds` pass without one.
func readPIDs(from fd: Int32, count: Int, timeoutMilliseconds: Int32) -> [pid_t] {
    var pids: [pid_t] = []
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while pids.count < count {
        entry.revents = 0
        let ready = poll(&entry, 1, timeoutMilliseconds)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { break }
        var pid: pid_t = 0
        guard read(fd, &pid, MemoryLayout<pid_t>.size) == MemoryLayout<pid_t>.size else { break }
        pids.append(pid)
    }
    return pids
}

/// Writes to workers that died: a task sent by lane to an idle worker already dead (its
/// socket closed, its death not yet reported: the fork server is stopped), which runs on the
/// replacement; and a worker killed while it runs a task, a frame too large for any socket
/// buffer submitted behind it.
func writeToAWorkerThatDied() throws {
    let pids = PIDPipe()
    let pool = try ProcessPool(workers: 1, configuration: .with { $0.workerCrashBacktraces = false }) { (bytes: [UInt8]) -> Int in
        if bytes.count == 1 {
            var pid = getpid()
            _ = write(Int32(bytes[0]), &pid, MemoryLayout<pid_t>.size)
            while true { pause() }
        }
        return bytes.count
    }
    defer { pool.shutdown() }

    let server = try #require(pool.forkServerProcessID)
    let idle = pool.workerProcessIDs[0]
    #expect(waitUntil { pool.openLaneCount == 1 })
    #expect(kill(server, SIGSTOP) == 0)
    #expect(kill(idle, SIGKILL) == 0)
    #expect(waitUntil { liveness(of: idle) == .zombie })  // its socket is closed
    let sentByLane = try pool.submit([1, 2, 3])  // into the dead worker's socket: EPIPE
    #expect(pool.tasksSentByLane == 1)
    #expect(kill(server, SIGCONT) == 0)
    #expect(try sentByLane.get() == 3)

    let first = try pool.submit([UInt8(pids.writeEnd)])
    let pid = pids.nextPID()
    #expect(kill(pid, SIGKILL) == 0)
    let big = try pool.submit([UInt8](repeating: 7, count: 32 << 20))
    #expect(expectForkPoolError { _ = try first.get() }?.signal == SIGKILL)
    #expect(try big.get() == 32 << 20)
}
