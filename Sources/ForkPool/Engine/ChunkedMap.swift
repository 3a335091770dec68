// ChunkedMap: the one `map` of every pool — inputs read lazily, a window of chunks in flight,
// chunk sizes picked from the time per input so far (or fixed), outputs in input order, and on
// the first failure the chunks not yet started cancelled.
//
//   inputs ─ takeInputs ─▶ ChunkMaker.makeChunk (a frame for processes, a closure for threads)
//          ─▶ queued, at most workerCount × 4 in flight ─▶ oldest chunk's outputs ─▶ accept:
//             append, re-estimate the chunk size ─▶ fill the window again … until none is left
//
// The blocking and the async `map` drive the same state; the async one relays a cancelled
// calling `Task` to every chunk in flight.

/// One chunk of a `map` in flight: its outputs, when they come, and its cancellation.
protocol MapChunk<Output>: Sendable {
    associatedtype Output
    var id: UInt64 { get }
    /// Waits for the chunk and returns its outputs (exactly as many as it had inputs).
    func outputs() -> Result<[Output], ForkPoolError>
    /// Suspends until the chunk is done; the caller relays its own cancellation.
    func outputs() async -> Result<[Output], ForkPoolError>
    /// Drops the chunk if it has not started.
    func cancelIfQueued()
    /// What a cancelled awaiting `Task` does to it (drop it, or stop it where the pool allows).
    func cancelForCancelledCaller()
}

/// What a pool does for `map`: turn some inputs into a chunk, and queue it.
protocol ChunkMaker<Input, Output> {
    associatedtype Input
    associatedtype Output
    associatedtype Chunk: MapChunk where Chunk.Output == Output
    var workerCount: Int { get }
    /// The largest chunk `map` picks itself (default 4096): what one hand-off may carry.
    var largestChunk: Int { get }
    /// The first chunk size for `knownCount` inputs, or nil (the default) to start with one
    /// input per worker and size chunks from how long those took.
    func firstChunkSize(knownCount: Int) -> Int?
    /// A chunk of `inputs`; when they do not all fit one (a frame limit), a chunk of a prefix
    /// and the `rest` for the next. Nothing is queued yet.
    func makeChunk(_ inputs: ArraySlice<Input>) throws(ForkPoolError) -> (chunk: Chunk, rest: [Input])
    /// Queues a chunk `makeChunk` made.
    func queue(_ chunk: Chunk) throws(ForkPoolError)
}

extension ChunkMaker {
    var largestChunk: Int { 4096 }
    func firstChunkSize(knownCount: Int) -> Int? { nil }

    /// Runs every input through the pool in chunks and returns the outputs in input order.
    /// `chunkSize` nil: picked from the time per input so far.
    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int?) throws(ForkPoolError) -> [Output] where Inputs.Element == Input {
        var state = try ChunkedMap(inputs, iterator: inputs.makeIterator(), fixedChunkSize: chunkSize, maker: self)
        while true {
            do {
                try state.fillWindow()
            } catch {
                state.cancelQueued()
                throw error
            }
            guard let oldest = state.inFlight.popFirst() else { return state.outputs }
            switch oldest.outputs() {
            case .success(let values):
                state.accept(values)
            case .failure(let error):
                state.cancelQueued()
                throw error
            }
        }
    }

    /// The async form: suspends instead of blocking. Cancelling the calling `Task` cancels the
    /// chunks in flight (as a cancelled awaiting task does) and throws `.cancelled`.
    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int?) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        var state = try ChunkedMap(inputs, iterator: inputs.makeIterator(), fixedChunkSize: chunkSize, maker: self)
        let relay = CancellationRelay()
        // The operation returns a Result: a typed-throws closure through this rethrowing API
        // crashes the 6.3 compiler.
        let outcome: Result<[Output], ForkPoolError> = await withTaskCancellationHandler {
            while true {
                do throws(ForkPoolError) {
                    // Each chunk joins the relay before it is queued, so a cancellation never
                    // misses one.
                    try state.fillWindow { chunk in relay.add(chunk.id) { chunk.cancelForCancelledCaller() } }
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
                    state.accept(values)
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
}

/// The progress of one `map` call: the input not yet read, the chunks in flight (oldest
/// first), the outputs so far and the chunk size.
struct ChunkedMap<Maker: ChunkMaker, Iterator: IteratorProtocol> where Iterator.Element == Maker.Input {
    /// The amount of work per chunk `map` aims for when it picks the chunk size itself.
    static var targetChunkSeconds: Double { 0.002 }
    let maker: Maker
    var iterator: Iterator
    /// The input when it is an array, read a slice at a time from `position` instead of
    /// through `iterator`: one bulk copy per chunk rather than a generic `next()` per input.
    let array: [Maker.Input]?
    var position = 0
    let fixedChunkSize: Int?
    /// The input's `underestimatedCount`: chunks stay small enough to spread what is known.
    let knownCount: Int
    var outputs: [Maker.Output] = []
    var inFlight = FIFOQueue<Maker.Chunk>()
    var chunkSize: Int
    /// While positive, only this many single-input probes are out (automatic chunking).
    var probesLeft: Int
    let started = monotonicNanoseconds()
    /// Inputs read but left for the next chunk (the last one did not fit).
    var carried: [Maker.Input] = []
    var exhausted = false

    init(_ inputs: some Sequence<Maker.Input>, iterator: Iterator, fixedChunkSize: Int?, maker: Maker) throws(ForkPoolError) {
        if let fixedChunkSize, fixedChunkSize < 1 {
            throw ForkPoolError(.invalidArgument, "chunkSize must be at least 1, not \(fixedChunkSize)")
        }
        self.maker = maker
        self.iterator = iterator
        array = inputs as? [Maker.Input]
        self.fixedChunkSize = fixedChunkSize
        knownCount = inputs.underestimatedCount
        outputs.reserveCapacity(knownCount)
        if let fixedChunkSize {
            chunkSize = fixedChunkSize
            probesLeft = 0
        } else if let first = maker.firstChunkSize(knownCount: knownCount) {
            chunkSize = min(max(first, 1), maker.largestChunk)
            probesLeft = 0
        } else {
            chunkSize = 1
            probesLeft = maker.workerCount
        }
    }

    /// Cancels every chunk in flight that has not started (running ones finish).
    mutating func cancelQueued() {
        while let chunk = inFlight.popFirst() { chunk.cancelIfQueued() }
    }

    /// Keeps the window full: at most `workerCount × 4` chunks in flight (while probing, only
    /// the probes), handing each chunk to `willQueue` just before it is queued.
    mutating func fillWindow(willQueue: (Maker.Chunk) -> Void = { _ in }) throws(ForkPoolError) {
        let window = maker.workerCount * 4
        while !exhausted && inFlight.count < (probesLeft > 0 ? probesLeft : window) {
            let items = takeInputs()
            guard !items.isEmpty else { continue }
            let (chunk, rest) = try maker.makeChunk(items)
            if !rest.isEmpty {
                carried.insert(contentsOf: rest, at: 0)
                exhausted = false
            }
            willQueue(chunk)
            try maker.queue(chunk)
            inFlight.append(chunk)
        }
    }

    /// Up to `chunkSize` inputs: first those carried over, then the array's next slice (shared,
    /// not copied, when nothing is carried) or the iterator's next elements. Sets `exhausted`
    /// once nothing is left to read.
    private mutating func takeInputs() -> ArraySlice<Maker.Input> {
        if carried.isEmpty, let array {
            let end = min(array.count, position + chunkSize)
            defer { position = end }
            exhausted = end == array.count
            return array[position..<end]
        }
        var items: [Maker.Input] = []
        items.reserveCapacity(min(chunkSize, maker.largestChunk))
        let fromCarried = min(chunkSize, carried.count)
        items.append(contentsOf: carried.prefix(fromCarried))
        carried.removeFirst(fromCarried)
        if let array {
            let end = min(array.count, position + chunkSize - items.count)
            items.append(contentsOf: array[position..<end])
            position = end
            exhausted = end == array.count && carried.isEmpty
        } else {
            while items.count < chunkSize {
                guard let input = iterator.next() else {
                    exhausted = carried.isEmpty
                    break
                }
                items.append(input)
            }
        }
        return items[...]
    }

    /// Takes the oldest chunk's outputs and, when the pool picks chunk sizes, re-estimates:
    /// the workers' wall time per completed input so far (round trips and a fresh worker's
    /// first, slower task included, so the estimate errs towards smaller chunks and improves
    /// as the map goes on).
    mutating func accept(_ values: [Maker.Output]) {
        outputs.append(contentsOf: values)
        if probesLeft > 0 { probesLeft -= 1 }
        guard fixedChunkSize == nil && probesLeft == 0 else { return }
        let workers = maker.workerCount
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        let perTask = max(elapsed * Double(workers) / Double(outputs.count), 1e-7)
        var size = Int(Self.targetChunkSeconds / perTask)
        if knownCount > outputs.count {
            size = min(size, max(1, (knownCount - outputs.count) / (workers * 4)))
        }
        chunkSize = min(max(size, 1), maker.largestChunk)
    }
}
