// Fresh workers (`startMethod: .fresh`, a job pool's default), provoked for real: the fork
// server is this test binary started anew, not a copy of this process — none of its heap, its
// descriptors or the globals `main` (here: this test) set — and its workers find every job type
// by name and run each type's `setUpWorker()`; a crash is replaced from it; the pool's process
// killed with SIGKILL leaves nothing behind; a work closure, an initializer closure or a
// binary that cannot be started get clear errors. Both start methods side by side where they
// differ.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// Set by the tests in this process before a pool starts; a fresh worker never sees it.
nonisolated(unsafe) var markerSetByTheProgram = 0

/// Returns `markerSetByTheProgram` as the worker sees it.
struct ReadMarkerJob: PoolJob {
    func run() throws -> Int { markerSetByTheProgram }
}

/// The worker's open descriptors.
struct OpenDescriptorsJob: PoolJob {
    func run() throws -> [Int32] { directoryEntries("/proc/self/fd").compactMap { Int32($0) }.sorted() }
}

/// Whether this type's `setUpWorker()` ran in the worker that runs the job.
struct SetUpJob: PoolJob {
    nonisolated(unsafe) static var setUpInThisProcess = 0
    static func setUpWorker() throws { setUpInThisProcess = Int(getpid()) }
    func run() throws -> Int { Self.setUpInThisProcess == Int(getpid()) ? 1 : 0 }
}

/// A job type whose workers cannot be set up.
struct BrokenSetUpJob: PoolJob {
    struct NoModel: Error, CustomStringConvertible { var description: String { "the model file is missing" } }
    static func setUpWorker() throws { throw NoModel() }
    func run() throws -> Int { 0 }
}

extension ForkPoolTests {
    @Suite struct FreshStartTests {
        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        func pool(_ method: ProcessJobPool.StartMethod?, jobs: [any PoolJob.Type],
                  configuration: ProcessPoolConfiguration? = nil) throws -> ProcessJobPool {
            let configuration = configuration ?? quiet
            guard let method else { return try ProcessJobPool(workers: 2, configuration: configuration, jobs: jobs) }
            return try ProcessJobPool(workers: 2, startMethod: method, configuration: configuration, jobs: jobs)
        }

        /// A process's resident memory in KiB (VmRSS), or nil.
        func residentKiB(_ pid: pid_t) -> Int? {
            readFile("/proc/\(pid)/status")?.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
                .flatMap { Int(String($0.filter(\.isNumber))) }
        }

        @Test func aJobPoolStartsFreshByDefaultFromThisBinaryAndRunsEveryJobType() throws {
            let pool = try pool(nil, jobs: [SquareJob.self, ShoutJob.self, SetUpJob.self])
            defer { pool.shutdown() }
            #expect(try pool.submit(SquareJob(value: 9)).get() == 81)
            #expect(try pool.map(["fresh", "start"].map(ShoutJob.init)) == ["FRESH", "START"])
            #expect(try pool.submit(SetUpJob()).get() == 1)  // setUpWorker ran in that very worker
            let server = try #require(pool.forkServerProcessID)
            // A new process from this binary, not a fork: its own exe link, its name, our child.
            #expect(readFile("/proc/\(server)/cmdline")?.hasPrefix("forkpool-server") == true)
            var ours = stat(), its = stat()
            #expect(stat("/proc/self/exe", &ours) == 0 && stat("/proc/\(server)/exe", &its) == 0)
            #expect(ours.st_ino == its.st_ino && ours.st_dev == its.st_dev)
            #expect(childProcessIDs().contains(server))
            #expect(Set(childProcessIDs(of: server)) == Set(pool.workerProcessIDs))
        }

        @Test func aFreshWorkerHasNoneOfTheProgramsGlobalsOrDescriptors() throws {
            markerSetByTheProgram = 42
            defer { markerSetByTheProgram = 0 }
            let stray = TestPipe()  // open in this process when the pools start
            let fresh = try pool(.fresh, jobs: [ReadMarkerJob.self, OpenDescriptorsJob.self])
            defer { fresh.shutdown() }
            let snapshot = try pool(.snapshot, jobs: [ReadMarkerJob.self, OpenDescriptorsJob.self])
            defer { snapshot.shutdown() }
            #expect(try snapshot.submit(ReadMarkerJob()).get() == 42)  // a copy of this process
            #expect(try fresh.submit(ReadMarkerJob()).get() == 0)      // a new one: `main` never ran there
            let freshDescriptors = try fresh.submit(OpenDescriptorsJob()).get()
            #expect(!freshDescriptors.contains(stray.readEnd) || freshDescriptors.count <= 5)
            #expect(freshDescriptors.count <= 5, "a fresh worker has stdio, its socket and the listing's own: \(freshDescriptors)")
            #expect(try snapshot.submit(OpenDescriptorsJob()).get().contains(stray.writeEnd))  // inherited by the copy
            withExtendedLifetime(stray) {}
        }

        @Test func aFreshForkServerDoesNotCarryTheProgramsHeap() throws {
            // 512 MiB touched in this process: a snapshot fork server maps all of it, a fresh one
            // none of it.
            let size = 512 << 20
            let heap = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
            defer { heap.deallocate() }
            heap.initializeMemory(as: UInt8.self, repeating: 7, count: size)
            let fresh = try pool(.fresh, jobs: [SquareJob.self])
            defer { fresh.shutdown() }
            let snapshot = try pool(.snapshot, jobs: [SquareJob.self])
            defer { snapshot.shutdown() }
            #expect(try fresh.submit(SquareJob(value: 3)).get() == 9)
            #expect(try snapshot.submit(SquareJob(value: 3)).get() == 9)
            let freshServer = try #require(fresh.forkServerProcessID), snapshotServer = try #require(snapshot.forkServerProcessID)
            let freshKiB = try #require(residentKiB(freshServer)), snapshotKiB = try #require(residentKiB(snapshotServer))
            #expect(snapshotKiB > 512 * 1024, "the snapshot server shares the heap's pages: \(snapshotKiB) KiB")
            #expect(freshKiB < 128 * 1024, "the fresh server should hold none of it: \(freshKiB) KiB")
            let freshWorkers = fresh.workerProcessIDs.compactMap(residentKiB)
            #expect(freshWorkers.count == 2 && freshWorkers.allSatisfy { $0 < 128 * 1024 }, "fresh workers: \(freshWorkers) KiB")
        }

        @Test func aCrashedFreshWorkerIsReplacedFromTheFreshServer() throws {
            let pool = try pool(.fresh, jobs: [CommandJob.self, SquareJob.self])
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            let before = Set(pool.workerProcessIDs)
            let error = expectForkPoolError { _ = try pool.submit(CommandJob(command: .raise(SIGKILL))).get() }
            #expect(error?.code == .workerDied && error?.signal == SIGKILL && error?.jobName == CommandJob.jobName)
            #expect(waitUntil { pool.workerProcessIDs.count == 2 && Set(pool.workerProcessIDs) != before })
            #expect(pool.forkServerProcessID == server)
            #expect(Set(childProcessIDs(of: server)) == Set(pool.workerProcessIDs))
            #expect(try pool.map((1...20).map(SquareJob.init)) == (1...20).map { $0 * $0 })
        }

        @Test func badSetUpsGetClearErrors() throws {
            let initializer = expectForkPoolError {
                _ = try ProcessJobPool(workers: 1, configuration: .with { $0.initializer = {} }, jobs: [SquareJob.self])
            }
            #expect(initializer?.code == .invalidArgument && initializer?.message.contains("setUpWorker()") == true)
            // The same initializer is fine with a snapshot.
            let snapshot = try ProcessJobPool(workers: 1, startMethod: .snapshot, configuration: .with { $0.initializer = {} },
                                              jobs: [SquareJob.self])
            #expect(try snapshot.submit(SquareJob(value: 2)).get() == 4)
            snapshot.shutdown()

            let saved = FreshStart.executablePath
            defer { FreshStart.executablePath = saved }
            FreshStart.executablePath = "/nonexistent/forkpool-binary"
            let missing = expectForkPoolError { _ = try ProcessJobPool(workers: 1, jobs: [SquareJob.self]) }
            #expect(missing?.code == .poolBroken && missing?.message.contains("posix_spawn of /nonexistent/forkpool-binary") == true)
            #expect(missing?.errno == ENOENT)

            // A binary deleted or replaced since the program started shows as "(deleted)".
            let link = "/tmp/forkpool-deleted-\(getpid())"
            defer { unlink(link) }
            #expect(symlink("/usr/bin/app (deleted)", link) == 0)
            FreshStart.executablePath = link
            let deleted = expectForkPoolError { _ = try ProcessJobPool(workers: 1, jobs: [SquareJob.self]) }
            #expect(deleted?.code == .poolBroken && deleted?.message.contains("/usr/bin/app was deleted or replaced") == true)
            #expect(PoolDescriptors.count == 0)
        }

        @Test func aJobTypeWhoseWorkersCannotBeSetUpBreaksThePoolAtStart() {
            for method in [ProcessJobPool.StartMethod.fresh, .snapshot] {
                let error = expectForkPoolError {
                    _ = try pool(method, jobs: [SquareJob.self, BrokenSetUpJob.self],
                                 configuration: .with { $0.workerCrashBacktraces = false; $0.maximumConsecutiveStartFailures = 2 })
                }
                #expect(error?.code == .poolBroken && error?.message.contains("the model file is missing") == true, "\(method)")
            }
        }

        @Test func aThreadJobPoolSetsEachPoolJobTypeUpOnce() throws {
            let pool = try? ThreadJobPool(workers: 2, jobs: [SetUpJob.self, SquareJob.self])
            #expect(try pool?.submit(SetUpJob()).get() == 1)  // set up in this very process
            pool?.shutdown()
            let broken = expectForkPoolError { _ = try ThreadJobPool(workers: 1, jobs: [BrokenSetUpJob.self]) }
            #expect(broken?.code == .poolBroken && broken?.message.contains("the model file is missing") == true)
        }

        @Test func theFreshPoolsProcessKilledWithSIGKILLLeavesNoOrphans() throws {
            let application = try StandInApplication { report in
                guard let pool = try? ProcessJobPool(workers: 2, jobs: [SquareJob.self]),
                      (try? pool.submit(SquareJob(value: 2)).get()) == 4 else { _exit(3) }
                var pids = [pool.forkServerProcessID ?? 0] + pool.workerProcessIDs
                _ = write(report, &pids, pids.count * MemoryLayout<pid_t>.size)
                while true { withExtendedLifetime(pool) { _ = pause() } }
            }
            let pids = application.reportedPIDs(count: 3)
            defer { for pid in pids where liveness(of: pid) == .running { kill(pid, SIGKILL) } }
            try #require(pids.count == 3, "the stand-in application reported \(pids.count) of 3 pids")
            #expect(childProcessIDs(of: application.pid).contains(pids[0]))  // the fresh server is its child
            #expect(application.kill(with: SIGKILL).map(forkpool_wtermsig) == SIGKILL)
            #expect(waitUntil { pids.allSatisfy { liveness(of: $0) != .running } })
        }
    }
}
