// TypedTasks: the process pools' typed layer — a caller's inputs into task frames, replies
// back into typed outputs, for one input and output type; the only code that makes frames.
//
//   submit(input) ─ encode on the caller's thread ─▶ [job name] + payload ─▶ frame ─▶ Dispatcher
//   submitEncoded ─ an EncodedJob's payload as it is (ProcessJobPool+Encoded) ─▶ frame ─▶ Dispatcher
//   map(inputs)   ─ ChunkedMap ─▶ makeChunk: [Input] per `taskBatch` frame ─▶ Dispatcher
//
// `ProcessPool` keeps one (no job name); `ProcessJobPool` one per job type (the payload then
// starts with the job's name, which the worker's JobRegistry reads).
import ForkPoolWire
import Glibc

struct TypedTasks<Input: Codable & Sendable, Output: Codable & Sendable>: _ValueTasks, ChunkMaker {
    let dispatcher: Dispatcher
    let configuration: ProcessPoolConfiguration
    let workerCount: Int
    /// The job's name in a job pool (stamped on every error of its tasks); nil in a ProcessPool.
    let jobName: String?
    /// What every payload starts with: the job's name on the wire (JobFrame), or nothing.
    let jobPrefix: [UInt8]
    /// An async job's tasks in a pool whose workers run several at once (PendingTask.concurrent).
    var concurrent = false
    private let inputCodec = PayloadCodec<Input>()
    private let outputCodec = PayloadCodec<Output>()
    /// `map`'s chunks: a whole `[Input]` or `[Output]` per frame.
    private let chunkCodec = PayloadCodec<[Input]>()
    private let outputsCodec = PayloadCodec<[Output]>()

    init(dispatcher: Dispatcher, configuration: ProcessPoolConfiguration, workerCount: Int, jobName: String? = nil) {
        self.dispatcher = dispatcher
        self.configuration = configuration
        self.workerCount = workerCount
        self.jobName = jobName
        jobPrefix = jobName.map(JobFrame.prefix(naming:)) ?? []
    }

    /// `error`, naming this layer's job (if any).
    func named(_ error: ForkPoolError) -> ForkPoolError {
        var named = error
        named.jobName = jobName
        return named
    }

    func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        let (task, future) = try makeTask(input)
        do {
            try dispatcher.submit(task)
        } catch {
            task.refused()
            throw named(error)  // overloaded, shut down, broken
        }
        return future
    }

    func submit(_ input: Input, timeout: Duration) throws(ForkPoolError) -> Future<Output> {
        try Self.check(timeout: timeout)
        let (task, future) = try makeTask(input)
        try enqueue(task, timeout: timeout)
        return future
    }

    /// Queues a job that arrives already encoded (an `EncodedJob`'s payload) after the job's
    /// name, with a deadline `timeout` from now if given; its future gets the output's bytes
    /// undecoded.
    func submitEncoded(_ payload: [UInt8], timeout: Duration?) throws(ForkPoolError) -> Future<[UInt8]> {
        if let timeout { try Self.check(timeout: timeout) }
        var frame = FrameHeader.emptyFrame(reservingPayload: jobPrefix.count + payload.count)
        frame.append(contentsOf: jobPrefix)
        frame.append(contentsOf: payload)
        let (task, future) = try seal(&frame, tail: [], codec: nil as PayloadCodec<[UInt8]>?, what: "the job")
        try enqueue(task, timeout: timeout)
        return future
    }

    private static func check(timeout: Duration) throws(ForkPoolError) {
        guard timeout > .zero else {
            throw ForkPoolError(.invalidArgument, "timeout must be positive, not \(timeout)")
        }
    }

    /// Queues one task (refused with `.overloaded` when the queue is full), with a deadline
    /// `timeout` from now if given.
    private func enqueue(_ task: PendingTask, timeout: Duration?) throws(ForkPoolError) {
        if let timeout { task.deadline = monotonicNanoseconds() + timeout.nanoseconds }
        do {
            try dispatcher.enqueue(task, now: monotonicNanoseconds())
        } catch {
            task.refused()
            throw named(error)
        }
    }

    func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        let (task, future) = try makeTask(input)
        do {
            try await dispatcher.submitWhenReady(task)
        } catch {
            task.refused()
            throw named(error)
        }
        return future
    }

    // MARK: map (ChunkMaker: the chunking itself is ChunkedMap's)

    /// Encodes `inputs` as one `[Input]` into a `taskBatch` frame (a chunk of Ints is one
    /// memory copy). A chunk over the frame limit keeps its first half and hands back the rest
    /// for the next; a single input over the limit throws.
    func makeChunk(_ inputs: ArraySlice<Input>) throws(ForkPoolError) -> (chunk: ProcessMapChunk<Output>, rest: [Input]) {
        var items = Array(inputs)
        var rest: [Input] = []
        let limit = configuration.maximumFrameBytes
        var frame = FrameHeader.emptyFrame(reservingPayload: jobPrefix.count + 16 * items.count)
        frame.append(contentsOf: jobPrefix)
        let payloadStart = frame.count
        while true {
            do {
                try chunkCodec.encode(items, into: &frame)
            } catch {
                throw named(ForkPoolError(.encodingFailed, "could not encode the input: \(error)"))
            }
            let length = frame.count - FrameHeader.size
            if length <= limit { break }
            guard items.count > 1 else {
                throw named(ForkPoolError(.frameTooLarge, "the input encodes to more than \(limit) bytes, the frame limit"))
            }
            let half = items.count / 2
            rest.insert(contentsOf: items[half...], at: 0)
            items.removeSubrange(half...)
            frame.removeSubrange(payloadStart...)
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .taskBatch, length: frame.count - FrameHeader.size, taskID: id).write(into: &frame)
        let completion = ChunkCompletion(id: id, count: items.count, codec: outputsCodec, jobName: jobName)
        let task = PendingTask(id: id, frame: frame, completion: completion, dispatcher: dispatcher)
        task.concurrent = concurrent
        return (ProcessMapChunk(completion: completion, task: task), rest)
    }

    func queue(_ chunk: ProcessMapChunk<Output>) throws(ForkPoolError) {
        do {
            try dispatcher.enqueueChunk(chunk.task)
        } catch {
            chunk.task.refused()
            throw error
        }
    }

    /// Encodes `input` (after the job's name, in a job pool) into a complete task frame with a
    /// fresh id.
    func makeTask(_ input: Input) throws(ForkPoolError) -> (PendingTask, Future<Output>) {
        var frame = FrameHeader.emptyFrame()
        frame.append(contentsOf: jobPrefix)
        // A large [UInt8] stays where it is and goes out after the frame (writev): no copy.
        let tail = inputCodec.encodePrefix(ofLargeBytes: input, into: &frame) ?? []
        if tail.isEmpty {
            do {
                try inputCodec.encode(input, into: &frame)
            } catch {
                throw named(ForkPoolError(.encodingFailed, "could not encode the input: \(error)"))
            }
        }
        return try seal(&frame, tail: tail, codec: outputCodec, what: "the input")
    }

    /// Makes `frame` (header room, then the payload; `tail` goes after it) a task with a fresh
    /// id, whose future `codec` decodes (nil: the output's bytes as they came). `what` names
    /// the payload in a frame-limit error.
    private func seal<Value>(_ frame: inout [UInt8], tail: [UInt8], codec: PayloadCodec<Value>?,
                             what: String) throws(ForkPoolError) -> (PendingTask, Future<Value>) {
        let length = frame.count - FrameHeader.size + tail.count
        guard length <= configuration.maximumFrameBytes else {
            throw named(ForkPoolError(.frameTooLarge,
                                      "\(what) encodes to \(length) bytes; the frame limit is \(configuration.maximumFrameBytes)"))
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .task, length: length, taskID: id, split: tail.isEmpty ? 0 : frame.count - FrameHeader.size)
            .write(into: &frame)
        let completion = OutputCompletion(id: id, codec: codec, jobName: jobName)
        let task = PendingTask(id: id, frame: frame, tail: tail, completion: completion, dispatcher: dispatcher)
        task.concurrent = concurrent && tail.isEmpty
        return (task, completion.future)
    }
}

/// A chunk of a process pool's `map`: the task the dispatcher sends, and the completion whose
/// reply the caller decodes.
struct ProcessMapChunk<Output: Codable & Sendable>: MapChunk {
    let completion: ChunkCompletion<Output>
    let task: PendingTask

    var id: UInt64 { completion.id }
    func outputs() -> Result<[Output], ForkPoolError> { completion.outputs() }
    func outputs() async -> Result<[Output], ForkPoolError> { await completion.outputs() }
    func cancelIfQueued() { completion.future.cancelIfQueued() }
    func cancelForCancelledCaller() { completion.future.cancelForCancelledCaller() }
}
