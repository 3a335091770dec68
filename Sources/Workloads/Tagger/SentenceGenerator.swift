// SentenceGenerator: the benchmark corpus's templates — fifteen sentence shapes (past, present,
// questions, purchases, subordinate clauses, …) filled from Vocabulary.swift — and SplitMix64,
// the PRNG every choice is drawn from.
//
// Data flow: `Corpus.sentences(count:seed:)` seeds one generator and calls `sentence()` until it
// has enough (drawing again for any outside `tokenRange`); each call picks a shape, builds its
// phrases (agreement carried in `Phrase`) and capitalises the first letter. The same seed always
// gives the same sentences.

// MARK: - Random numbers

/// splitmix64 (Steele, Lea and Flood): tiny, fast, and good enough to pick words (and, in the
/// tests, to make replayable random payloads).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<bound (bound > 0).
    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }

    mutating func pick<Element>(_ elements: [Element]) -> Element {
        elements[below(elements.count)]
    }

    /// True with probability percent/100.
    mutating func chance(_ percent: Int) -> Bool {
        below(100) < percent
    }
}

// MARK: - Templates

/// Builds sentences from templates; every draw goes through one `SplitMix64`.
struct SentenceGenerator {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func sentence() -> String {
        let text: String
        switch random.below(16) {
        case 0: text = simplePast() + "."
        case 1: text = reported()
        case 2: text = question()
        case 3: text = purchase()
        case 4: text = subordinate()
        case 5: text = future()
        case 6: text = progressive()
        case 7: text = perfect()
        case 8: text = imperative()
        case 9: text = negated()
        case 10: text = possessive()
        case 11: text = relative()
        case 12: text = statistic()
        case 13: text = compound()
        default: text = simplePresent() + "."
        }
        return capitalizedFirst(text)
    }

    // MARK: Phrases

    mutating func nounPhrase(_ nouns: [(String, String)],
                             adjectives: [String] = Vocabulary.adjectives) -> Phrase {
        let (singular, plural) = random.pick(nouns)
        let isPlural = random.chance(30)
        var words: [String] = []
        if isPlural {
            words.append(random.pick(["the", "some", "many", "two", "three", "our", "their", "these"]))
        } else {
            words.append(random.pick(["the", "the", "a", "my", "your", "her", "his", "that", "every"]))
        }
        if random.chance(55) { words.append(random.pick(adjectives)) }
        words.append(isPlural ? plural : singular)
        var text = words.joined(separator: " ")
        if words.first == "a", let second = words.dropFirst().first?.first, "aeiou".contains(second) {
            text = "an" + text.dropFirst()
        }
        return Phrase(text: text, singular: !isPlural)
    }

    mutating func subject() -> Phrase {
        switch random.below(6) {
        case 0:
            let pronoun = random.pick(["I", "you", "he", "she", "we", "they"])
            return Phrase(text: pronoun, singular: pronoun == "he" || pronoun == "she",
                          isFirstPersonSingular: pronoun == "I")
        case 1: return Phrase(text: random.pick(Vocabulary.names), singular: true)
        case 2: return Phrase(text: random.pick(Vocabulary.titledNames), singular: true)
        default: return nounPhrase(Vocabulary.agents, adjectives: Vocabulary.agentAdjectives)
        }
    }

    mutating func object() -> String {
        switch random.below(8) {
        case 0: return random.pick(["it", "them", "him", "her", "us"])
        case 1: return random.pick(Vocabulary.names)
        default: return nounPhrase(Vocabulary.things).text
        }
    }

    mutating func optionalAdverb() -> String {
        random.chance(35) ? random.pick(Vocabulary.adverbs) + " " : ""
    }

    mutating func optionalPhrase() -> String {
        random.chance(60) ? " " + random.pick(Vocabulary.prepositionalPhrases) : ""
    }

    mutating func present(_ verb: VerbForms, for subject: Phrase) -> String {
        subject.singular && !subject.isFirstPersonSingular ? verb.third : verb.base
    }

    mutating func be(for subject: Phrase, past: Bool) -> String {
        if subject.isFirstPersonSingular { return past ? "was" : "am" }
        if subject.singular { return past ? "was" : "is" }
        return past ? "were" : "are"
    }

    mutating func clause() -> String {
        let who = subject()
        if random.chance(50) {
            let verb = random.pick(Vocabulary.intransitives)
            return "\(who.text) \(optionalAdverb())\(verb.past)\(optionalPhrase())"
        }
        let verb = random.pick(Vocabulary.verbs)
        return "\(who.text) \(verb.past) \(object())"
    }

    mutating func number() -> String {
        switch random.below(4) {
        case 0: return random.pick(Vocabulary.numberWords)
        case 1: return String(2 + random.below(98))
        case 2:
            let thousands = 1 + random.below(20)
            let rest = random.below(1000)
            let padded = rest < 10 ? "00\(rest)" : rest < 100 ? "0\(rest)" : "\(rest)"
            return "\(thousands),\(padded)"
        default: return String(100 + random.below(900))
        }
    }

    // MARK: Sentence shapes

    mutating func simplePast() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        return "\(who.text) \(optionalAdverb())\(verb.past) \(object())\(optionalPhrase())"
            + (random.chance(40) ? " " + random.pick(Vocabulary.pastTimes) : "")
    }

    mutating func simplePresent() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        let frequency = random.pick(["often", "usually", "sometimes", "never", "always", "rarely"])
        return "\(who.text) \(frequency) \(present(verb, for: who)) \(object())\(optionalPhrase())"
    }

    mutating func reported() -> String {
        let speaker = subject()
        let (past, _) = random.pick(Vocabulary.reportingVerbs)
        let that = random.chance(60) ? " that" : ""
        return "\(speaker.text) \(past)\(that) \(clause())."
    }

    mutating func question() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        switch random.below(6) {
        case 0:
            return "Did \(who.text) \(verb.base) \(object())\(optionalPhrase())?"
        case 1:
            let auxiliary = who.singular && !who.isFirstPersonSingular ? "does" : "do"
            let wh = random.pick(["Where", "Why", "When", "How often"])
            return "\(wh) \(auxiliary) \(who.text) \(verb.base) \(object())?"
        case 2:
            let auxiliary = be(for: who, past: false)
            return "Why \(auxiliary) \(who.text) \(verb.gerund) \(object())\(optionalPhrase())?"
        case 3:
            let plural = random.pick(Vocabulary.things).1
            return "How many \(plural) did \(random.pick(Vocabulary.names)) \(verb.base) \(random.pick(Vocabulary.pastTimes))?"
        case 4:
            return "Can you \(verb.base) \(nounPhrase(Vocabulary.things).text) before \(random.pick(Array(Vocabulary.numberWords.prefix(9)))) o'clock?"
        default:
            return "Have you ever \(verb.participle) \(object())\(optionalPhrase())?"
        }
    }

    mutating func purchase() -> String {
        let buyer = random.chance(50) ? random.pick(Vocabulary.names) : random.pick(Vocabulary.titledNames)
        let quantity = random.pick(Vocabulary.numberWords)
        let item = random.pick(Vocabulary.things).1
        let dollars = 2 + random.below(480)
        let cents = random.below(100)
        let price = random.chance(50) ? "$\(dollars)" : "$\(dollars).\(cents < 10 ? "0" : "")\(cents)"
        return "\(buyer) bought \(quantity) \(optionalAdjective())\(item) for \(price) \(random.pick(Vocabulary.pastTimes))."
    }

    mutating func optionalAdjective() -> String {
        random.chance(40) ? random.pick(Vocabulary.adjectives) + " " : ""
    }

    mutating func subordinate() -> String {
        let conjunction = random.pick(Vocabulary.subordinators)
        if random.chance(50) {
            return "\(capitalizedFirst(conjunction)) \(clause()), \(clause())."
        }
        return "\(clause()) \(conjunction) \(clause())."
    }

    mutating func future() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        let modal = random.pick(["will", "might", "should", "could", "must", "can"])
        return "\(who.text) \(modal) \(optionalAdverb())\(verb.base) \(object())"
            + " \(random.pick(Vocabulary.futureTimes))."
    }

    mutating func progressive() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        let past = random.chance(40)
        return "\(who.text) \(be(for: who, past: past)) \(verb.gerund) \(object())\(optionalPhrase())."
    }

    mutating func perfect() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        let auxiliary = who.singular && !who.isFirstPersonSingular ? "has" : "have"
        if random.chance(50) {
            return "\(who.text) \(auxiliary) \(verb.participle) \(object()) since \(1950 + random.below(74))."
        }
        let adverb = random.pick(["already", "just", "never", "recently"])
        return "\(who.text) \(auxiliary) \(adverb) \(verb.participle) \(object())\(optionalPhrase())."
    }

    mutating func imperative() -> String {
        let verb = random.pick(Vocabulary.verbs)
        let second = random.pick(Vocabulary.verbs)
        let please = random.chance(40) ? "please " : ""
        return "\(please)\(verb.base) \(nounPhrase(Vocabulary.things).text)\(optionalPhrase())"
            + " before you \(second.base) \(nounPhrase(Vocabulary.things).text)."
    }

    mutating func negated() -> String {
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        switch random.below(4) {
        case 0:
            let auxiliary = who.singular && !who.isFirstPersonSingular ? "doesn't" : "don't"
            return "\(who.text) \(auxiliary) \(verb.base) \(object())\(optionalPhrase())."
        case 1:
            return "\(who.text) didn't \(verb.base) \(object()) \(random.pick(Vocabulary.pastTimes))."
        case 2:
            return "\(who.text) can't \(verb.base) \(object()) because \(clause())."
        default:
            let contraction = who.isFirstPersonSingular ? "I'm" : who.text + (who.singular ? "'s" : " are")
            return "\(contraction) not \(verb.gerund) \(object())\(optionalPhrase()) right now."
        }
    }

    mutating func compound() -> String {
        let joiner = random.pick([", and", ", but", "; then", " and later"])
        return "\(simplePast())\(joiner) \(clause())\(optionalPhrase())."
    }

    mutating func possessive() -> String {
        let owner = random.pick(Vocabulary.names)
        let (thing, _) = random.pick(Vocabulary.things)
        let adjective = random.pick(Vocabulary.adjectives)
        let verb = random.pick(Vocabulary.intransitives)
        return "\(owner)'s \(thing) was \(random.pick(["very", "quite", "rather", "too"])) \(adjective)"
            + ", so \(random.pick(["we", "they", "I", "everyone"])) \(verb.past)\(optionalPhrase())."
    }

    mutating func relative() -> String {
        let (thing, _) = random.pick(Vocabulary.things)
        let who = subject()
        let verb = random.pick(Vocabulary.verbs)
        let pronoun = random.pick(["that", "which"])
        return "The \(thing) \(pronoun) \(who.text) \(verb.past)\(optionalPhrase()) was \(random.pick(Vocabulary.adjectives))."
    }

    mutating func statistic() -> String {
        let place = random.pick(Vocabulary.places)
        let percent = "\(1 + random.below(60)).\(random.below(10))"
        let thing = random.pick(["prices", "sales", "profits", "exports", "rents"])
        let direction = random.pick(["rose", "fell", "grew", "dropped"])
        return "In \(place), \(thing) \(direction) by \(percent) percent in \(1990 + random.below(35)), according to \(number()) experts."
    }

    func capitalizedFirst(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst()
    }
}
