// libFuzzer target: arbitrary bytes as they could arrive on a worker socket, in either
// direction. They go through the one FrameReader, and every frame's payload through the
// decoders the pools use (task inputs, results, batch replies, failures), and every task
// payload through a job pool's worker side (the job-name field, then the job's decoder). Nothing may crash,
// hang or allocate past the frame limit; every rejection must be a thrown ForkPoolError.
// Built and run by `make fuzz` (compiled into the ForkPool module, so it reaches internals).
import Glibc

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

/// A job a job pool's worker runs: the fuzzer feeds task payloads to the worker side of a job
/// registry, job-name field included.
struct FuzzJob: PoolJob {
    var record: FuzzRecord
    func run() throws -> Int { record.id }
}

/// The worker side of a job pool (the job-name field, then the job's decoder).
private let jobRegistry = try! JobRegistry(jobs: [FuzzJob.self])

/// The decoders the pools use, made once.
private let recordCodec = PayloadCodec<FuzzRecord>()
private let recordsCodec = PayloadCodec<[FuzzRecord]>()
private let stringsCodec = PayloadCodec<[String]>()
private let intCodec = PayloadCodec<Int>()
private let bytesCodec = PayloadCodec<[UInt8]>()
private let taggedCodec = PayloadCodec<[FuzzTagged]>()

@_cdecl("LLVMFuzzerTestOneInput")
public func forkPoolFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var reader = FrameReader(maximumPayloadBytes: 1 << 16, directTailBytes: 8)
    do {
        try reader.append(bytes)
        while let _ = try reader.nextFrame({ header, payload -> Bool in
            switch header.kind {
            case .task, .result:
                var reply = FrameHeader.emptyFrame(), replyTail: [UInt8] = []
                let kind = jobRegistry.handle(.task, payload, nil, &reply, &replyTail)
                precondition(kind == .result || kind == .failure, "a job frame got a \(kind) reply")
                _ = try? intCodec.decode(from: payload)
                _ = try? stringsCodec.decode(from: payload)
                _ = try? bytesCodec.decode(from: payload)
                _ = try? recordCodec.decode(from: payload)
                _ = try? taggedCodec.decode(from: payload)
            case .resultBatch:
                let chunk = ChunkCompletion(id: header.taskID, count: 4, codec: recordsCodec)
                chunk.finish(output: payload, tail: nil, worker: 1) { _ in }
                precondition(chunk.future.isDone, "a batch reply left the chunk pending")
                _ = chunk.outputs()
            case .failure:
                if let first = payload.first {
                    _ = itemFailure(status: first, message: UnsafeRawBufferPointer(rebasing: payload.dropFirst()), task: 1, worker: 1)
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
