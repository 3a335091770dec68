// JobFrame: how a job pool's task names its job on the wire — the payload of its task frame
// starts with the job's name, then carries the job's encoded value as any task's payload does.
//
//   [nameLength: u16 LE][name: UTF-8, nameLength bytes][the job, PayloadCodec-encoded]
//
// The name plus the encoded value is everything a worker needs to run the job: nothing in it
// depends on `fork`, so another transport could carry the same frames to workers elsewhere.
// A worker that cannot read the name, or does not know it, fails the task as a malformed frame.

package enum JobFrame {
    /// The longest name that fits the length field.
    package static let maximumNameBytes = Int(UInt16.max)

    /// The bytes a job's task payload starts with. The name must fit (JobRegistry checks).
    package static func prefix(naming name: String) -> [UInt8] {
        let utf8 = Array(name.utf8)
        precondition(utf8.count <= maximumNameBytes, "job name longer than \(maximumNameBytes) bytes")
        return [UInt8(utf8.count & 0xFF), UInt8(utf8.count >> 8)] + utf8
    }

    /// Splits a job task's payload into the job's name and the rest (the encoded job); nil
    /// when the payload is too short for the length it declares or the name is not UTF-8.
    package static func split(_ payload: UnsafeRawBufferPointer) -> (name: String, rest: UnsafeRawBufferPointer)? {
        guard payload.count >= 2 else { return nil }
        let length = Int(payload[0]) | Int(payload[1]) << 8
        guard payload.count >= 2 + length else { return nil }
        let nameBytes = UnsafeRawBufferPointer(rebasing: payload[2..<(2 + length)])
        guard let name = String(validating: nameBytes, as: UTF8.self) else { return nil }
        return (name, UnsafeRawBufferPointer(rebasing: payload[(2 + length)...]))
    }
}
