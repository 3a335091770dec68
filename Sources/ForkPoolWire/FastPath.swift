// FastPath: the hand-written wire form of the common types — the integers, Double, Float,
// Bool, String, and arrays and optionals of those, nested to any depth. PayloadCodec uses it
// for a whole payload, and the general coder for any such value nested in a struct. It writes
// exactly what the general coder writes (WireFormat.swift), so it is a shortcut, never a
// dialect.

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
    /// 0 for types that need a cell per element.
    static var wirePackedWidth: Int { get }
    /// Whether an array's elements can be copied to and from the wire as one block: a
    /// little-endian host and an in-memory size equal to the wire width.
    static var wireIsMemcpyable: Bool { get }
    /// Whether bytes copied from a payload are valid values (not so for Bool bytes above 1).
    static func wirePackedBytesAreValid(_ raw: UnsafeRawBufferPointer) -> Bool
    /// Whether a nil cell is a value of this type (only for Optional).
    static var wireAcceptsNil: Bool { get }
    /// The value of a nil cell at `offset`; throws for types that cannot be nil.
    static func decodeWireNil(at offset: Int) throws -> Self
    /// Whether the value is written as a nil cell.
    var isWireNil: Bool { get }
    /// Exact size of the cell content (0 when `isWireNil`).
    var wireContentSize: Int { get }
    /// Writes exactly `wireContentSize` bytes.
    func writeWireContent(to writer: inout WireWriter)
    static func decodeWireContent(_ content: WireReader) throws -> Self

    var wireCellSize: Int { get }
    func writeWireCell(to writer: inout WireWriter)
    static func decodeWireCell(from reader: inout WireReader) throws -> Self

    // PayloadCodec and the binary coder meet fast types as a generic `V` that a dynamic cast
    // proved to be `Self`; these entry points do the (then free) conversion.

    /// Appends a whole payload to `bytes`.
    static func appendWirePayload<V>(of value: V, to bytes: inout [UInt8])
    static func decodeWireCell<V>(from reader: inout WireReader, as type: V.Type) throws -> V
    static func appendWireCell<V>(of value: V, to buffer: WireEncodingBuffer)
    /// Appends the bare content; returns false, appending nothing, if the value is nil.
    static func appendWireContent<V>(of value: V, to buffer: WireEncodingBuffer) -> Bool
    /// Appends an element to the unkeyed container whose form byte is at `formOffset`.
    static func appendWireElement<V>(of value: V, to buffer: WireEncodingBuffer, formOffset: Int)
    /// Decodes cell content as `V`; a nil cell only when `wireAcceptsNil`.
    static func decodeWireValue<V>(_ cell: WireReader?, as type: V.Type) throws -> V
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

    var wireCellSize: Int {
        if isWireNil { return 1 }
        let size = wireContentSize
        return wireVarintSize(size + 1) + size
    }

    func writeWireCell(to writer: inout WireWriter) {
        if isWireNil {
            writer.append(WireLayout.nilCell)
            return
        }
        writer.appendVarint(wireContentSize + 1)
        writeWireContent(to: &writer)
    }

    static func decodeWireCell(from reader: inout WireReader) throws -> Self {
        let headerOffset = reader.position
        guard let content = try reader.readCell() else { return try decodeWireNil(at: headerOffset) }
        return try decodeWireContent(content)
    }

    static func appendWirePayload<V>(of value: V, to bytes: inout [UInt8]) {
        let typed = unsafeBitCast(value, to: Self.self)
        let size = typed.wireCellSize
        // At most one (geometric) growth, then plain stores straight into the array's new tail.
        bytes.append(addingCapacity: size) { span in
            span.withUnsafeMutableBufferPointer { tail, initialized in
                var writer = WireWriter(base: UnsafeMutableRawPointer(tail.baseAddress!), capacity: size)
                typed.writeWireCell(to: &writer)
                initialized = writer.count
            }
        }
    }

    static func decodeWireCell<V>(from reader: inout WireReader, as _: V.Type) throws -> V {
        unsafeBitCast(try decodeWireCell(from: &reader), to: V.self)
    }

    static func appendWireCell<V>(of value: V, to buffer: WireEncodingBuffer) {
        buffer.appendCell(unsafeBitCast(value, to: Self.self))
    }

    static func appendWireContent<V>(of value: V, to buffer: WireEncodingBuffer) -> Bool {
        buffer.appendContent(unsafeBitCast(value, to: Self.self))
    }

    static func appendWireElement<V>(of value: V, to buffer: WireEncodingBuffer, formOffset: Int) {
        buffer.appendElement(unsafeBitCast(value, to: Self.self), formOffset: formOffset)
    }

    static func decodeWireValue<V>(_ cell: WireReader?, as _: V.Type) throws -> V {
        guard let cell else { return unsafeBitCast(try decodeWireNil(at: 0), to: V.self) }
        return unsafeBitCast(try decodeWireContent(cell), to: V.self)
    }
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

/// Double and Float share one shape too: the little-endian IEEE bit pattern.
internal protocol FastWireFloat: FastWireCodable {
    associatedtype Bits: FixedWidthInteger
    var bitPattern: Bits { get }
    init(bitPattern: Bits)
}

extension FastWireFloat {
    static var wirePackedWidth: Int { MemoryLayout<Bits>.size }
    static var wireIsMemcpyable: Bool { WireLayout.isLittleEndianHost }
    var wireContentSize: Int { MemoryLayout<Bits>.size }

    func writeWireContent(to writer: inout WireWriter) {
        writer.appendLittleEndian(bitPattern)
    }

    static func decodeWireContent(_ content: WireReader) throws -> Self {
        Self(bitPattern: try content.readWhole(Bits.self, as: Self.self))
    }
}

extension Double: FastWireFloat { typealias Bits = UInt64 }
extension Float: FastWireFloat { typealias Bits = UInt32 }

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
    // The cell already carries the length, so the content is the bare UTF-8.
    var wireContentSize: Int { utf8.count }

    func writeWireContent(to writer: inout WireWriter) {
        writer.append(utf8: self)
    }

    static func decodeWireContent(_ content: WireReader) throws -> String {
        try content.readUTF8()
    }
}

extension Optional: FastWireCodable where Wrapped: FastWireCodable {
    // Like Optional's own Codable: nil is a nil cell, a value is the wrapped value's cell.
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
    // other element gets a cell, the same layout the binary coder's unkeyed container writes.
    var wireContentSize: Int {
        let width = Element.wirePackedWidth
        if width > 0 { return 1 + count * width }
        if Element.self == String.self { return StringArrayWire.contentSize(unsafeBitCast(self, to: [String].self)) }
        var size = 1
        for element in self { size += element.wireCellSize }
        return size
    }

    func writeWireContent(to writer: inout WireWriter) {
        let width = Element.wirePackedWidth
        guard width > 0 else {
            if Element.self == String.self {
                StringArrayWire.write(unsafeBitCast(self, to: [String].self), to: &writer)
                return
            }
            writer.append(WireLayout.cellsForm)
            for element in self { element.writeWireCell(to: &writer) }
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
        let body: WireReader, width: Int, count: Int
        switch try WireArrayBody(content) {
        case .empty:
            return []
        case .cells(var cells):
            // The cells are counted first (each one's length says where the next begins), so
            // the array is allocated once at its final size — never larger than the payload's
            // bytes allow (a cell is at least one byte), whatever a hostile payload says.
            if Element.self == String.self { return unsafeBitCast(try StringArrayWire.decode(cells), to: [Element].self) }
            var counter = cells
            var count = 0
            while !counter.isAtEnd {
                let position = counter.position
                // A nil cell where no nil may be is refused now, before any allocation.
                if try counter.readCell() == nil && !Element.wireAcceptsNil { _ = try Element.decodeWireNil(at: position) }
                count += 1
            }
            return try [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
                while initialized < count {
                    (buffer.baseAddress! + initialized).initialize(to: try Element.decodeWireCell(from: &cells))
                    initialized += 1
                }
            }
        case .packed(let packed, let packedWidth, let packedCount):
            guard packedWidth == Element.wirePackedWidth else {
                throw WireCodingError.packedWidthMismatch(Element.self, width: packedWidth,
                                                          at: WireArrayBody.formOffset(of: content))
            }
            (body, width, count) = (packed, packedWidth, packedCount)
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

/// `[String]`, the commonest array of cells, in concrete code: the generic `Array` path above,
/// unspecialized, looks up generic metadata for every element. Same wire layout: the cells
/// form byte, then one cell (length, UTF-8) per string.
enum StringArrayWire {
    static func contentSize(_ strings: [String]) -> Int {
        var size = 1
        for string in strings {
            let count = string.utf8.count
            size += wireVarintSize(count + 1) + count
        }
        return size
    }

    static func write(_ strings: [String], to writer: inout WireWriter) {
        writer.append(WireLayout.cellsForm)
        for string in strings {
            writer.appendVarint(string.utf8.count + 1)
            writer.append(utf8: string)
        }
    }

    /// The cells after the form byte; a nil cell is refused, as `String.decodeWireCell` does.
    static func decode(_ cells: WireReader) throws -> [String] {
        var counter = cells
        var count = 0
        while !counter.isAtEnd {
            let position = counter.position
            // A nil cell is refused now, before any allocation (a String cannot be nil).
            if try counter.readCell() == nil { _ = try String.decodeWireNil(at: position) }
            count += 1
        }
        var reader = cells
        return try [String](unsafeUninitializedCapacity: count) { buffer, initialized in
            while initialized < count {
                (buffer.baseAddress! + initialized).initialize(to: try String.decodeWireCell(from: &reader))
                initialized += 1
            }
        }
    }
}
