// The tagger's input: the article's five sentences, and a deterministic generator of varied
// English sentences for the benchmark corpus (templates + vocabulary + a splitmix64 PRNG).
//
// This file holds the public entry point; the vocabulary is in Vocabulary.swift, the templates
// and the PRNG in SentenceGenerator.swift.

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
