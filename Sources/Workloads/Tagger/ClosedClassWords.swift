// ClosedClassWords: how the tagger settles the words whose tag depends on their neighbours
// ("that", "to", "as", "'s" and the like), once every token has its lexical tag. Tagger+Context.swift
// holds the rest of that pass, Tagger.swift the entry point.

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
