import Foundation
import Testing
@testable import Workloads

// MARK: - The hand-tagged sample

/// One line of bench/data/tagged-sample.txt: the text (tokens joined by spaces) and the gold tags.
struct GoldSentence {
    let line: Int
    /// The sample's section: the last "# Held-out …" comment above the line, or "main".
    let section: String
    let tokens: [String]
    let tags: [PartOfSpeech]
    var text: String { tokens.joined(separator: " ") }
}

enum GoldSample {
    /// bench/data/tagged-sample.txt, found from this file: ../../bench/data/ from its folder.
    static var url: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()   // Tests/WorkloadsTests
            .deletingLastPathComponent()   // Tests
            .deletingLastPathComponent()   // package root
            .appendingPathComponent("bench/data/tagged-sample.txt")
    }

    static func load() throws -> [GoldSentence] {
        let text = try String(contentsOf: url, encoding: .utf8)
        var sentences: [GoldSentence] = []
        var section = "main"
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("# Held-out"), let colon = line.firstIndex(of: ":") {
                section = String(line[line.index(line.startIndex, offsetBy: 2)..<colon])
            }
            if line.isEmpty || line.hasPrefix("#") { continue }
            var tokens: [String] = []
            var tags: [PartOfSpeech] = []
            for item in line.split(separator: " ") {
                guard let slash = item.lastIndex(of: "/"), slash != item.startIndex,
                      let tag = PartOfSpeech(rawValue: String(item[item.index(after: slash)...])) else {
                    Issue.record("line \(number + 1): malformed token \(item)")
                    continue
                }
                tokens.append(String(item[..<slash]))
                tags.append(tag)
            }
            sentences.append(GoldSentence(line: number + 1, section: section, tokens: tokens, tags: tags))
        }
        return sentences
    }
}

@Suite struct TaggerAccuracyTests {
    @Test func accuracyOnHandTaggedSampleIsAtLeast85Percent() throws {
        let sample = try GoldSample.load()
        let tokenCount = sample.reduce(0) { $0 + $1.tokens.count }
        #expect(tokenCount >= 200, "the hand-tagged sample has only \(tokenCount) tokens")

        let tagger = Tagger()
        var correct = 0
        var mistakes: [String] = []
        var sections: [(name: String, tokens: Int, correct: Int)] = []
        for gold in sample {
            let tags = tagger.tag(tokens: gold.tokens)
            try #require(tags.count == gold.tokens.count)
            if sections.last?.name != gold.section { sections.append((gold.section, 0, 0)) }
            sections[sections.count - 1].tokens += gold.tokens.count
            for (index, (guess, expected)) in zip(tags, gold.tags).enumerated() {
                if guess == expected {
                    correct += 1
                    sections[sections.count - 1].correct += 1
                } else {
                    mistakes.append("line \(gold.line): \(gold.tokens[index]) \(guess.rawValue) (gold \(expected.rawValue))")
                }
            }
        }
        let accuracy = Double(correct) / Double(max(tokenCount, 1))
        let percent = (accuracy * 1000).rounded() / 10
        print("tagger accuracy on bench/data/tagged-sample.txt: \(correct)/\(tokenCount) tokens = \(percent)%")
        for section in sections {
            let sectionPercent = (Double(section.correct) / Double(max(section.tokens, 1)) * 1000).rounded() / 10
            print("  \(section.name): \(section.correct)/\(section.tokens) = \(sectionPercent)%")
        }
        for mistake in mistakes { print("  mismatch: \(mistake)") }
        #expect(accuracy >= 0.85, "accuracy \(percent)% is below 85%")
    }

    @Test func tokenizerReproducesTheSampleTokenization() throws {
        let sample = try GoldSample.load()
        #expect(!sample.isEmpty)
        let tokenizer = Tokenizer()
        for gold in sample {
            let tokens = tokenizer.tokenize(Self.untokenized(gold.tokens))
            #expect(tokens == gold.tokens, "line \(gold.line): \(Self.untokenized(gold.tokens))")
            #expect(tokenizer.tokenize(gold.text) == gold.tokens, "line \(gold.line), space-separated")
        }
    }

    /// The sample's tokens put back together as ordinary text: no space before closing
    /// punctuation and contractions, none after opening quotes, "$" and joining hyphens.
    static func untokenized(_ tokens: [String]) -> String {
        var text = ""
        var quoteOpen = false
        var glueNext = true
        for token in tokens {
            var glue = glueNext
            glueNext = false
            switch token {
            case ".", ",", "!", "?", ";", ":", ")", "n't", "'s", "'m", "'re", "'ll", "'ve", "'d", "%":
                glue = true
            case "\"":
                if quoteOpen { glue = true } else { glueNext = true }
                quoteOpen.toggle()
            case "-":
                glue = true
                glueNext = true
            case "$", "(":
                glueNext = true
            default:
                break
            }
            if !glue && !text.isEmpty { text += " " }
            text += token
        }
        return text
    }
}

// MARK: - The article's sentences

@Suite struct ArticleSentenceTests {
    let tagger = Tagger()

    func tags(_ sentence: String) -> [String: PartOfSpeech] {
        let tagged = tagger.tag(sentence)
        var byWord: [String: PartOfSpeech] = [:]
        for (token, tag) in zip(tagged.tokens, tagged.tags) where byWord[token] == nil {
            byWord[token] = tag
        }
        return byWord
    }

    @Test func articleSentencesAreTheFiveFromTheArticle() {
        #expect(Corpus.articleSentences == [
            "How now brown cow.",
            "Tread softly because you tread on my dreams.",
            "I did not inhale.",
            "But the cops, they pulled me over.",
            "No Mr. Bond, I expect you to die.",
        ])
    }

    @Test func howNowBrownCow() {
        let tagged = tagger.tag("How now brown cow.")
        #expect(tagged.tokens == ["How", "now", "brown", "cow", "."])
        #expect(tagged.rendered == "How/ADV now/ADV brown/ADJ cow/NOUN ./PUNCT")
    }

    @Test func treadSoftly() {
        let tagged = tagger.tag("Tread softly because you tread on my dreams.")
        #expect(tagged.tokens == ["Tread", "softly", "because", "you", "tread", "on", "my", "dreams", "."])
        #expect(tagged.tags == [.verb, .adverb, .subordinatingConjunction, .pronoun, .verb, .adposition,
                                .pronoun, .noun, .punctuation])
    }

    @Test func iDidNotInhale() {
        let tagged = tagger.tag("I did not inhale.")
        #expect(tagged.rendered == "I/PRON did/AUX not/PART inhale/VERB ./PUNCT")
    }

    @Test func theCopsPulledMeOver() {
        let tags = tags("But the cops, they pulled me over.")
        #expect(tags["But"] == .coordinatingConjunction)
        #expect(tags["the"] == .determiner)
        #expect(tags["cops"] == .noun)
        #expect(tags[","] == .punctuation)
        #expect(tags["they"] == .pronoun)
        #expect(tags["pulled"] == .verb)
        #expect(tags["me"] == .pronoun)
    }

    @Test func noMrBond() {
        let tagged = tagger.tag("No Mr. Bond, I expect you to die.")
        #expect(tagged.tokens == ["No", "Mr.", "Bond", ",", "I", "expect", "you", "to", "die", "."])
        let tags = Dictionary(uniqueKeysWithValues: zip(tagged.tokens, tagged.tags))
        #expect(tags["Mr."] == .properNoun)
        #expect(tags["Bond"] == .properNoun)
        #expect(tags["expect"] == .verb)
        #expect(tags["to"] == .particle)
        #expect(tags["die"] == .verb)
        #expect(tags["."] == .punctuation)
    }

    @Test func taggedSentenceRoundTripsThroughJSON() throws {
        let tagged = tagger.tag("I did not inhale.")
        let decoded = try JSONDecoder().decode(TaggedSentence.self, from: JSONEncoder().encode(tagged))
        #expect(decoded == tagged)
        #expect(PartOfSpeech.allCases.count == 17)
        #expect(PartOfSpeech.noun.rawValue == "NOUN")
    }
}

// MARK: - The tokenizer

@Suite struct TokenizerTests {
    let tokenizer = Tokenizer()

    @Test(arguments: [
        ("don't", ["do", "n't"]),
        ("I'm here.", ["I", "'m", "here", "."]),
        ("the cow's tail", ["the", "cow", "'s", "tail"]),
        ("can't", ["ca", "n't"]),
        ("won't", ["wo", "n't"]),
        ("cannot", ["can", "not"]),
        ("they're we've she'll I'd", ["they", "'re", "we", "'ve", "she", "'ll", "I", "'d"]),
        ("Don’t", ["Do", "n’t"]),
        ("Mr. Smith met Dr. Jones.", ["Mr.", "Smith", "met", "Dr.", "Jones", "."]),
        ("the U.S. economy", ["the", "U.S.", "economy"]),
        ("I live in the U.S.", ["I", "live", "in", "the", "U.S."]),
        ("e.g., apples", ["e.g.", ",", "apples"]),
        ("John F. Kennedy", ["John", "F.", "Kennedy"]),
        ("So did I.", ["So", "did", "I", "."]),
        ("1,000,000 people", ["1,000,000", "people"]),
        ("$3.50 or 5%", ["$", "3.50", "or", "5", "%"]),
        ("at 10:30.", ["at", "10:30", "."]),
        ("(see below)", ["(", "see", "below", ")"]),
        ("\"Hello,\" she said.", ["\"", "Hello", ",", "\"", "she", "said", "."]),
        ("twenty-five", ["twenty", "-", "five"]),
        ("wait...", ["wait", "..."]),
        ("yes—no", ["yes", "—", "no"]),
        ("and/or", ["and", "/", "or"]),
        ("James' car", ["James", "'", "car"]),
        ("o'clock", ["o'clock"]),
        ("Hi😀", ["Hi", "😀"]),
        ("", []),
        ("   ", []),
    ])
    func splits(_ input: String, _ expected: [String]) {
        #expect(tokenizer.tokenize(input) == expected)
        #expect(tokenizer.tokenizeByCharacters(input) == expected)
    }

    /// The byte tables of the ASCII fast paths say what `Character` says.
    @Test func asciiTablesAgreeWithCharacter() {
        for value in 0..<128 {
            let character = Character(Unicode.Scalar(UInt8(value)))
            let flags = Tokenizer.asciiFlags[value]
            #expect((flags & Tokenizer.Unit.letter != 0) == character.isLetter, "\(value)")
            #expect((flags & Tokenizer.Unit.number != 0) == character.isNumber, "\(value)")
            #expect((flags & Tokenizer.Unit.upper != 0) == character.isUppercase, "\(value)")
            #expect((flags & Tokenizer.Unit.lower != 0) == character.isLowercase, "\(value)")
            #expect((flags & Tokenizer.Unit.space != 0) == character.isWhitespace, "\(value)")
            #expect(Slot.asciiPunctuation[value] == character.isPunctuation, "\(value)")
        }
    }

    /// The ASCII fast path and the character-by-character path agree.
    @Test func bytePathMatchesCharacterPath() throws {
        var texts = Corpus.sentences(count: 300, seed: 11) + Corpus.articleSentences
        texts += try GoldSample.load().map(\.text)
        texts += ["  a\r\nb\tc  ", "x--y", "U.S.A.", "e.g", "'s", "rock'n'roll", "5-6 a-b 7/8 a/7"]
        for text in texts {
            #expect(tokenizer.tokenize(text) == tokenizer.tokenizeByCharacters(text), "\(text)")
        }
    }
}

// MARK: - The generated corpus

@Suite struct CorpusTests {
    @Test func generatorIsDeterministicAndSeedDependent() {
        let first = Corpus.sentences(count: 1000)
        let again = Corpus.sentences(count: 1000)
        let other = Corpus.sentences(count: 1000, seed: 7)
        #expect(first.count == 1000)
        #expect(first == again)
        #expect(first == Corpus.sentences(count: 1000, seed: 42))
        #expect(first != other)
        #expect(Corpus.sentences(count: 0).isEmpty)
        #expect(Array(Corpus.sentences(count: 1000).prefix(10)) == Corpus.sentences(count: 10))
    }

    @Test func everySentenceHas8To25Tokens() {
        let tokenizer = Tokenizer()
        for sentence in Corpus.sentences(count: 1000) {
            let count = tokenizer.tokenize(sentence).count
            #expect((8...25).contains(count), "\(count) tokens: \(sentence)")
        }
    }

    @Test func sentencesAreVaried() {
        let sentences = Corpus.sentences(count: 1000)
        #expect(Set(sentences).count > 950)
        #expect(sentences.contains { $0.hasSuffix("?") })
        #expect(sentences.contains { $0.contains("n't") })
        #expect(sentences.contains { $0.contains("Mr.") || $0.contains("Dr.") })
        #expect(sentences.contains { $0.contains(where: \.isNumber) })
        #expect(sentences.allSatisfy { $0.first?.isUppercase == true })
    }
}

// MARK: - Totality

@Suite struct TaggerTotalityTests {
    let tagger = Tagger()

    @Test func everyGeneratedTokenGetsATag() {
        for sentence in Corpus.sentences(count: 1000) {
            let tagged = tagger.tag(sentence)
            #expect(tagged.tokens.count == tagged.tags.count)
            #expect(!tagged.tokens.isEmpty)
            #expect(tagged.tokens == Tokenizer().tokenize(sentence))
        }
    }

    @Test(arguments: [
        "", " ", "...", "?!", "\"\"", "—", "😀", "👍🏽 🎉", "a", "I", "Antidisestablishmentarianism",
        "1,000,000", "e.g.", "U.S.", "etc.", "$", "%", "'s", "n't", "12:30", "3rd", "-5", "#1",
        "C'est la vie!", "ÉCOLE", "naïve café", "HELLO WORLD", "   spaced   out   ",
        "Tab\tand\nnewline", "to", "that", "have", "do", "'", "O'Neill's", "rock'n'roll",
    ])
    func oddInputsAreTaggedTotally(_ input: String) {
        let tagged = tagger.tag(input)
        #expect(tagged.sentence == input)
        #expect(tagged.tokens.count == tagged.tags.count)
        #expect(tagged.tokens == Tokenizer().tokenize(input))
        #expect(tagged.tokens.joined() == String(input.filter { !$0.isWhitespace }))
    }

    @Test func veryLongInputsAreTaggedTotally() {
        let longWord = String(repeating: "x", count: 10_000)
        let tagged = tagger.tag(longWord)
        #expect(tagged.tokens == [longWord])
        #expect(tagged.tags.count == 1)
        let longSentence = String(repeating: "buffalo ", count: 2_000) + "."
        let many = tagger.tag(longSentence)
        #expect(many.tokens.count == 2_001)
        #expect(many.tags.count == 2_001)
        let glued = String(repeating: "buffalo", count: 500) + "!"
        #expect(tagger.tag(glued).tokens.count == 2)
    }

    @Test func oddInputsGetSensibleTags() {
        #expect(tagger.tag("").tokens.isEmpty)
        #expect(tagger.tag("1,000,000").tags == [.numeral])
        #expect(tagger.tag("U.S.").tags == [.properNoun])
        #expect(tagger.tag("...").tags == [.punctuation])
        #expect(tagger.tag("?!").tags == [.punctuation, .punctuation])
        #expect(tagger.tag("😀").tags == [.symbol])
    }

    @Test func taggingIsPureAndDeterministic() {
        let sentences = Corpus.sentences(count: 200, seed: 3)
        let once = sentences.map { tagger.tag($0) }
        let twice = sentences.map { Tagger().tag($0) }
        #expect(once == twice)
    }
}
