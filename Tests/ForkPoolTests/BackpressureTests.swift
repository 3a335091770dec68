// Backpressure, provoked for real on both pools: a queue bounded by `maximumQueuedTasks` —
// `submit` refused with `.overloaded` (nothing queued), a cancelled queued task freeing its
// place, `submitWhenReady` waiting for room first come first served, cancelled while it waits
// (nothing queued, nothing run) and refused by shutdown. Gates hold the one worker busy, so
// every queue length is exact; waits are bounded (a hang fails the test, it does not wedge it).
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct BackpressureTests {
        enum Kind: String, CaseIterable, CustomTestStringConvertible {
            case processes, threads
            var testDescription: String { rawValue }
        }

        /// A one-worker pool of `kind` whose queue holds at most `limit` tasks.
        func makePool(_ kind: Kind, limit: Int) throws -> any WorkerPool<Command, Int> {
            switch kind {
            case .processes:
                // One task at a time: a queued task leaves the queue only when it starts, never
                // sent ahead behind the running one (quick gated tasks count as moderate ones).
                try ProcessPool(workers: 1, configuration: .with {
                    $0.workerCrashBacktraces = false
                    $0.maximumQueuedTasks = limit
                    $0.tasksInFlightPerWorker = 1
                }, work: obey)
            case .threads:
                try ThreadPool(workers: 1, maximumQueuedTasks: limit, work: obey)
            }
        }

        func parked(_ pool: any WorkerPool<Command, Int>) -> Int {
            if let pool = pool as? ProcessPool<Command, Int> { return pool.parkedSubmissions }
            if let pool = pool as? ThreadPool<Command, Int> { return pool.parkedSubmissions }
            return -1
        }

        /// The pool's one worker held at `gate` by a running task (returns 1 once let through),
        /// and `limit` more gate tasks (values 2, 3, …) filling the queue.
        func fill(_ pool: any WorkerPool<Command, Int>, limit: Int, gate: Gate, reports: PIDPipe) throws -> [Future<Int>] {
            var futures = [try pool.submit(.passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 1))]
            _ = reports.nextPID()  // the first task runs: the worker is busy
            for value in 2...(limit + 1) {
                futures.append(try pool.submit(.passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: value)))
            }
            #expect(pool.stats.queuedTasks == limit)
            return futures
        }

        /// Awaits a caller that should be done; one still waiting (a bug) is cancelled first, so
        /// the test fails instead of hanging.
        func settle(_ caller: Task<Void, any Error>) async throws {
            caller.cancel()
            try await caller.value
        }

        @Test(arguments: Kind.allCases)
        func aFullQueueRefusesSubmitAtOnceAndQueuesNothing(kind: Kind) throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its workers inherit them
            let pool = try makePool(kind, limit: 2)
            defer { pool.shutdown() }
            let futures = try fill(pool, limit: 2, gate: gate, reports: reports)
            let refused = expectForkPoolError { _ = try pool.submit(.echo(99)) }
            #expect(refused?.code == .overloaded)
            #expect(refused?.message.contains("maximumQueuedTasks is 2") == true)
            #expect(pool.stats.queuedTasks == 2)
            gate.open(3)
            #expect(try futures.map { try $0.get() } == [1, 2, 3])
            #expect(try pool.submit(.echo(7)).get() == 7)  // room again
            #expect(pool.stats.tasksCompleted == 4)  // the refused task never ran
        }

        @Test(arguments: Kind.allCases)
        func aTaskCancelledWhileQueuedFreesItsPlace(kind: Kind) throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its workers inherit them
            let pool = try makePool(kind, limit: 2)
            defer { pool.shutdown() }
            let futures = try fill(pool, limit: 2, gate: gate, reports: reports)
            #expect(futures[1].cancel())
            let admitted = try pool.submit(.echo(5))  // takes the cancelled task's place
            #expect(expectForkPoolError { _ = try pool.submit(.echo(6)) }?.code == .overloaded)
            gate.open(2)
            #expect(try futures[0].get() == 1)
            #expect(try futures[2].get() == 3)
            #expect(try admitted.get() == 5)
            #expect(futures[1].isCancelled)
        }

        @Test(arguments: Kind.allCases)
        func submitWhenReadyWaitsForRoomFirstComeFirstServed(kind: Kind) async throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its workers inherit them
            let pool = try makePool(kind, limit: 2)
            defer { pool.shutdown() }
            let futures = try fill(pool, limit: 2, gate: gate, reports: reports)
            let first = LockedBox<Future<Int>>(), second = LockedBox<Future<Int>>()
            let firstCaller = Task {
                first.value = try await pool.submitWhenReady(.passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 10))
            }
            #expect(waitUntil { parked(pool) == 1 })
            let secondCaller = Task { second.value = try await pool.submitWhenReady(.echo(11)) }
            #expect(waitUntil { parked(pool) == 2 })
            #expect(first.value == nil && second.value == nil)  // both suspended: the queue is full

            gate.open(1)  // the running task ends, the first queued one starts: room for one
            #expect(try futures[0].get() == 1)
            _ = reports.nextPID()
            #expect(waitUntil { first.value != nil })
            #expect(parked(pool) == 1 && second.value == nil)  // the second still waits its turn

            gate.open(3)
            #expect(waitUntil { second.value != nil })
            try await settle(firstCaller)
            try await settle(secondCaller)
            #expect(try futures[1].get() == 2 && futures[2].get() == 3)
            #expect(try first.value?.get() == 10)
            #expect(try second.value?.get() == 11)
            #expect(parked(pool) == 0)
        }

        @Test(arguments: Kind.allCases)
        func aCancelledQueuedTaskAdmitsAWaitingCaller(kind: Kind) async throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its workers inherit them
            let pool = try makePool(kind, limit: 1)
            defer { pool.shutdown() }
            let futures = try fill(pool, limit: 1, gate: gate, reports: reports)
            let admitted = LockedBox<Future<Int>>()
            let caller = Task { admitted.value = try await pool.submitWhenReady(.echo(4)) }
            #expect(waitUntil { parked(pool) == 1 })
            #expect(futures[1].cancel())  // no task ends: only the cancellation makes room
            #expect(waitUntil { admitted.value != nil })
            try await settle(caller)
            gate.open(1)
            #expect(try futures[0].get() == 1)
            #expect(try admitted.value?.get() == 4)
        }

        @Test(arguments: Kind.allCases)
        func cancellingAWaitingCallerQueuesAndRunsNothing(kind: Kind) async throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its workers inherit them
            let pool = try makePool(kind, limit: 2)
            defer { pool.shutdown() }
            let futures = try fill(pool, limit: 2, gate: gate, reports: reports)
            let outcome = LockedBox<ForkPoolError.Code>()
            let caller = Task {
                do {
                    _ = try await pool.submitWhenReady(.echo(99))
                } catch let error as ForkPoolError {
                    outcome.value = error.code
                }
            }
            #expect(waitUntil { parked(pool) == 1 })
            caller.cancel()
            #expect(waitUntil { outcome.value != nil })
            #expect(outcome.value == .cancelled)
            #expect(parked(pool) == 0 && pool.stats.queuedTasks == 2)
            gate.open(3)
            #expect(try futures.map { try $0.get() } == [1, 2, 3])
            #expect(try pool.submit(.echo(8)).get() == 8)
            #expect(pool.stats.tasksCompleted == 4)  // 99 never ran

            // Already cancelled before it asks: refused at once even with room.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await pool.submitWhenReady(.echo(1))
            }
            _ = try? await early.value
            #expect(pool.stats.tasksCompleted == 4)
        }

        @Test(arguments: Kind.allCases)
        func shutdownRefusesEveryWaitingCaller(kind: Kind) async throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its workers inherit them
            let pool = try makePool(kind, limit: 1)
            let futures = try fill(pool, limit: 1, gate: gate, reports: reports)
            let outcomes = (0..<3).map { _ in LockedBox<ForkPoolError.Code>() }
            var callers: [Task<Void, any Error>] = []
            for (index, outcome) in outcomes.enumerated() {
                callers.append(Task {
                    do {
                        _ = try await pool.submitWhenReady(.echo(index))
                    } catch let error as ForkPoolError {
                        outcome.value = error.code
                    }
                })
            }
            #expect(waitUntil { parked(pool) == 3 })
            let stopper = try PosixThread.start(name: "test-shutdown") { pool.shutdown(cancelPending: true) }
            #expect(waitUntil { outcomes.allSatisfy { $0.value != nil } })  // refused while the worker is still busy
            #expect(outcomes.map(\.value) == [.poolShutDown, .poolShutDown, .poolShutDown])
            gate.open(1)
            stopper.join()
            for caller in callers { try await settle(caller) }
            #expect(try futures[0].get() == 1)
            #expect(futures[1].isCancelled)
            #expect(expectForkPoolError { _ = try pool.submit(.echo(1)) }?.code == .poolShutDown)
        }

        @Test(arguments: Kind.allCases)
        func resultsForManyInputsWaitsForRoomInsteadOfFailingThem(kind: Kind) async throws {
            // Twenty results owed at once, one place in the queue: results(for:) waits for room.
            let pool = try makePool(kind, limit: 1)
            defer { pool.shutdown() }
            var values: [Int: Int] = [:]
            for await (index, result) in try pool.results(for: (0..<60).map { Command.echo($0) }, maximumInFlight: 20) {
                values[index] = try result.get()
            }
            #expect(values.count == 60 && values.allSatisfy { $0.key == $0.value })
        }

        @Test func aCancelledMapsChunksFreeTheirPlaces() async throws {
            let gate = Gate(), reports = PIDPipe()
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.workerCrashBacktraces = false; $0.maximumQueuedTasks = 2 }, work: obey)
            defer { pool.shutdown() }
            let held = try pool.submit(.passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 1))
            _ = reports.nextPID()
            let mapper = Task { try await pool.map((0..<10).map(Command.echo), chunkSize: 1) }
            #expect(waitUntil { pool.stats.queuedTasks == 4 })  // map's window: its chunks wait
            #expect(expectForkPoolError { _ = try pool.submit(.echo(7)) }?.code == .overloaded)
            mapper.cancel()
            _ = try? await mapper.value
            #expect(try pool.submit(.echo(7)).get(timeout: .milliseconds(10)) == nil)  // room again: queued
            gate.open(1)
            #expect(try held.get(timeout: .seconds(30)) == 1)
        }

        @Test func aBoundBelowOneIsRefused() {
            let error = expectForkPoolError {
                _ = try ProcessPool(workers: 1, configuration: .with { $0.maximumQueuedTasks = 0 }, work: obey)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("maximumQueuedTasks") == true)
        }
    }
}
