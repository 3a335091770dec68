// WireDecodingContext: what one BinaryDecoder call shares across all the values it decodes,
// and the one place a nested value is decoded. The answers to "is this type FastWireCodable?"
// are cached here; a container keeps the decoder (and coding-path node) of its previous value
// in a WireDecoderSlot and hands the same objects to the next value when nothing kept them. So
// an element of an array of structs or enums costs no allocation and no runtime type lookup
// once the first of its kind is done; the work left is the value's own init(from:) — or, for
// an enum coded as its raw value, not even that: a table lookup (WireRawEnumCoding.swift).

/// The decoder and path node a container used for its previous value, for the next.
internal struct WireDecoderSlot {
    var decoder: BinaryDecoder?
    var node: WireCodingPathNode?
}

internal final class WireDecodingContext {
    // Confined to one decode call on one thread, as WireEncodingBuffer is: no run-time
    // exclusivity checks.
    @exclusivity(unchecked) private var types = WireTypeCache()

    /// Codes every type through its own conformance in this call (WireTypeCache).
    func useOwnConformances() {
        types.useOwnConformances()
    }

    /// `T` as a FastWireCodable type, or nil; answered from a cache after the first time.
    @inline(__always)
    func fastType<T>(_: T.Type) -> (any FastWireCodable.Type)? {
        types.answers(for: T.self).fast
    }

    /// `T`'s own init(from:) over `cell`, as a decoder at `depth` and `path` — or, for an
    /// Array, what that init(from:) does, done directly (WireArrayCoding.swift).
    func decodeAsValue<T: Decodable>(_: T.Type, cell: WireReader?, path: WireCodingPath, depth: Int) throws -> T {
        let answers = types.answers(for: T.self)
        if let array = answers.decodableArray {
            return try array.decodeWireArray(cell, path: path, depth: depth, context: self, as: T.self)
        }
        if let rawEnum = answers.rawEnum, case let found = Self.caseIndex(rawEnum, cell), found >= 0 {
            return rawEnum.value(at: found, as: T.self)
        }
        return try T(from: BinaryDecoder(cell: cell, path: path, depth: depth, context: self))
    }

    /// Decodes the value at `key` in a container at `path` whose decoder is at `depth`: by the
    /// fast path when `T` allows, otherwise by `T`'s init(from:) one level deeper.
    func decodeValue<T: Decodable, K: CodingKey>(
        _: T.Type, cell: WireReader?, path: WireCodingPath, key: K, depth: Int, reusing slot: inout WireDecoderSlot
    ) throws -> T {
        let answers = types.answers(for: T.self)
        if let fast = answers.fast {
            guard cell != nil || fast.wireAcceptsNil else {
                throw BinaryDecoder.valueNotFound(T.self, path.appending(key))
            }
            return try fast.decodeWireValue(cell, as: T.self)
        }
        guard depth < BinaryDecoder.maximumDepth else {
            throw WireCodingError.nestingTooDeep(limit: BinaryDecoder.maximumDepth, path: path.appending(key).keys)
        }
        if let rawEnum = answers.rawEnum, case let found = Self.caseIndex(rawEnum, cell), found >= 0 {
            return rawEnum.value(at: found, as: T.self)
        }
        let previous = releasePrevious(&slot)
        let valuePath = path.appending(key, reusing: &slot.node)
        if let array = answers.decodableArray {
            return try array.decodeWireArray(cell, path: valuePath, depth: depth + 1, context: self, as: T.self)
        }
        let decoder: BinaryDecoder
        if let previous {
            previous.cell = cell
            previous.path = valuePath
            previous.index = -1
            previous.depth = depth + 1
            decoder = previous
        } else {
            decoder = BinaryDecoder(cell: cell, path: valuePath, depth: depth + 1, context: self)
            slot.decoder = decoder
        }
        return try T(from: decoder)
    }

    /// Decodes element `index` of an array at `path` whose decoder is at `depth`, as
    /// `decodeValue` does.
    func decodeElement<T: Decodable>(
        _: T.Type, cell: WireReader?, path: WireCodingPath, index: Int, depth: Int, reusing slot: inout WireDecoderSlot
    ) throws -> T {
        try decodeElement(T.self, types.answers(for: T.self), cell: cell, path: path, index: index, depth: depth,
                          reusing: &slot)
    }

    /// What `T` is (from `answers(for:)`), asked once for a whole array.
    func answers<T>(for _: T.Type) -> WireTypeAnswers {
        types.answers(for: T.self)
    }

    /// `decodeElement`, `T`'s answers already asked.
    func decodeElement<T: Decodable>(
        _: T.Type, _ answers: WireTypeAnswers, cell: WireReader?, path: WireCodingPath, index: Int, depth: Int,
        reusing slot: inout WireDecoderSlot
    ) throws -> T {
        if let fast = answers.fast {
            guard cell != nil || fast.wireAcceptsNil else {
                throw BinaryDecoder.valueNotFound(T.self, path.appending(WireCodingKey(index: index)))
            }
            return try fast.decodeWireValue(cell, as: T.self)
        }
        guard depth < BinaryDecoder.maximumDepth else {
            throw WireCodingError.nestingTooDeep(limit: BinaryDecoder.maximumDepth,
                                                 path: path.appending(WireCodingKey(index: index)).keys)
        }
        if let rawEnum = answers.rawEnum, case let found = Self.caseIndex(rawEnum, cell), found >= 0 {
            return rawEnum.value(at: found, as: T.self)
        }
        if let array = answers.decodableArray {
            return try array.decodeWireArray(cell, path: path.appending(index: index, reusing: &slot.node),
                                             depth: depth + 1, context: self, as: T.self)
        }
        // The element's decoder holds its array's path and its index; the element's own path
        // is built only if it is needed (BinaryDecoder.valuePath).
        let decoder: BinaryDecoder
        if isKnownUniquelyReferenced(&slot.decoder), let previous = slot.decoder {
            previous.cell = cell
            if previous.path != path { previous.path = path }
            previous.index = index
            previous.depth = depth + 1
            decoder = previous
        } else {
            decoder = BinaryDecoder(cell: cell, path: path, depth: depth + 1, context: self)
            decoder.index = index
            slot.decoder = decoder
        }
        return try T(from: decoder)
    }

    /// The case of a raw-value enum whose bytes `cell` holds (WireRawEnumCoding.swift), or -1
    /// (nil, or no case's bytes: the type's own init(from:) decides).
    @inline(__always)
    static func caseIndex(_ rawEnum: WireRawEnumCoding, _ cell: WireReader?) -> Int {
        guard let cell else { return -1 }
        return rawEnum.caseIndex(ofContent: cell)
    }

    /// The slot's decoder if nothing else kept it, having let go of its path (so the path's
    /// node can be reused too); nil otherwise.
    @inline(__always)
    private func releasePrevious(_ slot: inout WireDecoderSlot) -> BinaryDecoder? {
        guard isKnownUniquelyReferenced(&slot.decoder), let previous = slot.decoder else { return nil }
        previous.path = WireCodingPath()
        return previous
    }

    /// `T`'s init(from:) over the same cell and path one level deeper (a wrapper's single value).
    func decodeGeneral<T: Decodable>(_: T.Type, cell: WireReader?, path: WireCodingPath, depth: Int) throws -> T {
        guard depth < BinaryDecoder.maximumDepth else {
            throw WireCodingError.nestingTooDeep(limit: BinaryDecoder.maximumDepth, path: path.keys)
        }
        return try decodeAsValue(T.self, cell: cell, path: path, depth: depth + 1)
    }
}
