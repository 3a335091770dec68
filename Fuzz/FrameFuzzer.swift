// libFuzzer target: arbitrary bytes as they could arrive on a worker socket, in either
// direction, through the one FrameParser; every frame's payload then goes through the decoders
// the pools use (task inputs, a job pool's job-name field and job, results, batch replies,
// failure frames). Nothing may crash, hang or allocate past the frame limit; every rejection
// must be a thrown FrameError or WireCodingError. Built and run by `make fuzz`, compiled into
// the ForkPoolWire module alone (so it reaches internals and needs neither Glibc nor the engine).

struct FuzzRecord: Codable, Sendable {
    var id: Int
    var name: String
    var tags: [String]
    var score: Double?
    var nested: [String: [Int]]
}

/// The transform workload's shape: an array of raw-value enums beside strings, coded by the
/// binary coder's own array handling and reusable decoders; CaseIterable, so the enums take
/// the raw-value table (WireRawEnumCoding), with the general path for what matches no case.
enum FuzzTag: String, Codable, Sendable, CaseIterable {
    case noun = "NOUN", verb = "VERB", other = "X"
}

struct FuzzTagged: Codable, Sendable {
    var sentence: String
    var tokens: [String]
    var tags: [FuzzTag]
}

/// A job as a job pool sends it (its encoded value follows the job-name field).
struct FuzzJob: Codable, Sendable {
    var record: FuzzRecord
}

/// The decoders the pools use, made once.
private let recordCodec = PayloadCodec<FuzzRecord>()
private let jobCodec = PayloadCodec<FuzzJob>()
private let recordsCodec = PayloadCodec<[FuzzRecord]>()
private let stringsCodec = PayloadCodec<[String]>()
private let intCodec = PayloadCodec<Int>()
private let bytesCodec = PayloadCodec<[UInt8]>()
private let taggedCodec = PayloadCodec<[FuzzTagged]>()

@_cdecl("LLVMFuzzerTestOneInput")
public func forkPoolFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var reader = FrameParser(maximumPayloadBytes: 1 << 16, directTailBytes: 8)
    do {
        try reader.append(bytes)
        while let _ = try reader.nextFrame({ header, payload -> Bool in
            switch header.kind {
            case .task, .result:
                // A job pool's task: the job-name field, then the job's own decoder.
                if let (name, rest) = JobFrame.split(payload) {
                    precondition(name.utf8.count <= JobFrame.maximumNameBytes, "a job name past the length field")
                    _ = try? jobCodec.decode(from: rest)
                }
                _ = try? intCodec.decode(from: payload)
                _ = try? stringsCodec.decode(from: payload)
                _ = try? bytesCodec.decode(from: payload)
                _ = try? recordCodec.decode(from: payload)
                _ = try? taggedCodec.decode(from: payload)
            case .resultBatch:
                _ = try? recordsCodec.decode(from: payload)
                _ = try? taggedCodec.decode(from: payload)
            case .failure:
                if let first = payload.first, FailureReason(rawValue: first) != nil {
                    _ = String(decoding: UnsafeRawBufferPointer(rebasing: payload.dropFirst()), as: UTF8.self)
                }
            case .taskBatch, .shutdown, .ready, .initializerFailed:
                break
            }
            return true
        }) {}
    } catch {
        precondition(error.code == .malformedFrame || error.code == .frameTooLarge, "unexpected error \(error)")
    }
    precondition(reader.capacity <= (1 << 16) + FrameHeader.size + 64 * 1024, "the reader grew past the frame limit")
    return 0
}
