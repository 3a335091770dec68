// The frame reader on a real socketpair: split and coalesced frames, end of stream, and
// hostile headers rejected before anything is allocated for them.
import CForkShim
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

extension ForkPoolTests {
    @Suite struct FrameTests {
        /// A socketpair closed at the end of the test.
        final class Pair {
            let writer: Int32
            let reader: Int32
            init() {
                var fds: [Int32] = [0, 0]
                precondition(forkpool_socketpair(&fds) == 0)
                writer = fds[0]
                reader = fds[1]
                precondition(forkpool_set_nonblocking(reader) == 0)
            }
            deinit {
                close(writer)
                close(reader)
            }
            func send(_ bytes: [UInt8]) {
                try! sendAll(writer, bytes)
            }
        }

        func frame(_ kind: FrameKind, id: UInt64, payload: [UInt8]) -> [UInt8] {
            var bytes = FrameHeader.emptyFrame()
            bytes.append(contentsOf: payload)
            FrameHeader(kind: kind, length: payload.count, taskID: id).write(into: &bytes)
            return bytes
        }

        @Test func readsCoalescedAndSplitFrames() throws {
            let pair = Pair()
            var reader = FrameReader(maximumPayloadBytes: 1 << 20)
            let first = frame(.result, id: 7, payload: [1, 2, 3])
            let second = frame(.failure, id: 8, payload: Array(repeating: 9, count: 100_000))
            pair.send(first + second.prefix(10))
            #expect(try reader.fill(from: pair.reader) == .received)
            let got = try reader.nextFrame { header, payload in (header, Array(payload)) }
            #expect(got?.0 == FrameHeader(kind: .result, length: 3, taskID: 7))
            #expect(got?.1 == [1, 2, 3])
            #expect(try reader.nextFrame { _, _ in 0 } == nil)  // only 10 bytes of the second
            pair.send(Array(second.dropFirst(10)))
            var payload: [UInt8]?
            while payload == nil {
                _ = try reader.fill(from: pair.reader)
                payload = try reader.nextFrame { header, bytes in
                    #expect(header.taskID == 8)
                    return Array(bytes)
                }
            }
            #expect(payload == Array(repeating: 9, count: 100_000))
            #expect(try reader.fill(from: pair.reader) == .wouldBlock)
            #expect(reader.bufferedByteCount == 0)
        }

        @Test func aTaskSentByLaneCarriesTheDirectFlagThroughTheSocket() throws {
            let pair = Pair()
            var reader = FrameReader(maximumPayloadBytes: 1024)
            var direct = FrameHeader.emptyFrame()
            direct.append(contentsOf: [4, 5])
            FrameHeader(kind: .task, length: 2, taskID: 9, sentByLane: true).write(into: &direct)
            #expect(direct[3] == FrameHeader.sentByLaneFlag)
            pair.send(direct + frame(.task, id: 10, payload: [6]))
            _ = try reader.fill(from: pair.reader)
            #expect(try reader.nextFrame { header, payload in header.sentByLane && header.taskID == 9 && Array(payload) == [4, 5] } == true)
            #expect(try reader.nextFrame { header, _ in header.sentByLane || header.taskID != 10 } == false)
        }

        @Test func reportsEndOfStream() throws {
            var fds: [Int32] = [0, 0]
            #expect(forkpool_socketpair(&fds) == 0)
            close(fds[0])
            var reader = FrameReader(maximumPayloadBytes: 1024)
            #expect(try reader.fill(from: fds[1]) == .endOfStream)
            close(fds[1])
        }

        @Test func overLimitLengthIsRejectedWithoutAllocating() throws {
            let pair = Pair()
            var reader = FrameReader(maximumPayloadBytes: 1 << 20)
            let capacity = reader.capacity
            var header = [UInt8](repeating: 0, count: FrameHeader.size)
            FrameHeader(kind: .result, length: Int(UInt32.max), taskID: 1).write(into: &header)
            pair.send(header)
            #expect(try reader.fill(from: pair.reader) == .received)
            let error = expectForkPoolError { _ = try reader.nextFrame { _, _ in 0 } }
            #expect(error?.code == .frameTooLarge)
            #expect(error?.message.contains("\(UInt32.max)") == true)
            // Asking for more bytes must not grow the buffer towards 4 GiB either.
            #expect(expectForkPoolError { _ = try reader.fill(from: pair.reader) }?.code == .frameTooLarge)
            #expect(reader.capacity == capacity)
        }

        @Test(arguments: [
            ([2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "version"),
            ([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "kind"),
            ([1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "kind"),
            ([1, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "unknown flags"),
            ([1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "sent-by-lane flag"),
            // A split longer than the payload, and a split on a kind that never has a tail.
            ([1, 1, 5, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "split"),
            ([1, 3, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8], "split"),
        ])
        func malformedHeadersAreRejected(header: [UInt8], mentions word: String) throws {
            let pair = Pair()
            var reader = FrameReader(maximumPayloadBytes: 1024)
            pair.send(header)
            _ = try reader.fill(from: pair.reader)
            let error = expectForkPoolError { _ = try reader.nextFrame { _, _ in 0 } }
            #expect(error?.code == .malformedFrame)
            #expect(error?.message.contains(word) == true)
        }

        @Test func aWorkerNoteIsTakenOutOfTheStreamAndABadOneIsAMalformedFrame() throws {
            // A note (kind 9: a forbidden call, number 42) between two results: the reader of
            // replies sees only the results, and the note is kept for the worker's death.
            func frame(kind: UInt8, payload: [UInt8]) -> [UInt8] {
                [1, kind, 0, 0] + withUnsafeBytes(of: UInt32(payload.count).littleEndian, Array.init) + [UInt8](repeating: 0, count: 8)
                    + payload
            }
            let note = [1] + withUnsafeBytes(of: UInt64(42).littleEndian, Array.init)
            let pair = Pair()
            var reader = FrameReader(maximumPayloadBytes: 1024)
            let notes = WorkerNotes()
            reader.notes = notes
            pair.send(frame(kind: 2, payload: [7]) + frame(kind: 9, payload: note) + frame(kind: 2, payload: [8]))
            _ = try reader.fill(from: pair.reader)
            #expect(try reader.nextFrame { _, payload in Array(payload) } == [7])
            #expect(notes.latest == nil)
            #expect(try reader.nextFrame { _, payload in Array(payload) } == [8])
            #expect(notes.latest == .forbiddenSystemCall(number: 42))
            // A note that is not one: too short, an unknown kind, a number past 32 bits.
            for bad in [[1, 2] as [UInt8], [7] + note.dropFirst(), [1] + withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init)] {
                let pair = Pair()
                var reader = FrameReader(maximumPayloadBytes: 1024)
                reader.notes = WorkerNotes()
                pair.send(frame(kind: 9, payload: bad))
                _ = try reader.fill(from: pair.reader)
                #expect(expectForkPoolError { _ = try reader.nextFrame { _, _ in 0 } }?.code == .malformedFrame)
            }
        }

        @Test func aSplitFrameIsReceivedStraightIntoItsTailArrayAndTheNextFrameFollows() throws {
            // A task frame whose payload is 3 prefix bytes and a 300,000-byte raw tail, then a
            // small frame, sent through a real socket in one stream: the reader must hand over
            // the prefix and the tail as its own array, then the next frame intact.
            let pair = Pair()
            let tail = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
            var first = FrameHeader.emptyFrame()
            first += [0xAA, 0xBB, 0xCC]
            FrameHeader(kind: .task, length: 3 + tail.count, taskID: 9, split: 3).write(into: &first)
            var second = FrameHeader.emptyFrame()
            second += [1, 2]
            FrameHeader(kind: .task, length: 2, taskID: 10).write(into: &second)
            let writerFD = pair.writer
            let (head, rest) = (first, tail + second)
            let writer = try PosixThread.start(name: "frame-writer") { try? sendAll(writerFD, head, tail: rest) }
            var reader = FrameReader(maximumPayloadBytes: 1 << 20, directTailBytes: 1000)
            var frames: [(FrameHeader, [UInt8], [UInt8]?)] = []
            while frames.count < 2 {
                if let frame = try reader.nextFrame({ header, payload, tail in (header, Array(payload), tail) }) {
                    frames.append(frame)
                } else {
                    var ready = pollfd(fd: pair.reader, events: Int16(POLLIN), revents: 0)
                    #expect(poll(&ready, 1, 60_000) == 1)  // a hang guard only
                    #expect(try reader.fill(from: pair.reader) != .endOfStream)
                }
            }
            writer.join()
            #expect(frames[0].0.taskID == 9 && frames[0].0.split == 3)
            #expect(frames[0].1 == [0xAA, 0xBB, 0xCC])
            #expect(frames[0].2 == tail)
            #expect(frames[1].0.taskID == 10 && frames[1].1 == [1, 2] && frames[1].2 == nil)
            // The reader's own buffer never grew for the tail.
            #expect(reader.capacity <= 64 * 1024 + FrameHeader.size)
        }

        /// In a child process where SIGPIPE has its default action (see
        /// `writingToAWorkerThatDiedNeverRaisesSIGPIPE`).
        @Test func sendToADeadPeerFailsWithEPIPEInsteadOfSIGPIPE() async {
            await #expect(processExitsWith: .success) {
                signal(SIGPIPE, SIG_DFL)
                var fds: [Int32] = [0, 0]
                #expect(forkpool_socketpair(&fds) == 0)
                close(fds[1])
                let error = expectForkPoolError { try sendAll(fds[0], [UInt8](repeating: 1, count: 64)) }
                #expect(error?.errno == EPIPE)
                close(fds[0])
            }
        }
    }
}
