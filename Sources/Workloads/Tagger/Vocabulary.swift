// Vocabulary: the words the benchmark corpus is made of — names, places, nouns (singular and
// plural), adjectives, adverbs, verbs with all their forms, prepositional phrases, times — and
// `Phrase`, a noun phrase with its agreement.
//
// Data flow: static tables only, read by SentenceGenerator.swift's templates; nothing here
// draws or changes.

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
