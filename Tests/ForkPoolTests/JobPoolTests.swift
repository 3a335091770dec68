// Job pools, provoked for real on both pools: several job types on one pool (at once, on the
// same workers), every call of the single-function pools (submit, time-out, map blocking and
// async with automatic and fixed chunks, results(for:), backpressure, cancellation, scoped
// helpers), a job type the pool was not created with (.unknownJob, nothing queued), two types
// with one name (.invalidArgument naming both), and jobs that throw, crash, hang or cannot be
// decoded in the worker — each failing only itself, its error naming the job. A frame naming
// a job the worker does not know fails as a malformed frame.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// Squares a number.
struct SquareJob: PoolJob {
    var value: Int
    func run() throws -> Int { value * value }
}

/// Shouts a word; throws on an empty one.
struct ShoutJob: PoolJob {
    struct Empty: Error, CustomStringConvertible {
        var description: String { "nothing to shout" }
    }

    var word: String
    func run() throws -> String {
        guard !word.isEmpty else { throw Empty() }
        return word.uppercased()
    }
}

/// Does what a `Command` says (gates, crashes, hangs), in a job.
struct CommandJob: PoolJob {
    var command: Command
    func run() throws -> Int { try obey(command) }
}

/// Encodes fine, but cannot be decoded anywhere (so it fails in the worker, not at submit).
struct UndecodableJob: PoolJob {
    struct Refused: Error {}
    var value: Int
    init(value: Int) { self.value = value }
    init(from decoder: any Decoder) throws { throw Refused() }
    func run() throws -> Int { value }
}

/// Not given to any pool.
struct StrayJob: PoolJob {
    func run() throws -> Int { 0 }
}

/// Takes SquareJob's name without being SquareJob.
struct ImpostorJob: PoolJob {
    static var jobName: String { SquareJob.jobName }
    func run() throws -> Int { -1 }
}

/// A job only a thread pool can run (not Codable).
struct ClosureJob: RunnableJob {
    let body: @Sendable () -> Int
    func run() throws -> Int { body() }
}

extension ForkPoolTests {
    @Suite struct JobPoolTests {
        enum Kind: String, CaseIterable, CustomTestStringConvertible {
            case processes, threads
            var testDescription: String { rawValue }
        }

        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
        let jobs: [any PoolJob.Type] = [SquareJob.self, ShoutJob.self, CommandJob.self, UndecodableJob.self]

        /// A pool of `kind`. Process job pools start fresh by default; a test whose jobs wait at a
        /// gate (a pipe the workers must inherit) asks for `.snapshot`.
        func makePool(_ kind: Kind, workers: Int = 2, configuration: ProcessPoolConfiguration? = nil,
                      startMethod: ProcessJobPool.StartMethod = .fresh) throws -> any JobPool {
            let configuration = configuration ?? quiet
            switch kind {
            case .processes: return try ProcessJobPool(workers: workers, startMethod: startMethod, configuration: configuration, jobs: jobs)
            case .threads: return try ThreadJobPool(workers: workers, maximumQueuedTasks: configuration.maximumQueuedTasks, jobs: jobs)
            }
        }

        @Test(arguments: Kind.allCases)
        func onePoolRunsEveryKindOfJob(kind: Kind) async throws {
            let pool = try makePool(kind)
            defer { pool.shutdown() }
            #expect(SquareJob.jobName == "ForkPoolTests.SquareJob")
            let square = try pool.submit(SquareJob(value: 7))
            let shout = try pool.submit(ShoutJob(word: "fork"))
            #expect(try square.get() == 49)
            #expect(try shout.get() == "FORK")
            let words = ["a", "b", "c", "d", "e"]
            try blockingMaps(pool, words: words)
            #expect(try await pool.map((0..<50).map(SquareJob.init)) == (0..<50).map { $0 * $0 })
            #expect(try await pool.map(words.map(ShoutJob.init), chunkSize: 3) == ["A", "B", "C", "D", "E"])
            #expect(try await pool.submitWhenReady(SquareJob(value: 3)).value == 9)
            var seen: [Int: String] = [:]
            for await (index, result) in try pool.results(for: words.map(ShoutJob.init), maximumInFlight: 2) {
                seen[index] = try result.get()
            }
            #expect(seen == [0: "A", 1: "B", 2: "C", 3: "D", 4: "E"])
            #expect(expectForkPoolError { _ = try pool.map([SquareJob(value: 1)], chunkSize: 0) }?.code == .invalidArgument)
            #expect(pool.stats.tasksFailed == 0 && pool.stats.tasksCompleted > 0)
        }

        /// The blocking `map`s (an async test would pick the async overloads).
        func blockingMaps(_ pool: any JobPool, words: [String]) throws {
            #expect(try pool.map((0..<500).map(SquareJob.init)) == (0..<500).map { $0 * $0 })
            #expect(try pool.map(words.map(ShoutJob.init), chunkSize: 2) == words.map { $0.uppercased() })
        }

        @Test(arguments: Kind.allCases)
        func jobsOfDifferentTypesRunAtOnceOnTheSameWorkers(kind: Kind) throws {
            let gate = Gate(), reports = PIDPipe()  // before the pool: its (snapshot) workers inherit them
            let pool = try makePool(kind, startMethod: .snapshot)
            defer { pool.shutdown() }
            let held = try pool.submit(CommandJob(command: .passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 1)))
            _ = reports.nextPID()  // the command job runs…
            let square = try pool.submit(SquareJob(value: 12))
            #expect(try square.get(timeout: .seconds(30)) == 144)  // …while a job of another type runs beside it
            #expect(!held.isDone)
            gate.open(1)
            #expect(try held.get(timeout: .seconds(30)) == 1)
            if let processes = pool as? ProcessJobPool {
                #expect(processes.workerProcessIDs.count == 2)  // one set of workers for every job type
            }
        }

        @Test(arguments: Kind.allCases)
        func aJobTypeThePoolWasNotCreatedWithIsRefusedAndNothingIsQueued(kind: Kind) async throws {
            let pool = try makePool(kind)
            defer { pool.shutdown() }
            let before = pool.stats
            for error in [expectForkPoolError { _ = try pool.submit(StrayJob()) },
                          expectForkPoolError { _ = try pool.map([StrayJob(), StrayJob()]) },
                          await expectAsyncForkPoolError { _ = try await pool.submitWhenReady(StrayJob()) },
                          expectForkPoolError { _ = try pool.submit(ImpostorJob()) }] {
                #expect(error?.code == .unknownJob)
                #expect(error?.message.contains("is not one of this pool's jobs") == true)
                #expect(error?.message.contains("\"ForkPoolTests.SquareJob\", \"ForkPoolTests.ShoutJob\"") == true)
            }
            let stray = expectForkPoolError { _ = try pool.submit(StrayJob()) }
            #expect(stray?.message.contains("ForkPoolTests.StrayJob") == true && stray?.jobName == "ForkPoolTests.StrayJob")
            let impostor = expectForkPoolError { _ = try pool.submit(ImpostorJob()) }
            #expect(impostor?.message.contains("ForkPoolTests.ImpostorJob") == true)
            #expect(pool.stats.tasksCompleted == before.tasksCompleted && pool.stats.queuedTasks == 0)
            if let processes = pool as? ProcessJobPool { #expect(processes.dispatcher.taskIDs.load(ordering: .relaxed) == 1) }
            #expect(try pool.submit(SquareJob(value: 2)).get() == 4)  // the pool goes on
        }

        @Test func twoJobTypesWithOneNameAreRefusedNamingBoth() {
            let processes = expectForkPoolError { _ = try ProcessJobPool(workers: 1, jobs: [SquareJob.self, ImpostorJob.self]) }
            #expect(processes?.code == .invalidArgument)
            #expect(processes?.message.contains("ForkPoolTests.SquareJob") == true)
            #expect(processes?.message.contains("ForkPoolTests.ImpostorJob") == true)
            let threads = expectForkPoolError { _ = try ThreadJobPool(workers: 1, jobs: [ImpostorJob.self, SquareJob.self]) }
            #expect(threads?.code == .invalidArgument && threads?.message.contains("ForkPoolTests.ImpostorJob") == true)
            let twice = expectForkPoolError { _ = try ProcessJobPool(workers: 1, jobs: [SquareJob.self, SquareJob.self]) }
            #expect(twice?.code == .invalidArgument && twice?.message.contains("registered twice") == true)
            #expect(expectForkPoolError { _ = try ProcessJobPool(workers: 1, jobs: []) }?.code == .invalidArgument)
            #expect(expectForkPoolError { _ = try ThreadJobPool(workers: 0, jobs: [SquareJob.self]) }?.code == .invalidArgument)
        }

        @Test(arguments: Kind.allCases)
        func aJobThatThrowsFailsOnlyItselfAndNamesTheJob(kind: Kind) throws {
            let pool = try makePool(kind)
            defer { pool.shutdown() }
            let futures = try ["x", "", "y"].map { try pool.submit(ShoutJob(word: $0)) }
            #expect(try futures[0].get() == "X" && futures[2].get() == "Y")
            let error = expectForkPoolError { _ = try futures[1].get() }
            #expect(error?.code == .workFailed && error?.jobName == "ForkPoolTests.ShoutJob")
            #expect(error?.message.contains("nothing to shout") == true)
            #expect(error?.description.contains("[job ForkPoolTests.ShoutJob]") == true)
            let mapped = expectForkPoolError { _ = try pool.map(["a", "", "b"].map(ShoutJob.init), chunkSize: 1) }
            #expect(mapped?.code == .workFailed && mapped?.jobName == "ForkPoolTests.ShoutJob")
            if kind == .threads { #expect(error?.underlyingError is ShoutJob.Empty) }
        }

        @Test func aJobThatCrashesHangsOrCannotBeDecodedFailsOnlyItself() throws {
            let pool = try ProcessJobPool(workers: 2, configuration: quiet, jobs: jobs)
            defer { pool.shutdown() }
            let crashed = expectForkPoolError { _ = try pool.submit(CommandJob(command: .raise(SIGSEGV))).get() }
            #expect(crashed?.code == .workerDied && crashed?.signal == SIGSEGV && crashed?.jobName == "ForkPoolTests.CommandJob")
            let hung = expectForkPoolError { _ = try pool.submit(CommandJob(command: .sleep(milliseconds: 60_000)), timeout: .milliseconds(300)).get() }
            #expect(hung?.code == .timedOut && hung?.jobName == "ForkPoolTests.CommandJob")
            let undecodable = expectForkPoolError { _ = try pool.submit(UndecodableJob(value: 1)).get() }
            #expect(undecodable?.code == .decodingFailed && undecodable?.jobName == "ForkPoolTests.UndecodableJob")
            #expect(undecodable?.message.contains("could not decode the input") == true)
            #expect(try pool.submit(SquareJob(value: 5)).get() == 25)  // the others go on
            #expect(try pool.submit(ShoutJob(word: "ok")).get() == "OK")
            let stats = pool.stats
            #expect(stats.tasksFailed == 3 && stats.tasksCompleted == 5)
        }

        @Test func aFrameNamingAJobTheWorkerDoesNotKnowFailsAsMalformed() throws {
            let pool = try ProcessJobPool(workers: 1, configuration: quiet, jobs: jobs)
            defer { pool.shutdown() }
            // Frames the pool itself never makes: a job name no worker has, and no name at all.
            let foreign = TypedTasks<SquareJob, Int>(dispatcher: pool.dispatcher, configuration: quiet, workerCount: 1,
                                                     jobName: "Elsewhere.Resize")
            let unknown = expectForkPoolError { _ = try foreign.submit(SquareJob(value: 3)).get(timeout: .seconds(30)) }
            #expect(unknown?.code == .malformedFrame)
            #expect(unknown?.message.contains("\"Elsewhere.Resize\", which this pool does not have") == true)
            let nameless = TypedTasks<SquareJob, Int>(dispatcher: pool.dispatcher, configuration: quiet, workerCount: 1)
            let bare = expectForkPoolError { _ = try nameless.submit(SquareJob(value: 3)).get(timeout: .seconds(30)) }
            #expect(bare?.code == .malformedFrame)
            #expect(try pool.submit(SquareJob(value: 4)).get() == 16)  // the worker goes on
            #expect(pool.stats.workers[0].restarts == 0)
        }

        @Test(arguments: Kind.allCases)
        func backpressureAndCancellationWorkAsOnTheSingleFunctionPools(kind: Kind) throws {
            let gate = Gate(), reports = PIDPipe()
            var configuration = quiet
            configuration.maximumQueuedTasks = 1
            let pool = try makePool(kind, workers: 1, configuration: configuration, startMethod: .snapshot)
            defer { pool.shutdown() }
            let held = try pool.submit(CommandJob(command: .passGate(reportFD: reports.writeEnd, gateFD: gate.readEnd, value: 1)))
            _ = reports.nextPID()
            let queued = try pool.submit(SquareJob(value: 6))
            #expect(expectForkPoolError { _ = try pool.submit(ShoutJob(word: "no room")) }?.code == .overloaded)
            #expect(queued.cancel() && queued.isCancelled)
            let admitted = try pool.submit(ShoutJob(word: "room"))  // the cancelled job left its place
            gate.open(1)
            #expect(try held.get(timeout: .seconds(30)) == 1)
            #expect(try admitted.get(timeout: .seconds(30)) == "ROOM")
        }

        @Test func shutDownPoolsRefuseJobsAndOnlyThreadPoolsTakeJobsThatAreOnlySendable() throws {
            let pool = try ProcessJobPool(workers: 1, configuration: quiet, jobs: [SquareJob.self])
            #expect(try pool.map((1...3).map(SquareJob.init)).reduce(0, +) == 14)
            // A job that is only Sendable cannot cross to a process: the process pool never
            // registered it, and says so without queueing anything.
            let notCodable = expectForkPoolError { _ = try pool.submit(ClosureJob { 1 }) }
            #expect(notCodable?.code == .unknownJob && notCodable?.message.contains("ClosureJob") == true)
            #expect(expectForkPoolError { _ = try pool.map([ClosureJob { 1 }]) }?.code == .unknownJob)
            pool.shutdown()
            #expect(pool.forkServerProcessID == nil)
            #expect(expectForkPoolError { _ = try pool.submit(SquareJob(value: 1)) }?.code == .poolShutDown)

            let threads = try ThreadJobPool(workers: 2, jobs: [ClosureJob.self, SquareJob.self])
            defer { threads.shutdown() }
            #expect(try threads.submit(ClosureJob { 41 }).get() == 41)
            #expect(try threads.map([ClosureJob { 1 }, ClosureJob { 2 }]) == [1, 2])
        }
    }
}
