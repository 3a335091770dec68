// WorkFunctionHandler: the worker side of a ProcessPool's work function — one task frame's
// payload in, one reply payload out.
//
//   task frame ─▶ decode Input ─▶ work(input) ─▶ encode Output ─▶ `result` payload
//   taskBatch  ─▶ decode [Input] ─▶ work on each ─▶ encode [Output] ─▶ `resultBatch` payload
//   anything that throws ─▶ a `failure` payload: reason byte + message
//
// It runs only in a worker (WorkerLoop calls `handle` for each task frame); the pool's own
// process never decodes an input or runs the work.
import ForkPoolWire

struct WorkFunctionHandler<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    let work: @Sendable (Input) throws -> Output
    private let inputCodec = PayloadCodec<Input>()
    private let outputCodec = PayloadCodec<Output>()
    private let inputsCodec = PayloadCodec<[Input]>()
    private let outputsCodec = PayloadCodec<[Output]>()

    init(work: @escaping @Sendable (Input) throws -> Output) {
        self.work = work
    }

    /// A `TaskHandler`: answers one `task` or `taskBatch` frame.
    func handle(_ kind: FrameKind, _ payload: UnsafeRawBufferPointer, _ inputTail: [UInt8]?, _ reply: inout [UInt8],
                _ replyTail: inout [UInt8]) -> FrameKind {
        if kind == .taskBatch { return runBatch(payload, into: &reply) }
        switch runOne(payload, inputTail: inputTail, into: &reply, tail: &replyTail) {
        case .success:
            return .result
        case .failure(let failure):
            WorkerLoop.appendFailure(failure.reason, failure.message, to: &reply)
            return .failure
        }
    }

    /// Why one input failed inside the worker.
    private struct ItemFailure: Error {
        let reason: FailureReason
        let message: String
    }

    /// Worker side: decode, run, encode one input, appending the encoded output to `reply`
    /// (a large `[UInt8]` output: only its prefix, its bytes going to `tail` when there is
    /// one). On failure nothing is appended and the reason comes back instead.
    private func runOne(_ payload: UnsafeRawBufferPointer, inputTail: [UInt8]?, into reply: inout [UInt8],
                        tail: inout [UInt8]) -> Result<Void, ItemFailure> {
        let input: Input
        do {
            input = try inputCodec.decode(from: payload, tail: inputTail)
        } catch {
            return .failure(ItemFailure(reason: .inputDecodingFailed, message: "\(error)"))
        }
        let output: Output
        do {
            output = try work(input)
        } catch {
            return .failure(ItemFailure(reason: .workThrew, message: "\(error)"))
        }
        if let bytes = outputCodec.encodePrefix(ofLargeBytes: output, into: &reply) {
            tail = bytes
            return .success(())
        }
        let mark = reply.count
        do {
            try outputCodec.encode(output, into: &reply)
            return .success(())
        } catch {
            reply.removeSubrange(mark...)
            return .failure(ItemFailure(reason: .outputEncodingFailed, message: "\(error)"))
        }
    }

    /// Worker side: decodes a `taskBatch` frame's `[Input]`, runs the work on each and appends
    /// the encoded `[Output]` (a `resultBatch`). The first input that fails fails the chunk
    /// (a `failure` frame), as `map` reports it.
    private func runBatch(_ payload: UnsafeRawBufferPointer, into reply: inout [UInt8]) -> FrameKind {
        let inputs: [Input]
        do {
            inputs = try inputsCodec.decode(from: payload)
        } catch {
            WorkerLoop.appendFailure(.inputDecodingFailed, "\(error)", to: &reply)
            return .failure
        }
        var outputs: [Output] = []
        outputs.reserveCapacity(inputs.count)
        // A plain loop: `enumerated()` in this unspecialized generic code looked up tuple
        // metadata on every input (a profile showed it as a fifth of the worker's time).
        for input in inputs {
            do {
                outputs.append(try work(input))
            } catch {
                let position = inputs.count == 1 ? "" : " (input \(outputs.count + 1) of \(inputs.count) in the chunk)"
                WorkerLoop.appendFailure(.workThrew, "\(error)" + position, to: &reply)
                return .failure
            }
        }
        do {
            try outputsCodec.encode(outputs, into: &reply)
        } catch {
            WorkerLoop.appendFailure(.outputEncodingFailed, "\(error)", to: &reply)
            return .failure
        }
        return .resultBatch
    }
}
