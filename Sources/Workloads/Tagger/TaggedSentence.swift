// One tagger result: the sentence, its tokens and one Universal POS tag per token.

/// A sentence split into tokens, each with its part of speech (`tokens.count == tags.count`).
public struct TaggedSentence: Codable, Sendable, Equatable {
    /// The sentence as given to the tagger.
    public let sentence: String
    /// The tokens of `sentence`, in order (see `Tokenizer`).
    public let tokens: [String]
    /// `tags[i]` is the part of speech of `tokens[i]`.
    public let tags: [PartOfSpeech]

    public init(sentence: String, tokens: [String], tags: [PartOfSpeech]) {
        precondition(tokens.count == tags.count, "one tag per token")
        self.sentence = sentence
        self.tokens = tokens
        self.tags = tags
    }

    /// The tokens with their tags, `word/TAG` separated by spaces:
    /// "How/ADV now/ADV brown/ADJ cow/NOUN ./PUNCT".
    public var rendered: String {
        var text = ""
        for (token, tag) in zip(tokens, tags) {
            if !text.isEmpty { text += " " }
            text += token
            text += "/"
            text += tag.rawValue
        }
        return text
    }
}
