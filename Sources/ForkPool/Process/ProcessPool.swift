// ProcessPool: the public face of the multi-process pool.
//
//   submit(input) ─ encode on the caller's thread ─▶ frame ─▶ Dispatcher (queue, or a direct lane)
//        ▲                                                        │
//   Future<Output> ◀─ decode ◀─ result frame ◀─ worker process (WorkFunctionHandler)
//   (decoded by the dispatcher thread, or by the caller that reads a lane reply itself)
//   map(inputs): chunk frames, at most workers × 4 in flight; replies decoded by the caller
//
// The work function is captured at creation. The dispatcher starts a single-threaded fork
// server right away, which forks the workers; they inherit the function by memory, so
// nothing but inputs and outputs ever crosses a socket.
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
/// Each worker is forked by the pool's fork server, itself a `fork` of this process made when
/// the pool is created (so workers see this process's memory as it was then). A worker that
/// crashes, exits or is killed fails only the task it was running (with its pid and signal or
/// exit status) and is replaced; the pool keeps serving. Inputs and outputs cross a private
/// socketpair as compact binary frames: any `Codable & Sendable` type works.
///
/// The work function runs synchronously in the worker: it must not rely on Dispatch queues or
/// Swift concurrency, which do not survive `fork`.
public final class ProcessPool<Input: Codable & Sendable, Output: Codable & Sendable>: WorkerPool, @unchecked Sendable {
    /// The pool's settings: ``ProcessPoolConfiguration`` under a shorter name.
    public typealias Configuration = ProcessPoolConfiguration

    /// The number of worker processes the pool keeps running.
    public let workerCount: Int
    /// The settings the pool was created with.
    public let configuration: Configuration
    let dispatcher: Dispatcher
    private let inputCodec = PayloadCodec<Input>()
    private let outputCodec = PayloadCodec<Output>()
    /// `map`'s chunks: a whole `[Input]` or `[Output]` per frame.
    private let chunkCodec = PayloadCodec<[Input]>()
    private let outputsCodec = PayloadCodec<[Output]>()

    /// Forks `workers` worker processes that will run `work`, and returns once they are up.
    ///
    /// - Parameters:
    ///   - workers: How many worker processes to keep running (at least one).
    ///   - configuration: Limits, time-outs and failure policies; see ``ProcessPoolConfiguration``.
    ///   - work: The function each worker runs on each input. It is inherited by `fork`, never sent.
    /// - Throws: ``ForkPoolError`` with ``ForkPoolError/Code/invalidArgument`` for fewer than one
    ///   worker or a bad setting, ``ForkPoolError/Code/systemCallFailed`` if the fork server
    ///   cannot be started, or ``ForkPoolError/Code/poolBroken`` when workers keep failing to
    ///   start (``ProcessPoolConfiguration/maximumConsecutiveStartFailures``).
    public init(workers: Int = defaultWorkerCount, configuration: Configuration = .init(),
                work: @escaping @Sendable (Input) throws -> Output) throws(ForkPoolError) {
        guard workers >= 1 else {
            throw ForkPoolError(.invalidArgument, "a ProcessPool needs at least one worker, not \(workers)")
        }
        try configuration.validate()
        self.workerCount = workers
        self.configuration = configuration
        let handler = WorkFunctionHandler(work: work).handle
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

    /// What the pool has done so far: per worker slot (the worker's pid, tasks completed and
    /// failed, busy time, restarts) and in total, plus the tasks waiting in the queue. Each
    /// call takes a fresh snapshot; safe from any thread. A chunk of `map` counts as one task.
    /// See ``PoolStats`` for what is counted.
    public var stats: PoolStats { dispatcher.stats }

    /// The pid of the pool's fork server, the single-threaded process that forks every
    /// worker; nil once the pool has shut down.
    public var forkServerProcessID: pid_t? { dispatcher.forkServerProcessID }

    /// Queues one input and returns a future for its output. The input is encoded here, on the
    /// calling thread, so an input that cannot be encoded fails this call, not a worker. When
    /// ``ProcessPoolConfiguration/maximumQueuedTasks`` tasks already wait, it throws
    /// ``ForkPoolError/Code/overloaded`` at once and queues nothing (see ``submitWhenReady(_:)``).
    public func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        let (task, future) = try makeTask(input)
        try dispatcher.submit(task)
        return future
    }

    /// Queues one input with a deadline `timeout` seconds from now. If the task has not
    /// finished by then it fails with ``ForkPoolError/Code/timedOut``: dropped if still queued,
    /// or its worker killed (and replaced) if running.
    public func submit(_ input: Input, timeout: Double) throws(ForkPoolError) -> Future<Output> {
        guard timeout > 0 else {
            throw ForkPoolError(.invalidArgument, "timeout must be positive, not \(timeout)")
        }
        let (task, future) = try makeTask(input)
        task.deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        try dispatcher.enqueue(CollectionOfOne(task), limited: true)
        return future
    }

    /// Queues one input like ``submit(_:)``, but when the queue is full
    /// (``ProcessPoolConfiguration/maximumQueuedTasks``) suspends the calling task until there
    /// is room instead of throwing ``ForkPoolError/Code/overloaded``. Callers waiting for room
    /// are served first come, first served.
    ///
    /// - Throws: ``ForkPoolError/Code/cancelled`` when the calling `Task` is cancelled while it
    ///   waits (nothing is queued then); ``ForkPoolError/Code/poolShutDown`` when the pool shuts
    ///   down meanwhile; a coding error as ``submit(_:)`` does.
    public func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        let (task, future) = try makeTask(input)
        try await dispatcher.submitWhenReady(task)
        return future
    }

    /// Queues one input with a deadline `timeout` from now: the `Duration` form of the call
    /// above, with the same behaviour.
    public func submit(_ input: Input, timeout: Duration) throws(ForkPoolError) -> Future<Output> {
        try submit(input, timeout: timeout.seconds)
    }

    /// Runs `work` on every input in the worker processes and returns the outputs in input
    /// order, choosing how many inputs to send per frame: the first `workerCount` inputs go one
    /// by one, and after every completed chunk the time per input so far sets the next chunk's
    /// size, so that fast tasks are batched about 2 ms of work to a frame while slow ones
    /// (≥ 2 ms) stay one per frame and a long task never holds short ones hostage. The input sequence is consumed lazily, with at most `workerCount × 4` chunks in
    /// flight, so memory stays flat however long it is. On the first failure in input order
    /// (including an input that cannot be encoded) the chunks not yet started are cancelled and
    /// that failure is thrown.
    public func map<Inputs: Sequence>(_ inputs: Inputs) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        try mapInChunks(inputs, fixedChunkSize: nil)
    }

    /// Like ``map(_:)-lovd``, but sends the inputs to the workers exactly `chunkSize` at a time (one
    /// frame and one reply per chunk), as Python's `Executor.map(chunksize:)`. A worker that dies
    /// fails the chunk it held.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try mapInChunks(inputs, fixedChunkSize: chunkSize)
    }

    /// The async form of ``map(_:)``: suspends the calling task instead of blocking its
    /// thread. Cancelling the calling `Task` cancels the chunks not yet started (and kills the
    /// workers running the others when ``ProcessPoolConfiguration/cancellationKillsRunningTasks``
    /// is set), then throws ``ForkPoolError/Code/cancelled``.
    public func map<Inputs: Sequence>(_ inputs: Inputs) async throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        try await mapInChunks(inputs, fixedChunkSize: nil)
    }

    /// The async form of ``map(_:chunkSize:)``; cancellation as in ``map(_:)-4niv5``.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        guard chunkSize >= 1 else {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        return try await mapInChunks(inputs, fixedChunkSize: chunkSize)
    }

    /// The amount of work per chunk `map` aims for when it picks the chunk size itself.
    static var targetChunkSeconds: Double { 0.002 }

    /// The progress of one `map` call: the input not yet read, the chunks in flight (oldest
    /// first), the outputs so far and the chunk size. The blocking and the async `map` drive
    /// it the same way: fill the window, take the oldest chunk's outputs, repeat.
    private struct MapState<Iterator: IteratorProtocol> where Iterator.Element == Input {
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

    private func mapInChunks<Inputs: Sequence>(_ inputs: Inputs, fixedChunkSize: Int?) throws(ForkPoolError) -> [Output]
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

    private func mapInChunks<Inputs: Sequence>(_ inputs: Inputs, fixedChunkSize: Int?) async throws(ForkPoolError) -> [Output]
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
            try dispatcher.enqueue(CollectionOfOne(task))
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
        var frame = FrameHeader.emptyFrame(reservingPayload: 16 * items.count)
        while true {
            do {
                try chunkCodec.encode(items, into: &frame)
            } catch {
                throw ForkPoolError(.encodingFailed, "could not encode the input: \(error)")
            }
            let length = frame.count - FrameHeader.size
            if length <= limit { break }
            guard items.count > 1 else {
                throw ForkPoolError(.frameTooLarge, "the input encodes to more than \(limit) bytes, the frame limit")
            }
            let half = items.count / 2
            state.carried.insert(contentsOf: items[half...], at: 0)
            items.removeSubrange(half...)
            frame.removeSubrange(FrameHeader.size...)
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .taskBatch, length: frame.count - FrameHeader.size, taskID: id).write(into: &frame)
        let chunk = ChunkCompletion(id: id, count: items.count, codec: outputsCodec,
                                    stopRunning: { [dispatcher] in dispatcher.stopRunningTask(id) },
                                    taskCancellationStopsRunning: configuration.cancellationKillsRunningTasks)
        return ((PendingTask(id: id, frame: frame, completion: chunk), chunk), exhausted && state.carried.isEmpty)
    }

    /// Stops accepting tasks, runs (or cancels) the queued ones, lets running ones finish,
    /// and waits until every worker process has exited and been reaped. Idempotent.
    public func shutdown(cancelPending: Bool) {
        dispatcher.shutdown(cancelPending: cancelPending)
    }

    /// Encodes `input` into a complete task frame with a fresh id.
    private func makeTask(_ input: Input) throws(ForkPoolError) -> (PendingTask, Future<Output>) {
        var frame = FrameHeader.emptyFrame()
        // A large [UInt8] stays where it is and goes out after the frame (writev): no copy.
        let tail = inputCodec.encodePrefix(ofLargeBytes: input, into: &frame) ?? []
        if tail.isEmpty {
            do {
                try inputCodec.encode(input, into: &frame)
            } catch {
                throw ForkPoolError(.encodingFailed, "could not encode the input: \(error)")
            }
        }
        let length = frame.count - FrameHeader.size + tail.count
        guard length <= configuration.maximumFrameBytes else {
            throw ForkPoolError(.frameTooLarge,
                                "the input encodes to \(length) bytes; the frame limit is \(configuration.maximumFrameBytes)")
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .task, length: length, taskID: id, split: tail.isEmpty ? 0 : frame.count - FrameHeader.size)
            .write(into: &frame)
        let dispatcher = dispatcher
        var leftQueueEarly: (@Sendable () -> Void)?
        if configuration.maximumQueuedTasks != nil { leftQueueEarly = { dispatcher.queuedTaskLeftEarly() } }
        let completion = OutputCompletion(id: id, codec: outputCodec, stopRunning: { dispatcher.stopRunningTask(id) },
                                          taskCancellationStopsRunning: configuration.cancellationKillsRunningTasks,
                                          leftQueueEarly: leftQueueEarly)
        return (PendingTask(id: id, frame: frame, tail: tail, completion: completion), completion.future)
    }
}
