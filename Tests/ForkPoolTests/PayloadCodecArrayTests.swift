// PayloadCodecArrayTests: the binary coder's own handling of arrays of general values
// (WireArrayCoding), its reuse of decoders and coding-path nodes from one element to the next,
// and raw-value enums — the shapes of the transform workload's TaggedSentence. Arrays coded
// directly must give exactly the bytes and errors Array's own Codable gives through the
// containers; a value that keeps its encoder or decoder must not see it reused.
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire
@testable import Workloads

extension ForkPoolTests {
    @Suite struct PayloadCodecArrayTests {}
}

// MARK: - Helpers and types

private func decodingError<T: Codable>(_: T.Type, from bytes: [UInt8]) -> String? {
    do {
        _ = try decodedPayload(T.self, from: bytes)
        return nil
    } catch {
        return "\(error)"
    }
}

private enum Suit: String, Codable, Equatable, CaseIterable {
    case hearts = "H", spades = "S", diamonds = "D", clubs = "C"
}

private enum Rank: Int, Codable, Equatable {
    case low = 1, middle = 500, high = -7
}

private struct Hand: Codable, Equatable {
    var owner: String
    var suits: [Suit]
    var ranks: [Rank]
    var nested: [[Suit]]
    var maybe: [Suit?]
}

/// Array's own Codable, spelled out: an unkeyed container, one element at a time. The coder's
/// direct handling of `[Element]` must write and read exactly what this does.
private struct ContainerArray<Element: Codable & Equatable>: Codable, Equatable {
    var elements: [Element]

    init(_ elements: [Element]) {
        self.elements = elements
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for element in elements { try container.encode(element) }
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        elements = []
        while !container.isAtEnd { elements.append(try container.decode(Element.self)) }
    }
}

/// Records the coding path it was coded at, and keeps its decoder (whose bytes are only valid
/// during the decode call: afterwards only its identity and coding path are looked at).
private final class PathRecorder: Codable, @unchecked Sendable {
    nonisolated(unsafe) static var encodedPaths: [String] = []
    nonisolated(unsafe) static var keptDecoders: [any Decoder] = []

    let value: Int

    init(value: Int) {
        self.value = value
    }

    func encode(to encoder: any Encoder) throws {
        Self.encodedPaths.append(WireCodingError.render(encoder.codingPath))
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    init(from decoder: any Decoder) throws {
        Self.keptDecoders.append(decoder)
        value = try decoder.singleValueContainer().decode(Int.self)
    }
}

private struct Wrapper: Codable, Equatable {
    var value: UInt8

    init(value: UInt8) {
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(UInt8.self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

private let hand = Hand(owner: "west", suits: [.hearts, .clubs, .hearts], ranks: [.high, .low, .middle],
                        nested: [[], [.spades], [.diamonds, .hearts]], maybe: [nil, .clubs, nil])

// MARK: - Round trips and bytes

extension ForkPoolTests.PayloadCodecArrayTests {
    @Test func rawValueEnumsAndArraysOfThemRoundTrip() throws {
        #expect(try decodedPayload(Hand.self, from: encodedPayload(hand)) == hand)
        #expect(try decodedPayload([Hand].self, from: encodedPayload([hand, hand, hand])) == [hand, hand, hand])
        #expect(try decodedPayload([Suit].self, from: encodedPayload(Suit.allCases)) == Suit.allCases)
        #expect(try decodedPayload([Suit].self, from: encodedPayload([Suit]())) == [])
        #expect(try decodedPayload([[Rank]].self, from: encodedPayload([[Rank.high], [], [.low, .middle]])) == [[.high], [], [.low, .middle]])
        #expect(try decodedPayload(Suit.self, from: encodedPayload(Suit.spades)) == .spades)
        #expect(try decodedPayload([Hand?].self, from: encodedPayload([nil, hand])) == [nil, hand])
    }

    @Test func directArraysWriteAndReadWhatTheContainersDo() throws {
        let suits: [Suit] = [.hearts, .clubs, .spades]
        #expect(try encodedPayload(suits) == encodedPayload(ContainerArray(suits)))
        #expect(try encodedPayload([hand]) == encodedPayload(ContainerArray([hand])))
        #expect(try encodedPayload([Suit]()) == encodedPayload(ContainerArray([Suit]())))
        #expect(try encodedPayload([[Suit.hearts], []]) == encodedPayload(ContainerArray([ContainerArray([Suit.hearts]), ContainerArray([])])))
        #expect(try decodedPayload(ContainerArray<Suit>.self, from: encodedPayload(suits)).elements == suits)
        #expect(try decodedPayload([Suit].self, from: encodedPayload(ContainerArray(suits))) == suits)
    }

    @Test func theTransformWorkloadsOutputRoundTrips() throws {
        let tagger = Tagger()
        let tagged = (Corpus.articleSentences + Corpus.sentences(count: 50)).map { tagger.tag($0) }
        #expect(try decodedPayload([TaggedSentence].self, from: encodedPayload(tagged)) == tagged)
        #expect(try encodedPayload(tagged) == encodedPayload(ContainerArray(tagged)))
    }

    @Test func theWireLayoutOfAnArrayOfStructsIsUnchanged() throws {
        // The shape of the fuzz seed Fuzz/corpus/result-tagged: two { sentence, tokens, tags }.
        struct Tagged: Codable, Equatable {
            var sentence: String
            var tokens: [String]
            var tags: [PartOfSpeech]
        }
        let element: [UInt8] = [0x31, 8] + Array("sentence".utf8) + [8] + Array("The cat".utf8)
            + [6] + Array("tokens".utf8) + [0x0A, 0, 4] + Array("The".utf8) + [4] + Array("cat".utf8)
            + [4] + Array("tags".utf8) + [9, 0, 2] + Array("X".utf8) + [5] + Array("NOUN".utf8)
        let expected: [UInt8] = [0x64, 0] + element + element
        let value = Tagged(sentence: "The cat", tokens: ["The", "cat"], tags: [.other, .noun])
        #expect(try encodedPayload([value, value]) == expected)
        #expect(try decodedPayload([Tagged].self, from: expected) == [value, value])
    }

    @Test func packedElementsDecodeIntoAGeneralElementType() throws {
        // [UInt8] is stored packed; an array of a wrapper around UInt8 reads it element by element.
        let bytes = try encodedPayload([UInt8]([1, 2, 250]))
        #expect(try decodedPayload([Wrapper].self, from: bytes) == [1, 2, 250].map { Wrapper(value: $0) })
        #expect(try decodedPayload(ContainerArray<Wrapper>.self, from: bytes).elements == [1, 2, 250].map { Wrapper(value: $0) })
    }
}

// MARK: - Paths, reuse and errors

extension ForkPoolTests.PayloadCodecArrayTests {
    @Test func elementsSeeTheirOwnCodingPath() throws {
        PathRecorder.encodedPaths = []
        _ = try encodedPayload([[PathRecorder(value: 1)], [PathRecorder(value: 2), PathRecorder(value: 3)]])
        #expect(PathRecorder.encodedPaths == ["[0][0]", "[1][0]", "[1][1]"])
    }

    @Test func aDecoderKeptByAnElementIsNotReusedForTheNext() throws {
        PathRecorder.keptDecoders = []
        defer { PathRecorder.keptDecoders = [] }
        let decoded = try decodedPayload([PathRecorder].self, from: encodedPayload([PathRecorder(value: 1), PathRecorder(value: 2)]))
        #expect(decoded.map(\.value) == [1, 2])
        let kept = PathRecorder.keptDecoders
        #expect(kept.count == 2)
        #expect(kept.map { WireCodingError.render($0.codingPath) } == ["[0]", "[1]"])
        if kept.count == 2 {
            #expect(ObjectIdentifier(kept[0] as AnyObject) != ObjectIdentifier(kept[1] as AnyObject))
        }
    }

    @Test func anEncoderKeptByAnElementRefusesWritesAfterItsValue() throws {
        final class EncoderThief: Encodable {
            var stolen: (any Encoder)?
            func encode(to encoder: any Encoder) throws {
                stolen = encoder
                var container = encoder.singleValueContainer()
                try container.encode(1)
            }
        }
        struct Heist: Encodable {
            let thieves = [EncoderThief(), EncoderThief()]
            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                for thief in thieves { try container.encode(thief) }
                var late = thieves[0].stolen?.unkeyedContainer()
                try late?.encode(2)
            }
        }
        var bytes: [UInt8] = []
        #expect(throws: (any Error).self) { try BinaryEncoder.encode(Heist(), into: &bytes) }
        #expect(bytes.isEmpty)
    }

    @Test func anUnknownRawValueIsReportedWithItsPath() throws {
        var wrong = hand
        wrong.owner = "east"
        var bytes = try encodedPayload([hand, wrong])
        // Turn the second hand's first suit "H" into "Q".
        let suitOffsets = bytes.indices.filter { bytes[$0] == UInt8(ascii: "H") }
        #expect(suitOffsets.count >= 4)
        bytes[suitOffsets[suitOffsets.count / 2]] = UInt8(ascii: "Q")
        let message = decodingError([Hand].self, from: bytes)
        #expect(message?.contains("data corrupted") == true)
        #expect(message?.contains("[1].suits[0]") == true)
    }

    @Test func nilAndMistypedElementsAreReportedWithTheirIndex() throws {
        let withNil = try encodedPayload([Suit?.some(.hearts), nil])
        let missing = decodingError([Suit].self, from: withNil)
        #expect(missing?.contains("[1]") == true)
        #expect(missing?.contains("found nil") == true)
        let notAnArray = decodingError([Suit].self, from: try encodedPayload(Suit?.none))
        #expect(notAnArray?.contains("Expected a container but found nil") == true)
        let wrongWidth = decodingError([Rank].self, from: try encodedPayload([Int16(1)]))
        #expect(wrongWidth != nil)
    }

    @Test func everyTruncationOfAnArrayOfStructsThrows() throws {
        let bytes = try encodedPayload([hand, hand])
        for length in 0..<bytes.count {
            #expect(decodingError([Hand].self, from: Array(bytes[..<length])) != nil)
        }
        for index in bytes.indices {
            var corrupted = bytes
            corrupted[index] ^= 0xFF
            _ = try? decodedPayload([Hand].self, from: corrupted)  // may decode or throw; must not crash
        }
    }

    @Test func hugeElementCountsAreRefusedBeforeAllocating() throws {
        // A cells-form array whose only cell claims far more bytes than there are.
        let payload: [UInt8] = [0x0C, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x41, 0x41, 0x41, 0x41, 0x41]
        #expect(decodingError([Suit].self, from: payload) != nil)
        // Many nil cells for a type that cannot be nil.
        let nils = [UInt8](repeating: 0, count: 1_000)
        #expect(decodingError([Hand].self, from: [0x80 | UInt8(1_002 & 0x7F), UInt8(1_002 >> 7)] + [0] + nils) != nil)
    }

    @Test func encodingErrorsInsideArraysKeepTheirPathAndRollBack() throws {
        struct Refusing: Codable {
            let refuse: Bool
            func encode(to encoder: any Encoder) throws {
                if refuse {
                    throw EncodingError.invalidValue(refuse, EncodingError.Context(
                        codingPath: encoder.codingPath, debugDescription: "refused"))
                }
                var container = encoder.singleValueContainer()
                try container.encode(refuse)
            }
        }
        var bytes: [UInt8] = [9, 9]
        do {
            try PayloadCodec<[[Refusing]]>().encode([[Refusing(refuse: false)], [Refusing(refuse: false), Refusing(refuse: true)]],
                                                    into: &bytes)
            Issue.record("expected the encode to throw")
        } catch {
            #expect("\(error)".contains("[1][1]"))
            #expect("\(error)".contains("refused"))
        }
        #expect(bytes == [9, 9])
    }
}
