// FrameReader: frames from a worker's shared ring and its socket. The wire's FrameParser cuts
// the stream into frames; this adds the one `recv` (SystemCall.receive) that feeds it, takes
// frames from the shared ring first (SharedRing: each slot's bytes copied into a parser of
// their own, which must find exactly one frame there), and turns errors into ForkPoolErrors.
//
//   ring slot ─── copy ──▶ FrameParser (one frame) ─┐
//   ring marker ─▶ the next frame is the socket's   ├─ nextFrame ─▶ header + payload to the caller
//   socket ── recv (fill) ──▶ FrameParser ──────────┘  (notes and doorbells taken out)
//
// FrameInbox holds a worker's one FrameReader: the dispatcher reads with it, or a caller on the
// worker's lane (the lane's state says who, under the dispatcher's lock).
import ForkPoolWire
import Glibc
import Synchronization

/// Accumulates bytes from a stream socket and cuts them into frames.
///
/// Used blocking by workers and non-blocking by the dispatcher.
struct FrameReader {
    enum FillStatus: Equatable {
        case received
        case wouldBlock
        case endOfStream
        /// End of stream too, but the peer closed its end with bytes of ours still unread in
        /// it (the kernel's ECONNRESET): whatever we sent last, it never read.
        case endOfStreamWithOursUnread
    }

    private var parser: FrameParser
    /// The shared ring's frames, one slot at a time.
    private var ringParser: FrameParser
    /// The worker's shared ring (frames come from it first), or nil: the socket only.
    var ring: SharedRing?
    /// The ring's last slot was a marker: the next frame (not a note, not a doorbell) is the socket's.
    private(set) var awaitsSocketFrame = false
    /// A ring slot's bytes, copied out of the shared region.
    private var ringScratch: [UInt8] = []

    init(maximumPayloadBytes: Int, directTailBytes: Int = 1 << 20, ring: SharedRing? = nil) {
        _ = installHugePageAdvice
        parser = FrameParser(maximumPayloadBytes: maximumPayloadBytes, directTailBytes: directTailBytes)
        ringParser = FrameParser(maximumPayloadBytes: maximumPayloadBytes, directTailBytes: Int.max)
        self.ring = ring
    }

    /// After a lone task's reply: whether anything else came (the socket may also hold
    /// doorbells, with a ring: only the ring's next frame counts then).
    var holdsMoreAfterReply: Bool { ring == nil ? bufferedByteCount > 0 : ringHasFrame }

    /// Whether the ring has a frame (or a marker) this reader has not taken.
    var ringHasFrame: Bool { !awaitsSocketFrame && ring?.hasIncoming == true }

    /// Before sleeping in poll on the socket: raises the ring's `asleep` flag so the producer
    /// rings; false if a frame came meanwhile (do not sleep). Always true without a ring or while
    /// a socket frame is awaited (its bytes wake the poll).
    func prepareToSleep() -> Bool {
        guard let ring, !awaitsSocketFrame else { return true }
        return ring.prepareToSleep()
    }

    /// After sleeping: producers need not ring any more.
    func wokeUp() { ring?.wokeUp() }

    var maximumPayloadBytes: Int { parser.maximumPayloadBytes }
    /// Bytes held for a frame not yet complete.
    var bufferedByteCount: Int { parser.bufferedByteCount }
    /// Bytes allocated for buffering (tests check that a hostile length does not grow it).
    var capacity: Int { parser.capacity }

    /// Appends bytes as if received.
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(ForkPoolError) {
        do { try parser.append(bytes) } catch { throw ForkPoolError(error) }
    }

    /// Receives once from `fd` (retrying EINTR); `wait: false` returns `.wouldBlock` rather
    /// than block on a blocking socket. Throws on a socket error.
    mutating func fill(from fd: CInt, wait: Bool = true) throws(ForkPoolError) -> FillStatus {
        var result = IOResult.wouldBlock
        do {
            _ = try parser.receive { space in
                result = SystemCall.receive(fd, into: space, wait: wait)
                if case .transferred(let count) = result { return count }
                return 0
            }
        } catch {
            throw ForkPoolError(error)
        }
        switch result {
        case .transferred: return .received
        case .wouldBlock: return .wouldBlock
        case .endOfStream: return .endOfStream
        // A peer that closed its end with bytes of ours still unread (a worker that died with
        // tasks sent behind the one it ran) makes the kernel report ECONNRESET: the same end
        // of stream, after everything it wrote has been read.
        case .failed(errno: ECONNRESET): return .endOfStreamWithOursUnread
        case .failed(let number): throw ForkPoolError(.systemCallFailed, "recv failed", errno: number)
        }
    }

    /// Where `workerNote` frames go (the parent's side of a worker's socket): they are taken
    /// out of the stream here, so no reader of replies ever sees one. nil: handed on as any frame.
    var notes: WorkerNotes?

    /// Hands the next complete frame to `body`, or returns nil if none is complete yet.
    /// The payload view is valid only inside `body`. A split frame received straight into its
    /// own array is handed over whole (head and tail copied together).
    mutating func nextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer) -> R) throws(ForkPoolError) -> R? {
        try nextFrame { header, payload, tail in
            guard let tail else { return body(header, payload) }
            return (Array(payload) + tail).withUnsafeBytes { body(header, $0) }
        }
    }

    /// Hands the next complete frame to `body`: its header, its payload and — for a split
    /// frame whose tail was received straight into its own array — that array, the payload
    /// view then holding only the bytes before it. Returns nil if no frame is complete yet.
    /// With a ring, its frames come first, in order, the socket's only where a marker says so.
    mutating func nextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer, [UInt8]?) -> R) throws(ForkPoolError) -> R? {
        while true {
            if let ring, !awaitsSocketFrame {
                var scratch = ringScratch
                ringScratch = []  // uniquely referenced while it is written
                defer { ringScratch = scratch }
                switch try ring.receive({ bytes in
                    // Copied out of the shared region before a byte of it is looked at.
                    scratch.removeAll(keepingCapacity: true)
                    scratch.append(contentsOf: bytes)
                }) {
                case .frame:
                    return try takeRingFrame(scratch, body)
                case .onSocket:
                    awaitsSocketFrame = true
                case .empty:
                    break
                }
            }
            var skipped = false
            var badNote = false
            let unmarked = ring != nil && !awaitsSocketFrame
            let result: R??
            do {
                result = try parser.nextFrame { header, payload, tail -> R? in
                    switch header.kind {
                    case .workerNote where notes != nil:
                        skipped = true
                        if let note = WorkerNote(payload: payload) { notes?.record(note) } else { badNote = true }
                        return nil
                    case .doorbell:
                        skipped = true
                        return nil
                    default:
                        if unmarked { return nil }  // never handed on: the protocol is broken
                        return body(header, payload, tail)
                    }
                }
            } catch {
                throw ForkPoolError(error)
            }
            if badNote { throw ForkPoolError(.malformedFrame, "worker sent a note that is not one") }
            if skipped { continue }
            guard let result else { return nil }
            if unmarked {
                throw ForkPoolError(.malformedFrame, "an unexpected frame came on the socket without its marker in the shared ring")
            }
            awaitsSocketFrame = false
            return result
        }
    }

    /// The one frame a ring slot held (copied out), to `body`; a slot with more or less than
    /// one whole frame breaks the protocol.
    private mutating func takeRingFrame<R>(_ bytes: [UInt8],
                                           _ body: (FrameHeader, UnsafeRawBufferPointer, [UInt8]?) -> R) throws(ForkPoolError) -> R {
        let declared = bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self))) }
        guard bytes.count == FrameHeader.size + declared else {
            throw ForkPoolError(.malformedFrame, "a shared ring slot of \(bytes.count) bytes holds a frame of \(declared) payload bytes")
        }
        let result: R??
        do throws(FrameError) {
            var appendError: FrameError?
            bytes.withUnsafeBytes { raw in
                do throws(FrameError) { try ringParser.append(raw) } catch { appendError = error }
            }
            if let appendError { throw appendError }
            result = try ringParser.nextFrame { header, payload, _ -> R? in
                header.kind == .workerNote || header.kind == .doorbell ? nil : body(header, payload, nil)
            }
        } catch {
            ringParser = FrameParser(maximumPayloadBytes: ringParser.maximumPayloadBytes, directTailBytes: Int.max)
            throw ForkPoolError(error)
        }
        guard let result, let result else {
            throw ForkPoolError(.malformedFrame, "a shared ring slot held a frame that does not travel in one")
        }
        return result
    }
}

/// The frames received from one worker, in one reader that whoever holds the socket uses:
/// the dispatcher, or a caller reading by lane (the dispatcher's lock orders the hand-over).
/// The worker owns it; its lane, when it has one, borrows it.
final class FrameInbox: @unchecked Sendable {
    var reader: FrameReader
    /// What the worker's sandbox said about it, taken out of the frames whoever reads them.
    let notes = WorkerNotes()

    init(maximumPayloadBytes: Int, ring: SharedRing? = nil) {
        reader = FrameReader(maximumPayloadBytes: maximumPayloadBytes, ring: ring)
        reader.notes = notes
    }
}

/// The last note a worker's sandbox sent about it (ForkPoolWire's `WorkerNote`): read by the
/// dispatcher when the worker dies, written by whoever reads its socket (the dispatcher, or a
/// caller reading by lane).
final class WorkerNotes: Sendable {
    private let last = Mutex<(note: WorkerNote?, crashedTask: UInt64?)>((nil, nil))

    /// Keeps `note` as the latest, except which job crashed the worker, kept apart (the notes
    /// its sandbox sends as it dies come after it).
    func record(_ note: WorkerNote) {
        last.withLock {
            if case .crashedInTask(let id) = note { $0.crashedTask = id } else { $0.note = note }
        }
    }

    var latest: WorkerNote? { last.withLock { $0.note } }
    /// The task whose job ran on the faulting thread of a worker that ran several at once.
    var crashedTask: UInt64? { last.withLock { $0.crashedTask } }
}

/// Large received arrays (≥ 4 MiB) ask for transparent huge pages: installed once, before the
/// first frame is read in this process.
private let installHugePageAdvice: Void = LargeByteArrays.install { start, byteCount in
    _ = madvise(start, byteCount, MADV_HUGEPAGE)  // advice only: where refused, pages fault one by one
}

extension ForkPoolError {
    /// A frame that broke the protocol, as the error the pools report.
    init(_ frameError: FrameError) {
        let code: Code = switch frameError.code {
        case .malformedFrame: .malformedFrame
        case .frameTooLarge: .frameTooLarge
        }
        self.init(code, frameError.message, taskID: frameError.taskID)
    }
}

extension FailureReason {
    /// The error code a worker's failure frame is reported with.
    var code: ForkPoolError.Code {
        switch self {
        case .workThrew: .workFailed
        case .inputDecodingFailed: .decodingFailed
        case .outputEncodingFailed: .encodingFailed
        case .outputTooLarge: .frameTooLarge
        case .unknownJob: .malformedFrame
        }
    }
}
