// Lexicon: the tagger's word list — lowercased word to its most likely tag (and runner-up),
// built once from the source table below. Tagger+LexicalTagging.swift looks words up in it.

extension Tagger {
    /// Lowercased word → most likely tag (and runner-up), built once from `lexiconSource`.
    static let lexicon: [String: Lexeme] = {
        var table: [String: Lexeme] = [:]
        table.reserveCapacity(2_000)
        for line in lexiconSource.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let header = line[..<colon].split(separator: "|")
            guard let tag = PartOfSpeech(rawValue: String(header[0])) else { continue }
            let alt = header.count > 1 ? PartOfSpeech(rawValue: String(header[1])) : nil
            for word in line[line.index(after: colon)...].split(separator: " ") where table[String(word)] == nil {
                let word = String(word)
                table[word] = Lexeme(tag: tag, alt: alt, isParticiple: irregularParticiples.contains(word))
            }
        }
        for word in irregularParticiples where table[word] == nil {
            table[word] = Lexeme(tag: .verb, alt: nil, isParticiple: true)
        }
        return table
    }()

    /// Closed-class words settled by context (see `resolveSpecial`).
    static let specials: [String: Special] = {
        var table: [String: Special] = [:]
        func add(_ special: Special, _ words: String) {
            for word in words.split(separator: " ") { table[String(word)] = special }
        }
        add(.that, "that")
        add(.to, "to")
        add(.have, "have has had having 've")
        add(.doVerb, "do does did")
        add(.be, "am is are was were be been being 'm 're")
        add(.modal, "can could may might must shall should will would ought ca wo sha 'll 'd")
        add(.apostropheS, "'s")
        add(.no, "no")
        add(.there, "there")
        add(.wh, "what which whatever whichever")
        add(.demonstrative, "this these those")
        add(.temporal, "before after since until till")
        add(.as, "as")
        add(.like, "like")
        add(.so, "so")
        add(.degree, "more most less least")
        add(.much, "much")
        add(.well, "well")
        add(.only, "only")
        add(.right, "right")
        add(.adpOrAdv, "inside outside behind below above beneath underneath nearby")
        add(.home, "home")
        add(.while, "while")
        return table
    }()

    /// Tags of abbreviations with periods; any other ("U.S.", "J.") is PROPN.
    static let abbreviationTags: [String: PartOfSpeech] = [
        "e.g.": .adverb, "i.e.": .adverb, "etc.": .other, "vs.": .adposition, "a.m.": .noun,
        "p.m.": .noun, "no.": .noun, "approx.": .adverb, "fig.": .noun, "min.": .noun,
        "max.": .noun, "misc.": .adjective, "est.": .verb, "ft.": .noun, "oz.": .noun,
        "lb.": .noun, "lbs.": .noun, "dept.": .noun,
    ]

    static let titleWords: Set<String> = ["mr.", "mrs.", "ms.", "dr.", "prof.", "mr", "mrs", "ms", "dr"]
    /// Lexicon words that are names when capitalised inside a sentence ("in May").
    static let nameLike: Set<String> = ["may", "will", "bill", "mark", "grace", "hope", "joy", "pat", "sue"]
    static let subjectPronouns: Set<String> = ["i", "he", "she", "we", "they", "who"]
    /// Pronouns that are subjects unless they follow a verb or a preposition.
    static let indefinitePronouns: Set<String> = [
        "someone", "somebody", "something", "anyone", "anybody", "anything", "everyone",
        "everybody", "everything", "nobody", "nothing", "none", "whoever",
    ]
    static let objectPronouns: Set<String> = ["me", "him", "us", "them", "her", "it", "you"]
    static let possessives: Set<String> = ["my", "your", "his", "her", "its", "our", "their", "whose"]
    static let contractedAuxiliaries: Set<String> = ["'s", "'m", "'re", "'ve", "'ll", "'d"]

    static let irregularParticiples: Set<String> = {
        let words = """
            been gone seen done taken given known made found told said thought brought bought got \
            gotten left put kept held heard met run come become begun written eaten broken spoken \
            chosen driven fallen forgotten grown hidden ridden risen shaken stolen thrown worn won \
            lost paid sent spent built felt read set cut hit let shut sold stood sat slept taught \
            caught fought understood led meant learnt drawn flown swum sung drunk blown born \
            frozen woken beaten bitten forgiven hung dug fed fled shot spread struck stuck torn \
            lent bent lit laid sunk sprung swept wept wound
            """
        return Set(words.split(separator: " ").map(String.init))
    }()

    /// The lexicon: one line per tag (TAG or TAG|RUNNER-UP), then the words.
    /// The first entry for a word wins.
    static let lexiconSource = """
        DET: a an the every each either neither another some any all both half no this these those what which whatever whichever
        SCONJ: that because although though if unless whether while whereas lest whilst
        PART: not n't to
        PRON: i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself we us our ours ourselves they them their theirs themselves who whom whose whoever whomever someone somebody something anyone anybody anything everyone everybody everything nobody nothing none oneself 'em y'all
        AUX: am is are was were be been being 'm 're 's can could may might must shall should will would ought ca wo sha 'll 'd have has had having 've do does did
        ADP: of in on at by for with from into onto upon about above across after against along among amongst around before behind below beneath beside besides between beyond during except inside near off outside over past per since through throughout till toward towards under underneath until unlike up via within without down out than despite amid like aboard as underneath
        CCONJ: and or but nor &
        ADV: very too also just only never always often sometimes usually rarely seldom already still even ever again now then soon here there quite rather almost nearly really actually perhaps maybe probably certainly definitely indeed however therefore thus hence otherwise instead meanwhile anyway together apart away back forward forth ago later how when where why whenever wherever so more most less least enough once twice abroad downstairs upstairs overseas indoors outdoors everywhere somewhere anywhere nowhere alone anymore somehow furthermore moreover much well right not else yet nearby afterwards ahead aside around instead namely nonetheless nevertheless regardless likewise thereby whereby altogether sometime
        INTJ: oh ah aha wow hey hi hello yes yeah yep nope okay ok please thanks alas oops ouch hmm um uh bye goodbye hooray ugh huh whoa gosh
        NUM: zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion trillion
        ADJ: first third fourth fifth sixth seventh eighth ninth tenth last next many several few other such own same certain various little
        NOUN|ADJ: light
        ADJ|NOUN: second cold past public chief final human total average standard individual professional official general blue red green white black gold silver orange yellow brown grey gray pink purple square
        ADJ|ADV: early late fast hard long daily weekly monthly straight low high deep close pretty
        ADJ|VERB: open empty clean clear dry free slow warm cool calm wet
        ADJ: good new old great big different small large young important bad able dark stormy beautiful hot safe effective happy sad sorry tired busy easy difficult full quick strong weak rich poor dirty quiet loud bright heavy nice fine sure true real whole main major local wrong short tall wide huge tiny simple serious ready lucky angry hungry thirsty afraid alive asleep awake aware glad proud brave cheap expensive dear fresh friendly funny lazy lonely modern narrow perfect polite rare rough sharp shy silly smooth soft sour sweet thick thin tight ugly wild wise wonderful latest best better worse worst likely unlikely possible impossible necessary available popular recent current similar social national political economic international military medical legal natural certain clear common entire foreign private special strange terrible nervous excited interested worried surprised famous dangerous careful useful helpful hopeful hungry ill sick dead fair familiar flat fat gentle honest independent innocent kind mad mere noisy obvious odd plain proper pure quick round secret senior junior sudden tough traditional typical unique usual vast visible healthy wealthy crazy nasty lovely ugly elderly environmental
        VERB|NOUN: help need use look turn start show move play run walk love change support report cause hope fall drink dream cross press wait visit check answer reply touch kiss smile laugh cry talk sleep drive ride fly jump climb paint fight attack return design control stay shop watch call rest cook mix wish fear guess set hit cut drop fix kick pull push reach rise search sign step act travel vote worry promise download reset bark sound film cover share smell taste trade trust judge lie tread tear kill hurt want test doubt cook escape exercise finish charge deal count drop view struggle review
        NOUN|VERB: work plan end cost book train rain snow name place face hand head point question experience interest result study time water order form mind matter care park record process display figure fire dress ship land land mail email phone text file map paper picture house date rock tax profit bank light
        VERB|ADJ: broken frozen hidden lost stolen written spoken fallen forgotten known worn torn
        VERB: go come get make take see know think say tell give find become leave put mean keep let begin seem bring happen write sit stand lose pay meet include continue learn understand follow create speak allow add spend grow win offer remember consider appear buy serve die send expect build reach remain suggest raise pass sell require decide explain develop carry receive agree produce eat catch choose ask feel believe hear live hold forget arrive wonder teach throw enjoy accept prefer imagine inhale exhale examine discover announce arrest attend preheat notice describe mention prepare prove protect provide reduce refuse reveal save suffer survive treat hide bite shake swim sing steal shoot borrow lend marry belong deliver destroy manage measure obtain occur pretend realize realise recognize recommend relax rely remind remove repair repeat replace respond seek solve tie wake wear whisper achieve admit apply argue assume avoid bake beat bend blow breathe burn celebrate collect compare complain confirm connect contain convince cure declare defend deny depend deserve determine disappear discuss divide earn encourage enter establish exist expand explore fail fill fit fold gather greet hang hate identify ignore improve increase inform insist invite join knock lay lift lock melt obey operate organize pour pray print rescue retire rob roll rush scream select shout shut sink slide sneeze spell spill split spread squeeze stare stick sting stir strike succeed supply suppose surprise swallow sweep swing tear tend thank type understand unlock vanish wander warn wash waste weigh whistle wipe wrap yell try stop open close happen seem expect inhale went gone came got gotten made took taken saw seen knew known thought said told gave given found felt became left meant kept began begun heard ran brought wrote written sat stood lost paid met led spoke spoken grew grown won bought fell fallen sold sent built caught drew drawn chose chosen broke broken ate eaten drank drunk drove driven rode ridden flew flown swam sang sung taught fought forgot forgotten slept woke woken wore worn hid hidden shook thrown threw blew blown froze frozen spent lent stuck struck hung dug fed fled shot stole stolen sank sunk tore torn born laid lit understood done doing let saw found held stood sat read put led felt fell paid ran rose risen forgave forgiven bit bitten
        NOUN: time year people way day man thing woman life child world school state family student group country problem part week company system program number night home room mother area money story fact month lot eye job word business issue side kind house service friend father power hour game line member law car city community president team minute idea kid body information parent others level office door health person art war history party morning reason research girl guy moment air teacher force education cow cop road garden station chicken sofa cat dog river homework meeting drug quarter robbery street economy percent species frog oven degree instruction machine flour sugar egg bowl button version website umbrella ticket noon math brother sister son daughter husband wife baby boy bird fish horse table chair bed window floor wall kitchen bathroom town village island sea ocean sky sun moon star tree flower grass stone mountain hill lake forest field farm beach wind storm weather summer winter spring autumn season today yesterday tomorrow weekend afternoon evening price bill dollar euro pound cent computer screen letter message page song music movie photo camera radio television news article magazine newspaper food bread cheese meat fruit apple coffee tea milk juice wine beer dinner lunch breakfast meal restaurant hotel hospital doctor nurse police officer soldier army government minister king queen leader manager boss worker employee customer client scientist professor artist writer author driver pilot farmer lawyer engineer box bag hat coat shirt shoe glass bottle cup plate knife fork spoon gift card key gate bridge tower castle church museum library market store factory university college class lesson exam answer solution project task goal rule energy oil gas smoke heat colour color shape size amount rate value income budget industry firm deal contract agreement election campaign policy crisis peace battle weapon gun bomb death disease virus medicine pill treatment patient heart blood bone skin voice language sentence beginning middle top bottom front corner edge surface hole circle men women children people feet teeth mice geese police news physics mathematics economics series means dozen couple pair lunch kid idea problem chance choice friend neighbour neighbor island coast desert holiday vacation trip journey flight plane train bus taxi bicycle bike boat truck engine wheel ground land soil sand dust ice fire universe planet earth nature animal plant seed leaf root dream cop noon umbrella noodle tonight chapter essay novel poem poet speech band concert theatre theater ball match player coach fan score goal
        ADJ: wooden golden woollen woolen
        PROPN: monday tuesday wednesday thursday friday saturday sunday january february march april june july august september october november december christmas easter
        PROPN: alice bob maria james sarah david elena omar priya thomas grace lucas hannah kenji sofia daniel amara viktor john mary michael elizabeth william emma olivia liam noah ava sophia isabella mia charlotte amelia harper evelyn benjamin elijah oliver jacob ethan alexander henry jack samuel sam joseph matthew anna emily jessica jennifer linda susan karen nancy lisa robert richard charles christopher paul peter george edward tom tim ben harry jane lucy kate laura rachel sophie chloe ahmed mohammed fatima wei li chen yuki hiroshi raj ana carlos juan jose luis pablo pierre hans ivan olga dmitri katya london paris tokyo chicago lagos berlin lisbon boston toronto dublin madrid rome moscow beijing delhi mumbai sydney cairo nairobi texas california florida europe asia africa america england france germany china japan india canada australia mexico brazil spain italy russia
        """
}
