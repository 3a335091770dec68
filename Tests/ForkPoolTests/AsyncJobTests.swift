// Async jobs (`AsyncPoolJob`), provoked for real: they await a timer inside a fresh worker's
// own Swift concurrency runtime, run beside sync jobs on one pool, fail with their error, and a
// snapshot pool refuses them at `init` instead of hanging a forked child; a ThreadJobPool runs
// them too.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// Awaits a timer, then answers its value squared and the process it ran in.
struct SleepThenSquareJob: AsyncPoolJob {
    var value: Int
    var milliseconds = 5
    func run() async throws -> [Int] {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return [value * value, Int(getpid())]
    }
}

/// Awaits, then throws.
struct FailingAsyncJob: AsyncPoolJob {
    struct Refused: Error, CustomStringConvertible { var description: String { "the webhook refused" } }
    func run() async throws -> Int {
        await Task.yield()
        throw Refused()
    }
}

extension ForkPoolTests {
    @Suite struct AsyncJobTests {
        @Test func aFreshJobPoolRunsAsyncJobsInItsWorkersBesideSyncOnes() async throws {
            let pool = try ProcessJobPool(workers: 2, jobs: [SleepThenSquareJob.self, SquareJob.self])
            defer { pool.shutdown() }
            let asyncFutures = try (1...20).map { try pool.submit(SleepThenSquareJob(value: $0)) }
            let syncFutures = try (1...20).map { try pool.submit(SquareJob(value: $0)) }
            var pids = Set<Int>()
            for (index, future) in asyncFutures.enumerated() {
                let answer = try await future.value
                #expect(answer[0] == (index + 1) * (index + 1))
                pids.insert(answer[1])
            }
            for (index, future) in syncFutures.enumerated() { #expect(try await future.value == (index + 1) * (index + 1)) }
            #expect(!pids.contains(Int(getpid())) && pids.isSubset(of: Set(pool.workerProcessIDs.map(Int.init))))
            #expect(try await pool.map((1...10).map { SleepThenSquareJob(value: $0, milliseconds: 1) }).map { $0[0] } == (1...10).map { $0 * $0 })
        }

        @Test func anAsyncJobThatThrowsFailsWithItsErrorAndThePoolGoesOn() throws {
            let pool = try ProcessJobPool(workers: 1, jobs: [FailingAsyncJob.self, SleepThenSquareJob.self])
            defer { pool.shutdown() }
            let error = try #require(throws: ForkPoolError.self) { try pool.submit(FailingAsyncJob()).get() }
            #expect(error.code == .workFailed && error.message.contains("the webhook refused"), "\(error)")
            #expect(error.jobName == FailingAsyncJob.jobName)
            #expect(try pool.submit(SleepThenSquareJob(value: 3)).get()[0] == 9)
        }

        @Test func aSnapshotJobPoolRefusesAsyncJobsAtInit() throws {
            let error = try #require(throws: ForkPoolError.self) {
                try ProcessJobPool(workers: 1, startMethod: .snapshot, jobs: [SquareJob.self, SleepThenSquareJob.self])
            }
            #expect(error.code == .invalidArgument, "\(error)")
            #expect(error.message.contains("SleepThenSquareJob is an async job") && error.message.contains("startMethod .fresh"), "\(error)")
        }

        @Test func aThreadJobPoolRunsAsyncJobsWithTheSameCalls() async throws {
            let pool = try ThreadJobPool(workers: 2, jobs: [SleepThenSquareJob.self, FailingAsyncJob.self, SquareJob.self])
            defer { pool.shutdown() }
            #expect(try await pool.submit(SleepThenSquareJob(value: 4)).value == [16, Int(getpid())])
            #expect(try await pool.map((1...8).map { SleepThenSquareJob(value: $0, milliseconds: 1) }).map { $0[0] } == (1...8).map { $0 * $0 })
            let error = try #require(throws: ForkPoolError.self) { try pool.submit(FailingAsyncJob()).get() }
            #expect(error.code == .workFailed && error.message.contains("the webhook refused"), "\(error)")
            #expect(try pool.submit(SquareJob(value: 5)).get() == 25)
        }

        @Test func theSynchronousRunOfAnAsyncJobSaysToAwaitIt() {
            let error = expectForkPoolError { _ = try SleepThenSquareJob(value: 1).run() as [Int] }
            #expect(error?.code == .invalidArgument && error?.message.contains("async job") == true)
        }
    }
}
