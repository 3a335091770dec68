// PendingTask: one task as the dispatcher sees it — a ready-to-send frame and a way to
// complete the caller's future. The dispatcher deals only in bytes; the typed subclass made
// by ProcessPool decodes the output and completes the typed Future.
import Glibc

class PendingTask: @unchecked Sendable {
    let id: UInt64
    /// The whole frame, header + encoded input; released once sent.
    var frame: [UInt8]

    /// The caller's deadline (monotonic ns) from `submit(_:timeout:)`, if any.
    var deadline: UInt64?
    /// How many times the task was re-run after its worker died (``CrashPolicy/retry(times:)``).
    var retries = 0

    init(id: UInt64, frame: [UInt8]) {
        self.id = id
        self.frame = frame
    }

    /// Fails the task only if it has not started; true if it did.
    func failIfQueued(_ error: ForkPoolError) -> Bool { fatalError("subclass must override") }

    /// The frame kind a successful reply has.
    var replyKind: FrameKind { .result }

    /// Moves the task to running; false if it was cancelled while queued.
    func start() -> Bool { fatalError("subclass must override") }
    /// Completes with the worker's encoded output.
    func finish(output: UnsafeRawBufferPointer, worker: pid_t) { fatalError("subclass must override") }
    /// Completes with an error.
    func fail(_ error: ForkPoolError) { fatalError("subclass must override") }
}

/// The typed task ProcessPool enqueues.
final class TypedPendingTask<Output: Codable & Sendable>: PendingTask, @unchecked Sendable {
    let future: Future<Output>
    let codec: PayloadCodec<Output>

    init(id: UInt64, frame: [UInt8], codec: PayloadCodec<Output>, stopRunning: (@Sendable () -> Void)? = nil) {
        self.future = Future(taskID: id, stopRunning: stopRunning)
        self.codec = codec
        super.init(id: id, frame: frame)
    }

    override func start() -> Bool { future.markRunning() }

    override func finish(output: UnsafeRawBufferPointer, worker: pid_t) {
        do {
            future.complete(.success(try codec.decode(from: output)))
        } catch {
            future.complete(.failure(ForkPoolError(
                .decodingFailed, "could not decode the output of task \(id) from worker process \(worker): \(error)",
                taskID: id, processID: worker)))
        }
    }

    override func fail(_ error: ForkPoolError) { future.complete(.failure(error)) }

    override func failIfQueued(_ error: ForkPoolError) -> Bool { future.complete(.failure(error), onlyIfQueued: true) }
}

/// Several inputs sent as one `taskBatch` frame; each keeps its own Future, and each reply
/// item completes its own.
final class BatchPendingTask<Output: Codable & Sendable>: PendingTask, @unchecked Sendable {
    let futures: [Future<Output>]
    let codec: PayloadCodec<Output>

    init(id: UInt64, frame: [UInt8], futures: [Future<Output>], codec: PayloadCodec<Output>) {
        self.futures = futures
        self.codec = codec
        super.init(id: id, frame: frame)
    }

    override var replyKind: FrameKind { .resultBatch }

    /// Runs unless every item was cancelled; cancelled items' results are dropped.
    override func start() -> Bool {
        var anyRunning = false
        for future in futures where future.markRunning() { anyRunning = true }
        return anyRunning
    }

    override func finish(output: UnsafeRawBufferPointer, worker: pid_t) {
        var offset = 0
        for future in futures {
            guard output.count - offset >= 5 else {
                future.complete(.failure(ForkPoolError(.malformedFrame, "worker process \(worker) sent too few batch replies",
                                                       taskID: future.taskID, processID: worker)))
                continue
            }
            let status = output[offset]
            let length = Int(UInt32(littleEndian: output.loadUnaligned(fromByteOffset: offset + 1, as: UInt32.self)))
            offset += 5
            guard length <= output.count - offset else {
                offset = output.count
                future.complete(.failure(ForkPoolError(.malformedFrame, "worker process \(worker) sent a truncated batch reply",
                                                       taskID: future.taskID, processID: worker)))
                continue
            }
            let item = UnsafeRawBufferPointer(rebasing: output[offset..<offset + length])
            offset += length
            if status == 0 {
                do {
                    future.complete(.success(try codec.decode(from: item)))
                } catch {
                    future.complete(.failure(ForkPoolError(
                        .decodingFailed, "could not decode the output of task \(future.taskID) from worker process \(worker): \(error)",
                        taskID: future.taskID, processID: worker)))
                }
            } else {
                future.complete(.failure(itemFailure(status: status, message: item, task: future.taskID, worker: worker)))
            }
        }
    }

    override func fail(_ error: ForkPoolError) {
        for future in futures {
            var failure = error
            failure.taskID = future.taskID
            future.complete(.failure(failure))
        }
    }

    override func failIfQueued(_ error: ForkPoolError) -> Bool {
        var any = false
        for future in futures where future.complete(.failure(error), onlyIfQueued: true) { any = true }
        return any
    }
}

/// The error for a failed item: a FailureReason byte and the worker's UTF-8 message.
func itemFailure(status: UInt8, message: UnsafeRawBufferPointer, task: UInt64, worker: pid_t) -> ForkPoolError {
    guard let reason = FailureReason(rawValue: status) else {
        return ForkPoolError(.malformedFrame, "worker process \(worker) sent an unknown failure reason \(status)",
                             taskID: task, processID: worker)
    }
    let text = String(decoding: message, as: UTF8.self)
    let what = switch reason {
    case .workThrew: "task \(task) threw in worker process \(worker): \(text)"
    case .inputDecodingFailed: "worker process \(worker) could not decode the input of task \(task): \(text)"
    case .outputEncodingFailed: "worker process \(worker) could not encode the output of task \(task): \(text)"
    case .outputTooLarge: "worker process \(worker) could not send the output of task \(task): \(text)"
    }
    return ForkPoolError(reason.code, what, taskID: task, processID: worker)
}
