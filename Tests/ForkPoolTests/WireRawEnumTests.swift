// WireRawEnumTests: the binary coder's shortcut for enums coded as their raw value
// (WireRawEnumCoding). It must be taken for the standard library's conformance, write exactly
// the raw value's cell, and never change a result: a custom conformance stays on the general
// path, and bytes that are no case's raw value go through the type's own init(from:).
import Dispatch
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

extension ForkPoolTests {
    @Suite struct WireRawEnumTests {}
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

/// Counts its own decodings: zero once the table decodes it.
private enum Counted: String, Codable, CaseIterable, Equatable {
    case one, two
    static let decodes = Atomic(0)

    init(from decoder: any Decoder) throws {
        Counted.decodes.add(1, ordering: .relaxed)
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Counted(rawValue: text.lowercased()) else {
            throw DecodingError.dataCorruptedError(in: try decoder.singleValueContainer(), debugDescription: "not Counted")
        }
        self = value
    }
}

/// Two cases, one raw value: `init(rawValue:)` gives the second.
private enum Aliased: RawRepresentable, Codable, CaseIterable, Equatable {
    case legacyLow, low

    init?(rawValue: String) {
        guard rawValue == "low" else { return nil }
        self = .low
    }

    var rawValue: String { "low" }
}

/// No bytes at all in memory (one case).
private enum Only: String, Codable, CaseIterable, Equatable {
    case only = "ONLY"
}

/// Two bytes in memory (300 cases).
private enum Wide: Int, Codable, CaseIterable, Equatable {
    case c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19
    case c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31, c32, c33, c34, c35, c36, c37, c38, c39
    case c40, c41, c42, c43, c44, c45, c46, c47, c48, c49, c50, c51, c52, c53, c54, c55, c56, c57, c58, c59
    case c60, c61, c62, c63, c64, c65, c66, c67, c68, c69, c70, c71, c72, c73, c74, c75, c76, c77, c78, c79
    case c80, c81, c82, c83, c84, c85, c86, c87, c88, c89, c90, c91, c92, c93, c94, c95, c96, c97, c98, c99
    case c100, c101, c102, c103, c104, c105, c106, c107, c108, c109, c110, c111, c112, c113, c114, c115, c116, c117, c118, c119
    case c120, c121, c122, c123, c124, c125, c126, c127, c128, c129, c130, c131, c132, c133, c134, c135, c136, c137, c138, c139
    case c140, c141, c142, c143, c144, c145, c146, c147, c148, c149, c150, c151, c152, c153, c154, c155, c156, c157, c158, c159
    case c160, c161, c162, c163, c164, c165, c166, c167, c168, c169, c170, c171, c172, c173, c174, c175, c176, c177, c178, c179
    case c180, c181, c182, c183, c184, c185, c186, c187, c188, c189, c190, c191, c192, c193, c194, c195, c196, c197, c198, c199
    case c200, c201, c202, c203, c204, c205, c206, c207, c208, c209, c210, c211, c212, c213, c214, c215, c216, c217, c218, c219
    case c220, c221, c222, c223, c224, c225, c226, c227, c228, c229, c230, c231, c232, c233, c234, c235, c236, c237, c238, c239
    case c240, c241, c242, c243, c244, c245, c246, c247, c248, c249, c250, c251, c252, c253, c254, c255, c256, c257, c258, c259
    case c260, c261, c262, c263, c264, c265, c266, c267, c268, c269, c270, c271, c272, c273, c274, c275, c276, c277, c278, c279
    case c280, c281, c282, c283, c284, c285, c286, c287, c288, c289, c290, c291, c292, c293, c294, c295, c296, c297, c298, c299
}

/// `.pointer` encodes as a Partner, whose `.back` encodes as a Pointer: checking either codes
/// the other.
private enum Pointer: String, Codable, CaseIterable, Equatable {
    case plain, pointer

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if self == .pointer { try container.encode(Partner.back) } else { try container.encode(rawValue) }
    }
}

private enum Partner: String, Codable, CaseIterable, Equatable {
    case back, other

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if self == .back { try container.encode(Pointer.plain) } else { try container.encode(rawValue) }
    }
}

/// More kinds of value than one call's type cache holds (8).
private struct ManyKinds: Codable, Equatable {
    var colour: Colour, level: Level, only: Only, wide: Wide, answer: Answer, accent: Accent
    var counted: Counted, shout: Shout, raced: Raced
    var colours: [Colour], levels: [Level], name: String, count: Int
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
        #expect(try decodedPayload(String.self, from: encodedPayload(Shout.yes)) == "yes")
        #expect(try decodedPayload([String].self, from: encodedPayload([Shout.no, .yes])) == ["no", "yes"])
        #expect(try decodedPayload([Shout].self, from: encodedPayload([Shout.no, .yes])) == [.no, .yes])
        #expect(try decodedPayload([Collapsing].self, from: encodedPayload([Collapsing.second])) == [.first])
    }

    @Test func theBytesAreTheRawValuesCell() throws {
        #expect(try encodedPayload(Colour.green) == cell(Array("GREEN".utf8)))
        #expect(try encodedPayload(Colour.empty) == cell([]))
        #expect(try encodedPayload([Colour.red, .blue]) == cell([WireLayout.cellsForm] + cell(Array("red".utf8)) + cell(Array("bleu".utf8))))
        let high = withUnsafeBytes(of: (1 << 40 as Int).littleEndian) { Array($0) }
        #expect(try encodedPayload(Level.high) == cell(high))
        // What the standard conformance reads: the raw value as a String or an Int.
        #expect(try decodedPayload(String.self, from: encodedPayload(Colour.blue)) == "bleu")
        #expect(try decodedPayload(Int.self, from: encodedPayload(Level.low)) == -1)
        #expect(try decodedPayload(Colour.self, from: encodedPayload("GREEN")) == .green)
        #expect(try decodedPayload([Level].self, from: encodedPayload([500, -1])) == [.middle, .low])
    }

    @Test func everyShapeRoundTrips() throws {
        let palette = Palette(main: .blue, others: Colour.allCases, optional: nil, optionals: [.empty, nil, .red],
                              byName: ["sky": .blue, "grass": .green], levels: Level.allCases)
        #expect(try decodedPayload(Palette.self, from: encodedPayload(palette)) == palette)
        #expect(try decodedPayload([Palette].self, from: encodedPayload([palette, palette])) == [palette, palette])
        #expect(try decodedPayload([[Colour]].self, from: encodedPayload([[Colour.red], [], [.empty]])) == [[.red], [], [.empty]])
        for colour in Colour.allCases {
            #expect(try decodedPayload(Colour.self, from: encodedPayload(colour)) == colour)
        }
    }

    @Test func bytesThatAreNoCasesGoThroughInitFromDecoder() throws {
        // An alias the type's own init(from:) accepts.
        #expect(try decodedPayload(Answer.self, from: encodedPayload("yes")) == .yes)
        #expect(try decodedPayload([Answer].self, from: encodedPayload(["no", "YES"])) == [.no, .yes])
        // The other normalization of a raw value: equal as Strings, not as bytes.
        #expect(try decodedPayload(Accent.self, from: encodedPayload("cafe\u{301}")) == .acute)
        #expect(try decodedPayload([Accent].self, from: encodedPayload(["cafe\u{301}", "cafe"])) == [.acute, .plain])
    }

    @Test func aValueThatIsNoCaseFailsAsBefore() throws {
        // The standard conformance's own error, with the value's path.
        let single = #expect(throws: WireCodingError.self) { _ = try decodedPayload(Colour.self, from: encodedPayload("purple")) }
        #expect("\(single.map { "\($0)" } ?? "")".contains("invalid String value purple"))
        let element = #expect(throws: WireCodingError.self) { _ = try decodedPayload([Colour].self, from: encodedPayload(["red", "purple"])) }
        #expect("\(element.map { "\($0)" } ?? "")".contains("at [1]: Cannot initialize Colour from invalid String value purple"))
        // Not text at all (invalid UTF-8), and a truncated cell.
        #expect(throws: WireCodingError.self) { _ = try decodedPayload(Colour.self, from: cell([0xFF, 0xFE])) }
        #expect(throws: WireCodingError.self) { _ = try decodedPayload([Colour].self, from: [4, WireLayout.cellsForm, 9, 0x72]) }
    }

    @Test func manyThreadsMeetingANewEnumAtOnceAllGetItRight() throws {
        let values: [Raced] = (0..<300).map { Raced.allCases[$0 % 3] }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            let ok = (try? decodedPayload([Raced].self, from: encodedPayload(values))) == values
                && (try? decodedPayload([String].self, from: encodedPayload(values))) == values.map(\.rawValue)
            if !ok { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(WireRawEnumCoding.coding(for: Raced.self) != nil)
    }

    @Test func anEnumFirstMetInAWorkerIsCheckedAndUsedThere() throws {
        // A worker is a fork of this multi-threaded process: checking and publishing a table
        // there takes no lock another thread could have held at the fork.
        let pool = try ProcessPool(workers: 1) { (count: Int) -> [ForkedFirst] in (0..<count).map { $0 % 2 == 0 ? .alpha : .beta } }
        defer { pool.shutdown() }
        #expect(try pool.submit(5).get() == [.alpha, .beta, .alpha, .beta, .alpha])
        #expect(try pool.submit(2).get() == [.alpha, .beta])
    }

    @Test func theTableIsWhatDecodesOnceChecked() throws {
        let values = (0..<1_000).map { Counted.allCases[$0 % 2] }
        let bytes = try encodedPayload(values)
        #expect(try decodedPayload([Counted].self, from: bytes) == values)  // checked by now
        let before = Counted.decodes.load(ordering: .relaxed)
        #expect(try decodedPayload([Counted].self, from: bytes) == values)
        #expect(try decodedPayload(Counted.self, from: encodedPayload(Counted.two)) == .two)
        #expect(Counted.decodes.load(ordering: .relaxed) == before, "init(from:) ran: the table was not used")
        // An alias is no case's bytes: init(from:) decides, and is counted.
        #expect(try decodedPayload(Counted.self, from: encodedPayload("ONE")) == .one)
        #expect(Counted.decodes.load(ordering: .relaxed) == before + 1)
    }

    @Test func twoCasesWithOneRawValueKeepTheirOwnDecoding() throws {
        // Both cases write "low"; the type's init(rawValue:) reads it as .low. A table would
        // find .legacyLow first.
        #expect(WireRawEnumCoding.coding(for: Aliased.self) == nil)
        #expect(try decodedPayload(Aliased.self, from: encodedPayload(Aliased.legacyLow)) == .low)
        #expect(try decodedPayload([Aliased].self, from: encodedPayload([Aliased.low, .legacyLow])) == [.low, .low])
    }

    @Test func oneCaseAndMoreThan256CasesUseTheTableToo() throws {
        #expect(MemoryLayout<Only>.size == 0 && MemoryLayout<Wide>.size == 2)
        #expect(WireRawEnumCoding.coding(for: Only.self) != nil)
        #expect(WireRawEnumCoding.coding(for: Wide.self) != nil)
        #expect(try encodedPayload(Only.only) == cell(Array("ONLY".utf8)))
        #expect(try decodedPayload([Only].self, from: encodedPayload([Only.only, .only])) == [.only, .only])
        #expect(try encodedPayload(Wide.c299) == cell(withUnsafeBytes(of: (299 as Int).littleEndian) { Array($0) }))
        #expect(try decodedPayload([Wide].self, from: encodedPayload(Wide.allCases)) == Wide.allCases)
        #expect(try decodedPayload(Wide.self, from: encodedPayload(42)) == .c42)
    }

    @Test func enumsWhoseCodingCodesEachOtherAreCheckedWithoutRecursing() throws {
        #expect(try encodedPayload(Pointer.pointer) == cell(Array("plain".utf8)))
        #expect(try encodedPayload([Partner.back, .other]) == cell([WireLayout.cellsForm] + cell(Array("plain".utf8)) + cell(Array("other".utf8))))
        #expect(WireRawEnumCoding.coding(for: Pointer.self) == nil)
        #expect(WireRawEnumCoding.coding(for: Partner.self) == nil)
    }

    @Test func moreTypesInOneCallThanTheCacheHoldsStillRoundTrip() throws {
        let value = ManyKinds(colour: .green, level: .high, only: .only, wide: .c257, answer: .no, accent: .acute,
                              counted: .one, shout: .yes, raced: .two, colours: [.red, .empty], levels: [.low],
                              name: "many", count: 3)
        #expect(try decodedPayload([ManyKinds].self, from: encodedPayload([value, value, value])) == [value, value, value])
    }
}
