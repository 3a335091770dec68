// Tagger+Context: step 3 of the tagging — one left-to-right pass that settles each ambiguous
// token from its neighbours, once every token has its lexical tag.
//
// Data flow: `resolveInContext` runs once per slot, in order, and rewrites only that slot's tag
// (earlier slots are settled, later ones still hold their lexical tags). Capitalised first words
// come first; a word with a `Special` goes to `resolveSpecial` (ClosedClassWords.swift); the
// rest choose between their tag and its runner-up: noun or verb (`nounOrVerb`, from what
// licenses a verb before it and what follows), adjective or noun, adjective or adverb.

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
