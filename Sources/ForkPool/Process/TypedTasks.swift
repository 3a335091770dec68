// TypedTasks: the typed layer over the process pool's engine — what turns a caller's inputs
// into task frames and their replies back into typed outputs, for one input and output type.
//
//   submit(input) ─ encode on the caller's thread ─▶ [job name] + payload ─▶ frame ─▶ Dispatcher
//   submitEncoded ─ an EncodedJob's payload as it is (ProcessJobPool+Encoded) ─▶ frame ─▶ Dispatcher
//   map(inputs)   ─ chunks ([Input] per frame), at most workers × 4 in flight, sized from the
//                   time per input so far ─▶ Dispatcher; replies decoded by the caller
//
// `ProcessPool<Input, Output>` keeps one (no job name: the pool has one work function);
// `ProcessJobPool` makes one per job type it is handed (the frame's payload then starts with
// the job's name, which the worker's JobRegistry reads to pick the job's handler). Both share
// the Dispatcher, its fork server, lanes, pipelines and backpressure: this is the only code
// that makes task frames.
import ForkPoolWire
import Glibc

struct TypedTasks<Input: Codable & Sendable, Output: Codable & Sendable>: _ValueTasks {
    let dispatcher: Dispatcher
    let configuration: ProcessPoolConfiguration
    let workerCount: Int
    /// The job's name in a job pool (stamped on every error of its tasks); nil in a ProcessPool.
    let jobName: String?
    /// What every payload starts with: the job's name on the wire (JobFrame), or nothing.
    let jobPrefix: [UInt8]
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
            throw named(error)
        }
    }

    func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        let (task, future) = try makeTask(input)
        do {
            try await dispatcher.submitWhenReady(task)
        } catch {
            throw named(error)
        }
        return future
    }

    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int?) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        if let chunkSize, chunkSize < 1 {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try mapInChunks(inputs, fixedChunkSize: chunkSize)
    }

    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int?) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        if let chunkSize, chunkSize < 1 {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try await mapInChunks(inputs, fixedChunkSize: chunkSize)
    }

    /// The amount of work per chunk `map` aims for when it picks the chunk size itself.
    static var targetChunkSeconds: Double { 0.002 }

    /// The progress of one `map` call: the input not yet read, the chunks in flight (oldest
    /// first), the outputs so far and the chunk size. The blocking and the async `map` drive
    /// it the same way: fill the window, take the oldest chunk's outputs, repeat.
    struct MapState<Iterator: IteratorProtocol> where Iterator.Element == Input {
        var iterator: Iterator
        /// The input when it is an array, read a slice at a time from `position` instead of
        /// through `iterator`: one bulk copy per chunk rather than a generic `next()` per input
        /// (profiled at about a fifth of the submitting thread's time in `map` of 1M Ints).
        let array: [Input]?
        var position = 0
        let fixedChunkSize: Int?
        /// The input's `underestimatedCount`: chunks stay small enough to spread what is known.
        let knownCount: Int
        var outputs: [Output] = []
        var inFlight = FIFOQueue<ChunkCompletion<Output>>()
        var chunkSize: Int
        /// While positive, only this many single-input probes are out (automatic chunking).
        var probesLeft: Int
        let started = monotonicNanoseconds()
        /// Inputs read but left for the next chunk (the last one's frame was too large).
        var carried: [Input] = []
        var exhausted = false

        init(_ inputs: some Sequence<Input>, iterator: Iterator, fixedChunkSize: Int?, workerCount: Int) {
            self.iterator = iterator
            array = inputs as? [Input]
            self.fixedChunkSize = fixedChunkSize
            knownCount = inputs.underestimatedCount
            outputs.reserveCapacity(knownCount)
            chunkSize = fixedChunkSize ?? 1
            probesLeft = fixedChunkSize == nil ? workerCount : 0
        }

        /// Cancels every chunk in flight that has not started (running ones finish).
        mutating func cancelQueued() {
            while let chunk = inFlight.popFirst() { chunk.future.cancelIfQueued() }
        }
    }

    func mapInChunks<Inputs: Sequence>(_ inputs: Inputs, fixedChunkSize: Int?) throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        var state = MapState(inputs, iterator: inputs.makeIterator(), fixedChunkSize: fixedChunkSize, workerCount: workerCount)
        while true {
            do {
                try fillWindow(&state)
            } catch {
                state.cancelQueued()
                throw error
            }
            guard let oldest = state.inFlight.popFirst() else { return state.outputs }
            switch oldest.outputs() {
            case .success(let values):
                accept(values, into: &state)
            case .failure(let error):
                state.cancelQueued()
                throw error
            }
        }
    }

    func mapInChunks<Inputs: Sequence>(_ inputs: Inputs, fixedChunkSize: Int?) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        var state = MapState(inputs, iterator: inputs.makeIterator(), fixedChunkSize: fixedChunkSize, workerCount: workerCount)
        let relay = CancellationRelay()
        // The operation returns a Result: a typed-throws closure through this rethrowing API
        // crashes the 6.3 compiler.
        let outcome: Result<[Output], ForkPoolError> = await withTaskCancellationHandler {
            while true {
                do throws(ForkPoolError) {
                    // Each chunk joins the relay before it is queued, so a cancellation never
                    // misses one.
                    try fillWindow(&state) { chunk in relay.add(chunk.id) { chunk.future.cancelForCancelledCaller() } }
                } catch {
                    state.cancelQueued()
                    return .failure(error)
                }
                guard let oldest = state.inFlight.popFirst() else { return .success(state.outputs) }
                let result = await oldest.outputs()
                relay.remove(oldest.id)
                if Task.isCancelled {
                    relay.cancelAll()
                    state.cancelQueued()
                    return .failure(ForkPoolError(.cancelled, "map was cancelled: its calling task was cancelled"))
                }
                switch result {
                case .success(let values):
                    accept(values, into: &state)
                case .failure(let error):
                    state.cancelQueued()
                    return .failure(error)
                }
            }
        } onCancel: {
            relay.cancelAll()
        }
        return try outcome.get()
    }

    /// Keeps the window full: at most `workerCount × 4` chunks in flight (while probing, only
    /// the probes), handing each chunk to `willQueue` just before it is queued.
    private func fillWindow<Iterator>(_ state: inout MapState<Iterator>,
                                      willQueue: (ChunkCompletion<Output>) -> Void = { _ in }) throws(ForkPoolError) {
        let window = workerCount * 4
        while !state.exhausted && state.inFlight.count < (state.probesLeft > 0 ? state.probesLeft : window) {
            let made: (task: PendingTask, chunk: ChunkCompletion<Output>)?
            (made, state.exhausted) = try makeChunk(from: &state)
            guard let (task, chunk) = made else { continue }
            willQueue(chunk)
            try dispatcher.enqueueChunk(task)
            state.inFlight.append(chunk)
        }
    }

    /// Takes the oldest chunk's outputs and, when the pool picks chunk sizes, re-estimates:
    /// the workers' wall time per completed input so far (round trips and a fresh worker's
    /// first, slower task included, so the estimate errs towards smaller chunks and improves
    /// as the map goes on).
    private func accept<Iterator>(_ values: [Output], into state: inout MapState<Iterator>) {
        state.outputs.append(contentsOf: values)
        if state.probesLeft > 0 { state.probesLeft -= 1 }
        guard state.fixedChunkSize == nil && state.probesLeft == 0 else { return }
        let elapsed = Double(monotonicNanoseconds() - state.started) / 1e9
        let perTask = max(elapsed * Double(workerCount) / Double(state.outputs.count), 1e-7)
        var size = Int(Self.targetChunkSeconds / perTask)
        if state.knownCount > state.outputs.count {
            size = min(size, max(1, (state.knownCount - state.outputs.count) / (workerCount * 4)))
        }
        state.chunkSize = min(max(size, 1), 4096)
    }

    /// Takes up to `size` inputs (first those `carried` over from a chunk that was too large)
    /// and encodes them as one `[Input]` into a `taskBatch` frame: a chunk of Ints is one
    /// memory copy. A chunk over the frame limit sends its first half and carries the rest to
    /// the next; a single input over the limit throws. Returns nil when no input was left, and
    /// whether the input is used up.
    private func makeChunk<Iterator>(from state: inout MapState<Iterator>) throws(ForkPoolError)
        -> ((task: PendingTask, chunk: ChunkCompletion<Output>)?, Bool) {
        let size = state.chunkSize
        var items: [Input] = []
        items.reserveCapacity(min(size, 4096))
        let fromCarried = min(size, state.carried.count)
        items.append(contentsOf: state.carried.prefix(fromCarried))
        state.carried.removeFirst(fromCarried)
        var exhausted = false
        if let array = state.array {
            let end = min(array.count, state.position + size - items.count)
            items.append(contentsOf: array[state.position..<end])
            state.position = end
            exhausted = end == array.count
        } else {
            while items.count < size {
                guard let input = state.iterator.next() else {
                    exhausted = true
                    break
                }
                items.append(input)
            }
        }
        guard !items.isEmpty else { return (nil, exhausted) }
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
            state.carried.insert(contentsOf: items[half...], at: 0)
            items.removeSubrange(half...)
            frame.removeSubrange(payloadStart...)
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .taskBatch, length: frame.count - FrameHeader.size, taskID: id).write(into: &frame)
        let chunk = ChunkCompletion(id: id, count: items.count, codec: outputsCodec, jobName: jobName)
        return ((PendingTask(id: id, frame: frame, completion: chunk, dispatcher: dispatcher), chunk), exhausted && state.carried.isEmpty)
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
        return (PendingTask(id: id, frame: frame, tail: tail, completion: completion, dispatcher: dispatcher), completion.future)
    }
}
