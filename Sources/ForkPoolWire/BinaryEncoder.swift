// BinaryEncoder: any Encodable value written in the payload wire format (WireFormat.swift)
// through Swift's Encoder protocol.
//
// The top-level cell opens in a fresh WireEncodingBuffer, the value encodes itself into it and
// the bytes are appended to the caller's array in one copy. A nested cell's length is patched
// when it closes; nested containers and super-encoders, filled in any order, write into a
// buffer of their own spliced in when the parent's cell closes. Fast-path types, arrays and
// raw-value enums take their shortcuts.
//
// MARK: - Encoder

internal final class BinaryEncoder: Encoder {
    /// Appends `value`'s payload to `bytes`; on a throw `bytes` is as it was.
    static func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        let buffer = WireEncodingBuffer()
        do {
            try buffer.encodeTopCell(value)
        } catch let error as EncodingError {
            throw WireCodingError(error, encoding: T.self)
        }
        buffer.finishPayload(into: &bytes)
    }

    /// Like `encode`, for a type already known not to be FastWireCodable (PayloadCodec asked at
    /// init), which saves the dynamic cast.
    static func encodeGeneral<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        let buffer = WireEncodingBuffer()
        do {
            var slot = WireEncoderSlot()
            try buffer.encodeGeneralCell(value, at: WireCodingPath(), index: -1, reusing: &slot, rollbackTo: 0)
        } catch let error as EncodingError {
            throw WireCodingError(error, encoding: T.self)
        }
        buffer.finishPayload(into: &bytes)
    }

    // A class, so that handing it out as `any Encoder` or `any SingleValueEncodingContainer`
    // needs no heap box and copies one reference, and so that one encoder serves one array
    // element after another (WireEncodingBuffer.encodeGeneralCell reuses those nothing kept).
    // The fields change only while nothing but a container's slot refers to the encoder.

    let buffer: WireEncodingBuffer
    /// The cell this encoder writes; once it closes, writes are refused instead of corrupting
    /// whatever the buffer holds by then. Where the cell's content begins is the buffer's
    /// `activeContentStart` whenever the cell may be written.
    var cell: Int
    /// Where the value is — or, for an array element, where its array is: the element's own
    /// path (`path` plus `index`) is only built when something needs it.
    var path: WireCodingPath
    /// The element's index in the array at `path`, or -1 when `path` is the value's own.
    var index = -1
    /// The link last built for `index`, reused once nothing holds it.
    private var indexLink: WireCodingPathNode?

    init(buffer: WireEncodingBuffer, cell: Int, path: WireCodingPath) {
        self.buffer = buffer
        self.cell = cell
        self.path = path
    }

    /// The value's own path.
    private var valuePath: WireCodingPath {
        index < 0 ? path : path.appending(index: index, reusing: &indexLink)
    }

    var codingPath: [any CodingKey] { valuePath.keys }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(WireKeyedEncodingContainer<Key>(buffer: buffer, cell: cell, path: valuePath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        // Asked for while its cell is not the one being written (the value has finished, or
        // a value nested in it is being written), the container gets a detached buffer, whose
        // writes throw: where this cell's content begins is only known while it is active.
        guard buffer.isActive(cell) else {
            let detached = WireEncodingBuffer.detached()
            return WireUnkeyedEncodingContainer(buffer: detached, cell: detached.activeCell, formOffset: 0, path: valuePath)
        }
        // The form byte goes in once per cell, however many times the container is asked for.
        let contentStart = buffer.activeContentStart
        if buffer.count == contentStart {
            buffer.append(WireLayout.cellsForm)
        }
        return WireUnkeyedEncodingContainer(buffer: buffer, cell: cell, formOffset: contentStart, path: valuePath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        self
    }

    private func ensureActive() throws {
        guard buffer.isActive(cell) else { throw WireCodingError.containerUsedAfterItsValue(path: valuePath.keys) }
    }
}

extension BinaryEncoder: SingleValueEncodingContainer {
    func encodeNil() throws {
        try ensureActive()
        buffer.nilContentStart = buffer.activeContentStart
    }

    func encode(_ value: Bool) throws { try content(value) }
    func encode(_ value: String) throws { try content(value) }
    func encode(_ value: Double) throws { try content(value) }
    func encode(_ value: Float) throws { try content(value) }
    func encode(_ value: Int) throws { try content(value) }
    func encode(_ value: Int8) throws { try content(value) }
    func encode(_ value: Int16) throws { try content(value) }
    func encode(_ value: Int32) throws { try content(value) }
    func encode(_ value: Int64) throws { try content(value) }
    func encode(_ value: UInt) throws { try content(value) }
    func encode(_ value: UInt8) throws { try content(value) }
    func encode(_ value: UInt16) throws { try content(value) }
    func encode(_ value: UInt32) throws { try content(value) }
    func encode(_ value: UInt64) throws { try content(value) }

    func encode<T: Encodable>(_ value: T) throws {
        try ensureActive()
        if let fast = buffer.fastType(T.self) {
            if !fast.appendWireContent(of: value, to: buffer) {
                buffer.nilContentStart = buffer.activeContentStart
            }
        } else {
            // Same cell: a wrapper type's single value is the wrapped value's content.
            try value.encode(to: self)
        }
    }

    private func content<P: FastWireCodable>(_ value: P) throws {
        try ensureActive()
        _ = buffer.appendContent(value)
    }
}

// MARK: - Keyed container

internal struct WireKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let buffer: WireEncodingBuffer
    let cell: Int
    let path: WireCodingPath
    /// The encoder and path node of the previous value, for the next.
    private var slot = WireEncoderSlot()

    init(buffer: WireEncodingBuffer, cell: Int, path: WireCodingPath) {
        self.buffer = buffer
        self.cell = cell
        self.path = path
    }

    var codingPath: [any CodingKey] { path.keys }

    /// Writes the key; returns where the entry began, to roll back to if its value throws.
    private func beginEntry(_ key: Key) throws -> Int {
        try buffer.ensureActive(cell, path)
        let entryStart = buffer.count
        buffer.appendKey(key.stringValue)
        return entryStart
    }

    private func entry<P: FastWireCodable>(_ value: P, _ key: Key) throws {
        _ = try beginEntry(key)
        buffer.appendCell(value)
    }

    mutating func encodeNil(forKey key: Key) throws {
        _ = try beginEntry(key)
        buffer.append(WireLayout.nilCell)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try entry(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try entry(value, key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let entryStart = try beginEntry(key)
        try buffer.encodeCell(value, in: path, at: key, reusing: &slot, rollbackTo: entryStart)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy _: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = deferredEntry(key)
        return KeyedEncodingContainer(WireKeyedEncodingContainer<NestedKey>(
            buffer: child, cell: child.activeCell, path: path.appending(key)))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = deferredEntry(key)
        return BinaryEncoder(buffer: child, cell: child.activeCell, path: path.appending(key))
            .unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let key = WireCodingKey.super
        let child = deferredEntry(key)
        return BinaryEncoder(buffer: child, cell: child.activeCell, path: path.appending(key))
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = deferredEntry(key)
        return BinaryEncoder(buffer: child, cell: child.activeCell, path: path.appending(key))
    }

    /// These calls cannot throw, so a stale container gets a detached buffer whose writes throw.
    private func deferredEntry(_ key: some CodingKey) -> WireEncodingBuffer {
        guard buffer.activeCell == cell else { return WireEncodingBuffer.detached() }
        buffer.appendKey(key.stringValue)
        return buffer.makeDeferredChild()
    }
}

// MARK: - Unkeyed container

internal struct WireUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let buffer: WireEncodingBuffer
    let cell: Int
    /// Offset of this container's form byte. The form lives only in the bytes, never in this
    /// struct, so copies of the container stay consistent.
    let formOffset: Int
    let path: WireCodingPath
    private(set) var count = 0
    /// The encoder of the previous element, for the next.
    private var slot = WireEncoderSlot()

    init(buffer: WireEncodingBuffer, cell: Int, formOffset: Int, path: WireCodingPath) {
        self.buffer = buffer
        self.cell = cell
        self.formOffset = formOffset
        self.path = path
    }

    var codingPath: [any CodingKey] { path.keys }

    mutating func encodeNil() throws {
        try buffer.ensureActive(cell, path)
        buffer.unpack(formOffset: formOffset)
        buffer.append(WireLayout.nilCell)
        count += 1
    }

    mutating func encode(_ value: Bool) throws { try element(value) }
    mutating func encode(_ value: String) throws { try element(value) }
    mutating func encode(_ value: Double) throws { try element(value) }
    mutating func encode(_ value: Float) throws { try element(value) }
    mutating func encode(_ value: Int) throws { try element(value) }
    mutating func encode(_ value: Int8) throws { try element(value) }
    mutating func encode(_ value: Int16) throws { try element(value) }
    mutating func encode(_ value: Int32) throws { try element(value) }
    mutating func encode(_ value: Int64) throws { try element(value) }
    mutating func encode(_ value: UInt) throws { try element(value) }
    mutating func encode(_ value: UInt8) throws { try element(value) }
    mutating func encode(_ value: UInt16) throws { try element(value) }
    mutating func encode(_ value: UInt32) throws { try element(value) }
    mutating func encode(_ value: UInt64) throws { try element(value) }

    private mutating func element<P: FastWireCodable>(_ value: P) throws {
        try buffer.ensureActive(cell, path)
        buffer.appendElement(value, formOffset: formOffset)
        count += 1
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try buffer.ensureActive(cell, path)
        if let fast = buffer.fastType(T.self) {
            fast.appendWireElement(of: value, to: buffer, formOffset: formOffset)
        } else {
            buffer.unpack(formOffset: formOffset)
            try buffer.encodeGeneralCell(value, at: path, index: count, reusing: &slot, rollbackTo: buffer.count)
        }
        count += 1
    }

    /// Bulk path for `Data`, `[UInt8]` slices and the like: contiguous fixed-width elements are
    /// copied in one go when the container is (or can become) packed at their width.
    mutating func encode<S: Sequence>(contentsOf sequence: S) throws where S.Element: Encodable {
        try buffer.ensureActive(cell, path)
        if let fast = buffer.fastType(S.Element.self), fast.wireIsMemcpyable,
           buffer.preparePacked(width: fast.wirePackedWidth, formOffset: formOffset) {
            let copied = sequence.withContiguousStorageIfAvailable { elements -> Int in
                buffer.append(UnsafeRawBufferPointer(elements))
                return elements.count
            }
            if let copied {
                count += copied
                return
            }
        }
        for element in sequence {
            try encode(element)
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let (child, index) = deferredElement()
        return KeyedEncodingContainer(WireKeyedEncodingContainer<NestedKey>(
            buffer: child, cell: child.activeCell, path: path.appending(WireCodingKey(index: index))))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let (child, index) = deferredElement()
        return BinaryEncoder(buffer: child, cell: child.activeCell,
                             path: path.appending(WireCodingKey(index: index))).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let (child, index) = deferredElement()
        return BinaryEncoder(buffer: child, cell: child.activeCell,
                             path: path.appending(WireCodingKey(index: index)))
    }

    private mutating func deferredElement() -> (WireEncodingBuffer, index: Int) {
        let index = count
        guard buffer.activeCell == cell else { return (WireEncodingBuffer.detached(), index) }
        buffer.unpack(formOffset: formOffset)
        count += 1
        return (buffer.makeDeferredChild(), index)
    }
}
