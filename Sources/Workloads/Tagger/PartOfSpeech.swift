// The Universal Dependencies part-of-speech tags, the tag set spaCy reports in `token.pos_`.

/// A Universal POS tag (https://universaldependencies.org/u/pos/); `rawValue` is the tag text.
public enum PartOfSpeech: String, Codable, Sendable, CaseIterable {
    /// Noun: "cow", "dreams", "percent".
    case noun = "NOUN"
    /// Verb (main verbs, not auxiliaries): "tread", "inhale", "pulled".
    case verb = "VERB"
    /// Adjective: "brown", "second", "sorry".
    case adjective = "ADJ"
    /// Adverb: "softly", "now", "how".
    case adverb = "ADV"
    /// Pronoun, including possessive ones: "I", "me", "my", "there" (existential).
    case pronoun = "PRON"
    /// Determiner: "the", "a", "every", "that" (before a noun).
    case determiner = "DET"
    /// Adposition (prepositions and verb particles): "on", "of", "over".
    case adposition = "ADP"
    /// Auxiliary: forms of "be", auxiliary "have"/"do", modals, "'m", "'ll".
    case auxiliary = "AUX"
    /// Coordinating conjunction: "and", "but", "or".
    case coordinatingConjunction = "CCONJ"
    /// Subordinating conjunction: "because", "if", "that" (complementizer).
    case subordinatingConjunction = "SCONJ"
    /// Particle: "not", "n't", infinitival "to", possessive "'s".
    case particle = "PART"
    /// Numeral: "3.5", "1,000", "ten".
    case numeral = "NUM"
    /// Proper noun: "Bond", "London", "Mr.".
    case properNoun = "PROPN"
    /// Punctuation: ".", ",", "?", quotes, brackets.
    case punctuation = "PUNCT"
    /// Interjection: "oh", "wow", "please", "no" (as an answer).
    case interjection = "INTJ"
    /// Symbol: "$", "+", "=", emoji.
    case symbol = "SYM"
    /// Other: foreign words, "etc.", unanalysable tokens.
    case other = "X"
}
