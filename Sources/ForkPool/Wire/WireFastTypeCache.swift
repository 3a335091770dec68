// WireFastTypeCache: which types met during one encode or decode call are FastWireCodable.
// The binary coder asks for every nested value; asked of the runtime, each answer is a
// conformance-cache lookup (profiled at a tenth of the codec's time on an array of enums), so
// the last few answers are kept here and found by comparing type identities.

internal struct WireFastTypeCache {
    private static let capacity = 8

    private var types: [ObjectIdentifier] = []
    private var answers: [(any FastWireCodable.Type)?] = []
    private var nextVictim = 0

    /// `T` as a FastWireCodable type, or nil when it is not one.
    mutating func fastType<T>(_: T.Type) -> (any FastWireCodable.Type)? {
        let id = ObjectIdentifier(T.self)
        for index in types.indices where types[index] == id {
            return answers[index]
        }
        let answer = T.self as? any FastWireCodable.Type
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
