// PayloadTestSupport: a value through PayloadCodec and back, for the codec's own tests.
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool
@testable import ForkPoolWire

/// `value`'s payload, as a pool would send it.
func encodedPayload<T: Codable>(_ value: T) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try PayloadCodec<T>().encode(value, into: &bytes)
    return bytes
}

/// The `T` that `bytes` holds, as a pool would receive it.
func decodedPayload<T: Codable>(_: T.Type, from bytes: [UInt8]) throws -> T {
    try bytes.withUnsafeBytes { try PayloadCodec<T>().decode(from: $0) }
}
