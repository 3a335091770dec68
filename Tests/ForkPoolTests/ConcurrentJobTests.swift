// Async jobs several at once on one fresh worker (`jobsPerWorker`), provoked for real: jobs
// that wait for each other prove they run at once; a crash with 50 jobs in flight fails the one
// that crashed with its signal and the others as siblings (or retries them); a deadline cancels
// a job's Task and kills the worker only for a job that ignores it; `cancel()` cancels the Task
// and keeps the worker; recycling waits for the jobs in flight.
import CFaultInjection
import ForkPoolTestSupport
import Glibc
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// How many `MeetJob`s run in this worker process right now.
let jobsRunningHere = Atomic<Int>(0)

/// Waits (awaiting a timer) until `others` more jobs run in its worker, or 2 s pass; answers
/// how many it saw at most.
struct MeetJob: AsyncPoolJob {
    var others: Int
    func run() async throws -> Int {
        let seen = jobsRunningHere.add(1, ordering: .relaxed).newValue
        defer { jobsRunningHere.subtract(1, ordering: .relaxed) }
        var most = seen
        for _ in 0..<200 where most <= others {
            try await Task.sleep(for: .milliseconds(10))
            most = max(most, jobsRunningHere.load(ordering: .relaxed))
        }
        return most
    }
}

/// Awaits `milliseconds`, then answers its worker's pid; `crash` aborts the worker instead
/// after `crashAfter` ms (only the first time, when `crashOnce` names a file not made yet).
struct NapJob: AsyncPoolJob {
    var milliseconds: Int
    var crash = false
    var crashAfter = 0
    var crashOnce: String?
    func run() async throws -> Int32 {
        if crash, crashOnce.map({ open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644) >= 0 }) ?? true {
            try await Task.sleep(for: .milliseconds(crashAfter))
            _ = fault_abrt()
        }
        try await Task.sleep(for: .milliseconds(milliseconds))
        return getpid()
    }
}

/// Ignores cancellation: blocks its thread for `seconds`.
struct StubbornJob: AsyncPoolJob {
    var seconds: UInt32
    func run() async throws -> Int32 {
        await Task.yield()
        sleep(seconds)
        return getpid()
    }
}

/// Awaits up to 30 s; if its Task is cancelled it writes `marker` and throws.
struct CancellableJob: AsyncPoolJob {
    var marker: String
    func run() async throws -> Int32 {
        do {
            try await Task.sleep(for: .seconds(30))
        } catch {
            let fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = write(fd, "cancelled", 9)
            close(fd)
            throw error
        }
        return getpid()
    }
}

extension ForkPoolTests {
    @Suite struct ConcurrentJobTests {
        func pool(workers: Int = 2, jobsPerWorker: Int, _ change: (inout ProcessPoolConfiguration) -> Void = { _ in })
            throws -> ProcessJobPool {
            try ProcessJobPool(workers: workers, configuration: .with {
                $0.jobsPerWorker = jobsPerWorker
                $0.workerCrashBacktraces = false
                change(&$0)
            }, jobs: [MeetJob.self, NapJob.self, StubbornJob.self, CancellableJob.self, SquareJob.self])
        }

        @Test func aWorkerRunsUpToJobsPerWorkerAsyncJobsAtOnceBesideSyncJobs() throws {
            let pool = try pool(jobsPerWorker: 10)
            defer { pool.shutdown() }
            let futures = try (0..<20).map { _ in try pool.submit(MeetJob(others: 5)) }
            let seen = try futures.map { try $0.get() }
            // Most met five others at once. Not all need to: under load a job that reaches its
            // worker after the first ones met and left finds fewer (it then waits its 2 s out).
            #expect(seen.filter { $0 >= 5 }.count >= 10, "jobs ran one at a time: \(seen)")
            #expect(try pool.submit(SquareJob(value: 7)).get() == 49)
            // map's chunks of async jobs run at once too (each chunk's jobs in a task group).
            #expect(try pool.map((0..<40).map { _ in MeetJob(others: 0) }).count == 40)
        }

        @Test func aCrashWithFiftyJobsInFlightFailsTheOneThatCrashedAndTheRestAsSiblings() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 60)
            defer { pool.shutdown() }
            let others = try (0..<49).map { _ in try pool.submit(NapJob(milliseconds: 3000)) }
            let crasher = try pool.submit(NapJob(milliseconds: 0, crash: true, crashAfter: 300))
            let error = try #require(throws: ForkPoolError.self) { try crasher.get() }
            #expect(error.code == .workerDied && error.signal == SIGABRT && !error.message.contains("took the worker down"), "\(error)")
            for future in others {
                let sibling = try #require(throws: ForkPoolError.self) { try future.get() }
                #expect(sibling.code == .workerDied, "\(sibling)")
                #expect(sibling.message.contains("task \(crasher.taskID), running beside it, took the worker down"), "\(sibling)")
            }
            #expect(try pool.submit(NapJob(milliseconds: 1)).get() > 0)
        }

        @Test func underARetryPolicyTheSiblingsOfACrashRunAgainAndSucceed() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 60) { $0.crashPolicy = .retry(times: 1) }
            defer { pool.shutdown() }
            let marker = "/tmp/forkpool-crash-once-\(getpid())"
            unlink(marker)
            defer { unlink(marker) }
            let others = try (0..<20).map { _ in try pool.submit(NapJob(milliseconds: 1500)) }
            let crasher = try pool.submit(NapJob(milliseconds: 0, crash: true, crashAfter: 200, crashOnce: marker))
            // Every job ran twice: once on the worker that crashed, then again on its replacement.
            let pids = try others.map { try $0.get() } + [try crasher.get()]
            #expect(Set(pids).count == 1 && pool.stats.workers[0].restarts == 1, "\(pids)")
        }

        @Test func aDeadlineCancelsTheJobsTaskAndKillsTheWorkerOnlyIfTheJobIgnoresIt() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 10)
            defer { pool.shutdown() }
            let marker = "/tmp/forkpool-deadline-\(getpid())"
            defer { unlink(marker) }
            let before = pool.workerProcessIDs
            // A job that honours cancellation: timed out, its Task cancelled, the worker kept.
            let polite = try pool.submit(CancellableJob(marker: marker), timeout: .milliseconds(200))
            let timedOut = try #require(throws: ForkPoolError.self) { try polite.get() }
            #expect(timedOut.code == .timedOut && timedOut.message.contains("its Task was cancelled"), "\(timedOut)")
            #expect(waitUntil { readFile(marker) == "cancelled" })
            #expect(pool.workerProcessIDs == before)
            #expect(try pool.submit(NapJob(milliseconds: 1)).get() == before[0])
            // One that ignores it: timed out at once, and its worker killed after the grace period.
            let stubborn = try pool.submit(StubbornJob(seconds: 30), timeout: .milliseconds(200))
            #expect((try? stubborn.get()) == nil)
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && pool.workerProcessIDs != before })
            #expect(try pool.submit(NapJob(milliseconds: 1)).get() != before[0])
        }

        @Test func cancelCancelsARunningJobsTaskAndKeepsItsWorker() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 10)
            defer { pool.shutdown() }
            let marker = "/tmp/forkpool-cancel-\(getpid())"
            defer { unlink(marker) }
            let before = pool.workerProcessIDs
            let neighbour = try pool.submit(NapJob(milliseconds: 300))
            let job = try pool.submit(CancellableJob(marker: marker))
            usleep(200_000)  // the job is on the worker and awaiting (no ordering rests on this: cancel works either way)
            #expect(job.cancel())
            let error = try #require(throws: ForkPoolError.self) { try job.get() }
            #expect(error.code == .cancelled)
            #expect(waitUntil { readFile(marker) == "cancelled" })
            #expect(try neighbour.get() == before[0])
            #expect(pool.workerProcessIDs == before)
        }

        @Test func recyclingWaitsForTheJobsInFlight() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 10) { $0.maximumTasksPerWorker = 5 }
            defer { pool.shutdown() }
            // Staggered jobs: a slot frees now and then, and the queue refills it at once, so the
            // worker is never idle while jobs wait: it must stop taking them to be recycled.
            let futures = try (0..<60).map { try pool.submit(NapJob(milliseconds: 20 + ($0 % 7) * 15)) }
            let pids = try futures.map { try $0.get() }  // every job finished: none was cut short
            #expect(Set(pids).count > 1, "the worker was never recycled")
        }

        @Test func neverMoreThanJobsPerWorkerAtOnceAndASyncJobWaitsForAnIdleWorker() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 10)
            defer { pool.shutdown() }
            let crowded = try (0..<30).map { _ in try pool.submit(MeetJob(others: 50)) }
            // A sync job queued behind async ones gets the worker to itself once they are done.
            let sync = try pool.submit(SquareJob(value: 9))
            #expect(try crowded.map { try $0.get() }.allSatisfy { $0 <= 10 })
            #expect(try sync.get() == 81)
            #expect(try pool.submit(MeetJob(others: 0)).get() == 1)
        }

        @Test func jobsOnAWorkerThatDiesWithTheForkServerFailAndThePoolRecovers() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 10)
            defer { pool.shutdown() }
            let jobs = try (0..<5).map { _ in try pool.submit(NapJob(milliseconds: 20_000)) }
            usleep(200_000)
            kill(try #require(pool.forkServerProcessID), SIGKILL)
            for job in jobs {
                let error = try #require(throws: ForkPoolError.self) { try job.get(timeout: .seconds(30)) }
                #expect(error.code == .workerDied && error.message.contains("fork server"), "\(error)")
            }
            #expect(try pool.submit(NapJob(milliseconds: 1)).get() > 0)
        }

        @Test func aCancelledJobThatIgnoresItHasItsWorkerKilledAndShutdownEnds() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 10)
            let before = pool.workerProcessIDs
            let stubborn = try pool.submit(StubbornJob(seconds: 30))
            usleep(200_000)
            #expect(stubborn.cancel())
            #expect(waitUntil { pool.workerProcessIDs.count == 1 && pool.workerProcessIDs != before })
            pool.shutdown()
        }

        @Test func withOneJobPerWorkerADeadlineStillCancelsTheTaskAndKeepsTheWorker() throws {
            let pool = try pool(workers: 1, jobsPerWorker: 1)
            defer { pool.shutdown() }
            let marker = "/tmp/forkpool-one-\(getpid())"
            defer { unlink(marker) }
            let before = pool.workerProcessIDs
            #expect(throws: ForkPoolError.self) { try pool.submit(CancellableJob(marker: marker), timeout: .milliseconds(200)).get() }
            #expect(waitUntil { readFile(marker) == "cancelled" })
            #expect(pool.workerProcessIDs == before)
        }

        @Test func jobsPerWorkerOutOfRangeIsRefused() {
            for bad in [0, -1, 10_001] {
                let error = expectForkPoolError { _ = try pool(jobsPerWorker: bad) }
                #expect(error?.code == .invalidArgument && error?.message.contains("jobsPerWorker") == true)
            }
        }
    }
}
