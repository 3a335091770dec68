// WireRawEnumTests: the binary coder's shortcut for enums coded as their raw value
// (WireRawEnumCoding). It must be taken for the standard library's conformance, write exactly
// the raw value's cell, and never change a result: a custom conformance stays on the general
// path, and bytes that are no case's raw value go through the type's own init(from:).
import Dispatch
import Synchronization
import Testing
@testable import ForkPool

extension ForkPoolTests {
    @Suite struct WireRawEnumTests {}
}

private func encode<T: Codable>(_ value: T) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try PayloadCodec<T>().encode(value, into: &bytes)
    return bytes
}

private func decode<T: Codable>(_: T.Type, from bytes: [UInt8]) throws -> T {
    try bytes.withUnsafeBytes { try PayloadCodec<T>().decode(from: $0) }
}

/// A cell as the wire format writes it: varint(n + 1), then n bytes (n < 127 here).
private func cell(_ content: [UInt8]) -> [UInt8] {
    [UInt8(content.count + 1)] + content
}

private enum Colour: String, Codable, CaseIterable, Equatable {
    case red, green = "GREEN", blue = "bleu", empty = ""
}

private enum Level: Int, Codable, CaseIterable, Equatable {
    case low = -1, middle = 500, high = 1_099_511_627_776
}

/// Encodes itself lower-cased: its own conformance, which the shortcut must not replace.
private enum Shout: String, Codable, CaseIterable, Equatable {
    case yes = "YES", no = "NO"

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue.lowercased())
    }

    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Shout(rawValue: text.uppercased()) else {
            throw DecodingError.dataCorruptedError(in: try decoder.singleValueContainer(), debugDescription: "not a Shout")
        }
        self = value
    }
}

/// Writes its raw value, but also reads a lower-case alias: the shortcut applies, and an
/// alias (no case's bytes) must still reach init(from:).
private enum Answer: String, Codable, CaseIterable, Equatable {
    case yes = "YES", no = "NO"

    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Answer(rawValue: text.uppercased()) else {
            throw DecodingError.dataCorruptedError(in: try decoder.singleValueContainer(), debugDescription: "not an Answer")
        }
        self = value
    }
}

/// Its raw value in one Unicode normalization; Swift's String equality accepts the other.
private enum Accent: String, Codable, CaseIterable, Equatable {
    case acute = "caf\u{E9}", plain = "cafe"
}

/// Reads every raw value as the same case: decoding a case's own bytes does not give it back.
private enum Collapsing: String, Codable, CaseIterable, Equatable {
    case first = "A", second = "B"

    init(from decoder: any Decoder) throws {
        _ = try decoder.singleValueContainer().decode(String.self)
        self = .first
    }
}

/// Met for the first time by many threads at once.
private enum Raced: String, Codable, CaseIterable, Equatable {
    case one, two, three
}

/// Coded for the first time in a worker.
private enum ForkedFirst: String, Codable, CaseIterable, Equatable {
    case alpha, beta
}

private struct Palette: Codable, Equatable {
    var main: Colour
    var others: [Colour]
    var optional: Colour?
    var optionals: [Colour?]
    var byName: [String: Colour]
    var levels: [Level]
}

extension ForkPoolTests.WireRawEnumTests {
    @Test func theStandardConformanceTakesTheShortcut() {
        #expect(WireRawEnumCoding.coding(for: Colour.self) != nil)
        #expect(WireRawEnumCoding.coding(for: Level.self) != nil)
        #expect(WireRawEnumCoding.coding(for: Answer.self) != nil)
        #expect(WireRawEnumCoding.coding(for: String.self) == nil)
        #expect(WireRawEnumCoding.coding(for: Palette.self) == nil)
    }

    @Test func aConformanceThatCodesOtherBytesKeepsItsOwn() throws {
        #expect(WireRawEnumCoding.coding(for: Shout.self) == nil)
        #expect(WireRawEnumCoding.coding(for: Collapsing.self) == nil)
        // Its own bytes, lower-cased, for a value and in an array.
        #expect(try decode(String.self, from: encode(Shout.yes)) == "yes")
        #expect(try decode([String].self, from: encode([Shout.no, .yes])) == ["no", "yes"])
        #expect(try decode([Shout].self, from: encode([Shout.no, .yes])) == [.no, .yes])
        #expect(try decode([Collapsing].self, from: encode([Collapsing.second])) == [.first])
    }

    @Test func theBytesAreTheRawValuesCell() throws {
        #expect(try encode(Colour.green) == cell(Array("GREEN".utf8)))
        #expect(try encode(Colour.empty) == cell([]))
        #expect(try encode([Colour.red, .blue]) == cell([WireLayout.cellsForm] + cell(Array("red".utf8)) + cell(Array("bleu".utf8))))
        let high = withUnsafeBytes(of: (1 << 40 as Int).littleEndian) { Array($0) }
        #expect(try encode(Level.high) == cell(high))
        // What the standard conformance reads: the raw value as a String or an Int.
        #expect(try decode(String.self, from: encode(Colour.blue)) == "bleu")
        #expect(try decode(Int.self, from: encode(Level.low)) == -1)
        #expect(try decode(Colour.self, from: encode("GREEN")) == .green)
        #expect(try decode([Level].self, from: encode([500, -1])) == [.middle, .low])
    }

    @Test func everyShapeRoundTrips() throws {
        let palette = Palette(main: .blue, others: Colour.allCases, optional: nil, optionals: [.empty, nil, .red],
                              byName: ["sky": .blue, "grass": .green], levels: Level.allCases)
        #expect(try decode(Palette.self, from: encode(palette)) == palette)
        #expect(try decode([Palette].self, from: encode([palette, palette])) == [palette, palette])
        #expect(try decode([[Colour]].self, from: encode([[Colour.red], [], [.empty]])) == [[.red], [], [.empty]])
        for colour in Colour.allCases {
            #expect(try decode(Colour.self, from: encode(colour)) == colour)
        }
    }

    @Test func bytesThatAreNoCasesGoThroughInitFromDecoder() throws {
        // An alias the type's own init(from:) accepts.
        #expect(try decode(Answer.self, from: encode("yes")) == .yes)
        #expect(try decode([Answer].self, from: encode(["no", "YES"])) == [.no, .yes])
        // The other normalization of a raw value: equal as Strings, not as bytes.
        #expect(try decode(Accent.self, from: encode("cafe\u{301}")) == .acute)
        #expect(try decode([Accent].self, from: encode(["cafe\u{301}", "cafe"])) == [.acute, .plain])
    }

    @Test func aValueThatIsNoCaseFailsAsBefore() throws {
        // The standard conformance's own error, with the value's path.
        let single = #expect(throws: WireCodingError.self) { _ = try decode(Colour.self, from: encode("purple")) }
        #expect("\(single.map { "\($0)" } ?? "")".contains("invalid String value purple"))
        let element = #expect(throws: WireCodingError.self) { _ = try decode([Colour].self, from: encode(["red", "purple"])) }
        #expect("\(element.map { "\($0)" } ?? "")".contains("at [1]: Cannot initialize Colour from invalid String value purple"))
        // Not text at all (invalid UTF-8), and a truncated cell.
        #expect(throws: WireCodingError.self) { _ = try decode(Colour.self, from: cell([0xFF, 0xFE])) }
        #expect(throws: WireCodingError.self) { _ = try decode([Colour].self, from: [4, WireLayout.cellsForm, 9, 0x72]) }
    }

    @Test func manyThreadsMeetingANewEnumAtOnceAllGetItRight() throws {
        let values: [Raced] = (0..<300).map { Raced.allCases[$0 % 3] }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            let ok = (try? decode([Raced].self, from: encode(values))) == values
                && (try? decode([String].self, from: encode(values))) == values.map(\.rawValue)
            if !ok { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(WireRawEnumCoding.coding(for: Raced.self) != nil)
    }

    @Test func aWorkerForkedWhileATableWasBeingPublishedStillCodesEnums() throws {
        // The pool (its fork server, hence its workers) is forked while the publishing lock is
        // held, so every worker holds it forever. Its first ForkedFirst must neither hang nor
        // come out wrong; it is checked again on the next call, unremembered.
        let pool = try WireRawEnumCoding.whilePublishingIsLocked {
            try ProcessPool(workers: 1) { (count: Int) -> [ForkedFirst] in (0..<count).map { $0 % 2 == 0 ? .alpha : .beta } }
        }
        defer { pool.shutdown() }
        #expect(try pool.submit(5).get() == [.alpha, .beta, .alpha, .beta, .alpha])
        #expect(try pool.submit(2).get() == [.alpha, .beta])
    }
}
