// TaggerAgreement: how often the Swift tagger (Workloads' Tagger) and spaCy agree on the
// transform workload's sentences, so a reader of the transform row knows the two do like work:
// sentences tokenized alike, and over those the share of tokens given the same part of speech.
import Workloads

struct TaggerAgreement: Codable, Equatable {
    var sentences: Int
    /// Sentences whose tokens differ between the two tokenizers (their tags are not compared).
    var tokenizationDiffers: Int
    /// Tokens of the sentences tokenized alike, and how many of them got the same tag.
    var tokens: Int
    var sameTag: Int

    var sameTagPercent: Double { tokens > 0 ? 100 * Double(sameTag) / Double(tokens) : 0 }

    /// `spacy[i]`: spaCy's (token, tag) pairs for `swift[i].sentence`.
    init(swift: [TaggedSentence], spacy: [[[String]]]) {
        sentences = min(swift.count, spacy.count)
        tokenizationDiffers = 0
        tokens = 0
        sameTag = 0
        for (ours, theirs) in zip(swift, spacy) {
            let theirTokens = theirs.map { $0.first ?? "" }
            guard theirTokens == ours.tokens else {
                tokenizationDiffers += 1
                continue
            }
            tokens += ours.tokens.count
            sameTag += zip(ours.tags, theirs).filter { $0.rawValue == ($1.count > 1 ? $1[1] : "") }.count
        }
    }

    var summary: String {
        "Swift tagger vs spaCy on \(sentences) transform sentences: \(sentences - tokenizationDiffers) tokenized alike "
            + "(\(tokenizationDiffers) differ), and on those \(formatSeconds(sameTagPercent, digits: 1)) % of \(tokens) tokens got the same tag"
    }
}
