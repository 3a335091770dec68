// Frame: the unit on every worker socket — its header, and the parser that cuts a byte stream
// into frames. Pure: bytes come in through `append`/`receive` (the engine's FrameReader does
// the socket I/O), frames go out through `nextFrame`; a header is validated before a byte is
// reserved for its payload.
//
//   0 version u8 · 1 kind u8 · 2 split u8 (payload bytes before a raw tail) · 3 flags u8
//   (bit 0: sentByLane) · 4 length u32 LE · 8 task id u64 LE · 16 payload
//
// Parent → worker: task, taskBatch, shutdown. Worker → parent: ready or initializerFailed,
// then result, resultBatch or failure (FailureReason byte + UTF-8 message); and at any time a
// workerNote from a jailed worker's sandbox. Either way: a doorbell (the shared ring has frames).

package enum FrameKind: UInt8, Sendable {
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
    /// Worker → parent, at any time, written by the C shim's sandbox code (sandbox.c): what
    /// brought the worker down or kept it from starting (``WorkerNote``). Not a reply.
    case workerNote = 9
    /// Parent → worker: cancel the `Task` of this running async job (a worker that runs several
    /// at once). No reply of its own: the job's reply comes as it ends.
    case cancel = 10
    /// Either way, no payload: the other side published into the shared ring while this side
    /// slept in poll on its socket. Taken out of the stream by the reader; not a reply.
    case doorbell = 11
}

/// A `workerNote` frame's payload: a kind byte, a u64 LE value, then UTF-8 text.
package enum WorkerNote: Equatable, Sendable {
    /// Its sandbox's filter caught this system call (by number) and kills the worker for it.
    case forbiddenSystemCall(number: Int)
    /// An allocation failed with ENOMEM under the sandbox's memory limit (bytes), and the
    /// worker is dying of it.
    case memoryLimit(bytes: Int)
    /// The sandbox could not be applied; the worker exits without starting.
    case sandboxFailed(String)
    /// A fault signal came while this task's job ran on the faulting thread (a worker that
    /// runs several async jobs at once): the job that brought it down.
    case crashedInTask(UInt64)

    /// Parses a note; nil for a payload that is not one.
    package init?(payload: UnsafeRawBufferPointer) {
        guard payload.count >= 9, payload.count <= 9 + 200 else { return nil }
        let value = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: payload[9...]), as: UTF8.self)
        switch payload[0] {
        case 1 where value <= UInt64(UInt32.max) && payload.count == 9: self = .forbiddenSystemCall(number: Int(value))
        case 2 where value <= UInt64(Int.max) && payload.count == 9: self = .memoryLimit(bytes: Int(value))
        case 3: self = .sandboxFailed(text)
        case 4 where payload.count == 9 && value != 0: self = .crashedInTask(value)
        default: return nil
        }
    }
}

/// Why a worker answered a task with a `failure` frame (first payload byte).
package enum FailureReason: UInt8, Sendable {
    case workThrew = 1
    case inputDecodingFailed = 2
    case outputEncodingFailed = 3
    case outputTooLarge = 4
    /// A job pool's task frame named no job, or one the worker does not know.
    case unknownJob = 5
}

/// A frame that breaks the protocol: what the engine reports as a malformed or too large frame.
package struct FrameError: Error, Equatable {
    package enum Code: Sendable, Equatable {
        case malformedFrame
        case frameTooLarge
    }

    package let code: Code
    package let message: String
    /// The task the frame named, when its header was read that far.
    package let taskID: UInt64?

    package init(_ code: Code, _ message: String, taskID: UInt64? = nil) {
        self.code = code
        self.message = message
        self.taskID = taskID
    }
}

package struct FrameHeader: Equatable, Sendable {
    package static let size = 16
    package static let version: UInt8 = 1
    /// Bit 0 of the flags byte: ``sentByLane``.
    package static let sentByLaneFlag: UInt8 = 1

    package var kind: FrameKind
    package var length: Int
    package var taskID: UInt64
    /// For a payload that is a `[UInt8]` sent from where it lies: how many payload bytes (the
    /// value's wire prefix) come before the array's raw bytes. 0 for every other frame. A
    /// receiver may then read the raw bytes straight into the array it hands over.
    package var split = 0
    /// A task sent by a caller's lane (DirectLane): the caller spins for the reply and tends to
    /// send its next task at once, so the worker spins briefly before it sleeps. Only on tasks.
    package var sentByLane = false

    package init(kind: FrameKind, length: Int, taskID: UInt64, split: Int = 0, sentByLane: Bool = false) {
        self.kind = kind
        self.length = length
        self.taskID = taskID
        self.split = split
        self.sentByLane = sentByLane
    }

    /// Sets or clears the `sentByLane` flag of an encoded frame in place (a task about to go by
    /// lane; a task sent again, which nobody spins for).
    package static func markSentByLane(_ frame: inout [UInt8], _ sentByLane: Bool) {
        guard frame.count > 3 else { return }
        frame[3] = sentByLane ? sentByLaneFlag : 0
    }

    /// Writes this header over the first `size` bytes of `frame`.
    package func write(into frame: inout [UInt8]) {
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
    package static func parse(_ bytes: UnsafeRawBufferPointer, maximumPayloadBytes: Int) throws(FrameError) -> FrameHeader {
        guard bytes[0] == version else {
            throw FrameError(.malformedFrame, "frame has version \(bytes[0]); expected \(version)")
        }
        guard let kind = FrameKind(rawValue: bytes[1]) else {
            throw FrameError(.malformedFrame, "frame has unknown kind \(bytes[1])")
        }
        guard bytes[3] & ~sentByLaneFlag == 0 else {
            throw FrameError(.malformedFrame, "frame has unknown flags \(bytes[3])")
        }
        let sentByLane = bytes[3] & sentByLaneFlag != 0
        guard !sentByLane || kind == .task else {
            throw FrameError(.malformedFrame, "frame of kind \(kind) has the sent-by-lane flag, which only tasks may have")
        }
        let split = Int(bytes[2])
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let taskID = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard split == 0 || ((kind == .task || kind == .result) && split <= length) else {
            throw FrameError(.malformedFrame, "frame of kind \(kind) declares a split of \(split) in \(length) bytes")
        }
        guard length <= maximumPayloadBytes else {
            throw FrameError(.frameTooLarge,
                                "frame declares \(length) payload bytes; the limit is \(maximumPayloadBytes)",
                                taskID: taskID)
        }
        return FrameHeader(kind: kind, length: length, taskID: taskID, split: split, sentByLane: sentByLane)
    }

    /// A frame with room for the header, to which a payload is then appended.
    package static func emptyFrame(reservingPayload capacity: Int = 64) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: size)
        frame.reserveCapacity(size + capacity)
        return frame
    }
}

/// Cuts a stream of bytes into frames.
///
/// Small frames are parsed in place from one staging buffer; the buffer grows only for a frame
/// whose header has already been validated. A split frame whose raw tail is long is received
/// straight into the `[UInt8]` it is handed over as.
package struct FrameParser {
    private static let chunk = 64 * 1024
    package let maximumPayloadBytes: Int
    /// A split frame whose raw tail is at least this long is received straight into the
    /// `[UInt8]` it is handed over as (tests and the fuzzer lower it).
    package let directTailBytes: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    /// The split frame being received into its own array: its header, the payload bytes
    /// before the tail, the tail and how much of it has arrived.
    private var rawTailFrame: (header: FrameHeader, head: [UInt8], tail: [UInt8], filled: Int)?

    package init(maximumPayloadBytes: Int, directTailBytes: Int = 1 << 20) {
        self.maximumPayloadBytes = maximumPayloadBytes
        self.directTailBytes = max(1, directTailBytes)
        buffer = [UInt8](repeating: 0, count: Self.chunk)
    }

    /// Bytes held for a frame not yet complete.
    package var bufferedByteCount: Int { end - start }
    /// Bytes allocated for buffering (tests check that a hostile length does not grow it).
    package var capacity: Int { buffer.count }

    /// Appends bytes as if received (the fuzz target feeds the parser this way).
    package mutating func append(_ bytes: UnsafeRawBufferPointer) throws(FrameError) {
        var offset = 0
        while offset < bytes.count {
            let count = try receive { space in
                let count = min(space.count, bytes.count - offset)
                space.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
                return count
            }
            offset += count
        }
    }

    /// Lets `body` write the next bytes of the stream into the space where they belong (the
    /// raw tail being received, or the staging buffer's free space) and return how many it
    /// wrote (0 or a negative count: none). Returns that count.
    package mutating func receive(_ body: (UnsafeMutableRawBufferPointer) -> Int) throws(FrameError) -> Int {
        if var frame = rawTailFrame, frame.filled < frame.tail.count {
            rawTailFrame = nil  // keep the tail uniquely referenced while it is written
            defer { rawTailFrame = frame }
            let filled = frame.filled
            let count = frame.tail.withUnsafeMutableBytes { raw in
                body(UnsafeMutableRawBufferPointer(rebasing: raw[filled...]))
            }
            if count > 0 { frame.filled += count }
            return count
        }
        try makeRoom()
        let free = end
        let count = buffer.withUnsafeMutableBytes { raw in
            body(UnsafeMutableRawBufferPointer(rebasing: raw[free...]))
        }
        if count > 0 { end += count }
        return count
    }

    /// Hands the next complete frame to `body`, or returns nil if none is complete yet.
    /// The payload view is valid only inside `body`. A split frame received straight into its
    /// own array is handed over whole (head and tail copied together): for callers that do not
    /// take tails.
    package mutating func nextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer) -> R) throws(FrameError) -> R? {
        try nextFrame { header, payload, tail in
            guard let tail else { return body(header, payload) }
            return (Array(payload) + tail).withUnsafeBytes { body(header, $0) }
        }
    }

    /// Hands the next complete frame to `body`: its header, its payload and — for a split
    /// frame whose tail was received straight into its own array — that array, the payload
    /// view then holding only the bytes before it. Returns nil if no frame is complete yet.
    package mutating func nextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer, [UInt8]?) -> R) throws(FrameError) -> R? {
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
    private func pendingHeader() throws(FrameError) -> FrameHeader {
        try buffer.withUnsafeBytes { raw in
            Result { () throws(FrameError) in
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
    private mutating func makeRoom() throws(FrameError) {
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
            // rest is left for the next receive to fill (UInt8 needs no initialisation to be overwritten).
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

extension [UInt8] {
    /// Appends `count` (≤ 16) zero bytes: room for a header or a length written afterwards,
    /// in one copy rather than an element-by-element append.
    @inline(__always)
    package mutating func appendZeros(_ count: Int) {
        precondition(count <= 16)
        Swift.withUnsafeBytes(of: (UInt64(0), UInt64(0))) { zeros in
            append(contentsOf: UnsafeRawBufferPointer(rebasing: zeros[0..<count]))
        }
    }
}
