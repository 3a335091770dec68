// Jobs that arrive as bytes (EncodedJob), as a worker host on another machine receives them:
// run on a ProcessJobPool for real and decoded back; a name the pool lacks (.unknownJob,
// nothing queued), bytes a worker cannot decode, a payload over the frame limit, a job that
// crashes its worker, a deadline, and decoding the wrong type.
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct EncodedJobTests {
        let jobs: [any PoolJob.Type] = [SquareJob.self, ShoutJob.self, CommandJob.self]

        func makePool(frameLimit: Int? = nil) throws -> ProcessJobPool {
            var configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            if let frameLimit { configuration.maximumFrameBytes = frameLimit }
            return try ProcessJobPool(workers: 2, configuration: configuration, jobs: jobs)
        }

        @Test func encodedJobsRunAndTheirOutputsDecode() throws {
            let pool = try makePool()
            defer { pool.shutdown() }
            let squares = try (1...20).map { try pool.submit(EncodedJob(SquareJob(value: $0))) }
            let shout = try pool.submit(EncodedJob(ShoutJob(word: "fork")))
            #expect(try squares.map { try EncodedJob.decodeOutput(of: SquareJob.self, from: $0.get()) } == (1...20).map { $0 * $0 })
            #expect(try EncodedJob.decodeOutput(of: ShoutJob.self, from: shout.get()) == "FORK")
            // The bytes are the output's own encoding, as a worker makes it.
            #expect(try squares[2].get() == EncodedJob.encodeOutput(9, of: SquareJob.self))
        }

        @Test func anEncodedJobDecodesBackToItsValue() throws {
            let encoded = try EncodedJob(ShoutJob(word: "hello"))
            #expect(encoded.jobName == ShoutJob.jobName)
            #expect(try encoded.decode(as: ShoutJob.self).word == "hello")
            let wrongType = #expect(throws: ForkPoolError.self) { try encoded.decode(as: SquareJob.self) }
            #expect(wrongType?.code == .unknownJob)
            let garbage = #expect(throws: ForkPoolError.self) { try EncodedJob.decodeOutput(of: SquareJob.self, from: [0xFF, 0x01]) }
            #expect(garbage?.code == .decodingFailed)
            #expect(garbage?.jobName == SquareJob.jobName)
        }

        @Test func aNameThePoolLacksQueuesNothing() throws {
            let pool = try makePool()
            defer { pool.shutdown() }
            let error = #expect(throws: ForkPoolError.self) {
                try pool.submit(EncodedJob(jobName: "Elsewhere.Resize", payload: [1, 2, 3]))
            }
            #expect(error?.code == .unknownJob)
            #expect(error?.jobName == "Elsewhere.Resize")
            #expect(error?.message.contains(SquareJob.jobName) == true)
            #expect(pool.stats.queuedTasks == 0 && pool.dispatcher.taskIDs.load(ordering: .relaxed) == 1)
        }

        @Test func bytesAWorkerCannotDecodeFailOnlyThatJob() throws {
            let pool = try makePool()
            defer { pool.shutdown() }
            let bad = try pool.submit(EncodedJob(jobName: SquareJob.jobName, payload: [0xFF, 0xFF, 0xFF]))
            let error = #expect(throws: ForkPoolError.self) { try bad.get() }
            #expect(error?.code == .decodingFailed)
            #expect(error?.jobName == SquareJob.jobName)
            let good = try pool.submit(EncodedJob(SquareJob(value: 7)))
            #expect(try EncodedJob.decodeOutput(of: SquareJob.self, from: good.get()) == 49)
        }

        @Test func aPayloadOverTheFrameLimitIsRefusedBeforeQueueing() throws {
            let pool = try makePool(frameLimit: 4096)
            defer { pool.shutdown() }
            let error = #expect(throws: ForkPoolError.self) {
                try pool.submit(EncodedJob(ShoutJob(word: String(repeating: "a", count: 5000))))
            }
            #expect(error?.code == .frameTooLarge)
            #expect(pool.stats.queuedTasks == 0 && pool.dispatcher.taskIDs.load(ordering: .relaxed) == 1)
        }

        @Test func aJobThatCrashesItsWorkerFailsWithTheSignal() throws {
            let pool = try makePool()
            defer { pool.shutdown() }
            let crash = try pool.submit(EncodedJob(CommandJob(command: .segfault)))
            let error = #expect(throws: ForkPoolError.self) { try crash.get() }
            #expect(error?.code == .workerDied)
            #expect(error?.signal == SIGSEGV)
            let after = try pool.submit(EncodedJob(SquareJob(value: 3)))
            #expect(try EncodedJob.decodeOutput(of: SquareJob.self, from: after.get()) == 9)
        }

        @Test func anEncodedJobPastItsDeadlineIsStopped() throws {
            let pool = try makePool()
            defer { pool.shutdown() }
            let slow = try pool.submit(EncodedJob(CommandJob(command: .sleep(milliseconds: 30_000))), timeout: .milliseconds(200))
            let error = #expect(throws: ForkPoolError.self) { try slow.get() }
            #expect(error?.code == .timedOut)
            let refused = #expect(throws: ForkPoolError.self) {
                try pool.submit(EncodedJob(SquareJob(value: 1)), timeout: .zero)
            }
            #expect(refused?.code == .invalidArgument)
        }
    }
}
