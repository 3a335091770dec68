// WireDecodingContext: what one BinaryDecoder call shares across all the values it decodes,
// and the one place a nested value is decoded. The answers to "is this type FastWireCodable?"
// are cached here; a container keeps the decoder (and coding-path node) of its previous value
// in a WireDecoderSlot and hands the same objects to the next value when nothing kept them. So
// an element of an array of structs or enums costs no allocation and no runtime type lookup
// once the first of its kind is done; the work left is the value's own init(from:).

/// The decoder and path node a container used for its previous value, for the next.
internal struct WireDecoderSlot {
    var decoder: BinaryDecoder?
    var node: WireCodingPathNode?
}

internal final class WireDecodingContext {
    // Confined to one decode call on one thread, as WireEncodingBuffer is: no run-time
    // exclusivity checks.
    @exclusivity(unchecked) private var fastTypes = WireFastTypeCache()

    /// `T` as a FastWireCodable type, or nil; answered from a cache after the first time.
    @inline(__always)
    func fastType<T>(_: T.Type) -> (any FastWireCodable.Type)? {
        fastTypes.fastType(T.self)
    }

    /// Decodes the value at `key` in a container at `path` whose decoder is at `depth`: by the
    /// fast path when `T` allows, otherwise by `T`'s init(from:) one level deeper.
    func decodeValue<T: Decodable, K: CodingKey>(
        _: T.Type, cell: WireReader?, path: WireCodingPath, key: K, depth: Int, reusing slot: inout WireDecoderSlot
    ) throws -> T {
        if let fast = fastType(T.self) {
            guard cell != nil || fast.wireAcceptsNil else {
                throw BinaryDecoder.valueNotFound(T.self, path.appending(key))
            }
            return try fast.decodeWireValue(cell, as: T.self)
        }
        guard depth < BinaryDecoder.maximumDepth else {
            throw WireCodingError.nestingTooDeep(limit: BinaryDecoder.maximumDepth, path: path.appending(key).keys)
        }
        let decoder: BinaryDecoder
        if isKnownUniquelyReferenced(&slot.decoder), let previous = slot.decoder {
            // Nothing kept the previous value's decoder: it lets go of its path (so the path's
            // node can be reused too) and serves this value.
            previous.path = WireCodingPath()
            previous.cell = cell
            previous.depth = depth + 1
            decoder = previous
        } else {
            decoder = BinaryDecoder(cell: cell, path: WireCodingPath(), depth: depth + 1, context: self)
            slot.decoder = decoder
        }
        decoder.path = path.appending(key, reusing: &slot.node)
        return try T(from: decoder)
    }

    /// `T`'s init(from:) over the same cell and path one level deeper (a wrapper's single value).
    func decodeGeneral<T: Decodable>(_: T.Type, cell: WireReader?, path: WireCodingPath, depth: Int) throws -> T {
        guard depth < BinaryDecoder.maximumDepth else {
            throw WireCodingError.nestingTooDeep(limit: BinaryDecoder.maximumDepth, path: path.keys)
        }
        return try T(from: BinaryDecoder(cell: cell, path: path, depth: depth + 1, context: self))
    }
}
