// WireFormat: the payload wire format, and the three primitives everything that reads or
// writes it is built on — the layout constants (WireLayout), the bounded reading cursor
// (WireReader) and the exact-size writing cursor (WireWriter, with the varint size). The
// general coder (BinaryEncoder, BinaryDecoder) and the fast path (FastPath.swift) depend on
// this file; it depends on nothing but WireCodingError. The grammar is on WireLayout.

/// Constants of the wire format shared by the encoder, the decoder and the fast path.
///
/// ```
///   payload  = cell, and no byte after it
///   cell     = 0x00                        nil
///            | varint(n + 1)  content(n)   a value whose content is n bytes
///   varint   = unsigned LEB128
///   content of
///     Bool, Int8 … UInt64, Float, Double   little-endian bit pattern of the type's width
///     Int, UInt                            little-endian, always 8 bytes
///     String                               UTF-8 (the cell gives the length)
///     keyed container                      ( varint(k) key-UTF-8(k) cell )*  — any order,
///                                          read by key, unknown keys skipped
///     unkeyed container                    nothing (empty), or a form byte then
///                                            form 0        cell*
///                                            form 1,2,3,4  packed elements: the bare content
///                                                          of primitives 1, 2, 4 or 8 bytes wide
///                                          (packed while every element so far is a primitive of
///                                          one width — [Int], Data — cells once one is not)
///   Optional follows its own Codable: nil is a nil cell, a value is the wrapped value's cell.
/// ```
internal enum WireLayout {
    static let nilCell: UInt8 = 0
    static let cellsForm: UInt8 = 0

    static var isLittleEndianHost: Bool {
        #if _endian(little)
        true
        #else
        false
        #endif
    }

    static func packedForm(width: Int) -> UInt8 {
        switch width {
        case 1: 1
        case 2: 2
        case 4: 3
        default: 4
        }
    }

    static func packedWidth(ofForm form: UInt8) -> Int? {
        switch form {
        case 1: 1
        case 2: 2
        case 3: 4
        case 4: 8
        default: nil
        }
    }
}

/// A bounded cursor into a payload. Offsets are from the payload's first byte, so errors can
/// say where they happened.
internal struct WireReader {
    let base: UnsafeRawPointer
    var position: Int
    let end: Int

    init(base: UnsafeRawPointer, position: Int, end: Int) {
        self.base = base
        self.position = position
        self.end = end
    }

    /// A reader over a whole payload. A payload is at least one byte (a nil cell).
    init(payload bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
            throw WireCodingError.truncated(needed: 1, at: 0, remaining: 0)
        }
        self.init(base: base, position: 0, end: bytes.count)
    }

    var isAtEnd: Bool { position >= end }
    var remaining: Int { end - position }
    var rawBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + position, count: end - position) }

    mutating func readByte() throws -> UInt8 {
        guard position < end else { throw WireCodingError.truncated(needed: 1, at: position, remaining: 0) }
        let byte = base.load(fromByteOffset: position, as: UInt8.self)
        position += 1
        return byte
    }

    /// An unsigned LEB128 that must fit in an Int; lengths and headers are read with this.
    mutating func readVarint() throws -> Int {
        let start = position
        var byte = try readByte()
        if byte < 0x80 { return Int(byte) }
        var value = UInt64(byte & 0x7F)
        var shift: UInt64 = 7
        repeat {
            byte = try readByte()
            let bits = UInt64(byte & 0x7F)
            // Anything past bit 62 could not be an Int length anyway.
            guard shift < 63, bits <= UInt64(Int.max) >> shift else {
                throw WireCodingError.malformedVarint(at: start)
            }
            value |= bits << shift
            shift += 7
        } while byte >= 0x80
        return Int(value)
    }

    /// Reads a cell header and returns a reader over the cell's content (nil for a nil cell),
    /// moving past it. The content must fit in what remains of this reader.
    mutating func readCell() throws -> WireReader? {
        let header = try readVarint()
        if header == 0 { return nil }
        let length = header - 1
        guard length <= end - position else {
            throw WireCodingError.truncated(needed: length, at: position, remaining: end - position)
        }
        let content = WireReader(base: base, position: position, end: position + length)
        position += length
        return content
    }

    func expectEnd() throws {
        guard position == end else { throw WireCodingError.trailingBytes(end - position, at: position) }
    }

    /// The whole remaining content as one little-endian `T`; its size must match exactly.
    func readWhole<T: FixedWidthInteger>(_: T.Type, as type: Any.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard end - position == size else {
            throw WireCodingError.sizeMismatch(type, expected: size, found: end - position, at: position)
        }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    /// The whole remaining content as validated UTF-8.
    func readUTF8() throws -> String {
        // Validated here rather than by String(validating:), which instantiates generic
        // metadata on every call and took twice as long for short strings; once valid,
        // String(decoding:) never repairs anything.
        guard isValidUTF8(rawBytes) else {
            throw WireCodingError.invalidUTF8(at: position, length: end - position)
        }
        return rawBytes.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
    }
}

/// Whether `bytes` is well-formed UTF-8 (RFC 3629: shortest forms only, no surrogates, nothing
/// above U+10FFFF) — exactly what String(validating:as:) accepts.
internal func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let count = bytes.count
    var index = 0
    while index < count {
        // ASCII runs, eight bytes at a time.
        while index + 8 <= count,
              bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
            index += 8
        }
        guard index < count else { break }
        let lead = bytes[index]
        if lead < 0x80 {
            index += 1
            continue
        }
        let length: Int
        var low: UInt8 = 0x80  // allowed range of the second byte
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return false
        }
        guard index + length <= count else { return false }
        let second = bytes[index + 1]
        guard second >= low && second <= high else { return false }
        for offset in 2..<length where bytes[index + offset] & 0xC0 != 0x80 {
            return false
        }
        index += length
    }
    return true
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

/// The content of an array (an unkeyed container), its form byte read and checked once, for
/// the fast path and the general decoder alike: empty, a run of cells, or packed elements of
/// one width (their count taken from the bytes present, so allocating it is safe).
enum WireArrayBody {
    case empty
    /// The elements, each a cell.
    case cells(WireReader)
    /// `count` elements of `width` bytes each, bare contents.
    case packed(WireReader, width: Int, count: Int)

    init(_ content: WireReader) throws {
        guard !content.isAtEnd else {
            self = .empty
            return
        }
        var body = content
        let formOffset = body.position
        let form = try body.readByte()
        if form == WireLayout.cellsForm {
            self = .cells(body)
            return
        }
        guard let width = WireLayout.packedWidth(ofForm: form) else {
            throw WireCodingError.invalidArrayForm(form, at: formOffset)
        }
        let (count, ragged) = body.remaining.quotientAndRemainder(dividingBy: width)
        guard ragged == 0 else {
            throw WireCodingError.raggedPackedArray(width: width, length: body.remaining, at: body.position)
        }
        self = .packed(body, width: width, count: count)
    }

    /// The elements of an array's `content` as the general decoder reads them: a reader at the
    /// first, their width (0: each is a cell) and their count. Cells are counted first, which
    /// checks every element's framing and bounds the count by the bytes present, so a caller
    /// can allocate for it at once.
    static func elements(of content: WireReader) throws -> (reader: WireReader, width: Int, count: Int) {
        switch try WireArrayBody(content) {
        case .empty:
            return (content, 0, 0)
        case .cells(let body):
            var scan = body
            var cells = 0
            while !scan.isAtEnd {
                _ = try scan.readCell()
                cells += 1
            }
            return (body, 0, cells)
        case .packed(let body, let width, let count):
            return (body, width, count)
        }
    }

    /// Where the form byte was (for errors about it): the content's start.
    static func formOffset(of content: WireReader) -> Int { content.position }
}
