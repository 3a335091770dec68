// WireArrayCoding: arrays of values that are not FastWireCodable (structs, enums, classes),
// coded by the binary coder itself instead of through Array's own Codable conformance.
//
// The bytes and the errors are exactly those of Array's conformance (an unkeyed container,
// one element after another), without the existential container and per-element dispatch in
// between; each element still goes through its own encode(to:) / init(from:).

/// An array whose elements are coded through Encodable (Array, whatever its element).
internal protocol WireEncodableArray {
    /// Writes the array's cell content (form byte, then a cell per element) into the cell
    /// `buffer` has open, at `path`.
    static func encodeWireArray<V>(_ value: V, to buffer: WireEncodingBuffer, path: WireCodingPath) throws
}

/// An array whose elements are decoded through Decodable (Array, whatever its element).
internal protocol WireDecodableArray {
    /// Decodes the array from `cell` as a decoder at `depth` and `path` would.
    static func decodeWireArray<V>(_ cell: WireReader?, path: WireCodingPath, depth: Int,
                                   context: WireDecodingContext, as type: V.Type) throws -> V
}

extension Array: WireEncodableArray where Element: Encodable {
    static func encodeWireArray<V>(_ value: V, to buffer: WireEncodingBuffer, path: WireCodingPath) throws {
        let elements = unsafeBitCast(value, to: [Element].self)
        // What WireUnkeyedEncodingContainer writes: the form byte when the container is made,
        // then each element as a cell (packing is only for FastWireCodable elements).
        buffer.append(WireLayout.cellsForm)
        var slot = WireEncoderSlot()
        if let rawEnum = buffer.answers(for: Element.self).rawEnum {
            // Enums coded as their raw value (WireRawEnumCoding.swift): a table lookup each.
            for index in elements.indices where !rawEnum.appendCell(of: elements[index], to: buffer) {
                try buffer.encodeElement(elements[index], in: path, index: index, reusing: &slot)
            }
            return
        }
        for index in elements.indices {
            try buffer.encodeElement(elements[index], in: path, index: index, reusing: &slot)
        }
    }
}

extension Array: WireDecodableArray where Element: Decodable {
    static func decodeWireArray<V>(_ cell: WireReader?, path: WireCodingPath, depth: Int,
                                   context: WireDecodingContext, as _: V.Type) throws -> V {
        unsafeBitCast(try decodeWireElements(cell, path: path, depth: depth, context: context), to: V.self)
    }

    private static func decodeWireElements(_ cell: WireReader?, path: WireCodingPath, depth: Int,
                                           context: WireDecodingContext) throws -> [Element] {
        guard let content = cell else {
            throw DecodingError.valueNotFound((any UnkeyedDecodingContainer).self, DecodingError.Context(
                codingPath: path.keys, debugDescription: "Expected a container but found nil."))
        }
        // As WireUnkeyedDecodingContainer: the elements are counted (checking every cell's
        // framing) before any is decoded, so the array is allocated once, never larger than
        // the bytes present allow.
        var (reader, width, count) = try WireArrayBody.elements(of: content)
        if count == 0 { return [] }
        var slot = WireDecoderSlot()
        let answers = context.answers(for: Element.self)
        // (As decodeElement: not past the depth limit.)
        let rawEnum = width == 0 && depth < BinaryDecoder.maximumDepth ? answers.rawEnum : nil
        return try [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            while initialized < count {
                if let rawEnum {
                    // Enums coded as their raw value: a table lookup each (the general path
                    // below for a cell that is no case's).
                    let start = reader.position
                    if case let found = WireDecodingContext.caseIndex(rawEnum, try reader.readCell()), found >= 0 {
                        (buffer.baseAddress! + initialized).initialize(to: rawEnum.value(at: found, as: Element.self))
                        initialized += 1
                        continue
                    }
                    reader.position = start
                }
                let element: WireReader?
                if width > 0 {
                    element = WireReader(base: reader.base, position: reader.position, end: reader.position + width)
                    reader.position += width
                } else {
                    element = try reader.readCell()
                }
                (buffer.baseAddress! + initialized).initialize(to: try context.decodeElement(
                    Element.self, answers, cell: element, path: path, index: initialized, depth: depth, reusing: &slot))
                initialized += 1
            }
        }
    }
}
