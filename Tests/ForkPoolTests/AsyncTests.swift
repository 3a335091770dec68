// The async API, provoked for real: `await map` on both pools (results, errors, and that it
// suspends rather than blocks), cancellation of the calling Task (queued work dropped, running
// work finished or killed as configured), `await future.value` under cancellation, and
// `results(for:)` — completion order, failed elements, a slow consumer, an endless input,
// a cancelled consumer. Gates (pipes the tasks wait on) make every order deterministic.
import ForkPoolTestSupport
import Glibc
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct AsyncTests {
        /// The sequence `results(for:)` returns holds its pool: a pool made, asked for results
        /// and dropped at once still runs every input while the caller iterates.
        func resultsOfAPoolNobodyElseHolds(threads: Bool) throws
            -> any AsyncSequence<(index: Int, result: Result<Int, ForkPoolError>), Never> {
            let pool: any WorkerPool<Int, Int> = threads
                ? try ThreadPool(workers: 2) { (n: Int) in n * 2 } : try ProcessPool(workers: 2) { (n: Int) in n * 2 }
            return try pool.results(for: Array(0..<20))
        }

        @Test(arguments: [true, false])
        func aResultsSequenceKeepsItsPoolAlive(threads: Bool) async throws {
            var doubled: [Int: Int] = [:]
            for await (index, result) in try resultsOfAPoolNobodyElseHolds(threads: threads) {
                doubled[index] = try result.get()
            }
            #expect(doubled == Dictionary(uniqueKeysWithValues: (0..<20).map { ($0, $0 * 2) }))
        }

        @Test func aNegativeWaitReturnsAtOnce() throws {
            let gate = Gate()
            let pool = try ThreadPool(workers: 1, work: reportThenWaitAtGate(reportFD: nil, gateFD: gate.readEnd))
            defer { pool.shutdown() }
            let held = try pool.submit(7)
            for wait in [Duration.milliseconds(-1), .milliseconds(-500), .seconds(-2), .zero] {
                #expect(try held.get(timeout: wait) == nil, "a wait of \(wait) on a task that cannot finish")
            }
            gate.open(1)
            #expect(try held.get(timeout: .seconds(30)) == 7)
            #expect(try held.get(timeout: .milliseconds(-1)) == 7)  // done: the value, whatever the wait
        }

        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        @Test func asyncMapMatchesTheBlockingMapOnBothPools() async throws {
            let inputs = Array(0...24)
            let processes = try ProcessPool(workers: 2) { (n: Int) in fib(n) }
            defer { processes.shutdown() }
            let threads = try ThreadPool(workers: 2) { (n: Int) in fib(n) }
            defer { threads.shutdown() }
            #expect(try await processes.map(inputs) == inputs.map(fib))
            #expect(try await processes.map(inputs, chunkSize: 4) == inputs.map(fib))
            #expect(try await processes.map([Int]()) == [])
            #expect(try await threads.map(inputs) == inputs.map(fib))
            #expect(try await threads.map(inputs, chunkSize: 4) == inputs.map(fib))
            #expect(try await threads.map([Int]()) == [])
            let badChunk = await expectAsyncForkPoolError { _ = try await threads.map(inputs, chunkSize: 0) }
            #expect(badChunk?.code == .invalidArgument)

            let failing = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { failing.shutdown() }
            let error = await expectAsyncForkPoolError {
                _ = try await failing.map([.square(2), .fail("not this one"), .square(3)], chunkSize: 1)
            }
            #expect(error?.code == .workFailed)
            #expect(error?.description.contains("not this one") == true)
        }

        @Test func asyncMapsSuspendInsteadOfBlockingCooperativeThreads() async throws {
            // Six maps, each held at a gate inside a worker: more than the cooperative pool has
            // threads. Were an async map to block its thread, not all six could even start, and
            // the detached task below could never run: this test would hang.
            let gate = Gate()
            let report = PIDPipe()
            let (reportFD, gateFD) = (report.writeEnd, gate.readEnd)
            let pool = try ProcessPool(workers: 6, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let maps = (0..<6).map { n in
                Task { try await pool.map([Command.passGate(reportFD: reportFD, gateFD: gateFD, value: n)]) }
            }
            // Read on a thread of its own: this very test must not block the cooperative pool.
            let running = try await offCooperativePool { Set((0..<6).map { _ in report.nextPID() }) }
            #expect(running.count == 6)
            #expect(await Task.detached { 42 }.value == 42)
            gate.open(6)
            for (n, map) in maps.enumerated() {
                #expect(try await map.value == [n])
            }
        }

        @Test func cancellingTheCallingTaskDropsQueuedChunksAndLetsTheRunningOneFinish() async throws {
            let gate = Gate()
            let report = PIDPipe()
            let (reportFD, gateFD) = (report.writeEnd, gate.readEnd)
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let inputs = (0..<20).map { Command.passGate(reportFD: reportFD, gateFD: gateFD, value: $0) }
            let map = Task { try await pool.map(inputs, chunkSize: 1) }
            let pid = report.nextPID()  // the first chunk runs, held at the gate; three more are queued
            map.cancel()
            gate.open(1)
            let error = await expectAsyncForkPoolError { _ = try await map.value }
            #expect(error?.code == .cancelled)
            // The worker was not killed, and no queued chunk ran after the cancellation.
            #expect(try await pool.submit(.square(3)).value == 9)
            #expect(pool.workerProcessIDs == [pid])
            #expect(report.isEmpty)
        }

        @Test func cancellingTheCallingTaskKillsRunningChunksWhenConfigured() async throws {
            var configuration = quiet
            configuration.cancellationKillsRunningTasks = true
            let report = PIDPipe()
            let reportFD = report.writeEnd
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            // Each task would sleep forever: only a kill ends this map.
            let map = Task { try await pool.map(Array(repeating: Command.reportPID(fd: reportFD, sleepMilliseconds: -1), count: 3), chunkSize: 1) }
            let pid = report.nextPID()
            map.cancel()
            let error = await expectAsyncForkPoolError { _ = try await map.value }
            #expect(error?.code == .cancelled)
            #expect(try await pool.submit(.square(4)).value == 16)  // served by the replacement
            #expect(!pool.workerProcessIDs.contains(pid))
            #expect(report.isEmpty)
        }

        @Test func cancellingTheCallingTaskOfAThreadPoolMapDropsQueuedChunks() async throws {
            let gate = Gate()
            let report = PIDPipe()
            let (reportFD, gateFD) = (report.writeEnd, gate.readEnd)
            let pool = try ThreadPool(workers: 1, work: obey)
            defer { pool.shutdown() }
            let inputs = (0..<10).map { Command.passGate(reportFD: reportFD, gateFD: gateFD, value: $0) }
            let map = Task { try await pool.map(inputs, chunkSize: 1) }
            _ = report.nextPID()
            map.cancel()
            gate.open(1)
            let error = await expectAsyncForkPoolError { _ = try await map.value }
            #expect(error?.code == .cancelled)
            #expect(try await pool.submit(.square(5)).value == 25)
            #expect(report.isEmpty)
        }

        @Test func cancellingATaskAwaitingAFutureCancelsTheTaskItAwaits() async throws {
            let gate = Gate()
            let report = PIDPipe()
            let (reportFD, gateFD) = (report.writeEnd, gate.readEnd)
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let running = try pool.submit(.passGate(reportFD: reportFD, gateFD: gateFD, value: 7))
            _ = report.nextPID()
            let queued = try pool.submit(.square(5))
            let waiter = Task { try await queued.value }
            waiter.cancel()
            let error = await expectAsyncForkPoolError { _ = try await waiter.value }
            #expect(error?.code == .cancelled)
            #expect(queued.isCancelled)
            // A running task is not stopped by default: its awaiting task gets the result.
            let finisher = Task { try await running.value }
            finisher.cancel()
            gate.open(1)
            #expect(try await finisher.value == 7)

            var configuration = quiet
            configuration.cancellationKillsRunningTasks = true
            let killing = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { killing.shutdown() }
            let endless = try killing.submit(.reportPID(fd: reportFD, sleepMilliseconds: -1))
            let pid = report.nextPID()
            let endlessWaiter = Task { try await endless.value }
            endlessWaiter.cancel()
            #expect(await expectAsyncForkPoolError { _ = try await endlessWaiter.value }?.code == .cancelled)
            #expect(try await killing.submit(.square(6)).value == 36)
            #expect(!killing.workerProcessIDs.contains(pid))
        }

        @Test func resultsArriveInCompletionOrder() async throws {
            let gate = Gate()
            let report = PIDPipe()
            let (reportFD, gateFD) = (report.writeEnd, gate.readEnd)
            let pool = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            // Input 0 waits at the gate in one worker while the other worker does 1…8.
            let inputs = [Command.passGate(reportFD: reportFD, gateFD: gateFD, value: -1)] + (1...8).map(Command.square)
            var iterator = try pool.results(for: inputs).makeAsyncIterator()
            var early: [Int] = []
            for _ in 1...8 {
                let (index, result) = try #require(await iterator.next())
                #expect(try result.get() == index * index)
                early.append(index)
            }
            #expect(Set(early) == Set(1...8))
            gate.open(1)
            let (last, result) = try #require(await iterator.next())
            #expect(last == 0)
            #expect(try result.get() == -1)
            #expect(try await iterator.next() == nil)
        }

        @Test func aFailedTaskIsAnElementAndTheStreamGoesOn() async throws {
            let pool = try ThreadPool(workers: 2, work: obey)
            defer { pool.shutdown() }
            var outcomes: [Int: Result<Int, ForkPoolError>] = [:]
            for await (index, result) in try pool.results(for: [.square(2), .fail("bad input"), .square(3)]) {
                outcomes[index] = result
            }
            #expect(outcomes.count == 3)
            #expect(try outcomes[0]?.get() == 4)
            #expect(try outcomes[2]?.get() == 9)
            guard case .failure(let error)? = outcomes[1] else {
                Issue.record("input 1 should have failed")
                return
            }
            #expect(error.code == .workFailed)
            #expect(error.description.contains("bad input"))

            pool.shutdown()
            var afterShutdown: [(Int, Result<Int, ForkPoolError>)] = []
            for await element in try pool.results(for: [Command.square(1), .square(2)]) { afterShutdown.append(element) }
            #expect(afterShutdown.count == 1)  // the first submit fails; nothing more is read
            #expect(afterShutdown.first?.0 == 0)
            if case .failure(let error)? = afterShutdown.first?.1 { #expect(error.code == .poolShutDown) } else { Issue.record("expected poolShutDown") }
        }

        @Test func aSlowConsumerHoldsBackTheSubmittingOfAnEndlessInput() async throws {
            let pool = try ProcessPool(workers: 2) { (n: Int) in n * 2 }
            defer { pool.shutdown() }
            let pulled = Atomic<Int>(0)
            let endless = (0...).lazy.map { n -> Int in
                pulled.add(1, ordering: .relaxed)
                return n
            }
            let firstTask = pool.tasksCreated
            var taken = 0
            for await (index, result) in try pool.results(for: endless, maximumInFlight: 3) {
                #expect(try result.get() == index * 2)
                taken += 1
                // A slow consumer: the pool has time to run ahead, if it could.
                usleep(2000)
                #expect(pulled.load(ordering: .relaxed) <= taken + 3)
                #expect(pool.tasksCreated - firstTask <= UInt64(taken + 3))
                if taken == 40 { break }
            }
            #expect(taken == 40)
            #expect(pulled.load(ordering: .relaxed) <= 43)
            #expect(try await pool.map([5]) == [10])
        }

        @Test func cancellingTheConsumingTaskEndsTheStreamAndCancelsWhatIsOwed() async throws {
            let gate = Gate()
            let report = PIDPipe()
            let (reportFD, gateFD) = (report.writeEnd, gate.readEnd)
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let consumer = Task {
                var taken = 0
                for await _ in try pool.results(for: repeatElement(Command.passGate(reportFD: reportFD, gateFD: gateFD, value: 1), count: 1000)) {
                    taken += 1
                }
                return taken
            }
            _ = report.nextPID()  // the first task is held at the gate, one more is queued
            consumer.cancel()
            #expect(try await consumer.value == 0)  // ended although a task is still running
            gate.open(1)
            #expect(try await pool.submit(.square(2)).value == 4)
            #expect(report.isEmpty)  // the queued task never ran
        }
    }
}
