// WireUnkeyedDecodingContainer: the unkeyed container BinaryDecoder hands to a value's
// init(from:) that reads a sequence of elements (a Set, Data, a hand-written one; Array itself
// takes the fast path or WireArrayCoding's shortcut).
//
// Data flow: WireArrayBody reads the array's form and checks every element's framing up front,
// which gives an exact count; each decode then peeks at the next element (a cell, or a packed
// value of fixed width), decodes it — a primitive directly, any other value through
// WireDecodingContext, a nested container or super-decoder through BinaryDecoder.nested — and
// moves on only once that succeeded.

internal struct WireUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    /// The elements not yet decoded.
    private var reader: WireReader
    /// Width of packed elements; 0 when every element is a cell.
    private let width: Int
    let count: Int?
    private(set) var currentIndex = 0
    private let path: WireCodingPath
    private let depth: Int
    private let context: WireDecodingContext
    /// The decoder and path node of the previous element, for the next.
    private var slot = WireDecoderSlot()

    init(content: WireReader, path: WireCodingPath, depth: Int, context: WireDecodingContext) throws {
        self.path = path
        self.depth = depth
        self.context = context
        // Counting checks every element's framing, and gives callers such as Data's
        // init(from:) an exact count to preallocate — one bounded by the bytes present.
        (reader, width, count) = try WireArrayBody.elements(of: content)
    }

    var codingPath: [any CodingKey] { path.keys }
    var isAtEnd: Bool { reader.isAtEnd }

    private var elementPath: WireCodingPath { path.appending(WireCodingKey(index: currentIndex)) }

    /// The next element's content and where the element after it begins, without moving on:
    /// a failed decode leaves the element in place, so the caller may try another type.
    private func peek(_ type: Any.Type) throws -> (cell: WireReader?, next: Int) {
        guard !reader.isAtEnd else {
            throw DecodingError.valueNotFound(type, DecodingError.Context(
                codingPath: elementPath.keys, debugDescription: "Unkeyed container is at end."))
        }
        if width > 0 {
            let start = reader.position
            return (WireReader(base: reader.base, position: start, end: start + width), start + width)
        }
        var scan = reader
        let cell = try scan.readCell()
        return (cell, scan.position)
    }

    private mutating func advance(to next: Int) {
        reader.position = next
        currentIndex += 1
    }

    private mutating func primitive<P: FastWireCodable>() throws -> P {
        let (cell, next) = try peek(P.self)
        guard let cell else { throw BinaryDecoder.valueNotFound(P.self, elementPath) }
        let value = try P.decodeWireContent(cell)
        advance(to: next)
        return value
    }

    mutating func decodeNil() throws -> Bool {
        let (cell, next) = try peek(Any?.self)
        guard cell == nil else { return false }
        advance(to: next)
        return true
    }

    mutating func decode(_: Bool.Type) throws -> Bool { try primitive() }
    mutating func decode(_: String.Type) throws -> String { try primitive() }
    mutating func decode(_: Double.Type) throws -> Double { try primitive() }
    mutating func decode(_: Float.Type) throws -> Float { try primitive() }
    mutating func decode(_: Int.Type) throws -> Int { try primitive() }
    mutating func decode(_: Int8.Type) throws -> Int8 { try primitive() }
    mutating func decode(_: Int16.Type) throws -> Int16 { try primitive() }
    mutating func decode(_: Int32.Type) throws -> Int32 { try primitive() }
    mutating func decode(_: Int64.Type) throws -> Int64 { try primitive() }
    mutating func decode(_: UInt.Type) throws -> UInt { try primitive() }
    mutating func decode(_: UInt8.Type) throws -> UInt8 { try primitive() }
    mutating func decode(_: UInt16.Type) throws -> UInt16 { try primitive() }
    mutating func decode(_: UInt32.Type) throws -> UInt32 { try primitive() }
    mutating func decode(_: UInt64.Type) throws -> UInt64 { try primitive() }

    mutating func decode<T: Decodable>(_: T.Type) throws -> T {
        let (cell, next) = try peek(T.self)
        let value = try context.decodeElement(
            T.self, cell: cell, path: path, index: currentIndex, depth: depth, reusing: &slot)
        advance(to: next)
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy _: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let (cell, next) = try peek(KeyedDecodingContainer<NestedKey>.self)
        let container = try BinaryDecoder.nested(cell, path: elementPath, depth: depth, context: context).container(keyedBy: NestedKey.self)
        advance(to: next)
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (cell, next) = try peek((any UnkeyedDecodingContainer).self)
        let container = try BinaryDecoder.nested(cell, path: elementPath, depth: depth, context: context).unkeyedContainer()
        advance(to: next)
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let (cell, next) = try peek((any Decoder).self)
        let decoder = try BinaryDecoder.nested(cell, path: elementPath, depth: depth, context: context)
        advance(to: next)
        return decoder
    }
}
