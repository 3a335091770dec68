// PendingTask: one task as the dispatcher sees it — a ready-to-send frame and a way to
// complete the caller's future. The dispatcher deals only in bytes; the typed subclass made
// by ProcessPool decodes the output and completes the typed Future.
import Glibc

class PendingTask: @unchecked Sendable {
    let id: UInt64
    /// The whole frame, header + encoded input; released once sent.
    var frame: [UInt8]

    init(id: UInt64, frame: [UInt8]) {
        self.id = id
        self.frame = frame
    }

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

    init(id: UInt64, frame: [UInt8], codec: PayloadCodec<Output>) {
        self.future = Future(taskID: id)
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
}
