// PayloadCodec: what turns a task's input or output into payload bytes and back.
//
// Data flow: at init the codec asks once whether `Value` is FastWireCodable. If so, encode
// grows the caller's array by the value's exact wire size and writes the cell straight into
// it, and decode reads it straight back; any other Codable goes through BinaryEncoder /
// BinaryDecoder. Both write the same format (WireFormat.swift). Decoding always checks that
// the value used up every payload byte.
import Synchronization

/// Package access: the Demo's benchmark times the codec alone.
package struct PayloadCodec<Value: Codable>: Sendable {
    /// `Value` itself when it is FastWireCodable; nil sends it through the binary coder.
    private let fast: (any FastWireCodable.Type)?

    package init() {
        fast = Self.fastType()
    }

    // Out of line, so the optimizer cannot decide to redo the cast at each use.
    @inline(never)
    private static func fastType() -> (any FastWireCodable.Type)? {
        Value.self as? any FastWireCodable.Type
    }

    /// Whether `Value` skips the Encoder machinery (exposed for tests).
    package var usesFastPath: Bool { fast != nil }

    /// Appends the encoded value to `bytes`, leaving whatever was there (a frame header)
    /// untouched; on a throw `bytes` is as it was.
    package func encode(_ value: Value, into bytes: inout [UInt8]) throws {
        if let fast {
            fast.appendWirePayload(of: value, to: &bytes)
        } else {
            try BinaryEncoder.encodeGeneral(value, into: &bytes)
        }
    }

    /// A `[UInt8]` at least this long is sent from where it lies rather than copied into the
    /// frame (see ``encodePrefix(ofLargeBytes:into:)``).
    package static var borrowedBytesThreshold: Int { 64 * 1024 }

    /// When `value` is a `[UInt8]` of at least ``borrowedBytesThreshold`` bytes, appends only
    /// what precedes its bytes on the wire (cell header and form byte) and returns the array:
    /// prefix + the array's bytes is exactly what ``encode(_:into:)`` would have appended, so
    /// the sender can gather the two with `writev` and copy nothing. Otherwise appends nothing
    /// and returns nil.
    package func encodePrefix(ofLargeBytes value: Value, into bytes: inout [UInt8]) -> [UInt8]? {
        guard Value.self == [UInt8].self else { return nil }
        let array = unsafeBitCast(value, to: [UInt8].self)
        guard array.count >= Self.borrowedBytesThreshold else { return nil }
        return encodePrefix(of: array, into: &bytes)
    }

    /// Appends the wire prefix of `array` (what precedes its bytes) and returns the array.
    private func encodePrefix(of array: [UInt8], into bytes: inout [UInt8]) -> [UInt8] {
        // The cell: varint(content size + 1), then the content: packed form (width 1) + bytes.
        let cellHeader = array.count + 2
        let size = wireVarintSize(cellHeader) + 1
        bytes.append(addingCapacity: size) { span in
            span.withUnsafeMutableBufferPointer { tail, initialized in
                var writer = WireWriter(base: UnsafeMutableRawPointer(tail.baseAddress!), capacity: size)
                writer.appendVarint(cellHeader)
                writer.append(WireLayout.packedForm(width: 1))
                initialized = writer.count
            }
        }
        return array
    }

    /// Decodes a value whose payload is `head` followed by the raw bytes `tail` (a split frame
    /// received straight into its own array). A `[UInt8]` whose head is exactly its wire
    /// prefix is the tail itself, with no copy; anything else is decoded from the bytes joined.
    package func decode(from head: UnsafeRawBufferPointer, tail: [UInt8]?) throws -> Value {
        guard let tail else { return try decode(from: head) }
        if Value.self == [UInt8].self {
            var prefix: [UInt8] = []
            _ = encodePrefix(of: tail, into: &prefix)
            if prefix.elementsEqual(head) { return unsafeBitCast(tail, to: Value.self) }
        }
        return try (Array(head) + tail).withUnsafeBytes { try decode(from: $0) }
    }

    /// Decodes a value that must occupy exactly all of `bytes`.
    package func decode(from bytes: UnsafeRawBufferPointer) throws -> Value {
        guard let fast else {
            return try BinaryDecoder.decodeGeneral(Value.self, from: bytes)
        }
        var reader = try WireReader(payload: bytes)
        let value = try fast.decodeWireCell(from: &reader, as: Value.self)
        try reader.expectEnd()
        return value
    }
}

/// Memory advice for large byte arrays, which this target cannot give itself (it makes no
/// system calls): the engine installs a function that asks the kernel for transparent huge
/// pages, so filling 64 MiB takes 32 page faults instead of 16,384.
package enum LargeByteArrays {
    /// Arrays from this size up are advised.
    package static let adviceThreshold = 4 << 20
    private static let advice = Mutex<(@Sendable (UnsafeMutableRawPointer, Int) -> Void)?>(nil)

    /// Installs `advise(start, byteCount)`, called on the whole huge pages inside each new
    /// large array's memory.
    package static func install(_ advise: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void) {
        advice.withLock { $0 = advise }
    }

    fileprivate static func advise(_ buffer: UnsafeMutableBufferPointer<UInt8>, count: Int) {
        guard let advise = advice.withLock({ $0 }), let base = buffer.baseAddress else { return }
        let hugePage = 2 << 20
        let start = (Int(bitPattern: base) + hugePage - 1) & ~(hugePage - 1)
        let end = (Int(bitPattern: base) + count) & ~(hugePage - 1)
        if end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) {
            advise(pointer, end - start)
        }
    }
}

/// A new `[UInt8]` holding `raw` (a large one advised as ``largeByteArray(count:)`` says).
package func copyBytes(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
    var bytes = largeByteArray(count: raw.count)
    bytes.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
    return bytes
}

/// A new `[UInt8]` of `count` bytes for the caller to overwrite entirely (its contents are
/// whatever the fresh memory holds). From ``LargeByteArrays/adviceThreshold`` up its memory
/// gets the installed advice first.
package func largeByteArray(count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count >= LargeByteArrays.adviceThreshold {
            LargeByteArrays.advise(buffer, count: count)
        }
        initialized = count
    }
}
