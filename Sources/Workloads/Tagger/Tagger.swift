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

// MARK: - Lexical tagging

extension Tagger {
    func assignLexicalTag(_ slots: inout [Slot], _ index: Int) {
        let lower = slots[index].lower
        slots[index].isInitial = Self.isSentenceInitial(slots, index)

        let hasLetter = slots[index].hasLetter
        let hasDigit = slots[index].hasDigit

        // Punctuation and symbols.
        if !hasLetter && !hasDigit {
            switch lower {
            case "%": slots[index].tag = .noun
            case "&": slots[index].tag = .coordinatingConjunction
            case "#", "@", "/", "\\", "*", "|": slots[index].tag = .symbol
            default: slots[index].tag = slots[index].isAllPunctuation ? .punctuation : .symbol
            }
            return
        }
        // Numbers: "1,000", "3.5", "10:30", "-5", "1990s"; ordinals "3rd" are ADJ.
        if slots[index].isNumeric {
            slots[index].tag = Self.isOrdinal(lower) ? .adjective : .numeral
            return
        }
        // Abbreviations with periods: titles, "U.S.", "e.g.", "etc.", initials.
        if hasLetter, lower.utf8.count > 1, ends(lower, ".") {
            slots[index].tag = Self.abbreviationTags[lower] ?? .properNoun
            return
        }
        if !hasLetter {
            slots[index].tag = .symbol
            return
        }

        if slots[index].hasInnerUppercase {
            slots[index].tag = .properNoun // "iPhone", "eBay"
            return
        }
        let capitalizedInside = slots[index].isCapitalized && !slots[index].isInitial
        if let lexeme = Self.lexicon[lower] {
            if lexeme.isParticiple { slots[index].isPastOrParticiple = true }
            slots[index].special = Self.specials[lower]
            if capitalizedInside && (Self.isOpenClass(lexeme.tag) || Self.nameLike.contains(lower)) {
                // "Bond", "New York", "Main Street", "in May".
                slots[index].tag = .properNoun
                slots[index].special = nil
                return
            }
            slots[index].tag = lexeme.tag
            slots[index].alt = lexeme.alt
            return
        }
        if capitalizedInside {
            slots[index].tag = .properNoun
            return
        }
        if let lexeme = Self.inflected(lower) {
            slots[index].tag = lexeme.tag
            slots[index].alt = lexeme.alt
            return
        }
        if let lexeme = Self.bySuffix(lower) {
            slots[index].tag = lexeme.tag
            slots[index].alt = lexeme.alt
            return
        }
        if slots[index].isCapitalized {
            // An unknown capitalised first word: a name, unless it starts an imperative.
            slots[index].tag = .properNoun
            slots[index].alt = .verb
            return
        }
        slots[index].tag = .noun
        slots[index].alt = .verb
    }

    /// Whether the token at `index` starts a sentence or a quotation.
    static func isSentenceInitial(_ slots: [Slot], _ index: Int) -> Bool {
        var previous = index - 1
        while previous >= 0 {
            // Earlier tokens are tagged already; only punctuation can lead to a sentence start.
            guard slots[previous].tag == .punctuation else { return false }
            switch slots[previous].lower {
            // ASCII cases first: comparing with a non-ASCII literal is slower.
            case ".", "!", "?", ":", ";", "...":
                return true
            case "\"":
                // A straight quote opens a quotation when an odd number of them lead up to it;
                // after a closing one the sentence goes on ("…?" asked Elizabeth).
                let quotes = slots[...previous].reduce(0) { $0 + ($1.lower == "\"" ? 1 : 0) }
                return quotes % 2 == 1
            case "'", "(", "[", "-", "--":
                previous -= 1
                continue
            case "“", "‘", "—", "–":
                previous -= 1
                continue
            case "…":
                return true
            default:
                return false
            }
        }
        return true
    }

    static func isOrdinal(_ lower: String) -> Bool {
        guard lower.utf8.count >= 3 else { return false }
        let ending = lower.suffix(2)
        guard ending == "st" || ending == "nd" || ending == "rd" || ending == "th" else { return false }
        return lower.dropLast(2).allSatisfy(\.isNumber)
    }

    static func isOpenClass(_ tag: PartOfSpeech) -> Bool {
        switch tag {
        case .noun, .verb, .adjective, .properNoun: return true
        default: return false
        }
    }

    /// Finds a lexicon word under an inflection: plurals and third-person -s, -ed, -ing,
    /// comparatives, and -ly adverbs of known adjectives.
    static func inflected(_ lower: String) -> Lexeme? {
        let count = lower.utf8.count
        guard count > 3 else { return nil }
        let bytes = Array(lower.utf8)
        func base(_ drop: Int, _ add: String = "") -> Lexeme? {
            lexicon[String(decoding: bytes[..<(count - drop)], as: UTF8.self) + add]
        }
        /// Whether the letter before a suffix of `length` letters is doubled ("running", "stopped").
        func doubled(_ length: Int) -> Bool {
            count > length + 2 && bytes[count - length - 1] == bytes[count - length - 2]
        }
        func nounOrVerb(_ lexeme: Lexeme) -> Lexeme? {
            let candidates = [lexeme.tag, lexeme.alt].compactMap { $0 }.filter { $0 == .noun || $0 == .verb }
            guard let first = candidates.first else { return nil }
            return Lexeme(tag: first, alt: candidates.count > 1 ? candidates[1] : nil)
        }
        func verbForm(_ lexeme: Lexeme, alt: PartOfSpeech) -> Lexeme? {
            lexeme.tag == .verb || lexeme.alt == .verb ? Lexeme(tag: .verb, alt: alt) : nil
        }
        if ends(lower, "ing") {
            let candidates = [base(3), base(3, "e"), doubled(3) ? base(4) : nil, ends(lower, "ying") ? base(4, "ie") : nil]
            for case let lexeme? in candidates {
                if let form = verbForm(lexeme, alt: .noun) { return form }
            }
            return nil
        }
        if ends(lower, "ed") {
            let candidates = [base(2), base(1), ends(lower, "ied") ? base(3, "y") : nil, doubled(2) ? base(3) : nil]
            for case let lexeme? in candidates {
                if let form = verbForm(lexeme, alt: .adjective) { return form }
            }
            return nil
        }
        if ends(lower, "ly") {
            if let lexeme = base(2) ?? (ends(lower, "ily") ? base(3, "y") : nil), lexeme.tag == .adjective {
                return Lexeme(tag: .adverb, alt: nil)
            }
            return nil
        }
        if ends(lower, "est") || ends(lower, "er") {
            let drop = ends(lower, "est") ? 3 : 2
            let candidates = [base(drop), base(drop - 1), base(drop + 1, "y"), doubled(drop) ? base(drop + 1) : nil]
            for case let lexeme? in candidates where lexeme.tag == .adjective || lexeme.alt == .adjective {
                return lexeme
            }
            return nil
        }
        if ends(lower, "s") && !ends(lower, "ss") {
            if ends(lower, "ies"), let lexeme = base(3, "y"), let form = nounOrVerb(lexeme) { return form }
            if ends(lower, "es"), let lexeme = base(2), let form = nounOrVerb(lexeme) { return form }
            if let lexeme = base(1), let form = nounOrVerb(lexeme) { return form }
            if ends(lower, "ves"), let lexeme = base(3, "f") ?? base(3, "fe"), let form = nounOrVerb(lexeme) {
                return form
            }
        }
        return nil
    }

    /// Suffix rules for words the lexicon does not know.
    static func bySuffix(_ lower: String) -> Lexeme? {
        let count = lower.utf8.count
        guard count > 3 else { return nil }
        let plural = ends(lower, "s") && !ends(lower, "ss") && !ends(lower, "ous") && !ends(lower, "is")
            && !ends(lower, "us")
        let drop = plural ? 1 : 0
        for suffix in nounSuffixes where count - drop > suffix.utf8CodeUnitCount + 2
            && ends(lower, suffix, dropping: drop) {
            return Lexeme(tag: .noun, alt: nil)
        }
        if plural { return Lexeme(tag: .noun, alt: .verb) }
        if ends(lower, "ly") && count > 4 { return Lexeme(tag: .adverb, alt: .adjective) }
        if ends(lower, "ing") && count > 5 { return Lexeme(tag: .verb, alt: .noun) }
        if ends(lower, "ed") && count > 4 { return Lexeme(tag: .verb, alt: .adjective) }
        for suffix in adjectiveSuffixes where count > suffix.utf8CodeUnitCount + 2 && ends(lower, suffix) {
            return Lexeme(tag: .adjective, alt: nil)
        }
        for suffix in verbSuffixes where count > suffix.utf8CodeUnitCount + 2 && ends(lower, suffix) {
            return Lexeme(tag: .verb, alt: .noun)
        }
        return nil
    }

    static let nounSuffixes: [StaticString] = [
        "tion", "sion", "ment", "ness", "ity", "ance", "ence", "ship", "ism", "ist", "hood", "dom",
        "ology", "er", "or", "ery", "age", "ure", "cy", "logy", "itude",
    ]
    static let adjectiveSuffixes: [StaticString] = [
        "ous", "ful", "able", "ible", "ive", "al", "ic", "less", "ish", "ary", "ian", "ant", "ent",
        "esque", "like", "y",
    ]
    static let verbSuffixes: [StaticString] = ["ize", "ise", "ify", "ate", "en"]
}

// MARK: - Context

extension Tagger {
    func resolveInContext(_ slots: inout [Slot], _ index: Int) {
        let count = slots.count
        let current = slots[index]
        let previous: Slot? = index > 0 ? slots[index - 1] : nil
        let next: Slot? = index + 1 < count ? slots[index + 1] : nil
        let afterNext: Slot? = index + 2 < count ? slots[index + 2] : nil

        func set(_ tag: PartOfSpeech) { slots[index].tag = tag }

        // A capitalised first word followed by a name is part of the name: "President Lincoln".
        if current.isInitial, current.isCapitalized, current.special == nil,
           Self.isOpenClass(current.tag), current.tag != .verb || current.alt != nil,
           let next, next.tag == .properNoun, next.isCapitalized,
           !(Self.titleWords.contains(next.lower)) {
            set(.properNoun)
            return
        }
        // An unknown capitalised first word: a name, or an imperative verb before its object.
        if current.isInitial, current.tag == .properNoun, current.alt == .verb {
            if let next, next.tag == .determiner || Self.possessives.contains(next.lower)
                || (next.tag == .pronoun && Self.objectPronouns.contains(next.lower)) {
                set(.verb)
            }
            return
        }

        if let special = current.special {
            resolveSpecial(special, &slots, index, previous: previous, next: next, afterNext: afterNext)
            return
        }
        guard let alt = current.alt else { return }

        if current.tag == .verb || alt == .verb {
            let other = current.tag == .verb ? alt : current.tag
            set(nounOrVerb(slots, index, other: other) ? .verb : other)
            return
        }
        // ADJ or NOUN ("light", "cold"): an adjective before a noun.
        if (current.tag == .adjective && alt == .noun) || (current.tag == .noun && alt == .adjective) {
            if let next, next.tag == .noun || next.tag == .properNoun { set(.adjective) }
            return
        }
        // ADJ or ADV ("fast", "late", "longer"): an adverb after a verb.
        if (current.tag == .adjective && alt == .adverb) || (current.tag == .adverb && alt == .adjective) {
            if let verb = previousContent(slots, index), slots[verb].tag == .verb {
                set(.adverb)
            } else if let next, next.tag == .noun {
                set(.adjective)
            } else if previous?.tag == .determiner {
                set(.adjective)
            }
            return
        }
    }

    /// Whether a word that may be a verb is one here (otherwise it takes `other`).
    func nounOrVerb(_ slots: [Slot], _ index: Int, other: PartOfSpeech) -> Bool {
        let current = slots[index]
        let previous: Slot? = index > 0 ? slots[index - 1] : nil
        let next: Slot? = index + 1 < slots.count ? slots[index + 1] : nil
        let content = previousContent(slots, index).map { slots[$0] }

        // Licensed by a modal, infinitival "to", auxiliary "do" or "have", or a passive "be".
        if let content {
            if content.tag == .auxiliary {
                switch content.special {
                case .modal?, .doVerb?:
                    return current.isBaseForm || current.lower == "be"
                case .have?:
                    return current.isPastOrParticiple || !current.isBaseForm
                default:
                    if content.special == .be || Self.contractedAuxiliaries.contains(content.lower) {
                        if current.isGerund || current.isPastOrParticiple { return true }
                        if Self.contractedAuxiliaries.contains(content.lower) && content.lower != "'s"
                            && content.lower != "'m" && content.lower != "'re" {
                            return true // "we'll meet", "I'd go"
                        }
                        return false
                    }
                }
            }
            if content.tag == .particle && content.lower == "to" { return true }
        }
        // After a determiner, a possessive, an adjective or a number: a noun ("the dream").
        if let previous {
            switch previous.tag {
            case .determiner, .adjective, .numeral:
                return false
            case .pronoun where Self.possessives.contains(previous.lower):
                return false
            case .particle where previous.lower == "'s":
                return false
            case .adposition:
                return current.isGerund
            default:
                break
            }
        }
        if let contentIndex = previousContent(slots, index), isSubject(slots, contentIndex) {
            return true
        }
        // A sentence-initial word is an imperative unless a verb follows ("Work is hard").
        if current.isInitial {
            if current.isPlural && !ends(current.lower, "us") { return false }
            if current.isGerund || current.isPastOrParticiple {
                // "According to", "Asked why, …"; but "Broken glass", "Running water".
                return !(next.map { $0.tag == .noun || $0.tag == .properNoun } ?? false)
            }
            if let next, next.tag == .auxiliary || (next.tag == .verb && next.alt == nil) { return false }
            return true
        }
        guard let content else { return other != .noun }
        let nextTag = next?.tag
        switch content.tag {
        case .noun, .properNoun:
            // "the dog barks", "the tickets cost $45"; a noun-noun compound otherwise.
            if ends(current.lower, "ed") { return true }
            if let nextTag, nextTag == .noun || nextTag == .auxiliary || nextTag == .verb { return false }
            if current.isBaseForm && !insideQuestion(slots, index) {
                let pluralSubject = content.tag == .noun && content.isPlural
                if !pluralSubject {
                    // A base form after a singular noun is a verb only with an object.
                    guard let next else { return false }
                    return next.tag == .determiner || Self.possessives.contains(next.lower)
                        || Self.objectPronouns.contains(next.lower)
                }
            }
            return true
        case .coordinatingConjunction, .punctuation:
            guard let next else { return false }
            if current.isPastOrParticiple && next.tag != .noun { return true } // '…," asked Tom'
            if next.tag == .determiner || Self.possessives.contains(next.lower)
                || Self.objectPronouns.contains(next.lower) {
                return true
            }
            if next.tag == .adposition || next.tag == .adverb || next.tag == .numeral || next.tag == .particle {
                return slots[..<index].contains { $0.tag == .verb }
            }
            return false
        case .verb:
            return current.isGerund
        case .auxiliary:
            return current.isGerund || current.isPastOrParticiple
        default:
            return other != .noun && other != .adjective
        }
    }

    /// Whether, within the current clause, an auxiliary "do" or modal comes first
    /// ("does the train leave", "did the chicken cross").
    func insideQuestion(_ slots: [Slot], _ index: Int) -> Bool {
        var scan = index - 1
        while scan >= 0 {
            let slot = slots[scan]
            switch slot.tag {
            case .auxiliary:
                return slot.special == .doVerb || slot.special == .modal
            case .verb, .punctuation, .coordinatingConjunction, .subordinatingConjunction:
                return false
            default:
                scan -= 1
            }
        }
        return false
    }

    /// The nearest earlier token that is not an adverb or a negation.
    func previousContent(_ slots: [Slot], _ index: Int) -> Int? {
        var scan = index - 1
        while scan >= 0 {
            let slot = slots[scan]
            if slot.tag == .adverb || slot.lower == "not" || slot.lower == "n't" {
                scan -= 1
                continue
            }
            return scan
        }
        return nil
    }

    /// Whether the token at `index` is a subject pronoun ("you" and "it" unless after a verb).
    func isSubject(_ slots: [Slot], _ index: Int) -> Bool {
        let slot = slots[index]
        guard slot.tag == .pronoun else { return false }
        if Self.subjectPronouns.contains(slot.lower) { return true }
        if slot.lower == "you" || slot.lower == "it" || Self.indefinitePronouns.contains(slot.lower) {
            guard index > 0 else { return true }
            let before = slots[index - 1].tag
            return before != .verb && before != .adposition && before != .particle
        }
        return false
    }
}
