// Tagger+LexicalTagging: step 2 of the tagging — each token's tentative tag, and sometimes a
// runner-up, from the token alone (and whether it starts a sentence).
//
// Data flow: `assignLexicalTag` runs once per slot, left to right, before any context rule. It
// tries, in order, the token's shape (punctuation, symbols, numbers, abbreviations), the lexicon
// (Lexicon.swift; a capitalised open-class word inside a sentence is PROPN), capitalisation,
// inflections of lexicon words, suffix rules, and finally NOUN with VERB as runner-up, and
// writes the slot's tag, alt, special and isInitial. Tagger+Context.swift then settles the
// ambiguous ones.

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
