// WireTypeCache: what the binary coder needs to know about each type it meets during one
// encode or decode call — whether it is FastWireCodable, whether it is an Array the coder
// handles itself (WireArrayCoding.swift), and whether it is an enum coded as its raw value
// (WireRawEnumCoding.swift). The coder asks for every nested value; asked of the
// runtime, each answer is a conformance-cache lookup, so the last few answers are kept here,
// found by type identity.

/// The answers for one type.
internal struct WireTypeAnswers {
    let fast: (any FastWireCodable.Type)?
    let encodableArray: (any WireEncodableArray.Type)?
    let decodableArray: (any WireDecodableArray.Type)?
    /// Tables are never freed (WireRawEnumCoding keeps them for the process's life), so the
    /// answers hold them without reference counting: copying answers is then free.
    unowned(unsafe) let rawEnum: WireRawEnumCoding?

    /// `rawEnums: false` leaves `T` to its own Codable even if it is a raw-value enum.
    init<T>(_: T.Type, rawEnums: Bool = true) {
        fast = T.self as? any FastWireCodable.Type
        // A FastWireCodable array never reaches the array paths; no need to ask.
        encodableArray = fast == nil ? T.self as? any WireEncodableArray.Type : nil
        decodableArray = fast == nil ? T.self as? any WireDecodableArray.Type : nil
        rawEnum = rawEnums && fast == nil && encodableArray == nil && decodableArray == nil
            ? WireRawEnumCoding.coding(for: T.self) : nil
    }
}

internal struct WireTypeCache {
    private static let capacity = 8

    private var types: [ObjectIdentifier] = []
    private var answers: [WireTypeAnswers] = []
    private var nextVictim = 0
    /// Whether raw-value enums may take their tables (WireRawEnumCoding.swift) in this call.
    private var rawEnumsAllowed = true

    /// Codes every type through its own encode(to:) / init(from:) in this call: how
    /// WireRawEnumCoding checks a type without asking for (and so recursing into) any table.
    mutating func useOwnConformances() {
        rawEnumsAllowed = false
    }

    mutating func answers<T>(for _: T.Type) -> WireTypeAnswers {
        let id = ObjectIdentifier(T.self)
        for index in types.indices where types[index] == id {
            return answers[index]
        }
        let answer = WireTypeAnswers(T.self, rawEnums: rawEnumsAllowed)
        if types.count < Self.capacity {
            types.append(id)
            answers.append(answer)
        } else {
            types[nextVictim] = id
            answers[nextVictim] = answer
            nextVictim = (nextVictim + 1) % Self.capacity
        }
        return answer
    }
}
