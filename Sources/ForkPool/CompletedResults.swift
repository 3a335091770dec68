// CompletedResults: `results(for:)` — every input's result, handed over in the order the
// tasks complete (Python's `as_completed` / `imap_unordered`), with backpressure.
//
//   next() ─ refill: submit inputs while fewer than `maximumInFlight` results are owed
//          ─ wait: the first completed (index, result) in the buffer, or suspend until one is
//   Future completion handler (pool thread) ─▶ buffer, or straight to the suspended next()
//
// A result counts against `maximumInFlight` from its submit until the consumer takes it, so a
// slow consumer stops the submitting, and at most that many results are ever held.

/// The results of ``WorkerPool/results(for:maximumInFlight:)``: one element per input, in the
/// order the tasks complete. Each element carries the input's position (0 for the first input)
/// and its outcome; a failed task is an element too, so the sequence itself never throws.
///
/// Iterating starts the work: each iteration submits the inputs anew. Inputs are read lazily,
/// only as results are taken, so an endless input sequence is fine.
public struct CompletedResults<Output: Sendable>: AsyncSequence {
    /// An input's position (0 for the first) and its task's outcome.
    public typealias Element = (index: Int, result: Result<Output, ForkPoolError>)
    /// The sequence never throws: a failed task is an element.
    public typealias Failure = Never

    private let makeRun: () -> CompletionRun<Output>

    init<Pool: WorkerPool, Inputs: Sequence>(pool: Pool, inputs: Inputs, maximumInFlight: Int)
    where Pool.Output == Output, Inputs.Element == Pool.Input {
        self.init(inputs: inputs, maximumInFlight: maximumInFlight) { input async throws(ForkPoolError) in
            try await pool.submitWhenReady(input)
        }
    }

    /// Results of `submit` applied to each input (a job pool's `submitWhenReady` of each job).
    init<Inputs: Sequence>(inputs: Inputs, maximumInFlight: Int,
                           submit: @escaping (Inputs.Element) async throws(ForkPoolError) -> Future<Output>) {
        makeRun = {
            var iterator = inputs.makeIterator()
            return CompletionRun(maximumInFlight: maximumInFlight) { () async -> Result<Future<Output>, ForkPoolError>? in
                guard let input = iterator.next() else { return nil }
                do throws(ForkPoolError) {
                    return .success(try await submit(input))
                } catch {
                    return .failure(error)
                }
            }
        }
    }

    /// Starts a run: submits the first inputs and returns the iterator that hands over results.
    public func makeAsyncIterator() -> Iterator {
        Iterator(run: makeRun())
    }

    /// Hands over results as they complete. When the calling `Task` is cancelled, the tasks
    /// still owed are cancelled (see ``Future/value``) and `next()` returns nil. Dropping the
    /// iterator early cancels the tasks that have not started.
    public struct Iterator: AsyncIteratorProtocol {
        fileprivate let run: CompletionRun<Output>

        /// The next result to complete, suspending until there is one; nil once every input's
        /// result was handed over or the calling `Task` was cancelled.
        public mutating func next() async -> Element? {
            await run.next()
        }

        /// The same as ``next()``; the isolation parameter is the standard library's.
        public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
            await run.next()
        }
    }
}

/// One iteration's state. Completion handlers run on pool threads, hence the lock; the input
/// side (`submitNext`) is touched only by the consumer's `next()`.
final class CompletionRun<Output: Sendable>: @unchecked Sendable {
    typealias Element = CompletedResults<Output>.Element

    private let lock = ConditionLock()
    private let maximumInFlight: Int
    private let submitNext: () async -> Result<Future<Output>, ForkPoolError>?
    private var nextIndex = 0
    private var inputsExhausted = false
    /// Submitted and not yet taken by the consumer (running, or completed and buffered).
    private var owed = 0
    private var pending: [Int: Future<Output>] = [:]
    private var completed = FIFOQueue<Element>()
    private var waiter: UnsafeContinuation<Element?, Never>?
    private var cancelled = false

    init(maximumInFlight: Int, submitNext: @escaping () async -> Result<Future<Output>, ForkPoolError>?) {
        self.maximumInFlight = maximumInFlight
        self.submitNext = submitNext
    }

    deinit {
        for future in pending.values { future.cancelIfQueued() }
    }

    func next() async -> Element? {
        if Task.isCancelled {
            cancel()
            return nil
        }
        await refill()
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                lock.lock()
                if cancelled {
                    lock.unlock()
                    continuation.resume(returning: nil)
                } else if let element = completed.popFirst() {
                    owed -= 1
                    lock.unlock()
                    continuation.resume(returning: element)
                } else if owed == 0 {
                    lock.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        } onCancel: {
            cancel()
        }
    }

    /// Submits inputs until `maximumInFlight` results are owed or the input runs out, waiting
    /// for room when the pool's queue is full (`submitWhenReady`). A submit that throws (an
    /// input that cannot be encoded, a pool shut down) becomes that input's failed result;
    /// after a shut-down pool nothing more is read.
    private func refill() async {
        while !inputsExhausted && lock.withLock({ owed < maximumInFlight && !cancelled }) {
            guard let submitted = await submitNext() else {
                inputsExhausted = true
                return
            }
            let index = nextIndex
            nextIndex += 1
            lock.withLock { owed += 1 }
            switch submitted {
            case .success(let future):
                lock.withLock { pending[index] = future }
                future.onCompletion { [weak self] result in self?.deliver((index, result)) }
            case .failure(let error):
                if error.code == .poolShutDown || error.code == .poolBroken { inputsExhausted = true }
                deliver((index, .failure(error)))
            }
        }
    }

    private func deliver(_ element: Element) {
        lock.lock()
        pending.removeValue(forKey: element.index)
        if cancelled {  // the sequence has ended: nobody will take it
            lock.unlock()
            return
        }
        if let waiter {
            self.waiter = nil
            owed -= 1
            lock.unlock()
            waiter.resume(returning: element)
        } else {
            completed.append(element)
            lock.unlock()
        }
    }

    /// The consuming task was cancelled: end the sequence, stop submitting, cancel what is
    /// owed (results that complete from now on are dropped).
    private func cancel() {
        let (futures, waiting): ([Future<Output>], UnsafeContinuation<Element?, Never>?) = lock.withLock {
            cancelled = true
            defer { waiter = nil }
            return (Array(pending.values), waiter)
        }
        waiting?.resume(returning: nil)
        for future in futures { future.cancelForCancelledCaller() }
    }
}

extension WorkerPool {
    /// Runs the work on every input and hands over each result as soon as its task completes —
    /// the counterpart of Python's `as_completed` and `imap_unordered`.
    ///
    /// ```swift
    /// for await (index, result) in pool.results(for: urls) {
    ///     print(index, try result.get())
    /// }
    /// ```
    ///
    /// Inputs are submitted one task each, lazily: at most `maximumInFlight` results are owed
    /// at once (running, or done and not yet taken), so a slow consumer holds back the
    /// submitting instead of letting results pile up. Cancelling the consuming `Task` cancels
    /// the owed tasks and ends the sequence.
    ///
    /// - Parameters:
    ///   - inputs: The inputs; read only as results are taken.
    ///   - maximumInFlight: The bound on owed results, at least 1; nil means twice the worker
    ///     count.
    /// - Returns: An async sequence of `(index, result)`, `index` being the input's position.
    public func results<Inputs: Sequence>(for inputs: Inputs, maximumInFlight: Int? = nil) -> CompletedResults<Output>
    where Inputs.Element == Input {
        precondition(maximumInFlight.map { $0 >= 1 } ?? true, "maximumInFlight must be at least 1, not \(maximumInFlight!)")
        return CompletedResults(pool: self, inputs: inputs, maximumInFlight: maximumInFlight ?? workerCount * 2)
    }
}
