// BinaryDecoder: any Decodable value read back from the payload wire format (WireFormat.swift)
// through Swift's Decoder protocol.
//
// Data flow: the payload becomes a WireReader; the top-level cell goes to the value's
// init(from:). Containers are bounded windows into the caller's bytes, never copies; fast-path
// types, arrays (WireArrayCoding) and raw-value enums (WireRawEnumCoding) take their shortcuts.
// The input may be hostile: every length is checked before use, nothing is allocated from an
// unchecked count, recursion is capped at `maximumDepth`, and every failure is a thrown error.

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

// MARK: - Keyed container

internal struct WireKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    // Everything lives in one object: the struct is copied through unspecialized generic code
    // several times per call, and a single reference is the cheapest thing to copy.
    private let entries: WireKeyedEntries

    init(content: WireReader, path: WireCodingPath, depth: Int, context: WireDecodingContext) {
        entries = WireKeyedEntries(content: content, path: path, depth: depth, context: context)
    }

    private var path: WireCodingPath { entries.path }
    private var depth: Int { entries.depth }
    private var context: WireDecodingContext { entries.context }

    var codingPath: [any CodingKey] { path.keys }

    /// The keys in payload order, up to the first malformed entry (which any decode would
    /// then report).
    var allKeys: [Key] {
        entries.allNames().compactMap { Key(stringValue: $0) }
    }

    func contains(_ key: Key) -> Bool {
        (try? entries.entry(named: key.stringValue)) != nil
    }

    private func require(_ key: Key) throws -> WireKeyedEntries.Entry {
        guard let entry = try entries.entry(named: key.stringValue) else {
            throw DecodingError.keyNotFound(key, DecodingError.Context(
                codingPath: codingPath, debugDescription: "No value associated with key '\(key.stringValue)'."))
        }
        return entry
    }

    private func primitive<P: FastWireCodable>(_ key: Key) throws -> P {
        guard let cell = try require(key).cell else {
            throw BinaryDecoder.valueNotFound(P.self, path.appending(key))
        }
        return try P.decodeWireContent(cell)
    }

    // One lookup instead of the default contains + decodeNil + decode.
    private func primitiveIfPresent<P: FastWireCodable>(_ key: Key) throws -> P? {
        guard let cell = try entries.entry(named: key.stringValue)?.cell else { return nil }
        return try P.decodeWireContent(cell)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try require(key).cell == nil
    }

    func decode(_: Bool.Type, forKey key: Key) throws -> Bool { try primitive(key) }
    func decode(_: String.Type, forKey key: Key) throws -> String { try primitive(key) }
    func decode(_: Double.Type, forKey key: Key) throws -> Double { try primitive(key) }
    func decode(_: Float.Type, forKey key: Key) throws -> Float { try primitive(key) }
    func decode(_: Int.Type, forKey key: Key) throws -> Int { try primitive(key) }
    func decode(_: Int8.Type, forKey key: Key) throws -> Int8 { try primitive(key) }
    func decode(_: Int16.Type, forKey key: Key) throws -> Int16 { try primitive(key) }
    func decode(_: Int32.Type, forKey key: Key) throws -> Int32 { try primitive(key) }
    func decode(_: Int64.Type, forKey key: Key) throws -> Int64 { try primitive(key) }
    func decode(_: UInt.Type, forKey key: Key) throws -> UInt { try primitive(key) }
    func decode(_: UInt8.Type, forKey key: Key) throws -> UInt8 { try primitive(key) }
    func decode(_: UInt16.Type, forKey key: Key) throws -> UInt16 { try primitive(key) }
    func decode(_: UInt32.Type, forKey key: Key) throws -> UInt32 { try primitive(key) }
    func decode(_: UInt64.Type, forKey key: Key) throws -> UInt64 { try primitive(key) }

    func decode<T: Decodable>(_: T.Type, forKey key: Key) throws -> T {
        try entries.decodeValue(T.self, cell: require(key).cell, key: key)
    }

    func decodeIfPresent(_: Bool.Type, forKey key: Key) throws -> Bool? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: String.Type, forKey key: Key) throws -> String? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Double.Type, forKey key: Key) throws -> Double? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Float.Type, forKey key: Key) throws -> Float? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Int.Type, forKey key: Key) throws -> Int? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Int8.Type, forKey key: Key) throws -> Int8? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Int16.Type, forKey key: Key) throws -> Int16? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Int32.Type, forKey key: Key) throws -> Int32? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: Int64.Type, forKey key: Key) throws -> Int64? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: UInt.Type, forKey key: Key) throws -> UInt? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: UInt8.Type, forKey key: Key) throws -> UInt8? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: UInt16.Type, forKey key: Key) throws -> UInt16? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: UInt32.Type, forKey key: Key) throws -> UInt32? { try primitiveIfPresent(key) }
    func decodeIfPresent(_: UInt64.Type, forKey key: Key) throws -> UInt64? { try primitiveIfPresent(key) }

    func decodeIfPresent<T: Decodable>(_: T.Type, forKey key: Key) throws -> T? {
        guard let cell = try entries.entry(named: key.stringValue)?.cell else { return nil }
        return try entries.decodeValue(T.self, cell: cell, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy _: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try BinaryDecoder.nested(require(key).cell, path: path.appending(key), depth: depth, context: context)
            .container(keyedBy: NestedKey.self)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try BinaryDecoder.nested(require(key).cell, path: path.appending(key), depth: depth, context: context)
            .unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        try superDecoder(named: WireCodingKey.super)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try superDecoder(named: key)
    }

    /// As with JSONDecoder, a missing entry gives a decoder over nil rather than failing here.
    private func superDecoder(named key: some CodingKey) throws -> any Decoder {
        try BinaryDecoder.nested(entries.entry(named: key.stringValue)?.cell, path: path.appending(key), depth: depth,
                                 context: context)
    }
}

/// The entries of one keyed container and the lookup over them. Entries are found by key, in
/// any order: the common case (keys read in the order they were written) costs one or two key
/// comparisons; anything else a scan, which in a large container is replaced by a hash table.
/// Entries are parsed as they are reached, so a malformed one is reported by the lookup that
/// meets it. (Confined to one decode call on one thread: no run-time exclusivity checks, as in
/// WireEncodingBuffer.)
internal final class WireKeyedEntries {
    struct Entry {
        let keyStart: Int
        let keyLength: Int
        /// The value's content, nil for a nil value.
        let cell: WireReader?
        /// Offset of the entry after this one.
        let next: Int
    }

    /// A scan that passes this many entries switches the container to a hash table.
    private static let tableThreshold = 16

    let content: WireReader
    let path: WireCodingPath
    let depth: Int
    let context: WireDecodingContext
    /// Offset of the entry most recently found.
    @exclusivity(unchecked) private var hint: Int
    @exclusivity(unchecked) private var table: [String: Int]?
    /// The decoder and path node of the previous value, for the next.
    @exclusivity(unchecked) private var slot = WireDecoderSlot()

    init(content: WireReader, path: WireCodingPath, depth: Int, context: WireDecodingContext) {
        self.content = content
        self.path = path
        self.depth = depth
        self.context = context
        self.hint = content.position
    }

    func decodeValue<T: Decodable, Key: CodingKey>(_: T.Type, cell: WireReader?, key: Key) throws -> T {
        try context.decodeValue(T.self, cell: cell, path: path, key: key, depth: depth, reusing: &slot)
    }

    /// The entry at `offset`, or nil at the end.
    private func entry(at offset: Int) throws -> Entry? {
        guard offset < content.end else { return nil }
        var reader = WireReader(base: content.base, position: offset, end: content.end)
        let keyLength = try reader.readVarint()
        guard keyLength <= reader.remaining else {
            throw WireCodingError.truncated(needed: keyLength, at: reader.position, remaining: reader.remaining)
        }
        let keyStart = reader.position
        reader.position += keyLength
        let cell = try reader.readCell()
        return Entry(keyStart: keyStart, keyLength: keyLength, cell: cell, next: reader.position)
    }

    private func keyBytes(of entry: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: content.base + entry.keyStart, count: entry.keyLength)
    }

    private func matches(_ entry: Entry, _ name: String) -> Bool {
        let utf8 = name.utf8
        guard utf8.count == entry.keyLength else { return false }
        let stored = content.base + entry.keyStart
        let equal = utf8.withContiguousStorageIfAvailable { text in
            for index in 0..<text.count where text[index] != stored.load(fromByteOffset: index, as: UInt8.self) {
                return false
            }
            return true
        }
        return equal ?? utf8.elementsEqual(UnsafeRawBufferPointer(start: stored, count: entry.keyLength))
    }

    func entry(named name: String) throws -> Entry? {
        if let current = try entry(at: hint) {
            if matches(current, name) { return current }
            if let following = try entry(at: current.next), matches(following, name) {
                hint = current.next
                return following
            }
        }
        return try search(name)
    }

    private func search(_ name: String) throws -> Entry? {
        if table == nil {
            var offset = content.position
            var visited = 0
            while let candidate = try entry(at: offset) {
                if matches(candidate, name) {
                    hint = offset
                    return candidate
                }
                offset = candidate.next
                visited += 1
                if visited == Self.tableThreshold { break }
            }
            guard visited == Self.tableThreshold else { return nil }
            table = try buildTable()
        }
        guard let offset = table?[name] else { return nil }
        hint = offset
        return try entry(at: offset)
    }

    /// Calls `body` with each key's text and entry offset, in payload order, up to the end or
    /// the first malformed entry. Keys that are not valid UTF-8 cannot name a CodingKey and are
    /// left out.
    private func forEachName(_ body: (String, Int) -> Void) {
        var offset = content.position
        while let candidate = try? entry(at: offset) {
            let key = keyBytes(of: candidate)
            if isValidUTF8(key) {
                body(key.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }, offset)
            }
            offset = candidate.next
        }
    }

    func allNames() -> [String] {
        var names: [String] = []
        forEachName { name, _ in names.append(name) }
        return names
    }

    /// The first entry for each key. Checks every entry's framing on the way.
    private func buildTable() throws -> [String: Int] {
        var table: [String: Int] = [:]
        var offset = content.position
        while let candidate = try entry(at: offset) {
            let key = keyBytes(of: candidate)
            if isValidUTF8(key) {
                let name = key.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
                if table[name] == nil { table[name] = offset }
            }
            offset = candidate.next
        }
        return table
    }
}

// MARK: - Unkeyed container

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
