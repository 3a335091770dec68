// Frame: the unit on every worker socket, and the one reader and writer for it.
//
//   offset 0   version  UInt8   (FrameHeader.version)
//          1   kind     UInt8   (FrameKind)
//          2   split    UInt8   payload bytes before a raw byte tail (0: no tail; task/result only)
//          3   flags    UInt8   bit 0: `sentByLane` (tasks only: sent by a caller's lane); the rest 0
//          4   length   UInt32  payload bytes that follow the header, little-endian
//          8   task id  UInt64  little-endian
//         16   payload
//
// Parent → worker: `task` (payload = encoded input), `taskBatch` (payload = encoded [Input])
// and `shutdown`. Worker → parent: `result` (payload = encoded output), `resultBatch`
// (payload = encoded [Output], one per input) or `failure` (payload = FailureReason byte +
// UTF-8 message; for a batch, its first failing input's).
// A header is validated — version, kind, split, flags, length against the configured
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
    /// A job pool's task frame named no job, or one the worker does not know.
    case unknownJob = 5

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

struct FrameHeader: Equatable {
    static let size = 16
    static let version: UInt8 = 1
    /// Bit 0 of the flags byte: ``sentByLane``.
    static let sentByLaneFlag: UInt8 = 1

    var kind: FrameKind
    var length: Int
    var taskID: UInt64
    /// For a payload that is a `[UInt8]` sent from where it lies: how many payload bytes (the
    /// value's wire prefix) come before the array's raw bytes. 0 for every other frame. A
    /// receiver may then read the raw bytes straight into the array it hands over.
    var split = 0
    /// A task sent by a caller's lane (DirectLane): the caller spins for the reply and tends to
    /// send its next task at once, so the worker spins briefly before it sleeps. Only on tasks.
    var sentByLane = false

    /// Sets or clears the `sentByLane` flag of an encoded frame in place (a task about to go by
    /// lane; a task sent again, which nobody spins for).
    static func markSentByLane(_ frame: inout [UInt8], _ sentByLane: Bool) {
        guard frame.count > 3 else { return }
        frame[3] = sentByLane ? sentByLaneFlag : 0
    }

    /// Writes this header over the first `size` bytes of `frame`.
    func write(into frame: inout [UInt8]) {
        frame.withUnsafeMutableBytes { raw in
            raw[0] = Self.version
            raw[1] = kind.rawValue
            raw[2] = UInt8(split)
            raw[3] = sentByLane ? Self.sentByLaneFlag : 0
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
        guard bytes[3] & ~sentByLaneFlag == 0 else {
            throw ForkPoolError(.malformedFrame, "frame has unknown flags \(bytes[3])")
        }
        let sentByLane = bytes[3] & sentByLaneFlag != 0
        guard !sentByLane || kind == .task else {
            throw ForkPoolError(.malformedFrame, "frame of kind \(kind) has the sent-by-lane flag, which only tasks may have")
        }
        let split = Int(bytes[2])
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let taskID = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard split == 0 || ((kind == .task || kind == .result) && split <= length) else {
            throw ForkPoolError(.malformedFrame, "frame of kind \(kind) declares a split of \(split) in \(length) bytes")
        }
        guard length <= maximumPayloadBytes else {
            throw ForkPoolError(.frameTooLarge,
                                "frame declares \(length) payload bytes; the limit is \(maximumPayloadBytes)",
                                taskID: taskID)
        }
        return FrameHeader(kind: kind, length: length, taskID: taskID, split: split, sentByLane: sentByLane)
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
        /// End of stream too, but the peer closed its end with bytes of ours still unread in
        /// it (the kernel's ECONNRESET): whatever we sent last, it never read.
        case endOfStreamWithOursUnread
    }

    private static let chunk = 64 * 1024
    let maximumPayloadBytes: Int
    /// A split frame whose raw tail is at least this long is received straight into the
    /// `[UInt8]` it is handed over as (tests and the fuzzer lower it).
    let directTailBytes: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    /// The split frame being received into its own array: its header, the payload bytes
    /// before the tail, the tail and how much of it has arrived.
    private var rawTailFrame: (header: FrameHeader, head: [UInt8], tail: [UInt8], filled: Int)?

    init(maximumPayloadBytes: Int, directTailBytes: Int = 1 << 20) {
        self.maximumPayloadBytes = maximumPayloadBytes
        self.directTailBytes = max(1, directTailBytes)
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
            if var frame = rawTailFrame, frame.filled < frame.tail.count {
                let count = min(frame.tail.count - frame.filled, bytes.count - offset)
                rawTailFrame = nil  // keep the tail uniquely referenced while it is written
                frame.tail.withUnsafeMutableBytes { raw in
                    (raw.baseAddress! + frame.filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
                }
                frame.filled += count
                rawTailFrame = frame
                offset += count
                continue
            }
            try makeRoom()
            let count = min(buffer.count - end, bytes.count - offset)
            buffer.withUnsafeMutableBytes { raw in
                (raw.baseAddress! + end).copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
            }
            end += count
            offset += count
        }
    }

    /// Receives once from `fd` (retrying EINTR); `wait: false` returns `.wouldBlock` rather
    /// than block on a blocking socket. Throws on a socket error.
    mutating func fill(from fd: CInt, wait: Bool = true) throws(ForkPoolError) -> FillStatus {
        let flags = wait ? 0 : CInt(MSG_DONTWAIT)
        if var frame = rawTailFrame, frame.filled < frame.tail.count {
            rawTailFrame = nil  // keep the tail uniquely referenced while recv writes into it
            defer { rawTailFrame = frame }
            let filled = frame.filled
            let (status, count) = try frame.tail.withUnsafeMutableBytes { raw in
                Result { () throws(ForkPoolError) in
                    try Self.receive(from: fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...]), flags: flags)
                }
            }.get()
            frame.filled += count
            return status
        }
        try makeRoom()
        let free = end
        let (status, count) = try buffer.withUnsafeMutableBytes { raw in
            Result { () throws(ForkPoolError) in
                try Self.receive(from: fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[free...]), flags: flags)
            }
        }.get()
        end += count
        return status
    }

    /// One `recv` into `space`, retrying EINTR: what happened and how many bytes arrived.
    private static func receive(from fd: CInt, into space: UnsafeMutableRawBufferPointer, flags: CInt)
        throws(ForkPoolError) -> (FillStatus, Int) {
        let count = retryingInterrupts { recv(fd, space.baseAddress, space.count, flags) }
        if count > 0 { return (.received, count) }
        if count == 0 { return (.endOfStream, 0) }
        // A peer that closed its end with bytes of ours still unread (a worker that died with
        // tasks sent behind the one it ran) makes the kernel report ECONNRESET: it is the same
        // end of stream, after everything it wrote has been read.
        if errno == ECONNRESET { return (.endOfStreamWithOursUnread, 0) }
        guard errno == EAGAIN || errno == EWOULDBLOCK else { throw ForkPoolError.systemCall("recv") }
        return (.wouldBlock, 0)
    }

    /// Hands the next complete frame to `body`, or returns nil if none is complete yet.
    /// The payload view is valid only inside `body`. A split frame received straight into its
    /// own array is handed over whole (head and tail copied together): for callers that do not
    /// take tails.
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
        if let frame = rawTailFrame {
            guard frame.filled == frame.tail.count else { return nil }
            rawTailFrame = nil
            return frame.head.withUnsafeBytes { body(frame.header, $0, frame.tail) }
        }
        guard end - start >= FrameHeader.size else { return nil }
        let header = try pendingHeader()
        if receivesDirectly(header) {
            guard end - start >= FrameHeader.size + header.split else { return nil }
            // From here the tail goes straight into the array that will be handed over.
            let headStart = start + FrameHeader.size
            let head = Array(buffer[headStart..<headStart + header.split])
            let tailCount = header.length - header.split
            let buffered = min(end - headStart - header.split, tailCount)
            var tail = largeByteArray(count: tailCount)
            tail.withUnsafeMutableBytes { raw in
                buffer.withUnsafeBytes { source in
                    raw.baseAddress!.copyMemory(from: source.baseAddress! + headStart + header.split, byteCount: buffered)
                }
            }
            start = headStart + header.split + buffered
            if start == end {
                start = 0
                end = 0
            }
            rawTailFrame = (header, head, tail, buffered)
            return try nextFrame(body)
        }
        let total = FrameHeader.size + header.length
        guard end - start >= total else { return nil }
        let payloadStart = start + FrameHeader.size
        let result = buffer.withUnsafeBytes { raw in
            body(header, UnsafeRawBufferPointer(rebasing: raw[payloadStart..<payloadStart + header.length]), nil)
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

    /// Whether a frame's raw tail is received straight into its own array.
    private func receivesDirectly(_ header: FrameHeader) -> Bool {
        header.split > 0 && header.length - header.split >= directTailBytes
    }

    /// Makes sure there is space to receive into: enough for the frame in progress (its
    /// header already validated; for a frame received directly, its head only) or one chunk.
    private mutating func makeRoom() throws(ForkPoolError) {
        var needed = Self.chunk
        if end - start >= FrameHeader.size {
            let header = try pendingHeader()
            let inBuffer = receivesDirectly(header) ? header.split : header.length
            needed = max(1, FrameHeader.size + inBuffer - (end - start))
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
        } else if errno == EAGAIN || errno == EWOULDBLOCK {
            // A non-blocking socket (a caller's lane): wait until it takes more.
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = retryingInterrupts { poll(&writable, 1, -1) }
        } else {
            throw ForkPoolError(.systemCallFailed, "send failed", errno: errno)  // EINTR is retried by the shim
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
