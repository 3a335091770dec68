// The shared-memory rings between the pool and its workers: frames through slots and markers,
// the sleeping flags, a reader fuzzed with random regions, and workers that scribble on their
// rings for real (each killed, its task failing with `.malformedFrame`, the pool serving on).
import CFaultInjection
import CForkShim
import ForkPoolTestSupport
import ForkPoolWire
import Foundation
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @testable import ForkPool

/// A region as the fork server makes it, for both ends in one process.
private final class TestRegion {
    let base: UnsafeMutableRawPointer
    init() {
        base = UnsafeMutableRawPointer.allocate(byteCount: SharedRing.regionBytes, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: SharedRing.regionBytes)
    }
    deinit { base.deallocate() }
    var pool: SharedRing { SharedRing(region: base, side: .pool, unmapsRegion: false) }
    var worker: SharedRing { SharedRing(region: base, side: .worker, unmapsRegion: false) }
}

/// xorshift64*: the fuzz's random bytes, the same on every run.
private struct Scrambler {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

private func frame(_ kind: FrameKind, taskID: UInt64, payload: [UInt8]) -> [UInt8] {
    var bytes = FrameHeader.emptyFrame()
    bytes.append(contentsOf: payload)
    FrameHeader(kind: kind, length: payload.count, taskID: taskID).write(into: &bytes)
    return bytes
}

/// How a task's worker damages its completion ring before it would reply (it never does).
enum Scribble: String, Codable, Sendable, CaseIterable {
    /// The next slot's sequence number far ahead of the expected one.
    case sequenceAhead
    /// The expected sequence number with a length past the slot.
    case lengthPastTheSlot
    /// The expected sequence number and length, over bytes that are no frame.
    case bytesThatAreNoFrame
    /// The whole completion ring, and the control page, random.
    case wholeRegion
    /// A well-formed reply for the task itself, under a sequence number from a later lap.
    case wellFormedReplyOutOfSequence
    /// A well-formed reply for the task itself with stray bytes after it in the same slot.
    case replyWithStrayBytesInItsSlot
}

/// In the worker: damages its ring as `scribble` says, then sleeps (the pool kills it).
func scribbleOnRing(_ scribble: Scribble) -> Never {
    guard let ring = WorkerLoop.ringInThisWorker else { exitLikeUserCode(3) }
    let slot = ring.region + SharedRing.Ring.toPool.slots + Int(ring.sent % SharedRing.slotCount) * SharedRing.slotBytes
    switch scribble {
    case .sequenceAhead:
        slot.storeBytes(of: ring.sent + 1000, as: UInt64.self)
    case .lengthPastTheSlot:
        slot.storeBytes(of: UInt32(0xFFFF_0000), toByteOffset: 8, as: UInt32.self)
        slot.storeBytes(of: ring.sent + 1, as: UInt64.self)
    case .bytesThatAreNoFrame:
        for offset in 0..<40 { slot.storeBytes(of: UInt8(truncatingIfNeeded: offset &* 37 &+ 11), toByteOffset: 16 + offset, as: UInt8.self) }
        slot.storeBytes(of: UInt32(40), toByteOffset: 8, as: UInt32.self)
        slot.storeBytes(of: ring.sent + 1, as: UInt64.self)
    case .wellFormedReplyOutOfSequence, .replyWithStrayBytesInItsSlot:
        var reply = FrameHeader.emptyFrame()
        try? PayloadCodec<Int>().encode(7, into: &reply)
        FrameHeader(kind: .result, length: reply.count - FrameHeader.size, taskID: ring.takenTaskID).write(into: &reply)
        let lap = scribble == .wellFormedReplyOutOfSequence ? SharedRing.slotCount : 0
        if scribble == .replyWithStrayBytesInItsSlot { reply += [1, 2, 3, 4, 5] }
        reply.withUnsafeBytes { (slot + SharedRing.slotHeaderBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        slot.storeBytes(of: UInt32(reply.count), toByteOffset: 8, as: UInt32.self)
        slot.storeBytes(of: ring.sent + 1 + lap, as: UInt64.self)
    case .wholeRegion:
        var scrambler = Scrambler(state: UInt64(getpid()) | 1)
        for offset in stride(from: 0, to: SharedRing.Ring.toPool.slots + Int(SharedRing.slotCount) * SharedRing.slotBytes, by: 8)
        where offset >= SharedRing.Ring.toPool.slots || offset < 4096 {
            (ring.region + offset).storeBytes(of: scrambler.next(), as: UInt64.self)
        }
    }
    ring.wakeConsumer(through: WorkerLoop.socketInThisWorker)
    while true { pause() }
}

/// Makes any running task count as short, so a queued task is sent behind it; returns what
/// puts the threshold back.
private func everyTaskCountsAsShort() -> () -> Void {
    let saved = WorkerProcess.pipelineTaskNanoseconds
    WorkerProcess.pipelineTaskNanoseconds = 10_000_000_000
    return { WorkerProcess.pipelineTaskNanoseconds = saved }
}

extension ForkPoolTests {
    @Suite struct SharedRingTests {
        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        @Test func framesGoThroughSlotsInOrderAndOneOverASlotByMarkerAndSocket() throws {
            let region = TestRegion()
            let (pool, worker) = (region.pool, region.worker)
            var fds: [CInt] = [-1, -1]
            #expect(forkpool_socketpair(&fds) == 0)
            defer { fds.forEach { close($0) } }
            var reader = FrameReader(maximumPayloadBytes: 1 << 20, ring: pool)
            let small = frame(.result, taskID: 1, payload: [1, 2, 3])
            let large = frame(.result, taskID: 2, payload: [UInt8](repeating: 7, count: 10_000))
            let after = frame(.failure, taskID: 3, payload: [1])
            #expect(try small.withUnsafeBytes { try worker.publish($0) } == .published)
            #expect(try large.withUnsafeBytes { try worker.publish($0) } == .onSocket)
            #expect(try after.withUnsafeBytes { try worker.publish($0) } == .published)
            var seen: [UInt64] = []
            #expect(try reader.nextFrame { header, _ in seen.append(header.taskID) } != nil)
            // The marker: the socket's frame comes next, and nothing overtakes it.
            #expect(try reader.nextFrame { header, _ in seen.append(header.taskID) } == nil)
            #expect(reader.awaitsSocketFrame)
            try sendAll(fds[1], FrameHeader.doorbell)
            try sendAll(fds[1], large)
            while try reader.nextFrame({ (header: FrameHeader, payload: UnsafeRawBufferPointer) -> Int in
                seen.append(header.taskID)
                return payload.count
            }) == nil {
                _ = try reader.fill(from: fds[0])
            }
            #expect(try reader.nextFrame { header, _ in seen.append(header.taskID) } != nil)
            #expect(seen == [1, 2, 3])
            #expect(try reader.nextFrame { _, _ in } == nil)
        }

        @Test func aFullRingWaitsForItsConsumerAndTheSleepingFlagRingsOnce() throws {
            let region = TestRegion()
            let (pool, worker) = (region.pool, region.worker)
            let task = frame(.task, taskID: 9, payload: [0])
            for _ in 0..<SharedRing.slotCount {
                #expect(try task.withUnsafeBytes { try pool.publish($0) } == .published)
            }
            #expect(try task.withUnsafeBytes { try pool.publish($0) } == .full)
            #expect(try worker.receive { _ in } == .frame)
            #expect(try task.withUnsafeBytes { try pool.publish($0) } == .published)
            // Nobody asleep: no doorbell. Asleep with nothing waiting: one doorbell, then none.
            #expect(!pool.consumerNeedsWaking())
            for _ in 0..<SharedRing.slotCount { #expect(try worker.receive { _ in } == .frame) }
            #expect(worker.prepareToSleep())
            #expect(try task.withUnsafeBytes { try pool.publish($0) } == .published)
            #expect(pool.consumerNeedsWaking())
            #expect(!pool.consumerNeedsWaking())
            // Asleep with a frame already there: it does not sleep.
            #expect(!worker.prepareToSleep())
        }

        /// The pool maps only a region the worker cannot shrink under it (a shrunk mapping
        /// would fault on access): the right size, sealed against shrinking.
        @Test func aRegionThatIsNotSealedOrNotItsSizeIsRefused() throws {
            for (bytes, seal) in [(SharedRing.regionBytes, false), (SharedRing.regionBytes - 4096, true), (SharedRing.regionBytes, true)] {
                let fd = fault_make_memfd(bytes, seal ? 1 : 0)
                #expect(fd >= 0)
                let registered = try PoolDescriptors.register({ fd }, name: "memfd")
                let mapped = Result { () throws(ForkPoolError) in try SharedRing.mapping(memfd: registered) }
                if bytes == SharedRing.regionBytes && seal {
                    #expect((try? mapped.get()) != nil)
                } else {
                    #expect(throws: ForkPoolError.self) { try mapped.get() }
                }
            }
        }

        @Test func aConsumerCountOutsideWhatWasSentIsAFault() throws {
            let region = TestRegion()
            let pool = region.pool
            let task = frame(.task, taskID: 1, payload: [])
            for _ in 0..<SharedRing.slotCount { _ = try task.withUnsafeBytes { try pool.publish($0) } }
            (region.base + SharedRing.Ring.toWorker.consumed).storeBytes(of: SharedRing.slotCount + 5, as: UInt64.self)
            let error = expectForkPoolError { _ = try task.withUnsafeBytes { try pool.publish($0) } }
            #expect(error?.code == .malformedFrame)
        }

        /// The ring reader as the frame reader is fuzzed: random sequence numbers, lengths,
        /// bytes and counters in the worker's half of the region. Every read ends in a frame,
        /// nothing, or `.malformedFrame`/`.frameTooLarge`; never a crash or a read past the region.
        @Test func theRingReaderSurvivesRandomRegions() throws {
            var scrambler = Scrambler(state: 0x5EED_F00D)
            var frames = 0
            var faults = 0
            for round in 0..<3_000 {
                let region = TestRegion()
                var reader = FrameReader(maximumPayloadBytes: 1 << 16, ring: region.pool)
                let worker = region.worker
                // Some honest frames first, so the reader is somewhere in its ring.
                for index in 0..<Int(scrambler.next() % 80) {
                    let bytes = frame(.result, taskID: UInt64(index + 1), payload: [UInt8](repeating: 1, count: index))
                    if try bytes.withUnsafeBytes({ try worker.publish($0) }) == .full { break }
                    if scrambler.next() % 2 == 0 { _ = try reader.nextFrame { _, _ in } }
                }
                // Then damage: a few random words, a sequence number made to match, or a slot
                // made all random.
                let slots = SharedRing.Ring.toPool.slots
                for _ in 0..<(1 + Int(scrambler.next() % 6)) {
                    let slot = Int(scrambler.next() % SharedRing.slotCount)
                    let base = region.base + slots + slot * SharedRing.slotBytes
                    switch scrambler.next() % 5 {
                    case 0: base.storeBytes(of: scrambler.next(), as: UInt64.self)
                    case 1: base.storeBytes(of: UInt32(truncatingIfNeeded: scrambler.next()), toByteOffset: 8, as: UInt32.self)
                    case 2: base.storeBytes(of: UInt32(scrambler.next() % 5000), toByteOffset: 8, as: UInt32.self)
                    case 3:
                        for offset in stride(from: 16, to: 16 + Int(scrambler.next() % 256), by: 8) {
                            base.storeBytes(of: scrambler.next(), toByteOffset: offset, as: UInt64.self)
                        }
                    default: (region.base + [64, 128, 192, 256, 320][Int(scrambler.next() % 5)]).storeBytes(of: scrambler.next(), as: UInt64.self)
                    }
                    if scrambler.next() % 3 == 0 {
                        // The sequence number the reader expects next, over whatever is there.
                        let expected = reader.ring!.received + 1
                        (region.base + slots + Int((expected - 1) % SharedRing.slotCount) * SharedRing.slotBytes)
                            .storeBytes(of: expected, as: UInt64.self)
                    }
                }
                for _ in 0..<100 {
                    do {
                        guard try reader.nextFrame({ header, payload in
                            #expect(payload.count == header.length && header.length <= 1 << 16)
                        }) != nil else { break }
                        frames += 1
                    } catch {
                        #expect([.malformedFrame, .frameTooLarge].contains(error.code), "round \(round): \(error)")
                        faults += 1
                        break
                    }
                }
                #expect(reader.bufferedByteCount == 0)
            }
            #expect(frames > 1000 && faults > 500, "frames \(frames), faults \(faults)")
        }

        @Test(arguments: Scribble.allCases)
        func aWorkerThatScribblesOnItsRingIsKilledAndItsTaskFailsWithMalformedFrame(_ scribble: Scribble) throws {
            for lanes in [true, false] {
                var configuration = quiet
                configuration.usesDirectLanes = lanes
                let pool = try ProcessPool(workers: 1, configuration: configuration) { (scribble: Scribble?) -> Int in
                    if let scribble { scribbleOnRing(scribble) }
                    return Int(getpid())
                }
                defer { pool.shutdown() }
                let pid = pool.workerProcessIDs[0]
                let error = expectForkPoolError { _ = try pool.submit(scribble).get() }
                #expect(error?.code == .malformedFrame, "\(scribble): \(String(describing: error))")
                #expect(error?.processID == pid)
                #expect(waitUntil { liveness(of: pid) == .gone })
                let next = try pool.submit(Scribble?.none).get()
                #expect(next != Int(pid) && next > 0)
            }
        }

        /// A worker that dies after answering its task but before taking the one sent behind
        /// it (its ring holds that task's frame, its `taken` cell the answered task's id): the
        /// task behind never ran, so it runs on the replacement instead of failing as a crash.
        @Test func aTaskTheWorkerNeverTookBeforeItDiedRunsOnItsReplacement() throws {
            var configuration = quiet
            configuration.usesDirectLanes = false  // both through the dispatcher, the second sent behind the first
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let restore = everyTaskCountsAsShort()  // the second is sent behind the first while it runs
            defer { restore() }
            var attempts = 0
            while true {
                attempts += 1
                #expect(try pool.submit(.echo(0)).get() == 0)  // a task done: the worker may get one sent ahead
                let pid = pool.workerProcessIDs[0]
                let first = try pool.submit(.replyThenExitBeforeNextTask(value: 41))
                let second = try pool.submit(.echo(42))
                let answer = try first.get()
                if answer == Int.min {  // the second was not sent ahead this time: try again
                    #expect(try second.get() == 42)
                    #expect(attempts < 20, "the second task was never sent behind the first")
                    if attempts < 20 { continue } else { break }
                }
                #expect(answer == 41)
                #expect(try second.get() == 42, "the task the worker never took runs elsewhere")
                #expect(waitUntil { liveness(of: pid) == .gone })
                #expect(pool.stats.tasksFailed == 0)
                break
            }
        }

        /// A doorbell the worker never read (it found its task before sleeping) is still in its
        /// socket when that task kills it: the pool's recv then says "ours unread", which must
        /// not pass for "the task never got there" — the task ran, and runs once only.
        @Test func aTaskThatKillsItsWorkerRunsOnceEvenWithADoorbellUnread() throws {
            var configuration = quiet
            configuration.usesDirectLanes = false
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let restore = everyTaskCountsAsShort()
            defer { restore() }
            var checked = 0
            for attempt in 1...8 {
                let path = "/tmp/forkpool-ring-test-\(getpid())-\(attempt)"
                unlink(path)
                defer { unlink(path) }
                #expect(try pool.submit(.echo(0)).get() == 0)  // a task done: the worker may get one sent ahead
                let first = try pool.submit(.raiseSleepFlagThenWaitForNextTask(value: 1))
                let second = try pool.submit(.appendLineThenDie(path: path))
                let answer = try first.get()
                let error = expectForkPoolError { _ = try second.get() }
                if answer == Int.min { continue }  // not sent behind the first this time
                checked += 1
                #expect(error?.code == .workerDied)
                let runs = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").count ?? 0
                #expect(runs == 1, "the task that killed its worker ran \(runs) times")
            }
            #expect(checked > 0)
        }

        @Test func aFrameOnTheSocketWithoutItsMarkerIsAFault() throws {
            let pool = try ProcessPool(workers: 1, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            var header = FrameHeader.emptyFrame()
            FrameHeader(kind: .result, length: 0, taskID: pool.tasksCreated + 1).write(into: &header)
            let error = expectForkPoolError { _ = try pool.submit(.forgeReply(header)).get() }
            #expect(error?.code == .malformedFrame)
            #expect(error?.message.contains("without its marker") == true, "\(String(describing: error))")
        }

        @Test func withRingsOffEverythingGoesOnTheSocket() throws {
            var off = quiet
            off.usesSharedMemoryRings = false
            let pool = try ProcessPool(workers: 2, configuration: off, work: obey)
            defer { pool.shutdown() }
            #expect(try pool.submit(.echo(5)).get() == 5)
            #expect(try pool.map((0..<300).map { Command.echo($0) }, chunkSize: 1) == Array(0..<300))
            let error = expectForkPoolError { _ = try pool.submit(.segfault).get() }
            #expect(error?.code == .workerDied)
            #expect(try pool.submit(.echo(6)).get() == 6)
        }

        @Test func largeInputsAndOutputsCrossBySocketBetweenRingFrames() throws {
            let pool = try ProcessPool(workers: 1, configuration: quiet) { (bytes: [UInt8]) -> [UInt8] in bytes.reversed() }
            defer { pool.shutdown() }
            let sizes = [0, 10, 4_000, 4_100, 70_000, 2 << 20, 3]
            let futures = try sizes.map { size in try pool.submit((0..<size).map { UInt8(truncatingIfNeeded: $0) }) }
            for (size, future) in zip(sizes, futures) {
                #expect(try future.get() == (0..<size).map { UInt8(truncatingIfNeeded: $0) }.reversed())
            }
        }
    }
}
