// WireKeyedDecodingContainer: the keyed container BinaryDecoder hands to a value's init(from:),
// and WireKeyedEntries, the lookup over that container's entries.
//
// Data flow: the container's content is a window into the payload (no copy) holding a run of
// entries, each a key (varint length, UTF-8 bytes) and a cell. A decode by key asks
// WireKeyedEntries for the entry; a primitive is read from its cell directly, any other value
// goes through WireDecodingContext, and nested containers and super-decoders come from
// BinaryDecoder.nested, one level deeper. A malformed entry is reported by the lookup that
// reaches it.

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
