// map(_:chunkSize:) on both pools: order, per-item failures, frame-limit splitting, and a
// worker dying with a whole chunk.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

extension ForkPoolTests {
    @Suite struct ChunkedMapTests {
        @Test(arguments: [1, 2, 7, 100, 5000])
        func chunkedMapEqualsSequential(chunkSize: Int) throws {
            let inputs = Array(0..<1000)
            let processes = try ProcessPool(workers: 2) { (n: Int) -> Int in n &* 31 &+ 7 }
            defer { processes.shutdown() }
            let threads = try ThreadPool(workers: 2) { (n: Int) -> Int in n &* 31 &+ 7 }
            defer { threads.shutdown() }
            let expected = inputs.map { $0 &* 31 &+ 7 }
            #expect(try processes.map(inputs, chunkSize: chunkSize) == expected)
            // Not an array: read one input at a time instead of a slice at a time.
            #expect(try processes.map(inputs.lazy.map { $0 }, chunkSize: chunkSize) == expected)
            #expect(try threads.map(inputs, chunkSize: chunkSize) == expected)
            #expect(try processes.map([Int](), chunkSize: chunkSize) == [])
        }

        @Test func eachItemOfAChunkFailsOnItsOwn() throws {
            let pool = try ProcessPool(workers: 2, work: obey)
            defer { pool.shutdown() }
            let error = expectForkPoolError {
                _ = try pool.map([.square(1), .square(2), .fail("item three"), .square(4)], chunkSize: 4)
            }
            #expect(error?.code == .workFailed)
            #expect(error?.message.contains("item three") == true)
            #expect(try pool.map((1...9).map(Command.square), chunkSize: 4) == (1...9).map { $0 * $0 })
        }

        @Test func aBatchReplyWithTheWrongNumberOfOutputsOrGarbageIsRejected() throws {
            let codec = PayloadCodec<[Int]>()
            let chunk = ChunkCompletion(id: 7, count: 3, codec: codec)
            var short: [UInt8] = []
            try codec.encode([1, 2], into: &short)
            guard case .failure(let error) = short.withUnsafeBytes({ chunk.outputs(from: $0, worker: 42) }) else {
                Issue.record("two outputs for three inputs were accepted")
                return
            }
            #expect(error.code == .malformedFrame)
            #expect(error.processID == 42)
            #expect(error.taskID == 7)
            let garbage: [UInt8] = [0xFF, 0x13, 0x00]
            guard case .failure(let decoding) = garbage.withUnsafeBytes({ chunk.outputs(from: $0, worker: 42) }) else {
                Issue.record("garbage was accepted as outputs")
                return
            }
            #expect(decoding.code == .decodingFailed)
            var exact: [UInt8] = []
            try codec.encode([4, 5, 6], into: &exact)
            #expect(try exact.withUnsafeBytes { chunk.outputs(from: $0, worker: 42) }.get() == [4, 5, 6])
        }

        @Test func chunksSplitToStayUnderTheFrameLimit() throws {
            let pool = try ProcessPool(workers: 2, configuration: .with { $0.maximumFrameBytes = 256 }) { (text: String) -> Int in text.count }
            defer { pool.shutdown() }
            let inputs = (0..<100).map { String(repeating: "a", count: 20 + $0 % 7) }
            #expect(try pool.map(inputs, chunkSize: 50) == inputs.map(\.count))
            #expect(try pool.map(inputs.lazy.map { $0 }, chunkSize: 50) == inputs.map(\.count))
            let tooBig = expectForkPoolError { _ = try pool.map(["ok", String(repeating: "b", count: 300)], chunkSize: 10) }
            #expect(tooBig?.code == .frameTooLarge)
        }

        @Test func workerDyingMidChunkFailsThatChunkAndThePoolGoesOn() throws {
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.workerCrashBacktraces = false }, work: obey)
            defer { pool.shutdown() }
            let error = expectForkPoolError { _ = try pool.map([.square(1), .exit(9), .square(3)], chunkSize: 3) }
            #expect(error?.code == .workerDied)
            #expect(error?.exitStatus == 9)
            try expectPoolServesWithFullStrength(pool)
        }

        @Test func chunkSizeBelowOneIsAnInvalidArgument() throws {
            let pool = try ProcessPool(workers: 1) { (n: Int) -> Int in n }
            defer { pool.shutdown() }
            #expect(expectForkPoolError { _ = try pool.map([1], chunkSize: 0) }?.code == .invalidArgument)
            let threads = try ThreadPool(workers: 1) { (n: Int) -> Int in n }
            defer { threads.shutdown() }
            #expect(expectForkPoolError { _ = try threads.map([1], chunkSize: -1) }?.code == .invalidArgument)
        }
    }
}

/// Work that reports its pid to `reportFD` (when given), then waits for one byte at `gateFD`
/// (at most 60 s: `Int.min` then, a gate never opened) and returns its input. Plain file
/// descriptors, so a forked worker has them too.
func reportThenWaitAtGate(reportFD: Int32?, gateFD: Int32) -> @Sendable (Int) -> Int {
    { n in
        if let reportFD {
            var pid = getpid()
            _ = write(reportFD, &pid, MemoryLayout<pid_t>.size)
        }
        var entry = pollfd(fd: gateFD, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 60_000) > 0 else { return Int.min }
        var byte: UInt8 = 0
        _ = read(gateFD, &byte, 1)
        return n
    }
}

/// Maps 100 counted inputs on a two-worker `pool` whose tasks report at `started` and wait at
/// `gate`: with both workers held, eager consumption would have pulled all 100; the window is
/// at most workers × 4 chunks (while probing, one input each).
func expectALazyBoundedWindow(_ pool: any WorkerPool<Int, Int>, started: PIDPipe, gate: Gate) throws {
    let pulled = ConditionLockedCounter()
    let result = LockedBox<[Int]>()
    let mapper = try PosixThread.start(name: "mapper") {
        result.value = try? pool.map(CountingSequence(count: 100, pulled: pulled))
    }
    _ = started.nextPID()
    _ = started.nextPID()
    #expect(pulled.value <= 8, "pulled \(pulled.value) of 100 inputs while no task could finish")
    gate.open(100)
    mapper.join()
    #expect(result.value == Array(0..<100))
    #expect(pulled.value == 100)
}

/// A sequence that counts how many elements have been pulled from it.
struct CountingSequence: Sequence {
    let count: Int
    let pulled: ConditionLockedCounter

    func makeIterator() -> AnyIterator<Int> {
        var next = 0
        return AnyIterator {
            guard next < count else { return nil }
            pulled.add(1)
            next += 1
            return next - 1
        }
    }
}

extension ForkPoolTests {
    @Suite struct AutomaticChunkingTests {
        @Test func fastTasksAreBatched() throws {
            let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in n + 1 }
            defer { pool.shutdown() }
            let before = pool.tasksCreated
            #expect(try pool.map(Array(0..<20_000)) == Array(1...20_000))
            let frames = pool.tasksCreated - before
            #expect(frames < 2_000, "20,000 fast tasks went out in \(frames) frames")
        }

        @Test func slowTasksAreNotBatched() throws {
            let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in
                usleep(5_000)
                return n
            }
            defer { pool.shutdown() }
            let before = pool.tasksCreated
            #expect(try pool.map(Array(0..<20)) == Array(0..<20))
            #expect(pool.tasksCreated - before == 20)
        }

        @Test func inputIsConsumedLazilyWithABoundedWindow() throws {
            // Made before the pool, so its workers inherit them: every task reports that it
            // started, then waits at the gate. While the gate is shut no chunk can complete, so
            // what the map has pulled by then is its window, not a race against the clock.
            let started = PIDPipe(), gate = Gate()
            let pool = try ProcessPool(workers: 2, work: reportThenWaitAtGate(reportFD: started.writeEnd, gateFD: gate.readEnd))
            defer { pool.shutdown() }
            try expectALazyBoundedWindow(pool, started: started, gate: gate)
        }

        /// A ThreadPool chunks as a ProcessPool does: the same map (lazy input, a bounded
        /// window, chunk sizes from the time per input).
        @Test func aThreadPoolBatchesFastTasksAndReadsItsInputLazily() async throws {
            let fast = try ThreadPool(workers: 2) { (n: Int) -> Int in n + 1 }
            defer { fast.shutdown() }
            let before = fast.tasksCreated
            #expect(try await fast.map(Array(0..<20_000)) == Array(1...20_000))
            let chunks = fast.tasksCreated - before
            #expect(chunks > 2 && chunks < 2_000, "20,000 fast tasks went out in \(chunks) chunks")

            let started = PIDPipe(), gate = Gate()
            let held = try ThreadPool(workers: 2, work: reportThenWaitAtGate(reportFD: started.writeEnd, gateFD: gate.readEnd))
            defer { held.shutdown() }
            try expectALazyBoundedWindow(held, started: started, gate: gate)
        }

        @Test func anInputThatCannotBeEncodedStopsTheMap() throws {
            let pool = try ProcessPool(workers: 2) { (value: Unencodable) -> Int in value.number }
            defer { pool.shutdown() }
            let inputs = (0..<5_000).map { Unencodable(number: $0 == 4_000 ? -1 : $0) }
            #expect(expectForkPoolError { _ = try pool.map(inputs) }?.code == .encodingFailed)
            #expect(try pool.map([Unencodable(number: 7)]) == [7])
        }
    }
}
