// An English word tokenizer with spaCy's conventions, in pure Swift (no Foundation).
//
// Rules, in the order they apply to each whitespace-separated chunk:
//   1. Prefixes: leading punctuation and symbols come off one at a time (`"`, `(`, `$`, emoji, …),
//      an ellipsis "..." or a double hyphen "--" as one token; a sign or point right before a
//      digit ("-5", ".5") stays with the number.
//   2. Suffixes: trailing punctuation comes off one at a time (`.`, `,`, `?`, `"`, `)`, `%`, …),
//      except the period of an abbreviation ("Mr.", "e.g.", "U.S.", an initial "J.");
//      contractions come off the way spaCy and Universal Dependencies split them:
//      "don't" → "do" "n't", "can't" → "ca" "n't", "I'm" → "I" "'m", "cow's" → "cow" "'s".
//   3. Infixes: a hyphen or slash between words ("twenty-five" → "twenty" "-" "five"), a dash,
//      an ellipsis, a comma between letters; "cannot" → "can" "not".
// Numbers keep their inner punctuation: "1,000,000", "3.5", "10:30".
//
// The text is read as a list of units: its bytes when it is all ASCII (the fast path), else its
// characters (grapheme clusters, so an emoji with a skin tone stays one token). Tokens are cut
// straight out of the UTF-8 bytes, so they always join back to the text minus its whitespace.

/// Splits English text into word, number and punctuation tokens (spaCy-style).
public struct Tokenizer: Sendable {
    public init() {}

    /// The tokens of `text`, in order; whitespace is dropped, every other character is kept.
    public func tokenize(_ text: String) -> [String] {
        Self.withBytes(of: text) { Self.tokenize($0, units: Self.units(of: text, bytes: $0)) }
    }

    /// The same, always reading the text character by character (the slow path); for tests.
    func tokenizeByCharacters(_ text: String) -> [String] {
        Self.withBytes(of: text) { Self.tokenize($0, units: Self.characterUnits(of: text)) }
    }

    static func withBytes<Result>(of text: String,
                                  _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(text.utf8).withUnsafeBufferPointer(body)
    }

    // MARK: - Units

    /// One character of the text: where its UTF-8 bytes are, its ASCII value (0 if none) and
    /// what kind of character it is.
    struct Unit {
        var start: Int
        var end: Int
        var ascii: UInt8
        var flags: UInt8

        static let letter: UInt8 = 1
        static let number: UInt8 = 2
        static let upper: UInt8 = 4
        static let lower: UInt8 = 8
        static let space: UInt8 = 16
        /// "—", "–" or "…": split off wherever they are.
        static let dash: UInt8 = 32
        /// "−", the minus sign.
        static let minus: UInt8 = 64
        /// "’" or "‘", read as "'" in contractions.
        static let apostrophe: UInt8 = 128

        @inline(__always) var isLetter: Bool { flags & Self.letter != 0 }
        @inline(__always) var isNumber: Bool { flags & Self.number != 0 }
        @inline(__always) var isAlphanumeric: Bool { flags & (Self.letter | Self.number) != 0 }
        @inline(__always) var isUppercase: Bool { flags & Self.upper != 0 }
        @inline(__always) var isLowercase: Bool { flags & Self.lower != 0 }
        @inline(__always) func `is`(_ byte: UInt8) -> Bool { ascii == byte }
        /// The lowercased ASCII value, "'" for a typographic apostrophe, 0 otherwise.
        @inline(__always) var folded: UInt8 {
            if flags & Self.apostrophe != 0 { return ASCII.apostrophe }
            return flags & Self.upper != 0 && ascii != 0 ? ascii | 0x20 : ascii
        }
    }

    static func units(of text: String, bytes: UnsafeBufferPointer<UInt8>) -> [Unit] {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        guard ascii else { return characterUnits(of: text) }
        var units: [Unit] = []
        units.reserveCapacity(bytes.count)
        for (offset, byte) in bytes.enumerated() {
            units.append(Unit(start: offset, end: offset + 1, ascii: byte, flags: asciiFlags[Int(byte)]))
        }
        return units
    }

    static func characterUnits(of text: String) -> [Unit] {
        var units: [Unit] = []
        units.reserveCapacity(text.utf8.count)
        var offset = 0
        for character in text {
            let length = character.utf8.count
            var flags: UInt8 = 0
            if character.isLetter { flags |= Unit.letter }
            if character.isNumber { flags |= Unit.number }
            if character.isUppercase { flags |= Unit.upper }
            if character.isLowercase { flags |= Unit.lower }
            if character.isWhitespace { flags |= Unit.space }
            if character == "—" || character == "–" || character == "…" { flags |= Unit.dash }
            if character == "−" { flags |= Unit.minus }
            if character == "’" || character == "‘" { flags |= Unit.apostrophe }
            let ascii = length == 1 ? (character.asciiValue ?? 0) : 0
            units.append(Unit(start: offset, end: offset + length, ascii: ascii, flags: flags))
            offset += length
        }
        return units
    }

    /// Flags of the 128 ASCII bytes; bytes 9–13 and 32 are whitespace, as `Character` says.
    static let asciiFlags: [UInt8] = (0..<128).map { value -> UInt8 in
        let byte = UInt8(value)
        switch byte {
        case 0x41...0x5A: return Unit.letter | Unit.upper
        case 0x61...0x7A: return Unit.letter | Unit.lower
        case 0x30...0x39: return Unit.number
        case 0x09...0x0D, 0x20: return Unit.space
        default: return 0
        }
    }

    enum ASCII {
        static let period = UInt8(ascii: ".")
        static let hyphen = UInt8(ascii: "-")
        static let plus = UInt8(ascii: "+")
        static let apostrophe = UInt8(ascii: "'")
        static let comma = UInt8(ascii: ",")
        static let slash = UInt8(ascii: "/")
        static let capitalI = UInt8(ascii: "I")
        /// Split off between a word and a following letter ("well-known", "and/or").
        static let joiners: [UInt8] = Array("-/:=<>+~".utf8)
    }

    // MARK: - Tables

    /// Abbreviations that keep their period (compared lowercased).
    static let abbreviations: Set<String> = [
        "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "mt.", "rev.", "gen.", "gov.",
        "sen.", "rep.", "capt.", "col.", "lt.", "sgt.", "vs.", "etc.", "inc.", "ltd.", "co.",
        "corp.", "dept.", "approx.", "est.", "fig.", "no.", "jan.", "feb.", "apr.", "aug.", "sep.",
        "sept.", "oct.", "nov.", "dec.", "mon.", "tue.", "tues.", "wed.", "thu.", "thurs.", "fri.",
        "sat.", "sun.", "ave.", "blvd.", "ft.", "oz.", "lb.", "lbs.", "min.", "max.", "misc.",
    ]

    /// Contraction suffixes split off the end of a word (compared lowercased, `’` read as `'`).
    static let contractionSuffixes: [[UInt8]] = ["n't", "'s", "'m", "'d", "'re", "'ve", "'ll"].map {
        Array($0.utf8)
    }

    // MARK: - Splitting

    static func tokenize(_ bytes: UnsafeBufferPointer<UInt8>, units: [Unit]) -> [String] {
        var tokens: [String] = []
        tokens.reserveCapacity(units.count / 4 + 2)
        var splitter = Splitter(bytes: bytes, units: units)
        var chunkStart = 0
        for index in units.indices where units[index].flags & Unit.space != 0 {
            if index > chunkStart { splitter.split(chunkStart, index, into: &tokens) }
            chunkStart = index + 1
        }
        if units.count > chunkStart { splitter.split(chunkStart, units.count, into: &tokens) }
        return tokens
    }

    /// Splits whitespace-free chunks of `units` into tokens.
    struct Splitter {
        let bytes: UnsafeBufferPointer<UInt8>
        let units: [Unit]
        var suffixes: [(Int, Int)] = []

        init(bytes: UnsafeBufferPointer<UInt8>, units: [Unit]) {
            self.bytes = bytes
            self.units = units
        }

        /// The text of units[from..<to].
        func text(_ from: Int, _ to: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[units[from].start..<units[to - 1].end]),
                   as: UTF8.self)
        }

        func matches(_ index: Int, _ end: Int, _ byte: UInt8, count: Int) -> Bool {
            guard index >= 0, index + count <= end else { return false }
            for offset in 0..<count where !units[index + offset].is(byte) { return false }
            return true
        }

        mutating func split(_ chunkStart: Int, _ chunkEnd: Int, into tokens: inout [String]) {
            var start = chunkStart
            var end = chunkEnd
            suffixes.removeAll(keepingCapacity: true)

            // 1. Prefixes.
            while start < end {
                let first = units[start]
                if first.isAlphanumeric { break }
                if isWholeToken(start, end) { break }
                if matches(start, end, ASCII.period, count: 3) {
                    tokens.append(text(start, start + 3))
                    start += 3
                    continue
                }
                if matches(start, end, ASCII.hyphen, count: 2) {
                    tokens.append(text(start, start + 2))
                    start += 2
                    continue
                }
                if first.is(ASCII.hyphen) || first.is(ASCII.plus) || first.is(ASCII.period)
                    || first.flags & Unit.minus != 0,
                   start + 1 < end, units[start + 1].isNumber {
                    break
                }
                tokens.append(text(start, start + 1))
                start += 1
            }

            // 2. Suffixes.
            while end > start {
                let last = units[end - 1]
                if isWholeToken(start, end) { break }
                if end - start > 3, matches(end - 3, end, ASCII.period, count: 3) {
                    suffixes.append((end - 3, end))
                    end -= 3
                    continue
                }
                if last.is(ASCII.period) {
                    if isAbbreviation(start, end) { break }
                    suffixes.append((end - 1, end))
                    end -= 1
                    continue
                }
                if last.isAlphanumeric {
                    if let length = contractionLength(start, end) {
                        suffixes.append((end - length, end))
                        end -= length
                        continue
                    }
                    break
                }
                suffixes.append((end - 1, end))
                end -= 1
            }

            // 3. Infixes, then the suffixes in reading order.
            if start < end { splitInfixes(start, end, into: &tokens) }
            for (from, to) in suffixes.reversed() { tokens.append(text(from, to)) }
        }

        /// Whether units[start..<end] must stay one token: an abbreviation or a bare contraction.
        func isWholeToken(_ start: Int, _ end: Int) -> Bool {
            let count = end - start
            guard count >= 2, count <= 8 else { return false }
            if units[end - 1].is(ASCII.period) { return isAbbreviation(start, end) }
            guard count <= 3 else { return false }
            for suffix in contractionSuffixes where suffix.count == count {
                var same = true
                for offset in 0..<count where units[start + offset].folded != suffix[offset] {
                    same = false
                    break
                }
                if same { return true }
            }
            return false
        }

        /// Whether units[start..<end], which end in ".", are an abbreviation that keeps its
        /// period: a listed one ("Mr.", "etc."), letters separated by periods ("U.S.", "e.g.",
        /// "a.m."), or an initial ("J.").
        func isAbbreviation(_ start: Int, _ end: Int) -> Bool {
            let count = end - start
            guard count >= 2, units[end - 1].is(ASCII.period) else { return false }
            if count == 2 {
                // An initial ("J."), but not the pronoun "I" ending a sentence.
                let first = units[start]
                return first.isUppercase && first.isLetter && !first.is(ASCII.capitalI)
            }
            if count % 2 == 0 {
                var pairs = true
                var index = start
                while index < end {
                    if !units[index].isLetter || !units[index + 1].is(ASCII.period) {
                        pairs = false
                        break
                    }
                    index += 2
                }
                if pairs { return true }
            }
            guard count <= 7 else { return false }
            return abbreviations.contains(text(start, end).lowercased())
        }

        /// The length of a contraction suffix ending units[start..<end], if one may be split off.
        func contractionLength(_ start: Int, _ end: Int) -> Int? {
            let count = end - start
            guard count >= 3 else { return nil }
            for suffix in contractionSuffixes {
                let length = suffix.count
                guard count > length else { continue }
                var same = true
                for offset in 0..<length where units[end - length + offset].folded != suffix[offset] {
                    same = false
                    break
                }
                guard same else { continue }
                let before = units[end - length - 1]
                if suffix[0] != ASCII.apostrophe {
                    // "don't" → "do" "n't": what is left must end in a letter.
                    if before.isLetter { return length }
                } else if before.isAlphanumeric {
                    return length
                }
            }
            return nil
        }

        /// Splits the core of a chunk at hyphens and slashes between words, dashes, ellipses
        /// and commas between letters; "cannot" becomes "can" "not".
        func splitInfixes(_ start: Int, _ end: Int, into tokens: inout [String]) {
            var pieceStart = start
            var index = start
            while index < end {
                let unit = units[index]
                var width = 0
                if unit.flags & Unit.dash != 0 {
                    width = 1
                } else if unit.ascii == 0 || unit.isAlphanumeric {
                    width = 0
                } else if matches(index, end, ASCII.hyphen, count: 2) {
                    width = 2
                } else if matches(index, end, ASCII.period, count: 3) {
                    width = 3
                } else if index > start, index + 1 < end {
                    let left = units[index - 1]
                    let right = units[index + 1]
                    if ASCII.joiners.contains(unit.ascii) {
                        if left.isAlphanumeric && right.isLetter { width = 1 }
                        if unit.is(ASCII.slash) && left.isLetter && right.isNumber { width = 1 }
                    } else if unit.is(ASCII.comma) {
                        if left.isLetter && right.isLetter { width = 1 }
                    } else if unit.is(ASCII.period) {
                        if left.isLowercase && right.isUppercase { width = 1 }
                    }
                }
                if width > 0 {
                    if index > pieceStart { appendWord(pieceStart, index, into: &tokens) }
                    tokens.append(text(index, index + width))
                    index += width
                    pieceStart = index
                } else {
                    index += 1
                }
            }
            if end > pieceStart { appendWord(pieceStart, end, into: &tokens) }
        }

        /// Appends one word, splitting "cannot" into "can" "not" as spaCy does.
        func appendWord(_ start: Int, _ end: Int, into tokens: inout [String]) {
            if end - start == 6 {
                var same = true
                for (offset, byte) in "cannot".utf8.enumerated() where units[start + offset].folded != byte {
                    same = false
                    break
                }
                if same {
                    tokens.append(text(start, start + 3))
                    tokens.append(text(start + 3, end))
                    return
                }
            }
            tokens.append(text(start, end))
        }
    }
}
