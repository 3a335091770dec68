// PayloadCodecTests: the payload codec (PayloadCodec, BinaryEncoder, BinaryDecoder) — exact
// round trips on the fast path and through the Encoder machinery, the two paths reading each
// other's bytes, and hostile input (truncation, garbage, huge lengths, deep nesting) that must
// throw and never crash. Speed is measured outside the test suite, never here.
import Foundation
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire
@testable import Workloads

extension ForkPoolTests {
    @Suite struct PayloadCodecTests {}
}

// MARK: - Helpers

private func encode<T: Codable>(_ value: T, after prefix: [UInt8] = []) throws -> [UInt8] {
    var bytes = prefix
    try PayloadCodec<T>().encode(value, into: &bytes)
    return bytes
}

private func decode<T: Codable>(_: T.Type, from bytes: [UInt8]) throws -> T {
    try bytes.withUnsafeBytes { try PayloadCodec<T>().decode(from: $0) }
}

private func roundTrip<T: Codable>(_ value: T) throws -> T {
    try decode(T.self, from: encode(value))
}

/// Encodes through the Encoder protocol even for fast types, as a value nested in a struct
/// whose Codable goes element by element would be.
private func encodeGeneral<T: Encodable>(_ value: T) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try BinaryEncoder.encodeGeneral(value, into: &bytes)
    return bytes
}

private func decodeGeneral<T: Decodable>(_: T.Type, from bytes: [UInt8]) throws -> T {
    try bytes.withUnsafeBytes { try BinaryDecoder.decodeGeneral(T.self, from: $0) }
}

/// The error `body` throws, recorded as an issue if it is not a WireCodingError.
private func wireError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> WireCodingError? {
    do {
        try body()
        Issue.record("expected a WireCodingError, got success", sourceLocation: sourceLocation)
    } catch let error as WireCodingError {
        return error
    } catch {
        Issue.record("expected a WireCodingError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}


private func leb128(_ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    var remaining = value
    while remaining >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
        remaining >>= 7
    }
    bytes.append(UInt8(remaining))
    return bytes
}

// MARK: - Types for the general path

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rectangle(Double, Double)
    case empty
    indirect case labeled(String, inner: Shape?)
}

private enum Status: String, Codable, Equatable {
    case active, retired
}

private struct Nested: Codable, Equatable {
    var depth: Int8
    var child: [Nested]
    var flag: Bool?
}

private struct Inventory: Codable, Equatable {
    var id: Int
    var name: String
    var note: String?
    var missingNote: String?
    var nested: Nested?
    var shapes: [Shape]
    var byName: [String: Int]
    var byID: [Int: String]
    var byStatus: [Status: [Double]]
    var matrix: [[Double]]
    var tags: Set<String>
    var bytes: [UInt8]
    var status: Status
    var optionals: [Int?]
    var unsigned: UInt64
    var small: Int16
    var ratio: Float

    static let sample = Inventory(
        id: -42, name: "wärehouse ✓", note: "fragile", missingNote: nil,
        nested: Nested(depth: 1, child: [Nested(depth: 2, child: [], flag: nil), Nested(depth: 3, child: [], flag: false)], flag: true),
        shapes: [.circle(radius: 1.5), .rectangle(2, 3), .empty, .labeled("box", inner: .labeled("lid", inner: nil))],
        byName: ["apples": 3, "": 0, "pears": -7],
        byID: [1: "one", -2: "minus two", Int.max: "max"],
        byStatus: [.active: [1, 2], .retired: []],
        matrix: [[1, 2, 3], [], [-0.0, .infinity]],
        tags: ["a", "b", "c"],
        bytes: Array(0...255),
        status: .retired,
        optionals: [1, nil, 3],
        unsigned: .max, small: .min, ratio: 0.25)
}

private class Animal: Codable {
    let name: String

    init(name: String) {
        self.name = name
    }
}

/// Keeps its parent's fields in a super-encoder, as class hierarchies usually do.
private final class Dog: Animal, Equatable {
    let tricks: [String]

    init(name: String, tricks: [String]) {
        self.tricks = tricks
        super.init(name: name)
    }

    private enum CodingKeys: String, CodingKey { case tricks }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tricks = try container.decode([String].self, forKey: .tricks)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tricks, forKey: .tricks)
        try super.encode(to: container.superEncoder())
    }

    static func == (lhs: Dog, rhs: Dog) -> Bool { lhs.name == rhs.name && lhs.tricks == rhs.tricks }
}

/// Shares its parent's container instead, and uses a named super key for a second parent copy.
private final class Cat: Animal, Equatable {
    let lives: Int

    init(name: String, lives: Int) {
        self.lives = lives
        super.init(name: name)
    }

    private enum CodingKeys: String, CodingKey { case lives, parent }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lives = try container.decode(Int.self, forKey: .lives)
        let parent = try Animal(from: container.superDecoder(forKey: .parent))
        try super.init(from: decoder)
        guard parent.name == name else {
            throw DecodingError.dataCorruptedError(forKey: .parent, in: container, debugDescription: "parents differ")
        }
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lives, forKey: .lives)
        try super.encode(to: container.superEncoder(forKey: .parent))
        try super.encode(to: encoder)
    }

    static func == (lhs: Cat, rhs: Cat) -> Bool { lhs.name == rhs.name && lhs.lives == rhs.lives }
}

/// Writes keys in one order; `Reordered` reads them in another.
private struct Written: Encodable {
    private enum CodingKeys: String, CodingKey { case a, b, c, d, extra }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(1, forKey: .a)
        try container.encodeNil(forKey: .b)
        try container.encode([10, 20], forKey: .c)
        try container.encode("dee", forKey: .d)
        try container.encode(Inventory.sample, forKey: .extra)
    }
}

private struct Reordered: Decodable {
    private enum CodingKeys: String, CodingKey { case a, b, c, d, extra, missing }

    var a: Int
    var bIsNil: Bool
    var c: [Int]
    var d: String?
    var missing: Int?
    var containsExtra: Bool
    var containsMissing: Bool
    var keyCount: Int

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        d = try container.decodeIfPresent(String.self, forKey: .d)
        c = try container.decode([Int].self, forKey: .c)
        missing = try container.decodeIfPresent(Int.self, forKey: .missing)
        bIsNil = try container.decodeNil(forKey: .b)
        a = try container.decode(Int.self, forKey: .a)
        containsExtra = container.contains(.extra)
        containsMissing = container.contains(.missing)
        keyCount = container.allKeys.count
    }
}

/// Fills nested containers out of order, which the Codable API allows.
private struct Interleaved: Codable, Equatable {
    var a = 1, b = 2, inner = "x", flag = true, first = 1, second = "two", deep = 3.5

    private enum CodingKeys: String, CodingKey { case a, b, inner, flag, list }

    init() {}

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var nested = container.nestedContainer(keyedBy: CodingKeys.self, forKey: .inner)
        var list = container.nestedUnkeyedContainer(forKey: .list)
        try container.encode(a, forKey: .a)
        try nested.encode(inner, forKey: .inner)
        try list.encode(first)
        var sublist = list.nestedUnkeyedContainer()
        try list.encode(second)
        try sublist.encode(deep)
        try nested.encode(flag, forKey: .flag)
        try container.encode(b, forKey: .b)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        a = try container.decode(Int.self, forKey: .a)
        b = try container.decode(Int.self, forKey: .b)
        let nested = try container.nestedContainer(keyedBy: CodingKeys.self, forKey: .inner)
        inner = try nested.decode(String.self, forKey: .inner)
        flag = try nested.decode(Bool.self, forKey: .flag)
        var list = try container.nestedUnkeyedContainer(forKey: .list)
        first = try list.decode(Int.self)
        var sublist = try list.nestedUnkeyedContainer()
        deep = try sublist.decode(Double.self)
        second = try list.decode(String.self)
        guard list.isAtEnd, sublist.isAtEnd else {
            throw DecodingError.dataCorruptedError(in: list, debugDescription: "elements left over")
        }
    }
}

/// A heterogeneous list read back by trial, which only works if a failed decode does not
/// consume the element.
private struct Mixed: Codable, Equatable {
    enum Item: Equatable { case int(Int), text(String), none }
    var items: [Item]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for item in items {
            switch item {
            case .int(let value): try container.encode(value)
            case .text(let value): try container.encode(value)
            case .none: try container.encodeNil()
            }
        }
    }

    init(items: [Item]) {
        self.items = items
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        items = []
        while !container.isAtEnd {
            if try container.decodeNil() {
                items.append(.none)
            } else if let value = try? container.decode(Int.self) {
                items.append(.int(value))
            } else {
                items.append(.text(try container.decode(String.self)))
            }
        }
    }
}

/// A recursive type, for nesting depth.
private final class Chain: Codable {
    let next: Chain?

    init(next: Chain?) {
        self.next = next
    }

    var length: Int {
        var count = 1
        var link = next
        while let current = link {
            count += 1
            link = current.next
        }
        return count
    }
}

private struct Point: Codable, Equatable {
    var x: Int
    var y: Int
}

private struct Rejecting: Codable {
    private enum CodingKeys: String, CodingKey { case value }

    var value: Int

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(value, forKey: .value)
        guard value >= 0 else {
            throw EncodingError.invalidValue(value, EncodingError.Context(
                codingPath: container.codingPath + [CodingKeys.value], debugDescription: "negative values are not allowed"))
        }
    }

    init(value: Int) {
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        value = try container.decode(Int.self, forKey: .value)
        guard value != 13 else {
            throw DecodingError.dataCorruptedError(forKey: .value, in: container, debugDescription: "13 is unlucky")
        }
    }
}

/// Smuggles its container out of encode(to:), to be misused afterwards.
private final class ContainerThief: Encodable {
    enum CodingKeys: String, CodingKey { case x, y }

    var stolen: KeyedEncodingContainer<CodingKeys>?

    func encode(to encoder: any Encoder) throws {
        stolen = encoder.container(keyedBy: CodingKeys.self)
        try stolen?.encode(1, forKey: .x)
    }
}

private struct Heist: Encodable {
    let thief: ContainerThief

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(thief)
        try thief.stolen?.encode(2, forKey: .y)
    }
}

// MARK: - Fast path

extension ForkPoolTests.PayloadCodecTests {
    @Test func choosesTheFastPathByType() {
        #expect(PayloadCodec<Int>().usesFastPath)
        #expect(PayloadCodec<UInt16>().usesFastPath)
        #expect(PayloadCodec<Float>().usesFastPath)
        #expect(PayloadCodec<String>().usesFastPath)
        #expect(PayloadCodec<[UInt8]>().usesFastPath)
        #expect(PayloadCodec<[[Int]]>().usesFastPath)
        #expect(PayloadCodec<[String?]>().usesFastPath)
        #expect(PayloadCodec<[Bool]?>().usesFastPath)
        #expect(!PayloadCodec<Point>().usesFastPath)
        #expect(!PayloadCodec<[Point]>().usesFastPath)
        #expect(!PayloadCodec<Set<Int>>().usesFastPath)
        #expect(!PayloadCodec<[String: Int]>().usesFastPath)
    }

    @Test func integersRoundTripAtTheirLimits() throws {
        for value in [Int.min, Int.min + 1, -1, 0, 1, Int.max] {
            #expect(try roundTrip(value) == value)
        }
        #expect(try roundTrip(Int8.min) == Int8.min)
        #expect(try roundTrip(Int8.max) == Int8.max)
        #expect(try roundTrip(Int16.min) == Int16.min)
        #expect(try roundTrip(Int32.min) == Int32.min)
        #expect(try roundTrip(Int64.min) == Int64.min)
        #expect(try roundTrip(UInt.max) == UInt.max)
        #expect(try roundTrip(UInt8.max) == UInt8.max)
        #expect(try roundTrip(UInt16.max) == UInt16.max)
        #expect(try roundTrip(UInt32.max) == UInt32.max)
        #expect(try roundTrip(UInt64.max) == UInt64.max)
        #expect(try encode(7) == [9, 7, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func floatingPointRoundTripsBitForBit() throws {
        let doubles: [Double] = [0, -0.0, 1.5, -.infinity, .infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                                 .nan, -.nan, Double(nan: 0x5_1234, signaling: false), .signalingNaN]
        for value in doubles {
            #expect(try roundTrip(value).bitPattern == value.bitPattern)
        }
        #expect(try roundTrip(doubles).map(\.bitPattern) == doubles.map(\.bitPattern))
        let floats: [Float] = [0, -0.0, .nan, Float(nan: 0x123, signaling: false), .infinity, .leastNormalMagnitude]
        for value in floats {
            #expect(try roundTrip(value).bitPattern == value.bitPattern)
        }
        #expect(try roundTrip(floats).map(\.bitPattern) == floats.map(\.bitPattern))
    }

    @Test func boolsAndStringsRoundTrip() throws {
        #expect(try roundTrip(true) == true)
        #expect(try roundTrip(false) == false)
        let strings = ["", "a", "plain ascii", "héllo wörld", "日本語のテキスト", "👩‍👩‍👧‍👦 family", "nul\u{0}inside",
                       String(repeating: "long é ", count: 5_000)]
        for string in strings {
            #expect(try roundTrip(string) == string)
        }
        #expect(try roundTrip(strings) == strings)
        #expect(try encode("") == [1])
    }

    @Test func aLargeByteArraysPrefixPlusItsBytesIsExactlyItsEncoding() throws {
        let codec = PayloadCodec<[UInt8]>()
        for count in [PayloadCodec<[UInt8]>.borrowedBytesThreshold, 1 << 21, (5 << 20) + 3] {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            var prefix: [UInt8] = [9, 9]
            let borrowed = codec.encodePrefix(ofLargeBytes: bytes, into: &prefix)
            #expect(borrowed == bytes)
            #expect(try prefix + bytes == encode(bytes, after: [9, 9]))
            // ≥ 4 MiB decodes through the huge-page copy: same bytes.
            #expect(try decode([UInt8].self, from: encode(bytes)) == bytes)
        }
        var untouched: [UInt8] = [1]
        #expect(codec.encodePrefix(ofLargeBytes: [UInt8](repeating: 0, count: 100), into: &untouched) == nil)
        #expect(PayloadCodec<[Int8]>().encodePrefix(ofLargeBytes: [Int8](repeating: 0, count: 1 << 20), into: &untouched) == nil)
        #expect(untouched == [1])
    }

    @Test func aSplitPayloadDecodesToItsTailOrFromTheJoinedBytes() throws {
        let codec = PayloadCodec<[UInt8]>()
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 5) }
        var prefix: [UInt8] = []
        _ = codec.encodePrefix(ofLargeBytes: bytes, into: &prefix)
        // The head is exactly the array's wire prefix: the tail is the value.
        #expect(try prefix.withUnsafeBytes { try codec.decode(from: $0, tail: bytes) } == bytes)
        // A head that is not the prefix is decoded from the joined bytes, and can fail there.
        let whole = try encode(Array(bytes.prefix(10)))
        #expect(try Array(whole.prefix(3)).withUnsafeBytes { try codec.decode(from: $0, tail: Array(whole.dropFirst(3))) }
                == Array(bytes.prefix(10)))
        #expect(throws: (any Error).self) { try [UInt8]([0x05]).withUnsafeBytes { try codec.decode(from: $0, tail: [1]) } }
        // Any other type joins head and tail too.
        let ints = try encode([1, 2, 3])
        #expect(try Array(ints.prefix(2)).withUnsafeBytes { try PayloadCodec<[Int]>().decode(from: $0, tail: Array(ints.dropFirst(2))) }
                == [1, 2, 3])
    }

    @Test func arraysAndOptionalsRoundTrip() throws {
        #expect(try roundTrip([UInt8]()) == [])
        #expect(try roundTrip([UInt8](repeating: 0xAB, count: 16)) == [UInt8](repeating: 0xAB, count: 16))
        let manyBytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try roundTrip(manyBytes) == manyBytes)
        #expect(try encode(manyBytes).count == manyBytes.count + 4)  // 3-byte header, form byte
        #expect(try roundTrip([Int]()) == [])
        #expect(try roundTrip([Int.min, 0, Int.max]) == [Int.min, 0, Int.max])
        #expect(try roundTrip([Int8.min, 0, Int8.max]) == [Int8.min, 0, Int8.max])
        #expect(try roundTrip([UInt32.max, 1]) == [UInt32.max, 1])
        #expect(try roundTrip([true, false, true]) == [true, false, true])
        #expect(try roundTrip([String]()) == [])
        #expect(try roundTrip(["", "ü", "z"]) == ["", "ü", "z"])
        #expect(try roundTrip([[Int]]()) == [])
        #expect(try roundTrip([[], [1], [Int.min, Int.max]]) == [[], [1], [Int.min, Int.max]])
        #expect(try roundTrip([[["a"], []], [[""]]]) == [[["a"], []], [[""]]])
        #expect(try roundTrip([[UInt8]]([[1, 2], [], [3]])) == [[1, 2], [], [3]])
        #expect(try roundTrip([1, nil, 3] as [Int?]) == [1, nil, 3])
        #expect(try roundTrip([nil, "", "x"] as [String?]) == [nil, "", "x"])
        #expect(try roundTrip(Int?.none) == nil)
        #expect(try roundTrip(Int?.some(5)) == 5)
        #expect(try roundTrip(String?.some("")) == "")
        #expect(try roundTrip([[UInt8]]?.some([[9]])) == [[9]])
        #expect(try roundTrip([Double]?.none) == nil)
        #expect(try encode(Int?.none) == [0])
        // As with JSONEncoder, an optional wrapping nil reads back as plain nil.
        #expect(try roundTrip(Int??.some(nil)) == .none)
        #expect(try roundTrip(Int??.some(4)) == .some(4))
    }

    @Test func appendsAfterWhatIsAlreadyThere() throws {
        let header: [UInt8] = Array(repeating: 0xEE, count: 16)
        for bytes in [try encode(12345, after: header), try encode(Inventory.sample, after: header)] {
            #expect(Array(bytes.prefix(16)) == header)
        }
        let framed = try encode(["a", "b"], after: header)
        let decoded = try framed.withUnsafeBytes { raw in
            try PayloadCodec<[String]>().decode(from: UnsafeRawBufferPointer(rebasing: raw[16...]))
        }
        #expect(decoded == ["a", "b"])
    }

    @Test func fastAndGeneralPathsReadEachOthersBytes() throws {
        func check<T: Codable & Equatable>(_ value: T, sameBytes: Bool = true) throws {
            let fast = try encode(value)
            let general = try encodeGeneral(value)
            if sameBytes { #expect(fast == general, "\(T.self)") }
            #expect(try decodeGeneral(T.self, from: fast) == value, "\(T.self)")
            #expect(try decode(T.self, from: general) == value, "\(T.self)")
        }
        try check(42)
        try check("text")
        try check(Int?.none)
        try check(Int?.some(3))
        try check([1, 2, 3])
        try check([UInt8](1...16))
        try check([true, false])
        try check([1.5, -2.5] as [Float])
        try check(["a", "", "ç"])
        try check([1, nil] as [Int?])
        try check([[1], [], [2, 3]])
        try check([["x"], []])
        // [String] has concrete code of its own: long strings (two-byte cell lengths), many of
        // them, and a [String?] beside it, all byte for byte as the general coder writes them.
        try check((0..<1000).map { "string \($0) " + String(repeating: "ü", count: $0 % 200) })
        try check(["a", nil, ""] as [String?])
        try check([Int](), sameBytes: false)
    }
}

// MARK: - General path

extension ForkPoolTests.PayloadCodecTests {
    @Test func structsEnumsDictionariesAndSetsRoundTrip() throws {
        #expect(try roundTrip(Inventory.sample) == Inventory.sample)
        #expect(try roundTrip([Inventory.sample, Inventory.sample]) == [Inventory.sample, Inventory.sample])
        #expect(try roundTrip(Point(x: 1, y: -1)) == Point(x: 1, y: -1))
        #expect(try roundTrip(Point?.none) == nil)
        #expect(try roundTrip([Shape.empty, .circle(radius: -0.5)]) == [.empty, .circle(radius: -0.5)])
        #expect(try roundTrip([Status.active: 1]) == [.active: 1])
        #expect(try roundTrip(Set(["x", "y"])) == Set(["x", "y"]))
        #expect(try roundTrip([String: [Int?]]()) == [:])
        let large = Dictionary(uniqueKeysWithValues: (0..<500).map { ("key\($0)", $0) })
        #expect(try roundTrip(large) == large)
        let byInt = Dictionary(uniqueKeysWithValues: (-50..<50).map { ($0, [$0]) })
        #expect(try roundTrip(byInt) == byInt)
    }

    @Test func foundationTypesRoundTrip() throws {
        let data = Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0) })
        #expect(try roundTrip(data) == data)
        // Data encodes through an unkeyed container; the container packs it, a byte per byte.
        #expect(try encode(data).count < data.count + 8)
        let date = Date(timeIntervalSince1970: 1_700_000_000.25)
        #expect(try roundTrip(date) == date)
        let uuid = UUID()
        #expect(try roundTrip(uuid) == uuid)
        let url = URL(string: "https://example.com/a?b=c")!
        #expect(try roundTrip(url) == url)
    }

    @Test func classHierarchiesRoundTripThroughSuperEncoders() throws {
        let dog = Dog(name: "Rex", tricks: ["sit", "roll"])
        #expect(try roundTrip(dog) == dog)
        let cat = Cat(name: "Tom", lives: 9)
        #expect(try roundTrip(cat) == cat)
        #expect(try roundTrip([dog, dog]) == [dog, dog])
    }

    @Test func keyedContainersReadInAnyOrderAndSkipUnknownKeys() throws {
        var bytes: [UInt8] = []
        try BinaryEncoder.encode(Written(), into: &bytes)
        let read = try bytes.withUnsafeBytes { try BinaryDecoder.decode(Reordered.self, from: $0) }
        #expect(read.a == 1)
        #expect(read.bIsNil)
        #expect(read.c == [10, 20])
        #expect(read.d == "dee")
        #expect(read.missing == nil)
        #expect(read.containsExtra)
        #expect(!read.containsMissing)
        #expect(read.keyCount == 5)
    }

    @Test func largeKeyedContainersReadInReverseOrder() throws {
        struct Reversed: Decodable {
            var values: [Int] = []

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: WireCodingKey.self)
                for index in stride(from: 99, through: 0, by: -1) {
                    values.append(try container.decode(Int.self, forKey: WireCodingKey(stringValue: "k\(index)")))
                }
            }
        }
        let written = Dictionary(uniqueKeysWithValues: (0..<100).map { ("k\($0)", $0) })
        let read = try decodeGeneral(Reversed.self, from: encode(written))
        #expect(read.values == Array((0..<100).reversed()))
    }

    @Test func nestedContainersMayBeFilledInAnyOrder() throws {
        #expect(try roundTrip(Interleaved()) == Interleaved())
        #expect(try roundTrip([Interleaved(), Interleaved()]) == [Interleaved(), Interleaved()])
    }

    @Test func unkeyedContainersKeepAnElementAfterAFailedDecode() throws {
        let mixed = Mixed(items: [.int(1), .text("two"), .none, .int(-4), .text("")])
        #expect(try roundTrip(mixed) == mixed)
        let ints = Mixed(items: [.int(1), .int(2)])  // packed, then read by trial
        #expect(try roundTrip(ints) == ints)
    }

    @Test func emptyAndNilValuesRoundTrip() throws {
        struct Empty: Codable, Equatable {}
        #expect(try roundTrip(Empty()) == Empty())
        #expect(try roundTrip([Empty(), Empty()]) == [Empty(), Empty()])
        #expect(try roundTrip(Empty?.none) == nil)
        #expect(try roundTrip([Point?.none, Point(x: 0, y: 0)]) == [nil, Point(x: 0, y: 0)])
    }

    @Test func longValuesWidenTheirHeaders() throws {
        // Nested values longer than 126 bytes need a header of more than one byte.
        let shapes = (0..<300).map { Shape.labeled(String(repeating: "s", count: $0), inner: .circle(radius: Double($0))) }
        #expect(try roundTrip(shapes) == shapes)
    }

    @Test func recursiveValuesWithinTheDepthLimitRoundTrip() throws {
        var chain = Chain(next: nil)
        for _ in 1..<(BinaryDecoder.maximumDepth / 2) { chain = Chain(next: chain) }
        #expect(try roundTrip(chain).length == chain.length)
    }
}

// MARK: - Errors and hostile input

extension ForkPoolTests.PayloadCodecTests {
    @Test func everyTruncationThrows() throws {
        let payloads = [try encode(Inventory.sample), try encode(["abc", "", "é"]), try encode(Int.min),
                        try encode([[1], [2, 3]]), try encode(Interleaved()), try encode(Data([1, 2, 3]))]
        for payload in payloads {
            for length in 0..<payload.count {
                let prefix = Array(payload.prefix(length))
                _ = wireError { _ = try decode(Inventory.self, from: prefix) }
                _ = wireError { _ = try decode([String].self, from: prefix) }
                _ = wireError { _ = try decode(Int.self, from: prefix) }
                _ = wireError { _ = try decode([[Int]].self, from: prefix) }
            }
        }
        let error = wireError { _ = try decode(Int.self, from: [9, 1, 2, 3]) }
        #expect(error?.description == "payload truncated: needed 8 bytes at offset 1, 3 remain")
    }

    @Test func trailingBytesAreRejected() throws {
        let error = wireError { _ = try decode(Int.self, from: encode(5) + [0]) }
        #expect(error?.description.contains("1 byte of trailing garbage at offset 9") == true)
        _ = wireError { _ = try decode([UInt8].self, from: encode([UInt8]([1, 2])) + [7, 7]) }
        _ = wireError { _ = try decode(Inventory.self, from: encode(Inventory.sample) + [0]) }
        _ = wireError { _ = try decode(Point?.self, from: [0, 0]) }
    }

    @Test func hugeLengthsAndCountsThrowWithoutAllocating() throws {
        // A top-level cell claiming 2^40 bytes.
        let claim = leb128(1 << 40 + 1) + [1, 2, 3]
        let error = wireError { _ = try decode([UInt8].self, from: claim) }
        #expect(error?.description.contains("needed 1099511627776 bytes") == true)
        _ = wireError { _ = try decode(Inventory.self, from: claim) }
        // The largest possible claim, and varints that overflow.
        _ = wireError { _ = try decode(String.self, from: leb128(UInt64(Int.max))) }
        _ = wireError { _ = try decode(String.self, from: leb128(UInt64.max)) }
        _ = wireError { _ = try decode(String.self, from: [UInt8](repeating: 0xFF, count: 11) + [1]) }
        // A huge length inside an otherwise well-framed value: an element, a key, a nested cell.
        let element = [0x00] + leb128(1 << 50) + [0x41]
        _ = wireError { _ = try decode([String].self, from: leb128(UInt64(element.count + 1)) + element) }
        _ = wireError { _ = try decode([[String]].self, from: leb128(UInt64(element.count + 1)) + element) }
        let entry = leb128(1 << 50) + [0x78, 0x01]
        _ = wireError { _ = try decode(Point.self, from: leb128(UInt64(entry.count + 1)) + entry) }
        let value = [0x01, 0x78] + leb128(1 << 50)
        _ = wireError { _ = try decode(Point.self, from: leb128(UInt64(value.count + 1)) + value) }
    }

    @Test func arraysOfNilCellsAreRefusedBeforeAnythingIsAllocatedForThem() throws {
        // A cells-form array of a million nil cells: refused at the first, as [String] and as
        // [[Int]] (neither element can be nil); a [String?] of them is fine.
        let body: [UInt8] = [WireLayout.cellsForm] + [UInt8](repeating: WireLayout.nilCell, count: 1_000_000)
        let payload = leb128(UInt64(body.count + 1)) + body
        _ = wireError { _ = try decode([String].self, from: payload) }
        _ = wireError { _ = try decode([[Int]].self, from: payload) }
        #expect(try decode([String?].self, from: payload).count == 1_000_000)
    }

    @Test func deeplyNestedHostileInputIsRefused() throws {
        // Chain { next: Chain { next: ... } } far past the limit, built inside out.
        var content: [UInt8] = []
        for _ in 0..<(BinaryDecoder.maximumDepth * 3) {
            content = [4] + Array("next".utf8) + leb128(UInt64(content.count + 1)) + content
        }
        let payload = leb128(UInt64(content.count + 1)) + content
        let error = wireError { _ = try decode(Chain.self, from: payload) }
        #expect(error?.description.contains("nested more than \(BinaryDecoder.maximumDepth) levels") == true)
    }

    @Test func randomGarbageNeverCrashes() {
        var random = SplitMix64(seed: 0x5EED)
        var decodedSomething = 0
        for _ in 0..<3_000 {
            let length = Int.random(in: 0...48, using: &random)
            let garbage = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Small header values make well-framed garbage likely enough to reach the decoders.
            let framed = leb128(UInt64(garbage.count + 1)) + garbage
            for bytes in [garbage, framed] {
                if (try? decode(Int.self, from: bytes)) != nil { decodedSomething += 1 }
                _ = try? decode(String.self, from: bytes)
                _ = try? decode([String?].self, from: bytes)
                _ = try? decode([[UInt8]].self, from: bytes)
                _ = try? decode([Bool].self, from: bytes)
                _ = try? decode(Inventory.self, from: bytes)
                _ = try? decode([Shape].self, from: bytes)
                _ = try? decode([String: Int].self, from: bytes)
                _ = try? decode(Mixed.self, from: bytes)
                _ = try? decode(Data.self, from: bytes)
            }
        }
        #expect(decodedSomething > 0)
    }

    @Test func corruptedValidPayloadsNeverCrash() throws {
        var random = SplitMix64(seed: 0xC0FFEE)
        let originals = [try encode(Inventory.sample), try encode(Interleaved()), try encode(Dog(name: "a", tricks: ["b"]))]
        var stillDecoded = 0
        for round in 0..<3_000 {
            var bytes = originals[round % originals.count]
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes[index] ^= 1 << UInt8.random(in: 0...7, using: &random)
                case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: index)
                default: bytes.remove(at: index)
                }
                if bytes.isEmpty { bytes = [0] }
            }
            if (try? decode(Inventory.self, from: bytes)) != nil { stillDecoded += 1 }
            _ = try? decode(Interleaved.self, from: bytes)
            _ = try? decode(Dog.self, from: bytes)
        }
        #expect(stillDecoded < 3_000)
    }

    @Test func malformedPrimitivesAreReported() {
        let size = wireError { _ = try decode(Int.self, from: [3, 0x68, 0x69]) }
        #expect(size?.description == "cannot decode Int at offset 1: expected 8 bytes, found 2")
        let utf8 = wireError { _ = try decode(String.self, from: [3, 0xC3, 0x28]) }
        #expect(utf8?.description == "payload corrupt: the 2 bytes of text at offset 1 are not valid UTF-8")
        let bool = wireError { _ = try decode(Bool.self, from: [2, 2]) }
        #expect(bool?.description == "cannot decode Bool at offset 1: byte 2 is neither 0 nor 1")
        _ = wireError { _ = try decode([Bool].self, from: [4, 1, 0, 7]) }
        let nilInt = wireError { _ = try decode(Int.self, from: [0]) }
        #expect(nilInt?.description == "cannot decode Int at offset 0: found nil")
        _ = wireError { _ = try decode([Int].self, from: [3, 4, 1]) }  // ragged packed body
        _ = wireError { _ = try decode([Int].self, from: [3, 9, 1]) }  // unknown layout
        let nilPoint = wireError { _ = try decode(Point.self, from: [0]) }
        #expect(nilPoint?.description.contains("found nil") == true)
    }

    @Test func utf8ValidationAgreesWithTheStandardLibrary() {
        func agrees(_ bytes: [UInt8]) -> Bool {
            let ours = bytes.withUnsafeBytes { isValidUTF8($0) }
            return ours == (String(validating: bytes, as: UTF8.self) != nil)
        }
        let edges: [[UInt8]] = [
            [], [0x7F], [0xC2, 0x80], [0xC1, 0xBF], [0xC0, 0x80], [0xE0, 0xA0, 0x80], [0xE0, 0x9F, 0xBF],
            [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80],
            [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
            [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0x80], [0xFF], Array("plain ascii, sixteen+ bytes long".utf8),
            Array("mixed ✓ text with 日本 and 🌍".utf8),
        ]
        for bytes in edges {
            #expect(agrees(bytes), "\(bytes)")
        }
        // Random sequences drawn mostly from bytes that matter to the decoder's state.
        var random = SplitMix64(seed: 0x0DDBA11)
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                    0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...12, using: &random)
            let bytes = (0..<length).map { _ in interesting[Int.random(in: 0..<interesting.count, using: &random)] }
            #expect(agrees(bytes), "\(bytes)")
        }
    }

    @Test func codableErrorsKeepTheirDescription() throws {
        let missingKey = wireError { _ = try decode(Point.self, from: encode(Rejecting(value: 1))) }
        #expect(missingKey?.description.contains("key 'x' not found") == true)
        let encoding = wireError { _ = try encode([Rejecting(value: 1), Rejecting(value: -1)]) }
        #expect(encoding?.description.contains("negative values are not allowed") == true)
        #expect(encoding?.description.contains("[1].value") == true)
        let decoding = wireError { _ = try decode([Rejecting].self, from: encode([Rejecting(value: 13)])) }
        #expect(decoding?.description.contains("13 is unlucky") == true)
        #expect(decoding?.description.contains("[0].value") == true)
        let typeMismatch = wireError { _ = try decode([Point].self, from: encode([Point?.none])) }
        #expect(typeMismatch?.description.contains("[0]") == true)
    }

    @Test func aFailedEncodeLeavesTheBufferAsItWas() throws {
        let header: [UInt8] = [1, 2, 3, 4]
        var bytes = header
        #expect(throws: WireCodingError.self) {
            try PayloadCodec<[Rejecting]>().encode([Rejecting(value: 1), Rejecting(value: -1)], into: &bytes)
        }
        #expect(bytes == header)
        try PayloadCodec<[Rejecting]>().encode([Rejecting(value: 2)], into: &bytes)
        let decoded = try bytes.withUnsafeBytes { raw in
            try PayloadCodec<[Rejecting]>().decode(from: UnsafeRawBufferPointer(rebasing: raw[4...]))
        }
        #expect(decoded.map(\.value) == [2])
    }

    @Test func aContainerUsedAfterItsValueThrows() {
        var bytes: [UInt8] = []
        let error = wireError { try BinaryEncoder.encode(Heist(thief: ContainerThief()), into: &bytes) }
        #expect(error?.description.contains("used after the value that owned it finished encoding") == true)
    }
}
