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

// MARK: - Closed-class words in context

extension Tagger {
    func resolveSpecial(_ special: Special, _ slots: inout [Slot], _ index: Int,
                        previous: Slot?, next: Slot?, afterNext: Slot?) {
        func set(_ tag: PartOfSpeech) { slots[index].tag = tag }
        let nextIsNominal: Bool = {
            guard let next else { return false }
            if next.tag == .noun || next.tag == .properNoun || next.tag == .numeral { return true }
            if next.tag == .adjective { return true }
            if next.tag == .verb && next.alt == .noun && !next.isGerund { return true }
            return false
        }()
        switch special {
        case .be, .modal:
            // "a can of beans", "the will": a noun after a determiner.
            if special == .modal, let previous, previous.tag == .determiner || previous.tag == .adjective {
                set(.noun)
            } else {
                set(.auxiliary)
            }
        case .to:
            set(infinitival(slots, index) ? .particle : .adposition)
        case .that:
            set(thatTag(slots, index))
        case .have:
            set(haveIsAuxiliary(slots, index) ? .auxiliary : .verb)
        case .doVerb:
            set(doIsAuxiliary(slots, index) ? .auxiliary : .verb)
        case .apostropheS:
            guard let previous else { set(.particle); return }
            if previous.lower == "let" {
                set(.pronoun)
            } else if previous.tag == .pronoun || previous.tag == .adverb || previous.tag == .determiner {
                set(.auxiliary)
            } else if let next, next.isGerund, let afterNext,
                      afterNext.tag == .auxiliary || afterNext.special == .be || afterNext.tag == .verb {
                set(.particle) // "Sarah's painting was …"
            } else if let next, next.isGerund || next.lower == "been" || next.lower == "not"
                        || (next.can(.verb) && next.isPastOrParticiple)
                        || next.lower == "got" || next.tag == .determiner
                        || (next.tag == .adjective && afterNext?.tag != .noun)
                        || next.tag == .adverb || next.tag == .adposition {
                set(.auxiliary)
            } else {
                set(.particle)
            }
        case .no:
            guard let next else { set(.interjection); return }
            if next.lower == "longer" || next.lower == "more" || next.lower == "less" {
                set(.adverb)
            } else if next.isCapitalized || next.tag == .punctuation || next.tag == .pronoun {
                set(.interjection) // "No Mr. Bond", "No, thanks"
            } else {
                set(.determiner)
            }
        case .there:
            var scan = index + 1
            while scan < slots.count, slots[scan].tag == .adverb { scan += 1 }
            if scan < slots.count,
               slots[scan].special == .be || slots[scan].special == .modal || slots[scan].lower == "'s"
                || slots[scan].lower.hasPrefix("seem") || slots[scan].lower.hasPrefix("appear") {
                set(.pronoun)
            } else {
                set(.adverb)
            }
        case .wh:
            let determines = next.map { $0.tag == .noun || $0.tag == .adjective || ($0.tag == .verb && $0.alt == .noun) }
            set(determines == true ? .determiner : .pronoun)
        case .demonstrative:
            if let next, nextIsNominal || next.lower == "one" || next.lower == "ones" { set(.determiner) }
            else { set(.pronoun) }
        case .temporal:
            set(temporalTag(slots, index))
        case .as:
            if let next, next.tag == .adjective || next.tag == .adverb || next.lower == "much" || next.lower == "many",
               slots[(index + 1)...].prefix(4).contains(where: { $0.lower == "as" }) {
                set(.adverb)
            } else if let next, isSubject(slots, index + 1) || next.tag == .determiner,
                      slots[(index + 1)...].prefix(5).contains(where: { $0.tag == .verb || $0.tag == .auxiliary }) {
                set(.subordinatingConjunction)
            } else {
                set(.adposition)
            }
        case .like:
            if let content = previousContent(slots, index),
               isSubject(slots, content) || slots[content].tag == .auxiliary
                || (slots[content].tag == .particle && slots[content].lower == "to")
                || (slots[content].tag == .noun && slots[content].isPlural
                    && next.map { $0.tag == .determiner || $0.tag == .pronoun } == true) {
                set(.verb)
            } else {
                set(.adposition)
            }
        case .so:
            if next?.lower == "that" { set(.subordinatingConjunction) } else { set(.adverb) }
        case .degree:
            if let next, next.tag == .adjective || next.tag == .adverb || next.isGerund
                || (next.alt == .adjective && next.tag != .noun) {
                set(.adverb)
            } else {
                set(.adjective)
            }
        case .much:
            if let next, next.tag == .noun { set(.adjective) } else { set(.adverb) }
        case .well:
            if slots[index].isInitial, next?.lower == "," { set(.interjection) }
            else if let previous, previous.tag == .determiner || previous.tag == .adjective { set(.noun) }
            else { set(.adverb) }
        case .only:
            if let previous, previous.tag == .determiner || Self.possessives.contains(previous.lower) {
                set(.adjective)
            } else {
                set(.adverb)
            }
        case .right:
            if let next, ["now", "away", "here", "there", "back", "after", "before", "behind"].contains(next.lower) {
                set(.adverb)
            } else if let previous, previous.tag == .determiner || Self.possessives.contains(previous.lower),
                      next.map({ $0.tag != .noun }) ?? true {
                set(.noun)
            } else {
                set(.adjective)
            }
        case .adpOrAdv:
            if let next, next.tag == .determiner || next.tag == .noun || next.tag == .properNoun
                || next.tag == .numeral || next.tag == .adjective
                || (next.tag == .pronoun && !Self.subjectPronouns.contains(next.lower)) {
                set(.adposition)
            } else {
                set(.adverb)
            }
        case .home:
            if let previous, previous.tag == .verb || previous.tag == .adverb { set(.adverb) }
            else { set(.noun) }
        case .while:
            if let previous, previous.tag == .determiner || previous.tag == .adjective { set(.noun) }
            else { set(.subordinatingConjunction) }
        }
    }

    /// "to" is a particle before a verb ("to die", "to quickly run"), else a preposition.
    func infinitival(_ slots: [Slot], _ index: Int) -> Bool {
        var scan = index + 1
        while scan < slots.count, slots[scan].tag == .adverb, slots[scan].special == nil { scan += 1 }
        guard scan < slots.count else { return false }
        let next = slots[scan]
        if index > 0, slots[index - 1].tag == .numeral { return false }
        if next.special == .be || next.special == .have || next.special == .doVerb { return true }
        guard next.can(.verb), next.tag != .properNoun else { return false }
        if next.isGerund || next.isPlural { return false }
        if ends(next.lower, "ed") && !Self.lexicon.keys.contains(next.lower) { return false }
        return true
    }

    /// "that": PRON before a verb or alone, SCONJ after a verb or before a clause, DET before a noun.
    func thatTag(_ slots: [Slot], _ index: Int) -> PartOfSpeech {
        let next: Slot? = index + 1 < slots.count ? slots[index + 1] : nil
        let previous: Slot? = index > 0 ? slots[index - 1] : nil
        guard let next else { return .pronoun }
        if next.tag == .punctuation || next.tag == .auxiliary || next.special == .be
            || next.special == .modal || next.special == .have || next.special == .doVerb
            || (next.tag == .verb && next.alt == nil) || next.tag == .particle {
            return .pronoun
        }
        // Before a singular noun (after any adjectives): a determiner ("love that car"), unless
        // a verb follows the noun after a verb of saying ("said that engineer arrived").
        var scan = index + 1
        while scan < slots.count, slots[scan].tag == .adjective { scan += 1 }
        if scan < slots.count {
            let head = slots[scan]
            if head.tag == .noun || (head.tag == .verb && head.alt == .noun && !head.isGerund), !head.isPlural {
                let after: Slot? = scan + 1 < slots.count ? slots[scan + 1] : nil
                let clause = previous?.tag == .verb && after.map {
                    $0.tag == .auxiliary || $0.special == .be || $0.special == .modal
                        || ($0.tag == .verb && !$0.isGerund)
                } == true
                return clause ? .subordinatingConjunction : .determiner
            }
        }
        if let previous, previous.tag == .verb || previous.tag == .adjective {
            return .subordinatingConjunction
        }
        if let previous, previous.tag == .noun, next.tag == .pronoun || next.tag == .determiner
            || next.tag == .properNoun {
            return .pronoun
        }
        return .subordinatingConjunction
    }

    /// "have" is an auxiliary before a participle ("had left", "Have you ever visited").
    func haveIsAuxiliary(_ slots: [Slot], _ index: Int) -> Bool {
        if slots[index].lower == "'ve" { return true }
        let questionInitial = slots[index].isInitial
            || (index > 0 && [.adverb, .pronoun].contains(slots[index - 1].tag) && slots[index - 1].lower.hasPrefix("wh"))
        var scan = index + 1
        var skipped = 0
        while scan < slots.count, skipped < 5 {
            let slot = slots[scan]
            if slot.tag == .adverb || slot.lower == "not" || slot.lower == "n't" {
                scan += 1
                skipped += 1
                continue
            }
            if questionInitial, [.pronoun, .determiner, .adjective, .noun, .properNoun].contains(slot.tag) {
                scan += 1
                skipped += 1
                continue
            }
            break
        }
        guard scan < slots.count else { return false }
        let slot = slots[scan]
        if slot.lower == "been" || slot.lower == "got" || slot.lower == "gotten" { return true }
        return slot.can(.verb) && slot.isPastOrParticiple
    }

    /// "do" is an auxiliary before a negation or with a main verb later in its clause.
    func doIsAuxiliary(_ slots: [Slot], _ index: Int) -> Bool {
        var scan = index + 1
        var looked = 0
        while scan < slots.count, looked < 7 {
            let slot = slots[scan]
            if slot.lower == "not" || slot.lower == "n't" { return true }
            switch slot.tag {
            case .punctuation, .coordinatingConjunction, .subordinatingConjunction:
                return false
            case .verb:
                if slot.isBaseForm && slot.special == nil {
                    if slot.alt == nil { return true }
                    let before = slots[scan - 1]
                    if before.tag != .determiner && !Self.possessives.contains(before.lower)
                        && before.tag != .adjective {
                        return true
                    }
                }
            default:
                if slot.special == .doVerb || slot.special == .have || slot.lower == "be" {
                    return scan > index + 1
                }
            }
            scan += 1
            looked += 1
        }
        return false
    }

    /// "before", "after", "since", "until": SCONJ before a clause, ADP before a noun phrase,
    /// ADV alone.
    func temporalTag(_ slots: [Slot], _ index: Int) -> PartOfSpeech {
        var scan = index + 1
        guard scan < slots.count else { return .adverb }
        let first = slots[scan]
        if first.tag == .punctuation { return .adverb }
        if isSubject(slots, scan) || first.lower == "you" || first.lower == "it" {
            scan += 1
        } else if [.determiner, .properNoun, .noun, .adjective, .numeral].contains(first.tag)
                    || Self.possessives.contains(first.lower) {
            while scan < slots.count,
                  [.determiner, .properNoun, .noun, .adjective, .numeral].contains(slots[scan].tag)
                    || Self.possessives.contains(slots[scan].lower) {
                scan += 1
            }
        } else {
            return .adposition
        }
        while scan < slots.count, slots[scan].tag == .adverb { scan += 1 }
        guard scan < slots.count else { return .adposition }
        let verb = slots[scan]
        if verb.tag == .auxiliary || verb.special == .be || verb.special == .modal
            || verb.special == .have || verb.special == .doVerb || verb.can(.verb) {
            return .subordinatingConjunction
        }
        return .adposition
    }
}

// MARK: - Lexicon

extension Tagger {
    /// Lowercased word → most likely tag (and runner-up), built once from `lexiconSource`.
    static let lexicon: [String: Lexeme] = {
        var table: [String: Lexeme] = [:]
        table.reserveCapacity(2_000)
        for line in lexiconSource.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let header = line[..<colon].split(separator: "|")
            guard let tag = PartOfSpeech(rawValue: String(header[0])) else { continue }
            let alt = header.count > 1 ? PartOfSpeech(rawValue: String(header[1])) : nil
            for word in line[line.index(after: colon)...].split(separator: " ") where table[String(word)] == nil {
                let word = String(word)
                table[word] = Lexeme(tag: tag, alt: alt, isParticiple: irregularParticiples.contains(word))
            }
        }
        for word in irregularParticiples where table[word] == nil {
            table[word] = Lexeme(tag: .verb, alt: nil, isParticiple: true)
        }
        return table
    }()

    /// Closed-class words settled by context (see `resolveSpecial`).
    static let specials: [String: Special] = {
        var table: [String: Special] = [:]
        func add(_ special: Special, _ words: String) {
            for word in words.split(separator: " ") { table[String(word)] = special }
        }
        add(.that, "that")
        add(.to, "to")
        add(.have, "have has had having 've")
        add(.doVerb, "do does did")
        add(.be, "am is are was were be been being 'm 're")
        add(.modal, "can could may might must shall should will would ought ca wo sha 'll 'd")
        add(.apostropheS, "'s")
        add(.no, "no")
        add(.there, "there")
        add(.wh, "what which whatever whichever")
        add(.demonstrative, "this these those")
        add(.temporal, "before after since until till")
        add(.as, "as")
        add(.like, "like")
        add(.so, "so")
        add(.degree, "more most less least")
        add(.much, "much")
        add(.well, "well")
        add(.only, "only")
        add(.right, "right")
        add(.adpOrAdv, "inside outside behind below above beneath underneath nearby")
        add(.home, "home")
        add(.while, "while")
        return table
    }()

    /// Tags of abbreviations with periods; any other ("U.S.", "J.") is PROPN.
    static let abbreviationTags: [String: PartOfSpeech] = [
        "e.g.": .adverb, "i.e.": .adverb, "etc.": .other, "vs.": .adposition, "a.m.": .noun,
        "p.m.": .noun, "no.": .noun, "approx.": .adverb, "fig.": .noun, "min.": .noun,
        "max.": .noun, "misc.": .adjective, "est.": .verb, "ft.": .noun, "oz.": .noun,
        "lb.": .noun, "lbs.": .noun, "dept.": .noun,
    ]

    static let titleWords: Set<String> = ["mr.", "mrs.", "ms.", "dr.", "prof.", "mr", "mrs", "ms", "dr"]
    /// Lexicon words that are names when capitalised inside a sentence ("in May").
    static let nameLike: Set<String> = ["may", "will", "bill", "mark", "grace", "hope", "joy", "pat", "sue"]
    static let subjectPronouns: Set<String> = ["i", "he", "she", "we", "they", "who"]
    /// Pronouns that are subjects unless they follow a verb or a preposition.
    static let indefinitePronouns: Set<String> = [
        "someone", "somebody", "something", "anyone", "anybody", "anything", "everyone",
        "everybody", "everything", "nobody", "nothing", "none", "whoever",
    ]
    static let objectPronouns: Set<String> = ["me", "him", "us", "them", "her", "it", "you"]
    static let possessives: Set<String> = ["my", "your", "his", "her", "its", "our", "their", "whose"]
    static let contractedAuxiliaries: Set<String> = ["'s", "'m", "'re", "'ve", "'ll", "'d"]

    static let irregularParticiples: Set<String> = {
        let words = """
            been gone seen done taken given known made found told said thought brought bought got \
            gotten left put kept held heard met run come become begun written eaten broken spoken \
            chosen driven fallen forgotten grown hidden ridden risen shaken stolen thrown worn won \
            lost paid sent spent built felt read set cut hit let shut sold stood sat slept taught \
            caught fought understood led meant learnt drawn flown swum sung drunk blown born \
            frozen woken beaten bitten forgiven hung dug fed fled shot spread struck stuck torn \
            lent bent lit laid sunk sprung swept wept wound
            """
        return Set(words.split(separator: " ").map(String.init))
    }()

    /// The lexicon: one line per tag (TAG or TAG|RUNNER-UP), then the words.
    /// The first entry for a word wins.
    static let lexiconSource = """
        DET: a an the every each either neither another some any all both half no this these those what which whatever whichever
        SCONJ: that because although though if unless whether while whereas lest whilst
        PART: not n't to
        PRON: i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself we us our ours ourselves they them their theirs themselves who whom whose whoever whomever someone somebody something anyone anybody anything everyone everybody everything nobody nothing none oneself 'em y'all
        AUX: am is are was were be been being 'm 're 's can could may might must shall should will would ought ca wo sha 'll 'd have has had having 've do does did
        ADP: of in on at by for with from into onto upon about above across after against along among amongst around before behind below beneath beside besides between beyond during except inside near off outside over past per since through throughout till toward towards under underneath until unlike up via within without down out than despite amid like aboard as underneath
        CCONJ: and or but nor &
        ADV: very too also just only never always often sometimes usually rarely seldom already still even ever again now then soon here there quite rather almost nearly really actually perhaps maybe probably certainly definitely indeed however therefore thus hence otherwise instead meanwhile anyway together apart away back forward forth ago later how when where why whenever wherever so more most less least enough once twice abroad downstairs upstairs overseas indoors outdoors everywhere somewhere anywhere nowhere alone anymore somehow furthermore moreover much well right not else yet nearby afterwards ahead aside around instead namely nonetheless nevertheless regardless likewise thereby whereby altogether sometime
        INTJ: oh ah aha wow hey hi hello yes yeah yep nope okay ok please thanks alas oops ouch hmm um uh bye goodbye hooray ugh huh whoa gosh
        NUM: zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion trillion
        ADJ: first third fourth fifth sixth seventh eighth ninth tenth last next many several few other such own same certain various little
        NOUN|ADJ: light
        ADJ|NOUN: second cold past public chief final human total average standard individual professional official general blue red green white black gold silver orange yellow brown grey gray pink purple square
        ADJ|ADV: early late fast hard long daily weekly monthly straight low high deep close pretty
        ADJ|VERB: open empty clean clear dry free slow warm cool calm wet
        ADJ: good new old great big different small large young important bad able dark stormy beautiful hot safe effective happy sad sorry tired busy easy difficult full quick strong weak rich poor dirty quiet loud bright heavy nice fine sure true real whole main major local wrong short tall wide huge tiny simple serious ready lucky angry hungry thirsty afraid alive asleep awake aware glad proud brave cheap expensive dear fresh friendly funny lazy lonely modern narrow perfect polite rare rough sharp shy silly smooth soft sour sweet thick thin tight ugly wild wise wonderful latest best better worse worst likely unlikely possible impossible necessary available popular recent current similar social national political economic international military medical legal natural certain clear common entire foreign private special strange terrible nervous excited interested worried surprised famous dangerous careful useful helpful hopeful hungry ill sick dead fair familiar flat fat gentle honest independent innocent kind mad mere noisy obvious odd plain proper pure quick round secret senior junior sudden tough traditional typical unique usual vast visible healthy wealthy crazy nasty lovely ugly elderly environmental
        VERB|NOUN: help need use look turn start show move play run walk love change support report cause hope fall drink dream cross press wait visit check answer reply touch kiss smile laugh cry talk sleep drive ride fly jump climb paint fight attack return design control stay shop watch call rest cook mix wish fear guess set hit cut drop fix kick pull push reach rise search sign step act travel vote worry promise download reset bark sound film cover share smell taste trade trust judge lie tread tear kill hurt want test doubt cook escape exercise finish charge deal count drop view struggle review
        NOUN|VERB: work plan end cost book train rain snow name place face hand head point question experience interest result study time water order form mind matter care park record process display figure fire dress ship land land mail email phone text file map paper picture house date rock tax profit bank light
        VERB|ADJ: broken frozen hidden lost stolen written spoken fallen forgotten known worn torn
        VERB: go come get make take see know think say tell give find become leave put mean keep let begin seem bring happen write sit stand lose pay meet include continue learn understand follow create speak allow add spend grow win offer remember consider appear buy serve die send expect build reach remain suggest raise pass sell require decide explain develop carry receive agree produce eat catch choose ask feel believe hear live hold forget arrive wonder teach throw enjoy accept prefer imagine inhale exhale examine discover announce arrest attend preheat notice describe mention prepare prove protect provide reduce refuse reveal save suffer survive treat hide bite shake swim sing steal shoot borrow lend marry belong deliver destroy manage measure obtain occur pretend realize realise recognize recommend relax rely remind remove repair repeat replace respond seek solve tie wake wear whisper achieve admit apply argue assume avoid bake beat bend blow breathe burn celebrate collect compare complain confirm connect contain convince cure declare defend deny depend deserve determine disappear discuss divide earn encourage enter establish exist expand explore fail fill fit fold gather greet hang hate identify ignore improve increase inform insist invite join knock lay lift lock melt obey operate organize pour pray print rescue retire rob roll rush scream select shout shut sink slide sneeze spell spill split spread squeeze stare stick sting stir strike succeed supply suppose surprise swallow sweep swing tear tend thank type understand unlock vanish wander warn wash waste weigh whistle wipe wrap yell try stop open close happen seem expect inhale went gone came got gotten made took taken saw seen knew known thought said told gave given found felt became left meant kept began begun heard ran brought wrote written sat stood lost paid met led spoke spoken grew grown won bought fell fallen sold sent built caught drew drawn chose chosen broke broken ate eaten drank drunk drove driven rode ridden flew flown swam sang sung taught fought forgot forgotten slept woke woken wore worn hid hidden shook thrown threw blew blown froze frozen spent lent stuck struck hung dug fed fled shot stole stolen sank sunk tore torn born laid lit understood done doing let saw found held stood sat read put led felt fell paid ran rose risen forgave forgiven bit bitten
        NOUN: time year people way day man thing woman life child world school state family student group country problem part week company system program number night home room mother area money story fact month lot eye job word business issue side kind house service friend father power hour game line member law car city community president team minute idea kid body information parent others level office door health person art war history party morning reason research girl guy moment air teacher force education cow cop road garden station chicken sofa cat dog river homework meeting drug quarter robbery street economy percent species frog oven degree instruction machine flour sugar egg bowl button version website umbrella ticket noon math brother sister son daughter husband wife baby boy bird fish horse table chair bed window floor wall kitchen bathroom town village island sea ocean sky sun moon star tree flower grass stone mountain hill lake forest field farm beach wind storm weather summer winter spring autumn season today yesterday tomorrow weekend afternoon evening price bill dollar euro pound cent computer screen letter message page song music movie photo camera radio television news article magazine newspaper food bread cheese meat fruit apple coffee tea milk juice wine beer dinner lunch breakfast meal restaurant hotel hospital doctor nurse police officer soldier army government minister king queen leader manager boss worker employee customer client scientist professor artist writer author driver pilot farmer lawyer engineer box bag hat coat shirt shoe glass bottle cup plate knife fork spoon gift card key gate bridge tower castle church museum library market store factory university college class lesson exam answer solution project task goal rule energy oil gas smoke heat colour color shape size amount rate value income budget industry firm deal contract agreement election campaign policy crisis peace battle weapon gun bomb death disease virus medicine pill treatment patient heart blood bone skin voice language sentence beginning middle top bottom front corner edge surface hole circle men women children people feet teeth mice geese police news physics mathematics economics series means dozen couple pair lunch kid idea problem chance choice friend neighbour neighbor island coast desert holiday vacation trip journey flight plane train bus taxi bicycle bike boat truck engine wheel ground land soil sand dust ice fire universe planet earth nature animal plant seed leaf root dream cop noon umbrella noodle tonight chapter essay novel poem poet speech band concert theatre theater ball match player coach fan score goal
        ADJ: wooden golden woollen woolen
        PROPN: monday tuesday wednesday thursday friday saturday sunday january february march april june july august september october november december christmas easter
        PROPN: alice bob maria james sarah david elena omar priya thomas grace lucas hannah kenji sofia daniel amara viktor john mary michael elizabeth william emma olivia liam noah ava sophia isabella mia charlotte amelia harper evelyn benjamin elijah oliver jacob ethan alexander henry jack samuel sam joseph matthew anna emily jessica jennifer linda susan karen nancy lisa robert richard charles christopher paul peter george edward tom tim ben harry jane lucy kate laura rachel sophie chloe ahmed mohammed fatima wei li chen yuki hiroshi raj ana carlos juan jose luis pablo pierre hans ivan olga dmitri katya london paris tokyo chicago lagos berlin lisbon boston toronto dublin madrid rome moscow beijing delhi mumbai sydney cairo nairobi texas california florida europe asia africa america england france germany china japan india canada australia mexico brazil spain italy russia
        """
}
