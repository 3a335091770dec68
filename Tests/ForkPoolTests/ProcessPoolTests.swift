// ProcessPool behaviour, provoked for real: results, errors, dying workers, concurrency,
// shutdown hygiene (no child left, no descriptor leaked) and over-limit frames.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

extension ForkPoolTests {
    @Suite struct ProcessPoolTests {
        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        @Test func mapReturnsOrderedResultsEqualToSequential() throws {
            let inputs = Array(0...24)
            let pool = try ProcessPool(workers: 3) { (n: Int) -> Int in fib(n) }
            defer { pool.shutdown() }
            #expect(try pool.map(inputs) == inputs.map(fib))
            #expect(try pool.map([Int]()) == [])
        }

        @Test func workRunsInWorkerProcessesNotTheCaller() throws {
            let pool = try ProcessPool(workers: 2) { (_: Int) -> Int32 in getpid() }
            defer { pool.shutdown() }
            let pids = Set(try pool.map(Array(0..<50)))
            #expect(!pids.contains(getpid()))
            #expect(pids.isSubset(of: Set(pool.workerProcessIDs)))
        }

        @Test func submitGetAndAwaitValue() async throws {
            let pool = try ProcessPool(workers: 2) { (text: String) -> [String] in text.split(separator: " ").map(String.init) }
            defer { pool.shutdown() }
            let future = try pool.submit("how now brown cow")
            #expect(try future.get() == ["how", "now", "brown", "cow"])
            let later = try pool.submit("tread softly")
            #expect(try await later.value == ["tread", "softly"])
            #expect(later.isDone)
        }

        @Test func thrownErrorArrivesWithItsDescription() throws {
            let pool = try ProcessPool(workers: 2, work: obey)
            defer { pool.shutdown() }
            let future = try pool.submit(.fail("the cow is not brown"))
            let error = expectForkPoolError { _ = try future.get() }
            #expect(error?.code == .workFailed)
            #expect(error?.taskID == future.taskID)
            #expect(error?.description.contains("the cow is not brown") == true)
            // map throws the first failure in input order.
            let mapError = expectForkPoolError { _ = try pool.map([.square(2), .fail("second"), .fail("third")]) }
            #expect(mapError?.message.contains("second") == true)
            #expect(try pool.map([.square(3)]) == [9])
        }

        @Test(arguments: [SIGKILL, SIGTERM, SIGSEGV])
        func workerKilledBySignalMidTaskFailsOnlyThatTask(signal: Int32) throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let victim = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
            let pid = pids.nextPID()
            let others = try (1...20).map { try pool.submit(.square($0)) }
            #expect(kill(pid, signal) == 0)
            let error = expectForkPoolError { _ = try victim.get() }
            #expect(error?.code == .workerDied)
            #expect(error?.processID == pid)
            #expect(error?.signal == signal)
            #expect(error?.taskID == victim.taskID)
            #expect(error?.description.contains("\(pid)") == true)
            #expect(error?.description.contains(ForkPoolError.signalName(signal)) == true)
            #expect(try others.map { try $0.get() } == (1...20).map { $0 * $0 })
            try expectPoolServesWithFullStrength(pool)
            #expect(!pool.workerProcessIDs.contains(pid))
        }

        @Test(.disabled(if: sanitizer != nil,
                        "Swift's crash backtracer inside a sanitized, forked worker trips the sanitizer's own checks"))
        func segfaultInWorkFailsTheTaskWithSIGSEGV() throws {
            // Default configuration: Swift's backtracer reports the crash, then the worker dies.
            let pool = try ProcessPool(workers: 2, work: obey)
            defer { pool.shutdown() }
            let crash = try pool.submit(.segfault)
            let fine = try pool.submit(.square(7))
            let error = expectForkPoolError { _ = try crash.get() }
            #expect(error?.code == .workerDied)
            #expect(error?.signal == SIGSEGV)
            #expect(try fine.get() == 49)
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func exitInWorkFailsTheTaskWithItsStatus() throws {
            let pool = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let dying = try pool.submit(.exit(3))
            let error = expectForkPoolError { _ = try dying.get() }
            #expect(error?.code == .workerDied)
            #expect(error?.exitStatus == 3)
            #expect(error?.signal == nil)
            #expect(error?.description.contains("exited with status 3") == true)
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func idleWorkerKilledFromOutsideIsReplaced() throws {
            let pool = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let before = pool.workerProcessIDs
            #expect(kill(before[0], SIGKILL) == 0)
            #expect(waitUntil { !pool.workerProcessIDs.contains(before[0]) && pool.workerProcessIDs.count == 2 })
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func eightThreadsSubmittingConcurrentlyGetTheirOwnResults() throws {
            let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in n * 3 }
            defer { pool.shutdown() }
            #expect(try mismatchesWithConcurrentSubmitters(pool, tasksPerThread: 200) == 0)
        }

        @Test func shutdownLeavesNoChildAndNoDescriptor() throws {
            let fdsBefore = openFileDescriptorCount()
            let registeredBefore = PoolDescriptors.count
            #expect(childProcessIDs().isEmpty)
            var everyWorker: Set<pid_t> = []
            for round in 0..<50 {
                let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in n + round }
                everyWorker.formUnion(pool.workerProcessIDs)
                #expect(try pool.map([1, 2, 3]) == [1 + round, 2 + round, 3 + round])
                pool.shutdown()
                pool.shutdown()  // idempotent
            }
            #expect(everyWorker.count == 100)
            #expect(childProcessIDs().isEmpty)
            // Reaped, not zombies: a zombie still has a /proc entry.
            #expect(everyWorker.allSatisfy { access("/proc/\($0)", F_OK) != 0 })
            #expect(!threadNames().contains("forkpool-disp"))
            #expect(openFileDescriptorCount() == fdsBefore)
            #expect(PoolDescriptors.count == registeredBefore)
        }

        @Test func droppingThePoolShutsItDown() throws {
            var pids: [pid_t] = []
            do {
                let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in n }
                pids = pool.workerProcessIDs
                #expect(try pool.map([1]) == [1])
            }
            #expect(pids.count == 2)
            #expect(childProcessIDs().isEmpty)
        }

        @Test func submitAfterShutdownThrows() throws {
            let pool = try ProcessPool(workers: 1) { (n: Int) -> Int in n }
            pool.shutdown()
            #expect(expectForkPoolError { _ = try pool.submit(1) }?.code == .poolShutDown)
            #expect(expectForkPoolError { _ = try pool.map([1, 2]) }?.code == .poolShutDown)
        }

        @Test func shutdownCancellingPendingFailsQueuedTasksAndFinishesRunningOnes() throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, work: obey)
            let running = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: 300))
            let pid = pids.nextPID()
            let queued = try (1...5).map { try pool.submit(.square($0)) }
            pool.shutdown(cancelPending: true)
            #expect(try running.get() == Int(pid))
            for future in queued {
                #expect(expectForkPoolError { _ = try future.get() }?.code == .cancelled)
                #expect(future.isCancelled)
            }
            #expect(childProcessIDs().isEmpty)
        }

        @Test func shutdownWithoutCancellingRunsQueuedTasks() throws {
            let pool = try ProcessPool(workers: 1) { (n: Int) -> Int in usleep(2000); return n * 2 }
            let futures = try (1...10).map { try pool.submit($0) }
            pool.shutdown()
            #expect(try futures.map { try $0.get() } == (1...10).map { $0 * 2 })
        }

        @Test func cancellingAQueuedTaskDropsItAndARunningOneKillsItsWorker() throws {
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, work: obey)
            defer { pool.shutdown() }
            let running = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
            let pid = pids.nextPID()
            let queued = try pool.submit(.square(4))
            #expect(queued.cancel())
            #expect(expectForkPoolError { _ = try queued.get() }?.code == .cancelled)
            #expect(running.cancel())
            #expect(!running.cancel())  // already done
            let error = expectForkPoolError { _ = try running.get() }
            #expect(error?.code == .cancelled)
            #expect(error?.message.contains("while running") == true)
            #expect(waitUntil { liveness(of: pid) == .gone })  // killed and reaped
            try expectPoolServesWithFullStrength(pool)
            #expect(!pool.workerProcessIDs.contains(pid))
        }

        @Test func inputOverTheFrameLimitFailsAtSubmit() throws {
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.maximumFrameBytes = 1024 }) { (text: String) -> Int in text.count }
            defer { pool.shutdown() }
            let error = expectForkPoolError { _ = try pool.submit(String(repeating: "x", count: 5000)) }
            #expect(error?.code == .frameTooLarge)
            #expect(try pool.submit("small").get() == 5)
        }

        @Test func outputOverTheFrameLimitFailsItsTaskOnly() throws {
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.maximumFrameBytes = 1024 }) { (n: Int) -> String in
                String(repeating: "y", count: n)
            }
            defer { pool.shutdown() }
            let pid = pool.workerProcessIDs[0]
            let error = expectForkPoolError { _ = try pool.submit(5000).get() }
            #expect(error?.code == .frameTooLarge)
            #expect(try pool.submit(3).get() == "yyy")
            #expect(pool.workerProcessIDs == [pid])
        }

        @Test func largeByteArraysCrossIntactBothWaysWithoutACopyIntoTheFrame() throws {
            // 5 MiB each way takes the borrowed-bytes path (writev of header + the array itself)
            // and the huge-page decode; the worker reverses, so a misplaced byte would show.
            let pool = try ProcessPool(workers: 1) { (bytes: [UInt8]) -> [UInt8] in bytes.reversed() }
            defer { pool.shutdown() }
            let input = (0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 9) }
            #expect(try pool.submit(input).get() == input.reversed())
            // Just under and just over the borrowing threshold, and a small one between them.
            for count in [65_535, 65_536, 3, 200_001] {
                let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 * 7) }
                #expect(try pool.submit(bytes).get() == bytes.reversed())
            }
        }

        @Test func largeByteArraysObeyTheFrameLimitBothWays() throws {
            let limit = 256 << 10
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.maximumFrameBytes = limit }) { (count: Int) -> [UInt8] in
                [UInt8](repeating: 9, count: count)
            }
            defer { pool.shutdown() }
            let pid = pool.workerProcessIDs[0]
            #expect(expectForkPoolError { _ = try pool.submit(limit + 1).get() }?.code == .frameTooLarge)
            #expect(try pool.submit(limit - 16).get().count == limit - 16)
            #expect(pool.workerProcessIDs == [pid])

            let echo = try ProcessPool(workers: 1, configuration: .with { $0.maximumFrameBytes = limit }) { (bytes: [UInt8]) in bytes.count }
            defer { echo.shutdown() }
            let error = expectForkPoolError { _ = try echo.submit([UInt8](repeating: 1, count: limit)) }
            #expect(error?.code == .frameTooLarge)
            #expect(try echo.submit([UInt8](repeating: 1, count: limit - 16)).get() == limit - 16)
        }

        @Test func workerFrameDeclaringOverLimitLengthIsRejectedAndWorkerReplaced() throws {
            var header = [UInt8](repeating: 0, count: FrameHeader.size)
            // version 1, kind result, length 1 GiB, task id 1.
            FrameHeader(kind: .result, length: 1 << 30, taskID: 1).write(into: &header)
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.maximumFrameBytes = 4096 }, work: obey)
            defer { pool.shutdown() }
            let pid = pool.workerProcessIDs[0]
            let future = try pool.submit(.forgeReply(header))
            let error = expectForkPoolError { _ = try future.get() }
            #expect(error?.code == .frameTooLarge)
            #expect(error?.processID == pid)
            #expect(error?.taskID == future.taskID)
            #expect(liveness(of: pid) == .gone || !pool.workerProcessIDs.contains(pid))
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func workerFrameWithWrongVersionOrKindIsRejected() throws {
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            for forged: [UInt8] in [[9, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                                    [1, 77, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]] {
                let future = try pool.submit(.forgeReply(forged))
                #expect(expectForkPoolError { _ = try future.get() }?.code == .malformedFrame)
            }
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func zeroWorkersIsAnInvalidArgument() {
            #expect(expectForkPoolError { _ = try ProcessPool(workers: 0) { (n: Int) -> Int in n } }?.code == .invalidArgument)
        }

        @Test func shutdownByDefaultRunsTheQueuedTasksAndLeavesNoProcess() throws {
            let pool = try ProcessPool(workers: 2, work: fib)
            let futures = try (20...27).map { try pool.submit($0) }
            pool.shutdown()
            #expect(try futures.map { try $0.get() } == (20...27).map(fib))
            #expect(childProcessIDs().isEmpty)
            #expect(expectForkPoolError { _ = try pool.submit(1) }?.code == .poolShutDown)
        }
    }
}

/// After a failure: a map still succeeds, and `workerCount` live workers serve it.
func expectPoolServesWithFullStrength(_ pool: ProcessPool<Command, Int>,
                                      sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inputs = (1...12).map(Command.square)
    #expect(try pool.map(inputs) == (1...12).map { $0 * $0 }, sourceLocation: sourceLocation)
    #expect(waitUntil { pool.workerProcessIDs.count == pool.workerCount }, sourceLocation: sourceLocation)
    #expect(pool.workerProcessIDs.allSatisfy { liveness(of: $0) == .running }, sourceLocation: sourceLocation)
}



/// Eight threads each submit their own inputs to `pool` (which must triple them) and map them;
/// returns how many results went to the wrong caller or were wrong (1,000 per thread that threw).
func mismatchesWithConcurrentSubmitters(_ pool: any WorkerPool<Int, Int>, tasksPerThread: Int) throws -> Int {
    let mismatches = ConditionLockedCounter()
    let threads = try (0..<8).map { thread in
        try PosixThread.start(name: "submitter\(thread)") {
            do {
                let inputs = (0..<tasksPerThread).map { thread * 1000 + $0 }
                let futures = try inputs.map { try pool.submit($0) }
                for (input, future) in zip(inputs, futures) where try future.get() != input * 3 {
                    mismatches.add(1)
                }
                if try pool.map(inputs) != inputs.map({ $0 * 3 }) { mismatches.add(1) }
            } catch {
                mismatches.add(1000)
            }
        }
    }
    threads.forEach { $0.join() }
    return mismatches.value
}
