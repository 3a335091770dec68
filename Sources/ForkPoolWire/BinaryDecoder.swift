// BinaryDecoder: any Decodable value read back from the payload wire format (WireFormat.swift)
// through Swift's Decoder protocol.
//
// Data flow: the payload becomes a WireReader; the top-level cell goes to the value's
// init(from:). Containers are bounded windows into the caller's bytes, never copies; fast-path
// types, arrays (WireArrayCoding) and raw-value enums (WireRawEnumCoding) take their shortcuts.
// The input may be hostile: every length is checked before use, nothing is allocated from an
// unchecked count, recursion is capped at `maximumDepth`, and every failure is a thrown error.
//
// This file holds the decoder and its single-value container; the keyed container is in
// WireKeyedDecodingContainer.swift, the unkeyed one in WireUnkeyedDecodingContainer.swift.

// MARK: - Decoder

internal final class BinaryDecoder: Decoder {
    /// Deeper payloads are refused rather than recursed into: a hostile payload for a recursive
    /// type could otherwise overflow the stack. 512 levels of a small recursive class took under
    /// 512 KiB of stack in a release build and under 1 MiB in a debug one, well inside a default
    /// pthread stack (the stack rlimit, usually 8 MiB); real values are far shallower.
    static let maximumDepth = 512

    static func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        try decodePayload(T.self, from: bytes, fast: T.self as? any FastWireCodable.Type)
    }

    /// Like `decode`, for a type already known not to be FastWireCodable (PayloadCodec asked at
    /// init), which saves the dynamic cast.
    static func decodeGeneral<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        try decodePayload(T.self, from: bytes, fast: nil)
    }

    private static func decodePayload<T: Decodable>(
        _: T.Type, from bytes: UnsafeRawBufferPointer, fast: (any FastWireCodable.Type)?
    ) throws -> T {
        var reader = try WireReader(payload: bytes)
        let cell = try reader.readCell()
        try reader.expectEnd()
        do {
            if let fast {
                guard cell != nil || fast.wireAcceptsNil else { throw WireCodingError.unexpectedNil(T.self, at: 0) }
                return try fast.decodeWireValue(cell, as: T.self)
            }
            return try WireDecodingContext().decodeAsValue(T.self, cell: cell, path: WireCodingPath(), depth: 0)
        } catch let error as DecodingError {
            throw WireCodingError(error, decoding: T.self)
        }
    }

    // A class, so that handing it out as `any Decoder` or `any SingleValueDecodingContainer`
    // needs no heap box, and so that one decoder serves one array element after another
    // (WireDecodingContext reuses those nothing kept). The fields change only while nothing
    // but the container's slot refers to the decoder.

    /// The content of the cell being decoded; nil when the cell is nil.
    var cell: WireReader?
    /// Where the value is — or, for an array element, where its array is: the element's own
    /// path (`path` plus `index`) is only built when something needs it, so decoding an
    /// element that makes no container costs no path link.
    var path: WireCodingPath
    /// The element's index in the array at `path`, or -1 when `path` is the value's own.
    var index = -1
    var depth: Int
    let context: WireDecodingContext
    /// The link last built for `index`, reused once nothing holds it.
    private var indexLink: WireCodingPathNode?

    init(cell: WireReader?, path: WireCodingPath, depth: Int, context: WireDecodingContext) {
        self.cell = cell
        self.path = path
        self.depth = depth
        self.context = context
    }

    /// The value's own path.
    private var valuePath: WireCodingPath {
        index < 0 ? path : path.appending(index: index, reusing: &indexLink)
    }

    var codingPath: [any CodingKey] { valuePath.keys }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let content = try nonNilContent(KeyedDecodingContainer<Key>.self)
        return KeyedDecodingContainer(WireKeyedDecodingContainer<Key>(
            content: content, path: valuePath, depth: depth, context: context))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let content = try nonNilContent((any UnkeyedDecodingContainer).self)
        return try WireUnkeyedDecodingContainer(content: content, path: valuePath, depth: depth, context: context)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        self
    }

    private func nonNilContent(_ expected: Any.Type) throws -> WireReader {
        guard let cell else {
            throw DecodingError.valueNotFound(expected, DecodingError.Context(
                codingPath: codingPath, debugDescription: "Expected a container but found nil."))
        }
        return cell
    }

    // Shared by the containers.

    /// A decoder one level down, or an error once the payload is too deep.
    static func nested(_ cell: WireReader?, path: WireCodingPath, depth: Int,
                       context: WireDecodingContext) throws -> BinaryDecoder {
        guard depth < maximumDepth else {
            throw WireCodingError.nestingTooDeep(limit: maximumDepth, path: path.keys)
        }
        return BinaryDecoder(cell: cell, path: path, depth: depth + 1, context: context)
    }

    static func valueNotFound(_ type: Any.Type, _ path: WireCodingPath) -> DecodingError {
        DecodingError.valueNotFound(type, DecodingError.Context(
            codingPath: path.keys, debugDescription: "Expected \(type) value but found nil."))
    }
}

extension BinaryDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { cell == nil }

    func decode(_: Bool.Type) throws -> Bool { try primitive() }
    func decode(_: String.Type) throws -> String { try primitive() }
    func decode(_: Double.Type) throws -> Double { try primitive() }
    func decode(_: Float.Type) throws -> Float { try primitive() }
    func decode(_: Int.Type) throws -> Int { try primitive() }
    func decode(_: Int8.Type) throws -> Int8 { try primitive() }
    func decode(_: Int16.Type) throws -> Int16 { try primitive() }
    func decode(_: Int32.Type) throws -> Int32 { try primitive() }
    func decode(_: Int64.Type) throws -> Int64 { try primitive() }
    func decode(_: UInt.Type) throws -> UInt { try primitive() }
    func decode(_: UInt8.Type) throws -> UInt8 { try primitive() }
    func decode(_: UInt16.Type) throws -> UInt16 { try primitive() }
    func decode(_: UInt32.Type) throws -> UInt32 { try primitive() }
    func decode(_: UInt64.Type) throws -> UInt64 { try primitive() }

    func decode<T: Decodable>(_: T.Type) throws -> T {
        if let fast = context.fastType(T.self) {
            guard cell != nil || fast.wireAcceptsNil else { throw Self.valueNotFound(T.self, valuePath) }
            return try fast.decodeWireValue(cell, as: T.self)
        }
        // Same cell (a wrapper's single value), but one level deeper, so even a type that
        // decodes itself this way cannot recurse without bound.
        return try context.decodeGeneral(T.self, cell: cell, path: valuePath, depth: depth)
    }

    private func primitive<P: FastWireCodable>() throws -> P {
        guard let cell else { throw Self.valueNotFound(P.self, valuePath) }
        return try P.decodeWireContent(cell)
    }
}
