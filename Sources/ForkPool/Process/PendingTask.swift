// PendingTask: one task as the dispatcher sees it — a ready-to-send frame and a way to
// complete the caller's future. The dispatcher deals only in bytes; the typed subclass made
// by ProcessPool decodes the output and completes the typed Future.
import Glibc

class PendingTask: @unchecked Sendable {
    let id: UInt64
    /// The frame, header + encoded input; released once sent.
    var frame: [UInt8]
    /// A large `[UInt8]` input's own bytes, sent after `frame` (the header counts them) with
    /// no copy; empty for every other input.
    var tail: [UInt8]

    /// The caller's deadline (monotonic ns) from `submit(_:timeout:)`, if any.
    var deadline: UInt64?
    /// Set (under the dispatcher's lock) once the task left the queue: started, or dropped as
    /// cancelled. From then on the queue's deadline watch lets go of it.
    var leftQueue = false
    /// How many times the task was re-run after its worker died (``CrashPolicy/retry(times:)``).
    var retries = 0

    // Dispatcher bookkeeping for stats and metrics (monotonic ns).
    /// When the task was queued (or queued again for a retry).
    var enqueuedAt: UInt64 = 0
    /// When the task was handed to its worker; nil while it is not on one.
    var handedOutAt: UInt64?
    /// Counted as ended (or cancelled): a later failure of the same task is not counted again.
    var isSettled = false

    init(id: UInt64, frame: [UInt8], tail: [UInt8] = []) {
        self.id = id
        self.frame = frame
        self.tail = tail
    }

    /// Fails the task only if it has not started; true if it did.
    func failIfQueued(_ error: ForkPoolError) -> Bool { fatalError("subclass must override") }

    /// The frame kind a successful reply has.
    var replyKind: FrameKind { .result }

    /// Moves the task to running; false if it was cancelled while queued.
    func start() -> Bool { fatalError("subclass must override") }
    /// Completes with the worker's encoded output (and, for a split frame received directly,
    /// its raw tail), first telling `settle` whether the outcome is
    /// a failure (its code) or a success (nil), so the pool counts it before anyone waiting wakes.
    func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, settle: (ForkPoolError.Code?) -> Void) {
        fatalError("subclass must override")
    }
    /// Completes with an error.
    func fail(_ error: ForkPoolError) { fatalError("subclass must override") }
    /// The task went by lane: lets the first caller to wait read the reply itself.
    func bind(_ reply: LaneClaim) {}

    /// Completes the task from a frame its worker sent, if the frame is its reply — this task's
    /// id, and its reply kind or a failure — counting it through `settle` first. False when the
    /// frame is not its reply (a protocol violation for whoever reads it).
    func complete(from header: FrameHeader, payload: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t,
                  settle: (ForkPoolError.Code?) -> Void) -> Bool {
        guard header.taskID == id else { return false }
        if header.kind == replyKind {
            finish(output: payload, tail: tail, worker: worker, settle: settle)
        } else if header.kind == .failure {
            let failure = taskFailure(from: payload, task: id, worker: worker)
            settle(failure.code)
            fail(failure)
        } else {
            return false
        }
        return true
    }
}

/// The error for a frame a worker should not have sent (not the reply its task awaits).
func unexpectedFrame(_ header: FrameHeader, worker: pid_t) -> ForkPoolError {
    ForkPoolError(.malformedFrame, "worker process \(worker) sent an unexpected \(header.kind) frame for task \(header.taskID)",
                  processID: worker)
}

/// The typed task ProcessPool enqueues.
final class TypedPendingTask<Output: Codable & Sendable>: PendingTask, @unchecked Sendable {
    let future: Future<Output>
    let codec: PayloadCodec<Output>

    init(id: UInt64, frame: [UInt8], tail: [UInt8] = [], codec: PayloadCodec<Output>,
         stopRunning: (@Sendable () -> Void)? = nil, taskCancellationStopsRunning: Bool = false) {
        self.future = Future(taskID: id, stopRunning: stopRunning, taskCancellationStopsRunning: taskCancellationStopsRunning)
        self.codec = codec
        super.init(id: id, frame: frame, tail: tail)
    }

    override func start() -> Bool { future.markRunning() }

    override func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, settle: (ForkPoolError.Code?) -> Void) {
        let result: Result<Output, ForkPoolError>
        do {
            result = .success(try codec.decode(from: output, tail: tail))
        } catch {
            result = .failure(ForkPoolError(
                .decodingFailed, "could not decode the output of task \(id) from worker process \(worker): \(error)",
                taskID: id, processID: worker))
        }
        if case .failure(let error) = result { settle(error.code) } else { settle(nil) }
        future.complete(result)
    }

    override func fail(_ error: ForkPoolError) { future.complete(.failure(error)) }

    override func failIfQueued(_ error: ForkPoolError) -> Bool { future.complete(.failure(error), onlyIfQueued: true) }

    override func bind(_ reply: LaneClaim) { future.attach(reply) }
}

/// Several inputs sent as one `taskBatch` frame (`map`): the encoded `[Input]`, answered by a
/// `resultBatch` holding the encoded `[Output]`, or by a `failure` frame for the first input
/// that failed (what `map` throws). The dispatcher only copies the reply's bytes into the
/// chunk's future; the caller waiting in `map` decodes them with ``outputs()``, so decoding
/// runs on the callers' threads in parallel with the dispatcher's I/O.
final class ChunkTask<Output: Codable & Sendable>: PendingTask, @unchecked Sendable {
    /// The reply: the `resultBatch` payload and the pid of the worker that sent it.
    struct Reply: Sendable {
        let payload: [UInt8]
        let worker: pid_t
    }

    let future: Future<Reply>
    let count: Int
    let codec: PayloadCodec<[Output]>

    init(id: UInt64, frame: [UInt8], count: Int, codec: PayloadCodec<[Output]>, stopRunning: (@Sendable () -> Void)? = nil,
         taskCancellationStopsRunning: Bool = false) {
        self.future = Future(taskID: id, spinsWhileWaiting: false, stopRunning: stopRunning,
                             taskCancellationStopsRunning: taskCancellationStopsRunning)
        self.count = count
        self.codec = codec
        super.init(id: id, frame: frame)
    }

    override var replyKind: FrameKind { .resultBatch }

    override func start() -> Bool { future.markRunning() }

    override func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, settle: (ForkPoolError.Code?) -> Void) {
        settle(nil)  // a failed chunk comes as a `failure` frame
        future.complete(.success(Reply(payload: Array(output), worker: worker)))
    }

    /// Waits for the reply and decodes it.
    func outputs() -> Result<[Output], ForkPoolError> {
        decode(future.waitForResult())
    }

    /// Suspends until the reply arrives and decodes it. Cancellation is the caller's to
    /// relay (`map` cancels all its chunks at once).
    func outputs() async -> Result<[Output], ForkPoolError> {
        decode(await future.completion)
    }

    private func decode(_ reply: Result<Reply, ForkPoolError>) -> Result<[Output], ForkPoolError> {
        reply.flatMap { reply in
            reply.payload.withUnsafeBytes { outputs(from: $0, worker: reply.worker) }
        }
    }

    /// Decodes a `resultBatch` payload: exactly `count` outputs.
    func outputs(from payload: UnsafeRawBufferPointer, worker: pid_t) -> Result<[Output], ForkPoolError> {
        let outputs: [Output]
        do {
            outputs = try codec.decode(from: payload)
        } catch {
            return .failure(ForkPoolError(.decodingFailed,
                                          "could not decode the outputs of task \(id) from worker process \(worker): \(error)",
                                          taskID: id, processID: worker))
        }
        guard outputs.count == count else {
            return .failure(ForkPoolError(.malformedFrame, "worker process \(worker) sent \(outputs.count) outputs for \(count) inputs",
                                          taskID: id, processID: worker))
        }
        return .success(outputs)
    }

    override func fail(_ error: ForkPoolError) {
        var failure = error
        failure.taskID = id
        future.complete(.failure(failure))
    }

    override func failIfQueued(_ error: ForkPoolError) -> Bool { future.complete(.failure(error), onlyIfQueued: true) }
}

/// Decodes a failure frame's payload: reason byte + UTF-8 message.
func taskFailure(from payload: UnsafeRawBufferPointer, task: UInt64, worker: pid_t) -> ForkPoolError {
    guard let first = payload.first else {
        return ForkPoolError(.malformedFrame, "worker process \(worker) sent a failure frame without a reason",
                             taskID: task, processID: worker)
    }
    return itemFailure(status: first, message: UnsafeRawBufferPointer(rebasing: payload.dropFirst()), task: task, worker: worker)
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
