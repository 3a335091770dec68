// BinaryEncoder: the general encoding half of the payload wire format — any Encodable value,
// walked through Swift's Encoder protocol.
//
// Data flow: encode(_:into:) opens the top-level cell in a fresh WireEncodingBuffer (plain
// memory, so a field costs a few stores rather than an Array append) and lets the value encode
// itself; containers append straight into that buffer, and at the end its bytes are appended
// to the caller's array in one copy. A nested Encodable value gets a cell whose length header
// is reserved as one byte and patched (widened if need be) when the value's encode(to:)
// returns. A value whose type is FastWireCodable (PayloadCodec.swift) is written by that fast
// path instead, wherever it occurs. Nested containers and super-encoders, which the Codable API
// lets a caller fill in any order, write into a buffer of their own that is spliced into the
// parent when the parent's cell closes. The wire format itself is laid out in WireFormat.swift.
//
// MARK: - Encoder

internal struct BinaryEncoder: Encoder {
    /// Appends `value`'s payload to `bytes`; on a throw `bytes` is as it was.
    static func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        let buffer = WireEncodingBuffer()
        do {
            try buffer.encodeCell(value, in: WireCodingPath(), at: WireCodingKey?.none, rollbackTo: 0)
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
            try buffer.encodeGeneralCell(value, in: WireCodingPath(), at: WireCodingKey?.none, rollbackTo: 0)
        } catch let error as EncodingError {
            throw WireCodingError(error, encoding: T.self)
        }
        buffer.finishPayload(into: &bytes)
    }

    let buffer: WireEncodingBuffer
    /// The cell this encoder writes; once it closes, writes are refused instead of corrupting
    /// whatever the buffer holds by then.
    let cell: Int
    /// Where this cell's content begins in the buffer.
    let contentStart: Int
    let path: WireCodingPath

    var codingPath: [any CodingKey] { path.keys }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(WireKeyedEncodingContainer<Key>(buffer: buffer, cell: cell, path: path))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        // The form byte goes in once per cell, however many times the container is asked for.
        if buffer.activeCell == cell && buffer.count == contentStart {
            buffer.append(WireLayout.cellsForm)
        }
        return WireUnkeyedEncodingContainer(buffer: buffer, cell: cell, formOffset: contentStart, path: path)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        self
    }
}

extension BinaryEncoder: SingleValueEncodingContainer {
    mutating func encodeNil() throws {
        try buffer.ensureActive(cell, path)
        buffer.nilContentStart = contentStart
    }

    mutating func encode(_ value: Bool) throws { try content(value) }
    mutating func encode(_ value: String) throws { try content(value) }
    mutating func encode(_ value: Double) throws { try content(value) }
    mutating func encode(_ value: Float) throws { try content(value) }
    mutating func encode(_ value: Int) throws { try content(value) }
    mutating func encode(_ value: Int8) throws { try content(value) }
    mutating func encode(_ value: Int16) throws { try content(value) }
    mutating func encode(_ value: Int32) throws { try content(value) }
    mutating func encode(_ value: Int64) throws { try content(value) }
    mutating func encode(_ value: UInt) throws { try content(value) }
    mutating func encode(_ value: UInt8) throws { try content(value) }
    mutating func encode(_ value: UInt16) throws { try content(value) }
    mutating func encode(_ value: UInt32) throws { try content(value) }
    mutating func encode(_ value: UInt64) throws { try content(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try buffer.ensureActive(cell, path)
        if let fast = T.self as? any FastWireCodable.Type {
            if !fast.appendWireContent(of: value, to: buffer) {
                buffer.nilContentStart = contentStart
            }
        } else {
            // Same cell: a wrapper type's single value is the wrapped value's content.
            try value.encode(to: self)
        }
    }

    private func content<P: FastWireCodable>(_ value: P) throws {
        try buffer.ensureActive(cell, path)
        _ = buffer.appendContent(value)
    }
}

// MARK: - Keyed container

internal struct WireKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let buffer: WireEncodingBuffer
    let cell: Int
    let path: WireCodingPath

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
        try buffer.encodeCell(value, in: path, at: key, rollbackTo: entryStart)
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
        return BinaryEncoder(buffer: child, cell: child.activeCell, contentStart: 0, path: path.appending(key))
            .unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let key = WireCodingKey.super
        let child = deferredEntry(key)
        return BinaryEncoder(buffer: child, cell: child.activeCell, contentStart: 0, path: path.appending(key))
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = deferredEntry(key)
        return BinaryEncoder(buffer: child, cell: child.activeCell, contentStart: 0, path: path.appending(key))
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
        if let fast = T.self as? any FastWireCodable.Type {
            fast.appendWireElement(of: value, to: buffer, formOffset: formOffset)
        } else {
            buffer.unpack(formOffset: formOffset)
            try buffer.encodeGeneralCell(value, in: path, at: WireCodingKey(index: count), rollbackTo: buffer.count)
        }
        count += 1
    }

    /// Bulk path for `Data`, `[UInt8]` slices and the like: contiguous fixed-width elements are
    /// copied in one go when the container is (or can become) packed at their width.
    mutating func encode<S: Sequence>(contentsOf sequence: S) throws where S.Element: Encodable {
        try buffer.ensureActive(cell, path)
        if let fast = S.Element.self as? any FastWireCodable.Type, fast.wireIsMemcpyable,
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
        return BinaryEncoder(buffer: child, cell: child.activeCell, contentStart: 0,
                             path: path.appending(WireCodingKey(index: index))).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let (child, index) = deferredElement()
        return BinaryEncoder(buffer: child, cell: child.activeCell, contentStart: 0,
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

// MARK: - The buffer

/// The bytes being written by one encode call (or by one nested container / super-encoder
/// until it is spliced into its parent), and the bookkeeping that keeps cells well formed.
///
/// The buffer belongs to one encode call on one thread and no access to it ever overlaps
/// another, so its properties opt out of run-time exclusivity checks: those were measured at a
/// fifth of the cost of encoding a small struct.
internal final class WireEncodingBuffer {
    @exclusivity(unchecked) private var storage: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private(set) var count = 0
    /// Children handed out as nested containers or super-encoders, in increasing offset order:
    /// each is spliced in at `offset` when the cell containing that offset closes.
    @exclusivity(unchecked) private var deferred: [(offset: Int, child: WireEncodingBuffer)] = []
    /// The content start of a cell that encodeNil() marked as nil, or -1.
    @exclusivity(unchecked) var nilContentStart = -1
    /// The only cell whose containers may write now; -1 once the buffer is sealed.
    @exclusivity(unchecked) private(set) var activeCell = 0
    @exclusivity(unchecked) private var cellCount = 0

    init(capacity: Int = 256) {
        self.capacity = capacity
        storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    }

    deinit {
        storage.deallocate()
    }

    static func detached() -> WireEncodingBuffer {
        let buffer = WireEncodingBuffer(capacity: 16)
        buffer.activeCell = -1
        return buffer
    }

    /// The encoded payload, appended to the caller's array in one copy.
    func finishPayload(into bytes: inout [UInt8]) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: storage, count: count))
    }

    func ensureActive(_ cell: Int, _ path: WireCodingPath) throws {
        guard cell == activeCell, cell >= 0 else { throw WireCodingError.containerUsedAfterItsValue(path: path.keys) }
    }

    // MARK: Raw bytes

    @inline(__always)
    private func reserve(_ size: Int) {
        if size > capacity - count { grow(size) }
    }

    @inline(never)
    private func grow(_ size: Int) {
        let newCapacity = Swift.max(capacity * 2, count + size)
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 8)
        newStorage.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
    }

    /// A writer over `size` newly reserved bytes at the end; `commit` adds what it wrote.
    @inline(__always)
    private func writer(reserving size: Int) -> WireWriter {
        reserve(size)
        return WireWriter(base: storage + count, capacity: size)
    }

    @inline(__always)
    private func commit(_ writer: WireWriter) {
        count += writer.count
    }

    func append(_ byte: UInt8) {
        reserve(1)
        storage.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        var writer = writer(reserving: bytes.count)
        writer.append(bytes)
        commit(writer)
    }

    subscript(offset: Int) -> UInt8 {
        get { storage.load(fromByteOffset: offset, as: UInt8.self) }
        set { storage.storeBytes(of: newValue, toByteOffset: offset, as: UInt8.self) }
    }

    /// Opens `size` bytes at `offset` by moving everything after it up.
    private func openGap(at offset: Int, size: Int) {
        reserve(size)
        (storage + offset + size).copyMemory(from: storage + offset, byteCount: count - offset)
        count += size
    }

    // MARK: Values

    func appendKey(_ key: String) {
        let length = key.utf8.count
        var writer = writer(reserving: wireVarintSize(length) + length)
        writer.appendVarint(length)
        writer.append(utf8: key)
        commit(writer)
    }

    func appendCell<P: FastWireCodable>(_ value: P) {
        var writer = writer(reserving: value.wireCellSize)
        value.writeWireCell(to: &writer)
        commit(writer)
    }

    /// Appends the bare content; returns false, appending nothing, if the value is nil.
    func appendContent<P: FastWireCodable>(_ value: P) -> Bool {
        if value.isWireNil { return false }
        var writer = writer(reserving: value.wireContentSize)
        value.writeWireContent(to: &writer)
        commit(writer)
        return true
    }

    /// Writes `value` as a cell: by the fast path when its type allows, otherwise through its
    /// own encode(to:). On a throw everything from `rollbackTo` on is removed again, so a caller
    /// that catches the error can go on using its container.
    func encodeCell<T: Encodable, K: CodingKey>(_ value: T, in path: WireCodingPath, at key: K?,
                                                rollbackTo mark: Int) throws {
        if let fast = T.self as? any FastWireCodable.Type {
            fast.appendWireCell(of: value, to: self)
        } else {
            try encodeGeneralCell(value, in: path, at: key, rollbackTo: mark)
        }
    }

    /// The value's path (`path` plus `key`) is only built here, so values that take the fast
    /// path never pay for one.
    func encodeGeneralCell<T: Encodable, K: CodingKey>(_ value: T, in path: WireCodingPath, at key: K?,
                                                       rollbackTo mark: Int) throws {
        let headerOffset = count
        append(0)
        let outerCell = activeCell
        cellCount += 1
        activeCell = cellCount
        do {
            var valuePath = path
            if let key { valuePath = path.appending(key) }
            try value.encode(to: BinaryEncoder(buffer: self, cell: activeCell, contentStart: headerOffset + 1, path: valuePath))
        } catch {
            rollBack(to: mark)
            activeCell = outerCell
            throw error
        }
        closeCell(headerOffset: headerOffset)
        activeCell = outerCell
    }

    private func closeCell(headerOffset: Int) {
        let contentStart = headerOffset + 1
        if let last = deferred.last, last.offset >= contentStart {
            spliceDeferred(from: contentStart)
        }
        let length = count - contentStart
        if nilContentStart >= contentStart {
            let isNil = nilContentStart == contentStart && length == 0
            nilContentStart = -1
            if isNil {
                self[headerOffset] = WireLayout.nilCell
                return
            }
        }
        let header = length + 1
        if header < 0x80 {
            self[headerOffset] = UInt8(header)
        } else {
            // Rare: the content outgrew the one byte reserved for its header. Widen in place.
            let headerSize = wireVarintSize(header)
            openGap(at: contentStart, size: headerSize - 1)
            var writer = WireWriter(base: storage + headerOffset, capacity: headerSize)
            writer.appendVarint(header)
        }
    }

    private func rollBack(to mark: Int) {
        if count > mark { count = mark }
        while let last = deferred.last, last.offset > mark {
            deferred.removeLast()
            last.child.activeCell = -1
        }
        if nilContentStart > mark { nilContentStart = -1 }
    }

    // MARK: Deferred children

    func makeDeferredChild() -> WireEncodingBuffer {
        let child = WireEncodingBuffer(capacity: 64)
        deferred.append((count, child))
        return child
    }

    /// Frames every child at or after `contentStart` as a cell and inserts it where it was
    /// created. Highest offset first, so the offsets still to do stay valid.
    private func spliceDeferred(from contentStart: Int) {
        while let last = deferred.last, last.offset >= contentStart {
            deferred.removeLast()
            let child = last.child
            child.finish()
            if child.count == 0 && child.nilContentStart == 0 {
                openGap(at: last.offset, size: 1)
                self[last.offset] = WireLayout.nilCell
                continue
            }
            let size = wireVarintSize(child.count + 1) + child.count
            openGap(at: last.offset, size: size)
            var writer = WireWriter(base: storage + last.offset, capacity: size)
            writer.appendVarint(child.count + 1)
            writer.append(UnsafeRawBufferPointer(start: child.storage, count: child.count))
        }
    }

    /// Completes a child's content (splicing its own children) and refuses further writes.
    private func finish() {
        if !deferred.isEmpty { spliceDeferred(from: 0) }
        activeCell = -1
    }

    // MARK: Unkeyed elements: packed while every element is a primitive of one width

    func appendElement<P: FastWireCodable>(_ value: P, formOffset: Int) {
        let width = P.wirePackedWidth
        if width > 0 && preparePacked(width: width, formOffset: formOffset) {
            _ = appendContent(value)
        } else {
            unpack(formOffset: formOffset)
            appendCell(value)
        }
    }

    /// Whether an element `width` bytes wide can be appended packed, switching a still-empty
    /// container to that packed form. A child created at the start counts as an element.
    func preparePacked(width: Int, formOffset: Int) -> Bool {
        guard formOffset < count else { return false }
        let form = self[formOffset]
        if form != WireLayout.cellsForm {
            if WireLayout.packedWidth(ofForm: form) == width { return true }
            unpack(formOffset: formOffset)
            return false
        }
        let isEmpty = count == formOffset + 1 && (deferred.last?.offset ?? -1) <= formOffset
        guard isEmpty else { return false }
        self[formOffset] = WireLayout.packedForm(width: width)
        return true
    }

    /// Turns a packed container into the cell form: each element gets its one-byte header.
    /// Done in place from the last element down, so nothing is overwritten before it moves.
    func unpack(formOffset: Int) {
        guard formOffset < count, let width = WireLayout.packedWidth(ofForm: self[formOffset]) else { return }
        let bodyStart = formOffset + 1
        let elements = (count - bodyStart) / width
        let newEnd = bodyStart + elements * (width + 1)
        reserve(newEnd - count)
        for index in stride(from: elements - 1, through: 0, by: -1) {
            let source = bodyStart + index * width
            let destination = bodyStart + index * (width + 1)
            (storage + destination + 1).copyMemory(from: storage + source, byteCount: width)
            self[destination] = UInt8(width + 1)
        }
        count = newEnd
        self[formOffset] = WireLayout.cellsForm
    }
}

// MARK: - Coding paths

/// The key used for array indices and for `super`, as JSONEncoder spells them. An index key
/// builds its text only if asked, which is only when an error is being reported, and the key
/// is small enough to sit in an existential without a heap box.
internal struct WireCodingKey: CodingKey {
    private enum Storage {
        case index(Int)
        case name(String)
    }

    private let storage: Storage

    init(stringValue: String) {
        storage = .name(stringValue)
    }

    init(intValue: Int) {
        storage = .index(intValue)
    }

    init(index: Int) {
        storage = .index(index)
    }

    var stringValue: String {
        switch storage {
        case .index(let index): "Index \(index)"
        case .name(let name): name
        }
    }

    var intValue: Int? {
        if case .index(let index) = storage { return index }
        return nil
    }

    static var `super`: WireCodingKey { WireCodingKey(stringValue: "super") }
}

/// The coding path: a chain of nodes shared with the parent, so a nested value adds one
/// small allocation, and only values that go through the Encoder/Decoder machinery do.
internal struct WireCodingPath {
    private final class Node {
        let parent: Node?
        let key: any CodingKey

        init(parent: Node?, key: any CodingKey) {
            self.parent = parent
            self.key = key
        }
    }

    private let node: Node?

    init() {
        node = nil
    }

    private init(node: Node?) {
        self.node = node
    }

    func appending(_ key: some CodingKey) -> WireCodingPath {
        WireCodingPath(node: Node(parent: node, key: key))
    }

    var keys: [any CodingKey] {
        var keys: [any CodingKey] = []
        var current = node
        while let link = current {
            keys.append(link.key)
            current = link.parent
        }
        return keys.reversed()
    }
}
