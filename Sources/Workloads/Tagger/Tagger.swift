// A small rule-based English part-of-speech tagger: the article's spaCy workload, in pure Swift.
//
// How a sentence is tagged:
//   1. `Tokenizer` splits it into tokens.
//   2. Every token gets a tentative tag, and sometimes a second candidate, from (in order)
//      its shape (punctuation, symbols, numbers, abbreviations such as "Mr." and "U.S."),
//      the lexicon (closed-class words, about a thousand frequent open-class words and some
//      common names, with their inflections), capitalisation (a capitalised word that is not sentence-initial is PROPN),
//      suffix rules (-ly ADV, -tion NOUN, -ous ADJ, -ed/-ing VERB, …), and finally NOUN.
//   3. One left-to-right pass settles ambiguous words from their neighbours: noun or verb
//      ("the dream" / "you dream"), "to" (PART before a verb), "that" (SCONJ, DET or PRON),
//      "have" and "do" (AUX or VERB), "'s" (AUX, PART or PRON), "there", "no", "before", …
// Everything is pure and deterministic; the lexicon is built once, on first use.
//
// This file holds the entry point and the per-token state the passes share (`Slot`, `Lexeme`,
// `Special`); step 2 is in Tagger+LexicalTagging.swift (the word list in Lexicon.swift), step 3
// in Tagger+Context.swift and ClosedClassWords.swift.

/// A rule-based part-of-speech tagger producing Universal POS tags the way spaCy's English
/// models do ("How/ADV now/ADV brown/ADJ cow/NOUN ./PUNCT").
public struct Tagger: Sendable {
    public init() {}

    /// Tokenizes and tags one sentence.
    public func tag(_ sentence: String) -> TaggedSentence {
        let tokens = Tokenizer().tokenize(sentence)
        return TaggedSentence(sentence: sentence, tokens: tokens, tags: tag(tokens: tokens))
    }

    /// Tags tokens that are already split (as `Tokenizer` splits them); one tag per token.
    public func tag(tokens: [String]) -> [PartOfSpeech] {
        guard !tokens.isEmpty else { return [] }
        var slots = tokens.map(Slot.init)
        for index in slots.indices { assignLexicalTag(&slots, index) }
        for index in slots.indices { resolveInContext(&slots, index) }
        return slots.map(\.tag)
    }
}

// MARK: - Per-token state

/// Closed-class words whose tag depends on their neighbours.
enum Special: Sendable {
    case that, to, have, doVerb, be, modal, apostropheS, no, there, wh, demonstrative
    case temporal, `as`, like, so, degree, much, well, only, right, adpOrAdv, home, `while`
}

/// A lexicon entry: the most likely tag and, for ambiguous words, the runner-up.
struct Lexeme: Sendable {
    var tag: PartOfSpeech
    var alt: PartOfSpeech?
    /// An irregular past participle ("seen", "broken").
    var isParticiple = false

    init(tag: PartOfSpeech, alt: PartOfSpeech?, isParticiple: Bool = false) {
        self.tag = tag
        self.alt = alt
        self.isParticiple = isParticiple
    }
}

/// A token while it is being tagged.
struct Slot {
    let text: String
    /// Lowercased, with typographic apostrophes read as "'".
    let lower: String
    let isCapitalized: Bool
    // The token's shape.
    let hasLetter: Bool
    let hasDigit: Bool
    let isAllPunctuation: Bool
    /// Starts with a digit, or with a sign or point and has digits ("-5", ".5").
    let isNumeric: Bool
    /// An uppercase letter after a lowercase first one ("iPhone").
    let hasInnerUppercase: Bool
    // Word endings.
    let isPlural: Bool
    let isGerund: Bool
    /// Ends in -ed, or is an irregular participle (set from the lexicon).
    var isPastOrParticiple: Bool

    var tag: PartOfSpeech = .noun
    var alt: PartOfSpeech?
    var special: Special?
    /// First word of the sentence (or after an opening quote, a colon or a sentence end).
    var isInitial = false

    init(_ text: String) {
        self.text = text
        var isASCII = true
        for byte in text.utf8 where byte >= 0x80 {
            isASCII = false
            break
        }
        var hasLetter = false
        var hasDigit = false
        var allPunctuation = true
        var capitalized = false
        var innerUppercase = false
        var firstIsDigit = false
        var firstIsSign = false
        if isASCII {
            // The fast path: bytes, with the same answers `Character` gives for ASCII.
            var lowered: [UInt8] = []
            var hasUppercase = false
            var first = true
            for byte in text.utf8 {
                let isUpper = byte >= 0x41 && byte <= 0x5A
                let isLower = byte >= 0x61 && byte <= 0x7A
                let isDigit = byte >= 0x30 && byte <= 0x39
                if isUpper || isLower { hasLetter = true }
                if isDigit { hasDigit = true }
                if !Self.asciiPunctuation[Int(byte)] { allPunctuation = false }
                if first {
                    capitalized = isUpper
                    firstIsDigit = isDigit
                    firstIsSign = byte == 0x2D || byte == 0x2B || byte == 0x2E
                    first = false
                } else if isUpper && !capitalized {
                    innerUppercase = true
                }
                if isUpper { hasUppercase = true }
            }
            if hasUppercase {
                lowered.reserveCapacity(text.utf8.count)
                for byte in text.utf8 { lowered.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
                lower = String(decoding: lowered, as: UTF8.self)
            } else {
                lower = text
            }
        } else {
            var lowered = ""
            var first = true
            for character in text {
                if character.isLetter { hasLetter = true }
                if character.isNumber { hasDigit = true }
                if !character.isPunctuation { allPunctuation = false }
                if first {
                    capitalized = character.isUppercase
                    firstIsDigit = character.isNumber
                    firstIsSign = character == "-" || character == "+" || character == "." || character == "−"
                    first = false
                } else if character.isUppercase && !capitalized {
                    innerUppercase = true
                }
                if character == "’" || character == "‘" {
                    lowered.append("'")
                } else if character.isUppercase {
                    lowered += character.lowercased()
                } else {
                    lowered.append(character)
                }
            }
            lower = lowered
        }
        self.hasLetter = hasLetter
        self.hasDigit = hasDigit
        self.isAllPunctuation = allPunctuation
        self.isCapitalized = capitalized
        self.hasInnerUppercase = innerUppercase
        self.isNumeric = firstIsDigit || (firstIsSign && hasDigit)
        let length = lower.utf8.count
        self.isPlural = length > 2 && ends(lower, "s") && !ends(lower, "ss")
        self.isGerund = length > 4 && ends(lower, "ing")
        self.isPastOrParticiple = hasLetter && ends(lower, "ed")
    }

    /// ASCII bytes that `Character.isPunctuation` accepts: ! " # % & ' ( ) * , - . / : ; ? @ [ \ ] _ { }
    static let asciiPunctuation: [Bool] = (0..<128).map { value in
        Array("!\"#%&'()*,-./:;?@[\\]_{}".utf8).contains(UInt8(value))
    }

    /// A verb form that can follow a subject in the present or past ("barks", "pulled").
    var isBaseForm: Bool { !isPlural && !isPastOrParticiple && !isGerund }
    func can(_ tag: PartOfSpeech) -> Bool { self.tag == tag || alt == tag }
}

/// Whether `text`, less its last `dropping` bytes, ends with `suffix`, compared byte by byte.
@inline(__always)
func ends(_ text: String, _ suffix: StaticString, dropping: Int = 0) -> Bool {
    func compare(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = suffix.utf8CodeUnitCount
        guard bytes.count >= count + dropping else { return false }
        let start = bytes.count - dropping - count
        let pattern = suffix.utf8Start
        for offset in 0..<count where bytes[start + offset] != pattern[offset] { return false }
        return true
    }
    if let result = text.utf8.withContiguousStorageIfAvailable(compare) { return result }
    return Array(text.utf8).withUnsafeBufferPointer(compare)
}
