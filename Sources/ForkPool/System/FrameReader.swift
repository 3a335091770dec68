// FrameReader: frames from a worker socket. The wire's FrameParser cuts the stream into
// frames; this adds the one `recv` (SystemCall.receive) that feeds it and turns its errors
// into ForkPoolErrors.
//
//   socket ── recv (fill) ──▶ FrameParser ── nextFrame ──▶ header + payload to the caller
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

    init(maximumPayloadBytes: Int, directTailBytes: Int = 1 << 20) {
        _ = installHugePageAdvice
        parser = FrameParser(maximumPayloadBytes: maximumPayloadBytes, directTailBytes: directTailBytes)
    }

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
    mutating func nextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer, [UInt8]?) -> R) throws(ForkPoolError) -> R? {
        guard let notes else {
            do { return try parser.nextFrame(body) } catch { throw ForkPoolError(error) }
        }
        while true {
            var noted: WorkerNote??
            let result: R??
            do {
                result = try parser.nextFrame { header, payload, tail -> R? in
                    guard header.kind == .workerNote else { return body(header, payload, tail) }
                    noted = .some(WorkerNote(payload: payload))
                    return nil
                }
            } catch {
                throw ForkPoolError(error)
            }
            guard let noted else { return result ?? nil }
            guard let note = noted else {
                throw ForkPoolError(.malformedFrame, "worker sent a note that is not one")
            }
            notes.record(note)
        }
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
