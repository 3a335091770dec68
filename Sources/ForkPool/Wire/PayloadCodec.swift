// PayloadCodec: what turns a task's input or output into payload bytes and back.
//
// Data flow: at init the codec asks once whether `Value` is FastWireCodable (the integers,
// Double, Float, Bool, String, and arrays and optionals of those, nested to any depth). If so,
// encode computes the value's exact wire size, grows the caller's array by that much (at most
// one reallocation) and writes the cell straight into the new tail — an Int is a header byte
// and eight bytes, a [UInt8] one memory copy — and decode reads it straight back. Any other
// Codable goes through BinaryEncoder / BinaryDecoder. Both produce the same wire format
// (described in WireFormat.swift), so the fast path is a shortcut, never a dialect: the
// binary coder takes the same shortcut whenever a FastWireCodable value turns up nested inside
// a struct, and its containers read whatever the fast path wrote and vice versa.
//
// Decoding always checks that the value used up every payload byte.

import Glibc

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
    var usesFastPath: Bool { fast != nil }

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
    static var borrowedBytesThreshold: Int { 64 * 1024 }

    /// When `value` is a `[UInt8]` of at least ``borrowedBytesThreshold`` bytes, appends only
    /// what precedes its bytes on the wire (cell header and form byte) and returns the array:
    /// prefix + the array's bytes is exactly what ``encode(_:into:)`` would have appended, so
    /// the sender can gather the two with `writev` and copy nothing. Otherwise appends nothing
    /// and returns nil.
    func encodePrefix(ofLargeBytes value: Value, into bytes: inout [UInt8]) -> [UInt8]? {
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
    func decode(from head: UnsafeRawBufferPointer, tail: [UInt8]?) throws -> Value {
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

/// A new `[UInt8]` holding `raw`. A large one (a bulk payload, ≥ 4 MiB) first asks the kernel
/// for transparent huge pages on its fresh memory: filling 64 MiB then takes 32 page faults
/// instead of 16,384, which profiling showed cost more than the copy itself.
internal func copyBytes(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
    var bytes = largeByteArray(count: raw.count)
    bytes.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
    return bytes
}

/// A new `[UInt8]` of `count` bytes for the caller to overwrite entirely (its contents are
/// whatever the fresh memory holds). From 4 MiB up its memory is advised for transparent huge
/// pages (see ``copyBytes(_:)``).
internal func largeByteArray(count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        let hugePage = 2 << 20
        if count >= 2 * hugePage, let base = buffer.baseAddress {
            let start = (Int(bitPattern: base) + hugePage - 1) & ~(hugePage - 1)
            let end = (Int(bitPattern: base) + count) & ~(hugePage - 1)
            if end > start {  // advice only: where it is refused, filling faults page by page
                _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE)
            }
        }
        initialized = count
    }
}
