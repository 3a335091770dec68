// WireCodingError: the one error type the payload wire layer lets escape.
//
// Faults found while reading bytes (truncation, oversized lengths, bad varints, invalid UTF-8,
// wrong value sizes, trailing garbage) are created here with the payload offset at which they
// were noticed. EncodingError / DecodingError raised inside Codable implementations (the
// user's or the binary coder's own) are flattened into this type by the BinaryEncoder /
// BinaryDecoder entry points, keeping their description and coding path. So whoever reports a
// failed task — possibly in another process, as text — gets one readable, Sendable message.

internal struct WireCodingError: Error, CustomStringConvertible, Sendable {
    /// The complete human-readable explanation; it is the whole of the error's identity.
    let message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}

// MARK: - Faults in the bytes

extension WireCodingError {
    static func truncated(needed: Int, at offset: Int, remaining: Int) -> WireCodingError {
        WireCodingError("payload truncated: needed \(bytes(needed)) at offset \(offset), \(remaining) remain")
    }

    static func trailingBytes(_ count: Int, at offset: Int) -> WireCodingError {
        WireCodingError("payload has \(bytes(count)) of trailing garbage at offset \(offset), after the encoded value")
    }

    static func malformedVarint(at offset: Int) -> WireCodingError {
        WireCodingError("payload corrupt: the length prefix at offset \(offset) does not fit in an Int")
    }

    static func invalidUTF8(at offset: Int, length: Int) -> WireCodingError {
        WireCodingError("payload corrupt: the \(bytes(length)) of text at offset \(offset) are not valid UTF-8")
    }

    static func sizeMismatch(_ type: Any.Type, expected: Int, found: Int, at offset: Int) -> WireCodingError {
        WireCodingError("cannot decode \(type) at offset \(offset): expected \(bytes(expected)), found \(found)")
    }

    static func unexpectedNil(_ type: Any.Type, at offset: Int) -> WireCodingError {
        WireCodingError("cannot decode \(type) at offset \(offset): found nil")
    }

    static func invalidBool(_ byte: UInt8, at offset: Int) -> WireCodingError {
        WireCodingError("cannot decode Bool at offset \(offset): byte \(byte) is neither 0 nor 1")
    }

    static func outOfRange(_ type: Any.Type, value: some BinaryInteger, at offset: Int) -> WireCodingError {
        WireCodingError("cannot decode \(type) at offset \(offset): \(value) is out of range")
    }

    static func invalidArrayForm(_ form: UInt8, at offset: Int) -> WireCodingError {
        WireCodingError("payload corrupt: unknown array layout \(form) at offset \(offset)")
    }

    static func packedWidthMismatch(_ type: Any.Type, width: Int, at offset: Int) -> WireCodingError {
        WireCodingError("cannot decode [\(type)] at offset \(offset): its elements are stored \(bytes(width)) wide")
    }

    static func raggedPackedArray(width: Int, length: Int, at offset: Int) -> WireCodingError {
        WireCodingError("payload corrupt: \(bytes(length)) at offset \(offset) are not a whole number of \(width)-byte elements")
    }

    static func nestingTooDeep(limit: Int, path: [any CodingKey]) -> WireCodingError {
        WireCodingError("payload nested more than \(limit) levels deep at \(render(path)); refusing to recurse further")
    }

    static func containerUsedAfterItsValue(path: [any CodingKey]) -> WireCodingError {
        WireCodingError("cannot encode at \(render(path)): the container was used after the value that owned it finished encoding")
    }

    private static func bytes(_ count: Int) -> String {
        count == 1 ? "1 byte" : "\(count) bytes"
    }
}

// MARK: - Errors from Codable implementations

extension WireCodingError {
    /// Keeps what the EncodingError says, including where in the value it happened.
    init(_ error: EncodingError, encoding type: Any.Type) {
        switch error {
        case .invalidValue(let value, let context):
            self.init("cannot encode \(type): invalid value of type \(Swift.type(of: value))"
                + Self.explain(context.codingPath, context.debugDescription, context.underlyingError))
        @unknown default:
            self.init("cannot encode \(type): \(error)")
        }
    }

    /// Keeps what the DecodingError says, including where in the value it happened.
    init(_ error: DecodingError, decoding type: Any.Type) {
        let what: String
        let context: DecodingError.Context
        switch error {
        case .typeMismatch(let expected, let errorContext):
            what = "type mismatch, expected \(expected)"
            context = errorContext
        case .valueNotFound(let expected, let errorContext):
            what = "missing value of type \(expected)"
            context = errorContext
        case .keyNotFound(let key, let errorContext):
            what = "key '\(key.stringValue)' not found"
            context = errorContext
        case .dataCorrupted(let errorContext):
            what = "data corrupted"
            context = errorContext
        @unknown default:
            self.init("cannot decode \(type): \(error)")
            return
        }
        self.init("cannot decode \(type): \(what)"
            + Self.explain(context.codingPath, context.debugDescription, context.underlyingError))
    }

    private static func explain(_ path: [any CodingKey], _ debugDescription: String, _ underlying: (any Error)?) -> String {
        var text = " at \(render(path))"
        if !debugDescription.isEmpty { text += ": \(debugDescription)" }
        if let underlying { text += " (underlying error: \(underlying))" }
        return text
    }

    /// `items[2].name`, the way a reader would write the path in Swift.
    static func render(_ path: [any CodingKey]) -> String {
        guard !path.isEmpty else { return "the top level" }
        var text = ""
        for key in path {
            if let index = key.intValue, key.stringValue == "Index \(index)" {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }
}
