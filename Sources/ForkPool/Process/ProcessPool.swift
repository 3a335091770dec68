// ProcessPool: the public face of the multi-process pool.
//
//   submit(input) ─ encode on the caller's thread ─▶ frame ─▶ Dispatcher queue
//        ▲                                                        │
//   Future<Output> ◀─ decode on the dispatcher thread ◀─ result frame ◀─ worker process
//
// The work function is captured at creation; the workers are forked right away (by the
// dispatcher thread) and inherit it, so nothing but inputs and outputs ever crosses a socket.
import Glibc

/// A pool of pre-forked worker processes running one function over many inputs — the Swift
/// counterpart of Python's `ProcessPoolExecutor`.
///
/// ```swift
/// let pool = try ProcessPool(workers: 4) { (n: Int) -> Int in fib(n) }
/// let results = try pool.map([30, 31, 32, 33, 34, 35])
/// pool.shutdown()
/// ```
///
/// Each worker is a `fork` of this process made when the pool is created. A worker that
/// crashes, exits or is killed fails only the task it was running (with its pid and signal or
/// exit status) and is replaced; the pool keeps serving. Inputs and outputs cross a private
/// socketpair as compact binary frames: any `Codable & Sendable` type works.
///
/// The work function runs synchronously in the worker: it must not rely on Dispatch queues or
/// Swift concurrency, which do not survive `fork`.
public final class ProcessPool<Input: Codable & Sendable, Output: Codable & Sendable>: WorkerPool, @unchecked Sendable {
    public typealias Configuration = ProcessPoolConfiguration

    /// The number of worker processes the pool keeps running.
    public let workerCount: Int
    /// The settings the pool was created with.
    public let configuration: Configuration
    private let dispatcher: Dispatcher
    private let inputCodec = PayloadCodec<Input>()
    private let outputCodec = PayloadCodec<Output>()

    /// Forks `workers` worker processes that will run `work`, and returns once they are up.
    ///
    /// - Throws: ``ForkPoolError`` with ``ForkPoolError/Code/invalidArgument`` for fewer than one
    ///   worker, or ``ForkPoolError/Code/systemCallFailed`` if a worker cannot be started.
    public init(workers: Int = defaultWorkerCount, configuration: Configuration = .init(),
                work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) {
        guard workers >= 1 else {
            throw ForkPoolError(.invalidArgument, "a ProcessPool needs at least one worker, not \(workers)")
        }
        try configuration.validate()
        self.workerCount = workers
        self.configuration = configuration
        let inputCodec = PayloadCodec<Input>()
        let outputCodec = PayloadCodec<Output>()
        let handler: TaskHandler = { kind, payload, reply in
            if kind == .taskBatch {
                return Self.runBatch(payload, into: &reply, work: work, inputCodec: inputCodec, outputCodec: outputCodec)
            }
            switch Self.runOne(payload, into: &reply, work: work, inputCodec: inputCodec, outputCodec: outputCodec) {
            case .success:
                return .result
            case .failure(let failure):
                WorkerLoop.appendFailure(failure.reason, failure.message, to: &reply)
                return .failure
            }
        }
        let maximumFrameBytes = configuration.maximumFrameBytes
        let initializer = configuration.initializer
        dispatcher = try Dispatcher(settings: .init(workerCount: workers, configuration: configuration)) { socket in
            WorkerLoop.run(socket: socket, maximumFrameBytes: maximumFrameBytes, initializer: initializer, handler: handler)
        }
    }

    deinit {
        dispatcher.shutdown(cancelPending: false)
    }

    /// The pids of the live, ready worker processes (a replacement appears once it is ready).
    public var workerProcessIDs: [pid_t] { dispatcher.workerProcessIDs }

    /// The pid of the pool's fork server, the single-threaded process that forks every
    /// worker; nil once the pool has shut down.
    public var forkServerProcessID: pid_t? { dispatcher.forkServerProcessID }

    /// Queues one input and returns a future for its output. The input is encoded here, on the
    /// calling thread, so an input that cannot be encoded fails this call, not a worker.
    public func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        let task = try makeTask(input)
        try dispatcher.enqueue(CollectionOfOne(task))
        return task.future
    }

    /// Queues one input with a deadline `timeout` seconds from now. If the task has not
    /// finished by then it fails with ``ForkPoolError/Code/timedOut``: dropped if still queued,
    /// or its worker killed (and replaced) if running.
    public func submit(_ input: Input, timeout: Double) throws(ForkPoolError) -> Future<Output> {
        guard timeout > 0 else {
            throw ForkPoolError(.invalidArgument, "timeout must be positive, not \(timeout)")
        }
        let task = try makeTask(input)
        task.deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        try dispatcher.enqueue(CollectionOfOne(task))
        return task.future
    }

    /// Runs `work` on every input in the worker processes and returns the outputs in input
    /// order. All inputs are encoded before any is queued, so a bad input queues nothing.
    public func map<Inputs: Sequence>(_ inputs: Inputs) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        var tasks: [TypedPendingTask<Output>] = []
        tasks.reserveCapacity(inputs.underestimatedCount)
        for input in inputs { tasks.append(try makeTask(input)) }
        try dispatcher.enqueue(tasks.lazy.map { $0 as PendingTask })
        return try collectInOrder(tasks.map(\.future))
    }

    /// Like ``map(_:)``, but sends the inputs to the workers `chunkSize` at a time, one frame
    /// and one reply per chunk: far less overhead per task for small tasks, at the price of
    /// coarser load balancing. Each input still succeeds or fails on its own; a worker that
    /// dies fails every input of the chunk it held.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        if chunkSize == 1 { return try map(inputs) }
        let limit = configuration.maximumFrameBytes
        var tasks: [PendingTask] = []
        var futures: [Future<Output>] = []
        futures.reserveCapacity(inputs.underestimatedCount)
        var frame = FrameHeader.emptyFrame(reservingPayload: 1024)
        var chunk: [Future<Output>] = []

        func flush() {
            guard !chunk.isEmpty else { return }
            let id = dispatcher.makeTaskID()
            FrameHeader(kind: .taskBatch, length: frame.count - FrameHeader.size, taskID: id).write(into: &frame)
            tasks.append(BatchPendingTask(id: id, frame: frame, futures: chunk, codec: outputCodec))
            frame = FrameHeader.emptyFrame(reservingPayload: 1024)
            chunk = []
        }

        for input in inputs {
            let mark = frame.count
            frame.append(contentsOf: repeatElement(0, count: 4))
            do {
                try inputCodec.encode(input, into: &frame)
            } catch {
                throw ForkPoolError(.encodingFailed, "could not encode the input: \(error)")
            }
            let itemLength = frame.count - mark - 4
            if frame.count - FrameHeader.size > limit {
                // Send what the chunk holds so far; the item starts the next chunk if it fits alone.
                guard !chunk.isEmpty, itemLength + 4 <= limit else {
                    throw ForkPoolError(.frameTooLarge, "the input encodes to \(itemLength) bytes; the frame limit is \(limit)")
                }
                let item = Array(frame[mark...])
                frame.removeSubrange(mark...)
                flush()
                frame.append(contentsOf: item)
            }
            let lengthAt = frame.count - itemLength - 4
            withUnsafeBytes(of: UInt32(itemLength).littleEndian) { bytes in
                for index in 0..<4 { frame[lengthAt + index] = bytes[index] }
            }
            let future = Future<Output>(taskID: dispatcher.makeTaskID())
            chunk.append(future)
            futures.append(future)
            if chunk.count == chunkSize { flush() }
        }
        flush()
        try dispatcher.enqueue(tasks)
        return try collectInOrder(futures)
    }

    /// Stops accepting tasks, runs (or cancels) the queued ones, lets running ones finish,
    /// and waits until every worker process has exited and been reaped. Idempotent.
    public func shutdown(cancelPending: Bool) {
        dispatcher.shutdown(cancelPending: cancelPending)
    }

    /// Encodes `input` into a complete task frame with a fresh id.
    private func makeTask(_ input: Input) throws(ForkPoolError) -> TypedPendingTask<Output> {
        var frame = FrameHeader.emptyFrame()
        do {
            try inputCodec.encode(input, into: &frame)
        } catch {
            throw ForkPoolError(.encodingFailed, "could not encode the input: \(error)")
        }
        let length = frame.count - FrameHeader.size
        guard length <= configuration.maximumFrameBytes else {
            throw ForkPoolError(.frameTooLarge,
                                "the input encodes to \(length) bytes; the frame limit is \(configuration.maximumFrameBytes)")
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .task, length: length, taskID: id).write(into: &frame)
        return TypedPendingTask(id: id, frame: frame, codec: outputCodec,
                                stopRunning: { [dispatcher] in dispatcher.stopRunningTask(id) })
    }

    /// Why one input failed inside the worker.
    private struct ItemFailure: Error {
        let reason: FailureReason
        let message: String
    }

    /// Worker side: decode, run, encode one input, appending the encoded output to `reply`.
    /// On failure nothing is appended and the reason comes back instead.
    private static func runOne(_ payload: UnsafeRawBufferPointer, into reply: inout [UInt8],
                               work: (Input) throws -> Output,
                               inputCodec: PayloadCodec<Input>, outputCodec: PayloadCodec<Output>) -> Result<Void, ItemFailure> {
        let input: Input
        do {
            input = try inputCodec.decode(from: payload)
        } catch {
            return .failure(ItemFailure(reason: .inputDecodingFailed, message: "\(error)"))
        }
        let output: Output
        do {
            output = try work(input)
        } catch {
            return .failure(ItemFailure(reason: .workThrew, message: "\(error)"))
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

    /// Worker side: runs every item of a `taskBatch` frame and appends a `resultBatch` payload.
    private static func runBatch(_ payload: UnsafeRawBufferPointer, into reply: inout [UInt8],
                                 work: (Input) throws -> Output,
                                 inputCodec: PayloadCodec<Input>, outputCodec: PayloadCodec<Output>) -> FrameKind {
        var offset = 0
        while offset < payload.count {
            guard payload.count - offset >= 4 else {
                return malformedBatch(&reply)
            }
            let length = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset += 4
            guard length <= payload.count - offset else {
                return malformedBatch(&reply)
            }
            let item = UnsafeRawBufferPointer(rebasing: payload[offset..<offset + length])
            offset += length
            let mark = reply.count
            reply.append(0)
            reply.append(contentsOf: repeatElement(0, count: 4))
            if case .failure(let failure) = runOne(item, into: &reply, work: work, inputCodec: inputCodec, outputCodec: outputCodec) {
                reply[mark] = failure.reason.rawValue
                reply.append(contentsOf: failure.message.utf8)
            }
            let itemLength = UInt32(reply.count - mark - 5).littleEndian
            withUnsafeBytes(of: itemLength) { bytes in
                for index in 0..<4 { reply[mark + 1 + index] = bytes[index] }
            }
        }
        return .resultBatch
    }

    private static func malformedBatch(_ reply: inout [UInt8]) -> FrameKind {
        reply.removeSubrange(FrameHeader.size...)
        WorkerLoop.appendFailure(.inputDecodingFailed, "a batch item's length runs past the frame", to: &reply)
        return .failure
    }
}
