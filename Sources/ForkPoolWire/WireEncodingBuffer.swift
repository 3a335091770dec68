// WireEncodingBuffer: the memory BinaryEncoder writes into — plain bytes grown by hand, so a
// field costs a few stores rather than an Array append; cells whose length is patched when
// they close; children written out of order and spliced in; unkeyed elements packed while they
// are primitives of one width. The format it writes is WireFormat.swift's.

/// The encoder and path node a container used for its previous value, for the next.
internal struct WireEncoderSlot {
    var encoder: BinaryEncoder?
    var node: WireCodingPathNode?
}

/// The bytes being written by one encode call (or by one nested container / super-encoder
/// until it is spliced into its parent), and the bookkeeping that keeps cells well formed.
///
/// The buffer belongs to one encode call on one thread and no access to it ever overlaps
/// another, so its properties opt out of run-time exclusivity checks, which would cost more
/// than the stores they guard.
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
    /// Where the active cell's content begins (0 for a child's own cell).
    @exclusivity(unchecked) private(set) var activeContentStart = 0
    @exclusivity(unchecked) private var cellCount = 0
    @exclusivity(unchecked) private var types = WireTypeCache()

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

    /// Codes every type through its own conformance in this call (WireTypeCache).
    func useOwnConformances() {
        types.useOwnConformances()
    }

    /// What `T` is (WireTypeCache.swift); answered from a cache after the first time.
    @inline(__always)
    func answers<T>(for _: T.Type) -> WireTypeAnswers {
        types.answers(for: T.self)
    }

    /// `T` as a FastWireCodable type, or nil; answered from a cache after the first time.
    @inline(__always)
    func fastType<T>(_: T.Type) -> (any FastWireCodable.Type)? {
        types.answers(for: T.self).fast
    }

    func isActive(_ cell: Int) -> Bool {
        cell == activeCell && cell >= 0
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
    /// own encode(to:) at `path` plus `key` (the slot's encoder and node reused if they can
    /// be). On a throw everything from `rollbackTo` on is removed again, so a caller that
    /// catches the error can go on using its container.
    func encodeCell<T: Encodable, K: CodingKey>(_ value: T, in path: WireCodingPath, at key: K,
                                                reusing slot: inout WireEncoderSlot, rollbackTo mark: Int) throws {
        if let fast = fastType(T.self) {
            fast.appendWireCell(of: value, to: self)
        } else {
            // The previous value's encoder lets go of its path first, if nothing else holds it,
            // so that the path's node can be reused as well.
            if isKnownUniquelyReferenced(&slot.encoder) { slot.encoder?.path = WireCodingPath() }
            try encodeGeneralCell(value, at: path.appending(key, reusing: &slot.node), index: -1, reusing: &slot,
                                  rollbackTo: mark)
        }
    }

    /// Writes element `index` of the unkeyed container at `path` as a cell, as `encodeCell`
    /// does; a throw removes the element again.
    func encodeElement<T: Encodable>(_ value: T, in path: WireCodingPath, index: Int,
                                     reusing slot: inout WireEncoderSlot) throws {
        if let fast = fastType(T.self) {
            fast.appendWireCell(of: value, to: self)
        } else {
            try encodeGeneralCell(value, at: path, index: index, reusing: &slot, rollbackTo: count)
        }
    }

    /// The top-level value's cell.
    func encodeTopCell<T: Encodable>(_ value: T) throws {
        if let fast = fastType(T.self) {
            fast.appendWireCell(of: value, to: self)
        } else {
            var slot = WireEncoderSlot()
            try encodeGeneralCell(value, at: WireCodingPath(), index: -1, reusing: &slot, rollbackTo: 0)
        }
    }

    /// Writes `value` as a cell through its own encode(to:) — or, for an Array, what that
    /// encode(to:) does, done directly (WireArrayCoding.swift). Its path is `path`, or for
    /// an array element (`index` ≥ 0) `path` plus the index.
    func encodeGeneralCell<T: Encodable>(_ value: T, at path: WireCodingPath, index: Int,
                                         reusing slot: inout WireEncoderSlot, rollbackTo mark: Int) throws {
        let answers = types.answers(for: T.self)
        if let rawEnum = answers.rawEnum, rawEnum.appendCell(of: value, to: self) {
            return
        }
        let headerOffset = count
        append(0)
        let outerCell = activeCell
        let outerContentStart = activeContentStart
        cellCount += 1
        activeCell = cellCount
        activeContentStart = headerOffset + 1
        do {
            if let array = answers.encodableArray {
                let arrayPath = index < 0 ? path : path.appending(index: index, reusing: &slot.node)
                try array.encodeWireArray(value, to: self, path: arrayPath)
            } else {
                let encoder: BinaryEncoder
                if isKnownUniquelyReferenced(&slot.encoder), let previous = slot.encoder {
                    previous.cell = activeCell
                    if previous.path != path { previous.path = path }
                    previous.index = index
                    encoder = previous
                } else {
                    encoder = BinaryEncoder(buffer: self, cell: activeCell, path: path)
                    encoder.index = index
                    slot.encoder = encoder
                }
                try value.encode(to: encoder)
            }
        } catch {
            rollBack(to: mark)
            activeCell = outerCell
            activeContentStart = outerContentStart
            throw error
        }
        closeCell(headerOffset: headerOffset)
        activeCell = outerCell
        activeContentStart = outerContentStart
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
