// The tagger's input: the article's five sentences, and a deterministic generator of varied
// English sentences for the benchmark corpus (templates + vocabulary + a splitmix64 PRNG).

/// Sentences to tag.
public enum Corpus {
    /// The five sentences the article tags with spaCy.
    public static let articleSentences: [String] = [
        "How now brown cow.",
        "Tread softly because you tread on my dreams.",
        "I did not inhale.",
        "But the cops, they pulled me over.",
        "No Mr. Bond, I expect you to die.",
    ]

    /// The shortest and longest sentence `sentences(count:seed:)` produces, in tokens.
    public static let tokenRange = 8...25

    /// `count` varied, grammatical English sentences of 8–25 tokens each; the same `seed`
    /// always gives the same sentences.
    public static func sentences(count: Int, seed: UInt64 = 42) -> [String] {
        guard count > 0 else { return [] }
        var generator = SentenceGenerator(seed: seed)
        let tokenizer = Tokenizer()
        var result: [String] = []
        result.reserveCapacity(count)
        while result.count < count {
            var sentence = generator.sentence()
            var attempts = 1
            while !tokenRange.contains(tokenizer.tokenize(sentence).count) {
                attempts += 1
                sentence = attempts <= 50 ? generator.sentence() : fallback
            }
            result.append(sentence)
        }
        return result
    }

    /// Used only if fifty draws in a row miss `tokenRange` (which the templates do not do).
    static let fallback = "The old teacher carefully opened the heavy box in the kitchen."
}

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

// MARK: - Vocabulary

/// A verb's forms: base, third person singular, past, past participle, present participle.
struct VerbForms {
    let base: String
    let third: String
    let past: String
    let participle: String
    let gerund: String

    init(_ base: String, _ third: String, _ past: String, _ participle: String, _ gerund: String) {
        self.base = base
        self.third = third
        self.past = past
        self.participle = participle
        self.gerund = gerund
    }
}

/// A noun phrase and whether it takes third-person-singular agreement.
struct Phrase {
    let text: String
    let singular: Bool
    /// "I" takes "am" and the base form.
    var isFirstPersonSingular = false
}

enum Vocabulary {
    static let names = [
        "Alice", "Bob", "Maria", "James", "Sarah", "David", "Elena", "Omar", "Priya", "Thomas",
        "Grace", "Lucas", "Hannah", "Kenji", "Sofia", "Daniel", "Amara", "Viktor",
    ]
    static let titledNames = [
        "Mr. Bond", "Dr. Smith", "Mrs. Patel", "Ms. Garcia", "Prof. Chen", "Mr. Brown", "Dr. Okafor",
    ]
    static let places = [
        "London", "Paris", "Tokyo", "Chicago", "Lagos", "the U.S.", "Berlin", "Lisbon",
    ]
    /// People and animals: (singular, plural).
    static let agents: [(String, String)] = [
        ("dog", "dogs"), ("cat", "cats"), ("teacher", "teachers"), ("doctor", "doctors"),
        ("student", "students"), ("farmer", "farmers"), ("child", "children"), ("woman", "women"),
        ("man", "men"), ("driver", "drivers"), ("neighbour", "neighbours"), ("pilot", "pilots"),
        ("writer", "writers"), ("engineer", "engineers"), ("nurse", "nurses"), ("cook", "cooks"),
    ]
    /// Things: (singular, plural).
    static let things: [(String, String)] = [
        ("book", "books"), ("letter", "letters"), ("car", "cars"), ("house", "houses"),
        ("map", "maps"), ("box", "boxes"), ("report", "reports"), ("window", "windows"),
        ("song", "songs"), ("bridge", "bridges"), ("ticket", "tickets"), ("photo", "photos"),
        ("cake", "cakes"), ("garden", "gardens"), ("computer", "computers"), ("bicycle", "bicycles"),
        ("problem", "problems"), ("plan", "plans"), ("key", "keys"), ("door", "doors"),
        ("story", "stories"), ("message", "messages"), ("painting", "paintings"), ("boat", "boats"),
    ]
    /// Adjectives for things.
    static let adjectives = [
        "old", "new", "small", "large", "red", "famous", "beautiful", "broken", "heavy", "bright",
        "strange", "green", "empty", "expensive", "wooden", "ancient", "tiny", "blue", "useful",
    ]
    /// Adjectives for people and animals.
    static let agentAdjectives = [
        "old", "young", "tired", "happy", "busy", "careful", "quiet", "famous", "noisy", "clever",
        "nervous", "friendly", "brave", "hungry", "patient",
    ]
    static let adverbs = [
        "quickly", "slowly", "carefully", "quietly", "suddenly", "finally", "often", "never",
        "always", "usually", "really", "happily", "eventually", "rarely",
    ]
    static let verbs: [VerbForms] = [
        VerbForms("see", "sees", "saw", "seen", "seeing"),
        VerbForms("find", "finds", "found", "found", "finding"),
        VerbForms("take", "takes", "took", "taken", "taking"),
        VerbForms("make", "makes", "made", "made", "making"),
        VerbForms("bring", "brings", "brought", "brought", "bringing"),
        VerbForms("watch", "watches", "watched", "watched", "watching"),
        VerbForms("open", "opens", "opened", "opened", "opening"),
        VerbForms("paint", "paints", "painted", "painted", "painting"),
        VerbForms("read", "reads", "read", "read", "reading"),
        VerbForms("write", "writes", "wrote", "written", "writing"),
        VerbForms("carry", "carries", "carried", "carried", "carrying"),
        VerbForms("build", "builds", "built", "built", "building"),
        VerbForms("sell", "sells", "sold", "sold", "selling"),
        VerbForms("buy", "buys", "bought", "bought", "buying"),
        VerbForms("clean", "cleans", "cleaned", "cleaned", "cleaning"),
        VerbForms("fix", "fixes", "fixed", "fixed", "fixing"),
        VerbForms("visit", "visits", "visited", "visited", "visiting"),
        VerbForms("follow", "follows", "followed", "followed", "following"),
        VerbForms("check", "checks", "checked", "checked", "checking"),
        VerbForms("lose", "loses", "lost", "lost", "losing"),
        VerbForms("keep", "keeps", "kept", "kept", "keeping"),
        VerbForms("hold", "holds", "held", "held", "holding"),
        VerbForms("draw", "draws", "drew", "drawn", "drawing"),
        VerbForms("choose", "chooses", "chose", "chosen", "choosing"),
        VerbForms("love", "loves", "loved", "loved", "loving"),
        VerbForms("describe", "describes", "described", "described", "describing"),
        VerbForms("forget", "forgets", "forgot", "forgotten", "forgetting"),
        VerbForms("study", "studies", "studied", "studied", "studying"),
    ]
    /// Intransitive verbs for subordinate clauses.
    static let intransitives: [VerbForms] = [
        VerbForms("arrive", "arrives", "arrived", "arrived", "arriving"),
        VerbForms("leave", "leaves", "left", "left", "leaving"),
        VerbForms("sleep", "sleeps", "slept", "slept", "sleeping"),
        VerbForms("laugh", "laughs", "laughed", "laughed", "laughing"),
        VerbForms("wait", "waits", "waited", "waited", "waiting"),
        VerbForms("sing", "sings", "sang", "sung", "singing"),
        VerbForms("work", "works", "worked", "worked", "working"),
        VerbForms("travel", "travels", "travelled", "travelled", "travelling"),
    ]
    static let prepositionalPhrases = [
        "in the morning", "after lunch", "near the river", "at the station", "on Tuesday",
        "before dinner", "with a smile", "without a word", "under the bridge", "behind the house",
        "during the storm", "for three hours", "in 1999", "on March 3", "at 7:30", "in the kitchen",
        "across the street", "through the old forest", "by the window", "in the garden",
        "at the end of the day", "on the top shelf", "from the market", "into the car",
    ]
    static let pastTimes = [
        "yesterday", "last week", "in 2019", "on Friday", "two days ago", "last night",
        "in the spring", "this morning",
    ]
    static let futureTimes = [
        "tomorrow", "next year", "at noon", "on Friday", "this evening", "next week", "soon",
        "in the spring",
    ]
    static let subordinators = ["because", "although", "when", "while", "after", "before", "if", "since"]
    static let numberWords = [
        "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty",
    ]
    static let reportingVerbs = [("said", "say"), ("thought", "think"), ("knew", "know"), ("told us", "tell us")]
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
