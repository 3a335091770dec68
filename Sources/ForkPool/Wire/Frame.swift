// Frame: the unit on every worker socket, and the one reader and writer for it.
//
//   offset 0   version  UInt8   (FrameHeader.version)
//          1   kind     UInt8   (FrameKind)
//          2   reserved UInt16  (must be 0)
//          4   length   UInt32  payload bytes that follow the header, little-endian
//          8   task id  UInt64  little-endian
//         16   payload
//
// Parent → worker: `task` (payload = encoded input), `taskBatch` (payload = encoded [Input])
// and `shutdown`. Worker → parent: `result` (payload = encoded output), `resultBatch`
// (payload = encoded [Output], one per input) or `failure` (payload = FailureReason byte +
// UTF-8 message; for a batch, its first failing input's).
// A header is validated — version, kind, reserved bits, length against the configured
// maximum — before a single byte is reserved for its payload.
import CForkShim
import Glibc

enum FrameKind: UInt8 {
    case task = 1
    case result = 2
    case failure = 3
    case shutdown = 4
    /// Several inputs in one frame (`map`): the encoded `[Input]`.
    case taskBatch = 5
    /// The outputs of a whole `taskBatch`, in order: the encoded `[Output]`. A batch with a
    /// failing input is answered by a `failure` frame instead.
    case resultBatch = 6
    /// Worker → parent, once, before any task: the initializer ran; send tasks.
    case ready = 7
    /// Worker → parent, instead of `ready`: the initializer threw (payload: UTF-8 message);
    /// the worker then exits.
    case initializerFailed = 8
}

/// Why a worker answered a task with a `failure` frame (first payload byte).
enum FailureReason: UInt8 {
    case workThrew = 1
    case inputDecodingFailed = 2
    case outputEncodingFailed = 3
    case outputTooLarge = 4

    var code: ForkPoolError.Code {
        switch self {
        case .workThrew: .workFailed
        case .inputDecodingFailed: .decodingFailed
        case .outputEncodingFailed: .encodingFailed
        case .outputTooLarge: .frameTooLarge
        }
    }
}

struct FrameHeader: Equatable {
    static let size = 16
    static let version: UInt8 = 1

    var kind: FrameKind
    var length: Int
    var taskID: UInt64

    /// Writes this header over the first `size` bytes of `frame`.
    func write(into frame: inout [UInt8]) {
        frame.withUnsafeMutableBytes { raw in
            raw[0] = Self.version
            raw[1] = kind.rawValue
            raw[2] = 0
            raw[3] = 0
            raw.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: taskID.littleEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    /// Reads and validates a header. `bytes` holds at least `size` bytes.
    static func parse(_ bytes: UnsafeRawBufferPointer, maximumPayloadBytes: Int) throws(ForkPoolError) -> FrameHeader {
        guard bytes[0] == version else {
            throw ForkPoolError(.malformedFrame, "frame has version \(bytes[0]); expected \(version)")
        }
        guard let kind = FrameKind(rawValue: bytes[1]) else {
            throw ForkPoolError(.malformedFrame, "frame has unknown kind \(bytes[1])")
        }
        guard bytes[2] == 0, bytes[3] == 0 else {
            throw ForkPoolError(.malformedFrame, "frame has non-zero reserved bits")
        }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let taskID = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard length <= maximumPayloadBytes else {
            throw ForkPoolError(.frameTooLarge,
                                "frame declares \(length) payload bytes; the limit is \(maximumPayloadBytes)",
                                taskID: taskID)
        }
        return FrameHeader(kind: kind, length: length, taskID: taskID)
    }

    /// A frame with room for the header, to which a payload is then appended.
    static func emptyFrame(reservingPayload capacity: Int = 64) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: size)
        frame.reserveCapacity(size + capacity)
        return frame
    }
}

/// Accumulates bytes from a stream socket and cuts them into frames.
///
/// Used blocking by workers and non-blocking by the dispatcher. Small frames are parsed in
/// place from one staging buffer; the buffer grows only for a frame whose header has already
/// been validated.
struct FrameReader {
    enum FillStatus: Equatable {
        case received
        case wouldBlock
        case endOfStream
    }

    private static let chunk = 64 * 1024
    let maximumPayloadBytes: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0

    init(maximumPayloadBytes: Int) {
        self.maximumPayloadBytes = maximumPayloadBytes
        buffer = [UInt8](repeating: 0, count: Self.chunk)
    }

    /// Bytes held for a frame not yet complete.
    var bufferedByteCount: Int { end - start }
    /// Bytes allocated for buffering (tests check that a hostile length does not grow it).
    var capacity: Int { buffer.count }

    /// Appends bytes as if received (the fuzz target feeds the reader this way).
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(ForkPoolError) {
        var offset = 0
        while offset < bytes.count {
            try makeRoom()
            let count = min(buffer.count - end, bytes.count - offset)
            buffer.withUnsafeMutableBytes { raw in
                (raw.baseAddress! + end).copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
            }
            end += count
            offset += count
        }
    }

    /// Receives once from `fd` (retrying EINTR). Throws on a socket error.
    mutating func fill(from fd: CInt) throws(ForkPoolError) -> FillStatus {
        try makeRoom()
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress! + end, raw.count - end, 0)
            }
            if count > 0 {
                end += count
                return .received
            }
            if count == 0 { return .endOfStream }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw ForkPoolError.systemCall("recv")
            }
        }
    }

    /// Hands the next complete frame to `body`, or returns nil if none is complete yet.
    /// The payload view is valid only inside `body`.
    mutating func nextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer) -> R) throws(ForkPoolError) -> R? {
        guard end - start >= FrameHeader.size else { return nil }
        let header = try pendingHeader()
        let total = FrameHeader.size + header.length
        guard end - start >= total else { return nil }
        let payloadStart = start + FrameHeader.size
        let result = buffer.withUnsafeBytes { raw in
            body(header, UnsafeRawBufferPointer(rebasing: raw[payloadStart..<payloadStart + header.length]))
        }
        start += total
        if start == end {
            start = 0
            end = 0
        }
        return result
    }

    /// Parses the header at `start`; the caller has checked that its 16 bytes are buffered.
    private func pendingHeader() throws(ForkPoolError) -> FrameHeader {
        try buffer.withUnsafeBytes { raw in
            Result { () throws(ForkPoolError) in
                try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: raw[start..<start + FrameHeader.size]),
                                      maximumPayloadBytes: maximumPayloadBytes)
            }
        }.get()
    }

    /// Makes sure there is space to receive into: enough for the frame in progress (its
    /// header already validated) or one chunk.
    private mutating func makeRoom() throws(ForkPoolError) {
        var needed = Self.chunk
        if end - start >= FrameHeader.size {
            let header = try pendingHeader()
            needed = max(1, FrameHeader.size + header.length - (end - start))
        }
        if buffer.count - end >= needed { return }
        let live = end - start
        if live + needed <= buffer.count {
            buffer.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress!
                base.copyMemory(from: base + start, byteCount: live)
            }
        } else {
            // Grow to exactly what the validated frame needs, copying only the live bytes; the
            // rest is left for recv to fill (UInt8 needs no initialisation to be overwritten).
            let size = live + needed
            let old = buffer
            buffer = [UInt8](unsafeUninitializedCapacity: size) { raw, initialized in
                old.withUnsafeBufferPointer { bytes in
                    raw.baseAddress!.initialize(from: bytes.baseAddress! + start, count: live)
                }
                initialized = size
            }
        }
        start = 0
        end = live
    }
}

/// Sends `head` then `tail` (a frame and, for a large `[UInt8]` payload, the array's own
/// bytes) completely on a blocking socket, retrying EINTR and short writes. Throws on any
/// other error (EPIPE when the peer is gone; never SIGPIPE).
func sendAll(_ fd: CInt, _ head: [UInt8], tail: [UInt8] = []) throws(ForkPoolError) {
    var offset = 0
    while offset < head.count + tail.count {
        let sent = sendSome(fd, head: head, tail: tail, from: offset, nonblocking: false)
        if sent >= 0 {
            offset += sent
        } else if errno != EINTR {
            throw ForkPoolError(.systemCallFailed, "send failed", errno: errno)
        }
    }
}

/// One `send` of what is left of `head` + `tail` from `offset`: a gathering `sendmsg` while
/// part of the head is unsent, so a header and a large payload leave in one call with no copy.
/// Returns the bytes sent or -1 with errno.
func sendSome(_ fd: CInt, head: [UInt8], tail: [UInt8], from offset: Int, nonblocking: Bool) -> Int {
    let flag: CInt = nonblocking ? 1 : 0
    return head.withUnsafeBytes { headBytes in
        tail.withUnsafeBytes { tailBytes in
            if offset < headBytes.count {
                return forkpool_send_two(fd, headBytes.baseAddress! + offset, headBytes.count - offset,
                                         tailBytes.baseAddress, tailBytes.count, flag)
            }
            return forkpool_send(fd, tailBytes.baseAddress! + (offset - headBytes.count), tailBytes.count - (offset - headBytes.count), flag)
        }
    }
}

extension [UInt8] {
    /// Appends `count` (≤ 16) zero bytes: room for a header or a length written afterwards.
    /// One memcpy — `append(contentsOf: repeatElement(0, count:))` showed up in profiles of
    /// `map` at a few per cent, once per item.
    @inline(__always)
    mutating func appendZeros(_ count: Int) {
        precondition(count <= 16)
        Swift.withUnsafeBytes(of: (UInt64(0), UInt64(0))) { zeros in
            append(contentsOf: UnsafeRawBufferPointer(rebasing: zeros[0..<count]))
        }
    }
}
