// TaskCompletion: the caller's side of a task, which a pool makes for it — what a reply is,
// and how it completes the caller's future: OutputCompletion (one input's typed Future) and
// ChunkCompletion (a `map` chunk, decoded on the caller's thread); and the errors a worker's
// failure frame or an unexpected frame make.
//
//   reply frame ─▶ PendingTask.complete ─▶ finish(output:) ─▶ decode ─▶ Future.complete
//   failure frame ─▶ taskFailure ─▶ fail(error) ─▶ Future.complete
import ForkPoolWire
import Glibc

/// The caller's side of a task, which a pool makes for it: what a reply is, and how it
/// completes the caller's future.
protocol TaskCompletion: AnyObject, Sendable {
    /// The frame kind a successful reply has.
    var replyKind: FrameKind { get }
    /// The job a job pool's task runs (named on its errors); nil in a ProcessPool.
    var jobName: String? { get }
    /// Moves the task to running; false if it was cancelled while queued.
    func start() -> Bool
    /// Gives the caller's future its hook into the pool (the task).
    func attach(_ hook: any TaskHook)
    /// Takes the hook back from a future that will never be completed (its task was refused).
    func detach()
    /// Whether the caller's future has completed (a queued task cancelled, for one).
    var hasCompleted: Bool { get }
    /// Wakes a thread blocked on the future to read its reply from the lane it was sent on.
    func wakeToReadReply()
    /// Holds back waking the threads asleep on the future when it completes, until
    /// `releaseWakes` (a caller serving the queue wakes them as it leaves its lane).
    func holdWakes()
    func releaseWakes()
    /// Completes with the worker's encoded output (and, for a split frame received directly,
    /// its raw tail), first telling `recordOutcome` whether the outcome is a failure (its code) or a
    /// success (nil), so the pool counts it before anyone waiting wakes.
    func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, recordOutcome: (ForkPoolError.Code?) -> Void)
    /// Completes with an error.
    func fail(_ error: ForkPoolError)
    /// Fails only if the task has not started; true if it did.
    func failIfQueued(_ error: ForkPoolError) -> Bool
}

/// The error for a frame a worker should not have sent (not the reply its task awaits).
func unexpectedFrame(_ header: FrameHeader, worker: pid_t) -> ForkPoolError {
    ForkPoolError(.malformedFrame, "worker process \(worker) sent an unexpected \(header.kind) frame for task \(header.taskID)",
                  processID: worker)
}

/// A completion whose caller's side is one Future: everything but the reply's decoding goes
/// straight to it.
protocol FutureCompletion: TaskCompletion {
    associatedtype Value: Sendable
    var future: Future<Value> { get }
}

extension FutureCompletion {
    var hasCompleted: Bool { future.hasCompleted }
    func attach(_ hook: any TaskHook) { future.attach(hook) }
    func detach() { future.detach() }
    func wakeToReadReply() { future.wakeToReadReply() }
    func holdWakes() { future.holdWakes() }
    func releaseWakes() { future.releaseWakes() }
    func start() -> Bool { future.markRunning() }
    func fail(_ error: ForkPoolError) { future.complete(.failure(error)) }
    func failIfQueued(_ error: ForkPoolError) -> Bool { future.complete(.failure(error), onlyIfQueued: true) }
}

/// One input's future, as ProcessPool makes it: decodes the output and completes the typed
/// Future. Without a codec (an encoded job's, `Output == [UInt8]`) the future gets the reply's
/// bytes as they came.
final class OutputCompletion<Output: Codable & Sendable>: FutureCompletion, @unchecked Sendable {
    let id: UInt64
    let future: Future<Output>
    let codec: PayloadCodec<Output>?
    let jobName: String?

    init(id: UInt64, codec: PayloadCodec<Output>?, jobName: String? = nil) {
        self.id = id
        self.jobName = jobName
        self.future = Future(taskID: id)
        precondition(codec != nil || Output.self == [UInt8].self, "only [UInt8] outputs may go undecoded")
        self.codec = codec
    }

    var replyKind: FrameKind { .result }

    func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, recordOutcome: (ForkPoolError.Code?) -> Void) {
        let result: Result<Output, ForkPoolError>
        do {
            if let codec {
                result = .success(try codec.decode(from: output, tail: tail))
            } else {
                result = .success(unsafeBitCast(Array(output) + (tail ?? []), to: Output.self))
            }
        } catch {
            var failure = ForkPoolError(.decodingFailed, "could not decode the output of task \(id) from worker process \(worker): \(error)",
                                        taskID: id, processID: worker)
            failure.jobName = jobName
            result = .failure(failure)
        }
        if case .failure(let error) = result { recordOutcome(error.code) } else { recordOutcome(nil) }
        future.complete(result)
    }

}

/// Several inputs sent as one `taskBatch` frame (`map`): the encoded `[Input]`, answered by a
/// `resultBatch` holding the encoded `[Output]`, or by a `failure` frame for the first input
/// that failed (what `map` throws). The dispatcher only copies the reply's bytes into the
/// chunk's future; the caller waiting in `map` decodes them with ``outputs()``, so decoding
/// runs on the callers' threads in parallel with the dispatcher's I/O.
final class ChunkCompletion<Output: Codable & Sendable>: FutureCompletion, @unchecked Sendable {
    /// The reply: the `resultBatch` payload and the pid of the worker that sent it.
    struct Reply: Sendable {
        let payload: [UInt8]
        let worker: pid_t
    }

    let id: UInt64
    let future: Future<Reply>
    let count: Int
    let codec: PayloadCodec<[Output]>
    let jobName: String?

    init(id: UInt64, count: Int, codec: PayloadCodec<[Output]>, jobName: String? = nil) {
        self.id = id
        self.jobName = jobName
        self.future = Future(taskID: id, spinsWhileWaiting: false)
        self.count = count
        self.codec = codec
    }

    var replyKind: FrameKind { .resultBatch }

    func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, recordOutcome: (ForkPoolError.Code?) -> Void) {
        recordOutcome(nil)  // a failed chunk comes as a `failure` frame
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
        }.mapError { error in
            var named = error
            named.jobName = jobName
            return named
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
    case .unknownJob: "worker process \(worker) could not run task \(task): \(text)"
    }
    return ForkPoolError(reason.code, what, taskID: task, processID: worker)
}
