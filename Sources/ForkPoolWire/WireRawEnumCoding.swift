// WireRawEnumCoding: enums coded as their raw value (`enum Tag: String, Codable, CaseIterable`
// and the like) by a table instead of `init(rawValue:)`: encode looks the value's bytes up and
// appends its case's cell; decode compares the cell's bytes with each case's.
//
// A type gets a table only if, checked once per process through its own encode(to:) and
// init(from:), each case's bytes are its raw value's cell, decode back to that case, and no two
// cases share bytes; otherwise (or for bytes that match no case) the general path runs, so
// results never change. Tables are one immutable snapshot behind an atomic pointer, published
// by compare-and-exchange: no lock, so a forked worker never waits on one.
import Synchronization

/// The verified wire form of one enum type's cases: for each case, its bytes in memory and
/// its cell on the wire. Both directions are a table lookup with no generic code in between:
/// the value's own bytes find its case (an enum case's bytes are its tag), the cell's content
/// finds the case whose bytes are then copied out.
internal final class WireRawEnumCoding: @unchecked Sendable {
    /// Above this many cases a type stays on the general path (its check would cost too much).
    static let maximumCases = 1_024

    private let caseCount: Int
    /// `MemoryLayout<E>.size` and `.stride`; case `i`'s value is at `values + i * stride`.
    private let size: Int
    private let stride: Int
    private let values: UnsafeMutableRawPointer
    /// For a one-byte enum, the case index of each tag byte (-1: none), else empty.
    private let caseOfTag: [Int16]
    /// Case `i`'s cell is `cells[cellStarts[i] ..< cellStarts[i + 1]]`, its content the same
    /// without the leading header byte(s) (`contentOffsets[i]` of them).
    private let cells: UnsafeMutablePointer<UInt8>
    private let cellStarts: [Int]
    private let contentOffsets: [Int]

    private init<E>(cases: [E], cells: [[UInt8]], contentOffsets: [Int]) {
        caseCount = cases.count
        size = MemoryLayout<E>.size
        stride = MemoryLayout<E>.stride
        values = UnsafeMutableRawPointer.allocate(byteCount: max(1, stride * cases.count), alignment: MemoryLayout<E>.alignment)
        values.bindMemory(to: E.self, capacity: cases.count).initialize(from: cases, count: cases.count)
        var tags = [Int16]()
        if size == 1 {
            tags = Array(repeating: -1, count: 256)
            for index in cases.indices.reversed() {
                tags[Int(values.load(fromByteOffset: index * stride, as: UInt8.self))] = Int16(index)
            }
        }
        caseOfTag = tags
        let flat = cells.flatMap { $0 }
        self.cells = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, flat.count))
        self.cells.initialize(from: flat, count: flat.count)
        var starts = [0]
        for cell in cells { starts.append(starts.last! + cell.count) }
        cellStarts = starts
        self.contentOffsets = contentOffsets
    }

    // A table is handed out only once published in `known`, which keeps it (and every older
    // snapshot) for the process's life: it is never freed, so answers hold it unowned. One that
    // failed its last check, or lost the race to publish, goes here (its values are plain bytes).
    deinit {
        values.deallocate()
        cells.deallocate()
    }

    /// Appends `value` (of the table's type) as its case's cell; false, appending nothing, if
    /// its bytes are no case's (the caller then takes the general path).
    func appendCell<V>(of value: V, to buffer: WireEncodingBuffer) -> Bool {
        let index = withUnsafeBytes(of: value) { caseIndex(ofValueBytes: $0) }
        guard index >= 0 else { return false }
        let start = cellStarts[index]
        buffer.append(UnsafeRawBufferPointer(start: cells + start, count: cellStarts[index + 1] - start))
        return true
    }

    /// The index of the case whose cell content is exactly `content`, or -1.
    func caseIndex(ofContent content: WireReader) -> Int {
        let length = content.end - content.position
        let bytes = content.base + content.position
        for index in 0..<caseCount {
            let start = cellStarts[index] + contentOffsets[index]
            if cellStarts[index + 1] - start == length && (length == 0 || bytesEqual(cells + start, bytes, length)) {
                return index
            }
        }
        return -1
    }

    /// Case `index`, as `V` (the table's type).
    func value<V>(at index: Int, as _: V.Type) -> V {
        values.load(fromByteOffset: index * stride, as: V.self)
    }

    private func caseIndex(ofValueBytes bytes: UnsafeRawBufferPointer) -> Int {
        if size == 1 { return Int(caseOfTag[Int(bytes[0])]) }
        guard size > 0 else { return 0 }
        for index in 0..<caseCount where bytesEqual(values + index * stride, bytes.baseAddress!, size) {
            return index
        }
        return -1
    }

    /// What is known so far: per type, its verified table, or nil if it failed the check.
    /// Published whole and never changed, so a reader takes no lock.
    private final class Known: @unchecked Sendable {
        let tables: [ObjectIdentifier: WireRawEnumCoding?]
        /// The snapshot this one replaced: every snapshot stays reachable (never freed).
        let previous: Known?

        init(tables: [ObjectIdentifier: WireRawEnumCoding?], previous: Known?) {
            self.tables = tables
            self.previous = previous
        }
    }

    /// The address of the latest `Known` (0 before the first), retained for the process's life.
    private static let known = Atomic<Int>(0)

    private static func snapshot(at address: Int) -> Known? {
        UnsafeRawPointer(bitPattern: address).map { Unmanaged<Known>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The shortcut for `T`, or nil when `T` is not such an enum or did not pass the check.
    static func coding<T>(for _: T.Type) -> WireRawEnumCoding? {
        guard let candidate = T.self as? any (CaseIterable & RawRepresentable & Codable).Type else { return nil }
        let id = ObjectIdentifier(T.self)
        var address = known.load(ordering: .acquiring)
        if let entry = snapshot(at: address)?.tables[id] { return entry }
        let made = verified(candidate)
        while true {
            let current = snapshot(at: address)
            // Another thread published this type first: use its table (ours was never handed
            // out, and goes).
            if let entry = current?.tables[id] { return entry }
            var tables = current?.tables ?? [:]
            tables[id] = .some(made)
            let next = Unmanaged.passRetained(Known(tables: tables, previous: current))
            let (published, found) = known.compareExchange(
                expected: address, desired: Int(bitPattern: next.toOpaque()),
                successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring)
            if published { return made }
            next.release()
            address = found
        }
    }

    /// The table for `E`, if every case passes the check described at the top of this file.
    private static func verified<E: CaseIterable & RawRepresentable & Codable>(_: E.Type) -> WireRawEnumCoding? {
        guard let rawFast = E.RawValue.self as? any FastWireCodable.Type,
              _isPOD(E.self), MemoryLayout<E>.size <= 2,
              case let count = E.allCases.count, count > 0, count <= maximumCases
        else { return nil }
        let cases = Array(E.allCases)
        var cells: [[UInt8]] = []
        var contentOffsets: [Int] = []
        var decoded: [E] = []
        for value in cases {
            var shortcut: [UInt8] = []
            rawFast.appendWirePayload(of: value.rawValue, to: &shortcut)
            guard let own = try? ownBytes(of: value), own == shortcut,
                  let back = try? ownValue(E.self, from: shortcut), (try? ownBytes(of: back)) == shortcut,
                  let contentStart = try? shortcut.withUnsafeBytes({ bytes -> Int? in
                      var reader = try WireReader(payload: bytes)
                      return try reader.readCell()?.position
                  })
            else { return nil }
            cells.append(shortcut)
            contentOffsets.append(contentStart)
            decoded.append(back)
        }
        let table = WireRawEnumCoding(cases: cases, cells: cells, contentOffsets: contentOffsets)
        // Each case must be found from its bytes in memory (encoding) and from its cell
        // (decoding), and what its own init(from:) gave back must be that very case: so two
        // cases with one raw value, or one case with two representations, are refused.
        for index in cases.indices {
            let foundFromCell = cells[index].withUnsafeBytes { bytes in
                table.caseIndex(ofContent: WireReader(base: bytes.baseAddress!, position: contentOffsets[index], end: bytes.count))
            }
            guard foundFromCell == index,
                  withUnsafeBytes(of: cases[index], { table.caseIndex(ofValueBytes: $0) }) == index,
                  withUnsafeBytes(of: decoded[index], { table.caseIndex(ofValueBytes: $0) }) == index
            else { return nil }
        }
        return table
    }

    /// The payload `value`'s own encode(to:) writes.
    private static func ownBytes<E: Encodable>(of value: E) throws -> [UInt8] {
        let buffer = WireEncodingBuffer()
        buffer.useOwnConformances()
        var slot = WireEncoderSlot()
        try buffer.encodeGeneralCell(value, at: WireCodingPath(), index: -1, reusing: &slot, rollbackTo: 0)
        var bytes: [UInt8] = []
        buffer.finishPayload(into: &bytes)
        return bytes
    }

    /// What `E`'s own init(from:) reads from `payload`.
    private static func ownValue<E: Decodable>(_: E.Type, from payload: [UInt8]) throws -> E {
        try payload.withUnsafeBytes { bytes in
            var reader = try WireReader(payload: bytes)
            let cell = try reader.readCell()
            try reader.expectEnd()
            let context = WireDecodingContext()
            context.useOwnConformances()
            return try context.decodeAsValue(E.self, cell: cell, path: WireCodingPath(), depth: 0)
        }
    }
}

/// Whether `count` bytes at `a` and `b` are equal: eight at a time, then one at a time.
@inline(__always)
private func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    var offset = 0
    while offset + 8 <= count {
        if a.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != b.loadUnaligned(fromByteOffset: offset, as: UInt64.self) {
            return false
        }
        offset += 8
    }
    while offset < count {
        if a.load(fromByteOffset: offset, as: UInt8.self) != b.load(fromByteOffset: offset, as: UInt8.self) { return false }
        offset += 1
    }
    return true
}
