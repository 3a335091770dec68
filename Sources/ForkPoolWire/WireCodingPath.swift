// WireCodingPath: where in a value the binary coder is — the keys from the top level down, as
// Codable's `codingPath` and the coder's error messages report them. It is a chain of nodes
// shared with the parent, turned into `[any CodingKey]` only when someone asks (an error, or a
// Codable implementation reading `codingPath`). A container that codes one value after another
// reuses the previous value's node once nothing holds it any more, so the elements of an array
// cost no allocation each.

/// The key used for array indices and for `super`, as JSONEncoder spells them. An index key
/// builds its text only if asked, which is only when an error is being reported, and the key
/// is small enough to sit in an existential without a heap box.
internal struct WireCodingKey: CodingKey {
    private enum Storage {
        case index(Int)
        case name(String)
    }

    private let storage: Storage

    init(stringValue: String) {
        storage = .name(stringValue)
    }

    init(intValue: Int) {
        storage = .index(intValue)
    }

    init(index: Int) {
        storage = .index(index)
    }

    var stringValue: String {
        switch storage {
        case .index(let index): "Index \(index)"
        case .name(let name): name
        }
    }

    var intValue: Int? {
        if case .index(let index) = storage { return index }
        return nil
    }

    static var `super`: WireCodingKey { WireCodingKey(stringValue: "super") }
}

/// One link of a coding path: a key, or an array index (kept as a plain Int, so that moving a
/// reused node on to the next element is one store). Its key changes only while no path but its
/// owner's reusable slot refers to it, so every path that can still be reached reads the keys it
/// was made with.
internal final class WireCodingPathNode {
    let parent: WireCodingPathNode?
    /// The key; nil when the link is `index`.
    var key: (any CodingKey)?
    var index: Int

    init(parent: WireCodingPathNode?, key: (any CodingKey)?, index: Int) {
        self.parent = parent
        self.key = key
        self.index = index
    }

    var codingKey: any CodingKey { key ?? WireCodingKey(index: index) }
}

internal struct WireCodingPath: Equatable {
    private var node: WireCodingPathNode?

    /// Whether the two are the same path object (not merely equal keys).
    static func == (lhs: WireCodingPath, rhs: WireCodingPath) -> Bool {
        lhs.node === rhs.node
    }

    init() {
        node = nil
    }

    private init(node: WireCodingPathNode?) {
        self.node = node
    }

    func appending(_ key: some CodingKey) -> WireCodingPath {
        WireCodingPath(node: WireCodingPathNode(parent: node, key: key, index: 0))
    }

    /// Like `appending(_:)`, for a container that codes one value after another: `slot` keeps
    /// the node of the previous value, which is reused when nothing else holds it any more
    /// (nothing kept that value's encoder, decoder or containers).
    func appending(_ key: some CodingKey, reusing slot: inout WireCodingPathNode?) -> WireCodingPath {
        if isKnownUniquelyReferenced(&slot), let node = slot, node.parent === self.node {
            node.key = key
            return WireCodingPath(node: node)
        }
        let node = WireCodingPathNode(parent: node, key: key, index: 0)
        slot = node
        return WireCodingPath(node: node)
    }

    /// The path of element `index` of the array at this path, reusing `slot` as above.
    func appending(index: Int, reusing slot: inout WireCodingPathNode?) -> WireCodingPath {
        if isKnownUniquelyReferenced(&slot), let node = slot, node.parent === self.node, node.key == nil {
            node.index = index
            return WireCodingPath(node: node)
        }
        let node = WireCodingPathNode(parent: node, key: nil, index: index)
        slot = node
        return WireCodingPath(node: node)
    }

    var keys: [any CodingKey] {
        var keys: [any CodingKey] = []
        var current = node
        while let link = current {
            keys.append(link.codingKey)
            current = link.parent
        }
        return keys.reversed()
    }
}
