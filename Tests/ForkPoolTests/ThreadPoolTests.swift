// ThreadPool: the same promises as ProcessPool, minus isolation.
import ForkPoolTestSupport
import Glibc
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct ThreadPoolTests {
        @Test func mapReturnsOrderedResultsEqualToSequential() throws {
            let inputs = Array(0...24)
            let pool = try ThreadPool(workers: 3) { (n: Int) -> Int in fib(n) }
            defer { pool.shutdown() }
            #expect(try pool.map(inputs) == inputs.map(fib))
            #expect(try pool.map([Int]()) == [])
        }

        @Test func submitGetAndAwaitValue() async throws {
            let pool = try ThreadPool(workers: 2) { (text: String) -> Int in text.count }
            defer { pool.shutdown() }
            #expect(try pool.submit("brown cow").get() == 9)
            #expect(try await pool.submit("tread").value == 5)
        }

        @Test func thrownErrorArrivesWithItsDescriptionAndTheErrorItself() throws {
            let pool = try ThreadPool(workers: 2) { (n: Int) throws -> Int in
                if n == 2 { throw TestFailure(description: "two is not allowed") }
                return n
            }
            defer { pool.shutdown() }
            let error = expectForkPoolError { _ = try pool.map([1, 2, 3]) }
            #expect(error?.code == .workFailed)
            #expect(error?.description.contains("two is not allowed") == true)
            #expect((error?.underlyingError as? TestFailure)?.description == "two is not allowed")
            #expect(try pool.map([1, 3]) == [1, 3])
        }

        @Test func aFailedMapDestroysEveryOutputAlreadyWrittenAndAGoodOneHandsThemAllOver() throws {
            // map writes outputs straight into the result array from the pool's threads; when an
            // input fails, the outputs of chunks that finished (before and after it) must be
            // destroyed, not leaked, and a successful map must hand over each exactly once. A
            // chunk still running when map throws (a thread cannot be stopped) ends soon after:
            // its outputs go then.
            let pool = try ThreadPool(workers: 3) { (n: Int) throws -> Tracked in
                if n == 517 { throw TestFailure(description: "517") }
                return Tracked(n)
            }
            defer { pool.shutdown() }
            for chunkSize in [1, 7, 100, 2000] {
                let error = expectForkPoolError { _ = try pool.map(Array(0..<2000), chunkSize: chunkSize) }
                #expect(error?.description.contains("517") == true)
                #expect(waitUntil { Tracked.live.load(ordering: .relaxed) == 0 }, "chunk size \(chunkSize)")
            }
            let good = try pool.map(Array(600..<1600))
            #expect(good.map(\.value) == Array(600..<1600))
            #expect(Tracked.live.load(ordering: .relaxed) == 1000)
        }

        @Test func runsOnSeveralThreadsOfThisProcess() throws {
            let pool = try ThreadPool(workers: 4) { (_: Int) -> UInt in
                usleep(5_000)
                return UInt(pthread_self())
            }
            defer { pool.shutdown() }
            let threads = Set(try pool.map(Array(0..<40)))
            #expect(threads.count > 1)
            #expect(!threads.contains(UInt(pthread_self())))
        }

        @Test func eightThreadsSubmittingConcurrentlyGetTheirOwnResults() throws {
            let pool = try ThreadPool(workers: 3) { (n: Int) -> Int in n * 3 }
            defer { pool.shutdown() }
            #expect(try mismatchesWithConcurrentSubmitters(pool, tasksPerThread: 500) == 0)
        }

        @Test func shutdownCancellingPendingFailsQueuedTasks() throws {
            let started = ConditionLockedCounter()
            let gate = Gate()
            let pool = try ThreadPool(workers: 1) { (n: Int) -> Int in
                started.add(1)
                if n == 1 { gate.pass() }  // the running task holds the only thread
                return n
            }
            let running = try pool.submit(1)
            #expect(waitUntil { started.value == 1 })
            let queued = try (2...6).map { try pool.submit($0) }
            // The running task goes on only once the queued ones are done: cancelled by the
            // shutdown (which then waits for the running one), never run.
            let opener = try PosixThread.start(name: "opener") {
                _ = waitUntil { queued.allSatisfy(\.isDone) }
                gate.open()
            }
            pool.shutdown(cancelPending: true)
            opener.join()
            #expect(started.value == 1)
            #expect(try running.get() == 1)
            for future in queued {
                #expect(expectForkPoolError { _ = try future.get() }?.code == .cancelled)
            }
            #expect(expectForkPoolError { _ = try pool.submit(9) }?.code == .poolShutDown)
            pool.shutdown(cancelPending: true)  // idempotent
        }

        @Test func bothPoolsBehindOneProtocolChosenAtRunTime() throws {
            // Both pools behind the one protocol, chosen at run time.
            let strategies: [any WorkerPool<Int, Int>] = [
                try ThreadPool(workers: 2, work: fib),
                try ProcessPool(workers: 2, work: fib),
            ]
            for pool in strategies {
                #expect(pool.workerCount == 2)
                #expect(try pool.map([15, 16]) == [610, 987])
                pool.shutdown()
            }
        }

        @Test func badInputThrowsInvalidArgumentInsteadOfTrapping() async throws {
            for (workers, bound) in [(0, nil), (-3, nil), (1, 0), (2, -1)] as [(Int, Int?)] {
                let error = expectForkPoolError { _ = try ThreadPool(workers: workers, maximumQueuedTasks: bound) { (n: Int) in n } }
                #expect(error?.code == .invalidArgument, "workers \(workers), maximumQueuedTasks \(String(describing: bound))")
                let jobs = expectForkPoolError { _ = try ThreadJobPool(workers: workers, maximumQueuedTasks: bound, jobs: [SquareJob.self]) }
                #expect(jobs?.code == .invalidArgument)
            }
            let pool = try ThreadPool(workers: 1) { (n: Int) in n }
            defer { pool.shutdown() }
            #expect(expectForkPoolError { _ = try pool.map([1, 2], chunkSize: 0) }?.code == .invalidArgument)
            #expect(expectForkPoolError { _ = try pool.results(for: [1], maximumInFlight: 0) }?.code == .invalidArgument)
            do {
                _ = try await pool.map([1, 2], chunkSize: -1)
                Issue.record("an async map with chunkSize -1 ran")
            } catch {
                #expect(error.code == .invalidArgument)
            }
            #expect(try await pool.map([1, 2, 3]) == [1, 2, 3])  // the pool is unharmed
        }

        /// Counted by thread id, this pool's own: a pool of another test (another suite's, whose
        /// joined threads the kernel drops from /proc a moment later) is none of its business.
        @Test func threadsAreJoinedAtShutdown() throws {
            for _ in 0..<20 {
                let before = threadIDs(named: "forkpool-t")
                let pool = try ThreadPool(workers: 4) { (n: Int) -> Int in n }
                let own = threadIDs(named: "forkpool-t").subtracting(before)
                #expect(own.count == 4)
                _ = try pool.map([1, 2, 3])
                pool.shutdown()
                // Joined; the kernel drops a joined thread from /proc a moment after join returns.
                #expect(waitUntil { threadIDs(named: "forkpool-t").isDisjoint(with: own) })
            }
        }
    }
}

/// An output that counts its live instances, to catch leaked or doubly destroyed outputs.
private final class Tracked: Sendable {
    static let live = Atomic<Int>(0)
    let value: Int

    init(_ value: Int) {
        self.value = value
        Self.live.add(1, ordering: .relaxed)
    }

    deinit { Self.live.subtract(1, ordering: .relaxed) }
}
