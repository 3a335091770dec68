// PayloadCodec: what turns a task's input or output into payload bytes and back.
//
// Data flow: at init the codec asks once whether `Value` is FastWireCodable (the integers,
// Double, Float, Bool, String, and arrays and optionals of those, nested to any depth). If so,
// encode computes the value's exact wire size, grows the caller's array by that much (at most
// one reallocation) and writes the slot straight into the new tail — an Int is a header byte
// and eight bytes, a [UInt8] one memory copy — and decode reads it straight back. Any other
// Codable goes through BinaryEncoder / BinaryDecoder. Both produce the same wire format
// (described in BinaryEncoder.swift), so the fast path is a shortcut, never a dialect: the
// binary coder takes the same shortcut whenever a FastWireCodable value turns up nested inside
// a struct, and its containers read whatever the fast path wrote and vice versa.
//
// Decoding always checks that the value used up every payload byte.

import Glibc

internal struct PayloadCodec<Value: Codable>: Sendable {
    /// `Value` itself when it is FastWireCodable; nil sends it through the binary coder.
    private let fast: (any FastWireCodable.Type)?

    init() {
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
    func encode(_ value: Value, into bytes: inout [UInt8]) throws {
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
    /// what precedes its bytes on the wire (slot header and form byte) and returns the array:
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
        // The slot: varint(content size + 1), then the content: packed form (width 1) + bytes.
        let slotHeader = array.count + 2
        let size = wireVarintSize(slotHeader) + 1
        bytes.append(addingCapacity: size) { span in
            span.withUnsafeMutableBufferPointer { tail, initialized in
                var writer = WireWriter(base: UnsafeMutableRawPointer(tail.baseAddress!), capacity: size)
                writer.appendVarint(slotHeader)
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
    func decode(from bytes: UnsafeRawBufferPointer) throws -> Value {
        guard let fast else {
            return try BinaryDecoder.decodeGeneral(Value.self, from: bytes)
        }
        var reader = try WireReader(payload: bytes)
        let value = try fast.decodeWireSlot(from: &reader, as: Value.self)
        try reader.expectEnd()
        return value
    }
}

// MARK: - The fast path

/// A type whose wire form is written and read by hand instead of through Encoder/Decoder.
/// Each conformance must produce exactly what the binary coder would produce for the type's own
/// Codable implementation (or a layout the coder's containers also read, like packed arrays).
///
/// A conformance provides the first group; the rest have default implementations and are
/// listed as requirements only so that each conforming type gets its own specialized copy:
/// called through a generic or an existential, the extension methods themselves would run
/// unspecialized, at several times the cost of the work they do.
internal protocol FastWireCodable: SendableMetatype {
    /// Bytes per element when arrays of this type are stored packed (fixed-width primitives);
    /// 0 for types that need a slot per element.
    static var wirePackedWidth: Int { get }
    /// Whether an array's elements can be copied to and from the wire as one block: a
    /// little-endian host and an in-memory size equal to the wire width.
    static var wireIsMemcpyable: Bool { get }
    /// Whether bytes copied from a payload are valid values (not so for Bool bytes above 1).
    static func wirePackedBytesAreValid(_ raw: UnsafeRawBufferPointer) -> Bool
    /// Whether a nil slot is a value of this type (only for Optional).
    static var wireAcceptsNil: Bool { get }
    /// The value of a nil slot at `offset`; throws for types that cannot be nil.
    static func decodeWireNil(at offset: Int) throws -> Self
    /// Whether the value is written as a nil slot.
    var isWireNil: Bool { get }
    /// Exact size of the slot content (0 when `isWireNil`).
    var wireContentSize: Int { get }
    /// Writes exactly `wireContentSize` bytes.
    func writeWireContent(to writer: inout WireWriter)
    static func decodeWireContent(_ content: WireReader) throws -> Self

    var wireSlotSize: Int { get }
    func writeWireSlot(to writer: inout WireWriter)
    static func decodeWireSlot(from reader: inout WireReader) throws -> Self

    // PayloadCodec and the binary coder meet fast types as a generic `V` that a dynamic cast
    // proved to be `Self`; these entry points do the (then free) conversion.

    /// Appends a whole payload to `bytes`.
    static func appendWirePayload<V>(of value: V, to bytes: inout [UInt8])
    static func decodeWireSlot<V>(from reader: inout WireReader, as type: V.Type) throws -> V
    static func appendWireSlot<V>(of value: V, to buffer: WireEncodingBuffer)
    /// Appends the bare content; returns false, appending nothing, if the value is nil.
    static func appendWireContent<V>(of value: V, to buffer: WireEncodingBuffer) -> Bool
    /// Appends an element to the unkeyed container whose form byte is at `formOffset`.
    static func appendWireElement<V>(of value: V, to buffer: WireEncodingBuffer, formOffset: Int)
    /// Decodes slot content as `V`; a nil slot only when `wireAcceptsNil`.
    static func decodeWireValue<V>(_ slot: WireReader?, as type: V.Type) throws -> V
}

extension FastWireCodable {
    static var wirePackedWidth: Int { 0 }
    static var wireIsMemcpyable: Bool { false }
    static func wirePackedBytesAreValid(_ raw: UnsafeRawBufferPointer) -> Bool { true }
    static var wireAcceptsNil: Bool { false }
    var isWireNil: Bool { false }

    static func decodeWireNil(at offset: Int) throws -> Self {
        throw WireCodingError.unexpectedNil(Self.self, at: offset)
    }

    var wireSlotSize: Int {
        if isWireNil { return 1 }
        let size = wireContentSize
        return wireVarintSize(size + 1) + size
    }

    func writeWireSlot(to writer: inout WireWriter) {
        if isWireNil {
            writer.append(WireLayout.nilSlot)
            return
        }
        writer.appendVarint(wireContentSize + 1)
        writeWireContent(to: &writer)
    }

    static func decodeWireSlot(from reader: inout WireReader) throws -> Self {
        let headerOffset = reader.position
        guard let content = try reader.readSlot() else { return try decodeWireNil(at: headerOffset) }
        return try decodeWireContent(content)
    }

    static func appendWirePayload<V>(of value: V, to bytes: inout [UInt8]) {
        let typed = unsafeBitCast(value, to: Self.self)
        let size = typed.wireSlotSize
        // At most one (geometric) growth, then plain stores straight into the array's new tail.
        bytes.append(addingCapacity: size) { span in
            span.withUnsafeMutableBufferPointer { tail, initialized in
                var writer = WireWriter(base: UnsafeMutableRawPointer(tail.baseAddress!), capacity: size)
                typed.writeWireSlot(to: &writer)
                initialized = writer.count
            }
        }
    }

    static func decodeWireSlot<V>(from reader: inout WireReader, as _: V.Type) throws -> V {
        unsafeBitCast(try decodeWireSlot(from: &reader), to: V.self)
    }

    static func appendWireSlot<V>(of value: V, to buffer: WireEncodingBuffer) {
        buffer.appendSlot(unsafeBitCast(value, to: Self.self))
    }

    static func appendWireContent<V>(of value: V, to buffer: WireEncodingBuffer) -> Bool {
        buffer.appendContent(unsafeBitCast(value, to: Self.self))
    }

    static func appendWireElement<V>(of value: V, to buffer: WireEncodingBuffer, formOffset: Int) {
        buffer.appendElement(unsafeBitCast(value, to: Self.self), formOffset: formOffset)
    }

    static func decodeWireValue<V>(_ slot: WireReader?, as _: V.Type) throws -> V {
        guard let slot else { return unsafeBitCast(try decodeWireNil(at: 0), to: V.self) }
        return unsafeBitCast(try decodeWireContent(slot), to: V.self)
    }
}

/// A cursor over bytes set aside for a write whose exact size was computed first, so writing
/// is plain stores. Overrunning the space would be a size computed wrongly — a bug, which traps
/// rather than corrupting memory.
internal struct WireWriter {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var count = 0

    init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @inline(__always)
    private func claim(_ size: Int) {
        precondition(size <= capacity - count, "wire size computed wrongly")
    }

    mutating func append(_ byte: UInt8) {
        claim(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        claim(MemoryLayout<T>.size)
        base.storeBytes(of: value.littleEndian, toByteOffset: count, as: T.self)
        count += MemoryLayout<T>.size
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        claim(bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func appendVarint(_ value: Int) {
        var remaining = UInt(bitPattern: value)
        while remaining >= 0x80 {
            append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        append(UInt8(truncatingIfNeeded: remaining))
    }

    mutating func append(utf8 text: String) {
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { append(UnsafeRawBufferPointer($0)) }
        if copied == nil {
            for byte in text.utf8 { append(byte) }
        }
    }
}

@inline(__always)
internal func wireVarintSize(_ value: Int) -> Int {
    var remaining = UInt(bitPattern: value) >> 7
    var size = 1
    while remaining != 0 {
        remaining >>= 7
        size += 1
    }
    return size
}

// MARK: - Conformances

/// The integers share one shape: a fixed-width little-endian pattern of `WireBits`, which is
/// 64 bits for Int and UInt on every platform so payloads do not depend on the word size.
internal protocol FastWireInteger: FixedWidthInteger, FastWireCodable {
    associatedtype WireBits: FixedWidthInteger
}

extension FastWireInteger {
    static var wirePackedWidth: Int { MemoryLayout<WireBits>.size }
    static var wireIsMemcpyable: Bool {
        WireLayout.isLittleEndianHost && MemoryLayout<Self>.size == MemoryLayout<WireBits>.size
    }
    var wireContentSize: Int { MemoryLayout<WireBits>.size }

    func writeWireContent(to writer: inout WireWriter) {
        writer.appendLittleEndian(WireBits(truncatingIfNeeded: self))
    }

    static func decodeWireContent(_ content: WireReader) throws -> Self {
        let bits = try content.readWhole(WireBits.self, as: Self.self)
        guard let value = Self(exactly: bits) else {
            throw WireCodingError.outOfRange(Self.self, value: bits, at: content.position)
        }
        return value
    }
}

extension Int: FastWireInteger { typealias WireBits = Int64 }
extension Int8: FastWireInteger { typealias WireBits = Int8 }
extension Int16: FastWireInteger { typealias WireBits = Int16 }
extension Int32: FastWireInteger { typealias WireBits = Int32 }
extension Int64: FastWireInteger { typealias WireBits = Int64 }
extension UInt: FastWireInteger { typealias WireBits = UInt64 }
extension UInt8: FastWireInteger { typealias WireBits = UInt8 }
extension UInt16: FastWireInteger { typealias WireBits = UInt16 }
extension UInt32: FastWireInteger { typealias WireBits = UInt32 }
extension UInt64: FastWireInteger { typealias WireBits = UInt64 }

extension Double: FastWireCodable {
    static var wirePackedWidth: Int { 8 }
    static var wireIsMemcpyable: Bool { WireLayout.isLittleEndianHost }
    var wireContentSize: Int { 8 }

    func writeWireContent(to writer: inout WireWriter) {
        writer.appendLittleEndian(bitPattern)
    }

    static func decodeWireContent(_ content: WireReader) throws -> Double {
        Double(bitPattern: try content.readWhole(UInt64.self, as: Double.self))
    }
}

extension Float: FastWireCodable {
    static var wirePackedWidth: Int { 4 }
    static var wireIsMemcpyable: Bool { WireLayout.isLittleEndianHost }
    var wireContentSize: Int { 4 }

    func writeWireContent(to writer: inout WireWriter) {
        writer.appendLittleEndian(bitPattern)
    }

    static func decodeWireContent(_ content: WireReader) throws -> Float {
        Float(bitPattern: try content.readWhole(UInt32.self, as: Float.self))
    }
}

extension Bool: FastWireCodable {
    static var wirePackedWidth: Int { 1 }
    // A Bool is one byte holding 0 or 1, so copying is fine once the bytes are checked.
    static var wireIsMemcpyable: Bool { true }
    static func wirePackedBytesAreValid(_ raw: UnsafeRawBufferPointer) -> Bool {
        raw.allSatisfy { $0 <= 1 }
    }
    var wireContentSize: Int { 1 }

    func writeWireContent(to writer: inout WireWriter) {
        writer.append(self ? 1 : 0)
    }

    static func decodeWireContent(_ content: WireReader) throws -> Bool {
        switch try content.readWhole(UInt8.self, as: Bool.self) {
        case 0: return false
        case 1: return true
        case let byte: throw WireCodingError.invalidBool(byte, at: content.position)
        }
    }
}

extension String: FastWireCodable {
    // The slot already carries the length, so the content is the bare UTF-8.
    var wireContentSize: Int { utf8.count }

    func writeWireContent(to writer: inout WireWriter) {
        writer.append(utf8: self)
    }

    static func decodeWireContent(_ content: WireReader) throws -> String {
        try content.readUTF8()
    }
}

extension Optional: FastWireCodable where Wrapped: FastWireCodable {
    // Like Optional's own Codable: nil is a nil slot, a value is the wrapped value's slot.
    // So `.some(nil)` of a nested optional reads back as nil, exactly as with JSONEncoder.
    static var wireAcceptsNil: Bool { true }

    static func decodeWireNil(at _: Int) -> Wrapped? { nil }

    var isWireNil: Bool {
        switch self {
        case .none: true
        case .some(let wrapped): wrapped.isWireNil
        }
    }

    var wireContentSize: Int { self?.wireContentSize ?? 0 }

    func writeWireContent(to writer: inout WireWriter) {
        self?.writeWireContent(to: &writer)
    }

    static func decodeWireContent(_ content: WireReader) throws -> Wrapped? {
        .some(try Wrapped.decodeWireContent(content))
    }
}

extension Array: FastWireCodable where Element: FastWireCodable {
    // Fixed-width elements are stored packed (one form byte, then the bare contents); any
    // other element gets a slot, the same layout the binary coder's unkeyed container writes.
    var wireContentSize: Int {
        let width = Element.wirePackedWidth
        if width > 0 { return 1 + count * width }
        var size = 1
        for element in self { size += element.wireSlotSize }
        return size
    }

    func writeWireContent(to writer: inout WireWriter) {
        let width = Element.wirePackedWidth
        guard width > 0 else {
            writer.append(WireLayout.slotsForm)
            for element in self { element.writeWireSlot(to: &writer) }
            return
        }
        writer.append(WireLayout.packedForm(width: width))
        if Element.self == UInt8.self {
            // The commonest payload of all gets a concrete, specialized copy.
            unsafeBitCast(self, to: [UInt8].self).withUnsafeBytes { writer.append($0) }
        } else if Element.wireIsMemcpyable {
            withUnsafeBytes { writer.append($0) }
        } else {
            for element in self { element.writeWireContent(to: &writer) }
        }
    }

    static func decodeWireContent(_ content: WireReader) throws -> [Element] {
        guard !content.isAtEnd else { return [] }
        var body = content
        let formOffset = body.position
        let form = try body.readByte()
        if form == WireLayout.slotsForm {
            // No reservation: the element count is unknown until read, and a hostile header
            // must not be able to make us allocate.
            var result: [Element] = []
            while !body.isAtEnd {
                result.append(try Element.decodeWireSlot(from: &body))
            }
            return result
        }
        guard let width = WireLayout.packedWidth(ofForm: form) else {
            throw WireCodingError.invalidArrayForm(form, at: formOffset)
        }
        guard width == Element.wirePackedWidth else {
            throw WireCodingError.packedWidthMismatch(Element.self, width: width, at: formOffset)
        }
        // The count comes from bytes actually present, so allocating it is safe.
        let (count, ragged) = body.remaining.quotientAndRemainder(dividingBy: width)
        guard ragged == 0 else {
            throw WireCodingError.raggedPackedArray(width: width, length: body.remaining, at: body.position)
        }
        guard count > 0 else { return [] }
        let raw = body.rawBytes
        if Element.self == UInt8.self {
            return unsafeBitCast(copyBytes(raw), to: [Element].self)
        }
        if Element.wireIsMemcpyable && Element.wirePackedBytesAreValid(raw) {
            return Array(unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                initialized = count
            }
        }
        var result: [Element] = []
        result.reserveCapacity(count)
        var offset = body.position
        for _ in 0..<count {
            result.append(try Element.decodeWireContent(WireReader(base: body.base, position: offset, end: offset + width)))
            offset += width
        }
        return result
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
