// CompletedResults: `results(for:)` — every input's result, handed over in the order the
// tasks complete (Python's `as_completed` / `imap_unordered`), with backpressure.
//
//   next() ─ refill: submit inputs while fewer than `maximumInFlight` results are owed
//          ─ wait: the first completed (index, result) in the buffer, or suspend until one is
//   Future completion handler (pool thread) ─▶ buffer, or straight to the suspended next()
//
// A result counts against `maximumInFlight` from its submit until the consumer takes it, so a
// slow consumer stops the submitting, and at most that many results are ever held.

/// The sequence `results(for:)` returns: one element per input, in the order the tasks
/// complete. Iterating starts the work; each iteration submits the inputs anew.
struct CompletedResults<Output: Sendable>: AsyncSequence {
    typealias Element = (index: Int, result: Result<Output, ForkPoolError>)
    typealias Failure = Never

    private let makeRun: () -> CompletionRun<Output>

    /// Results of `submit` applied to each input; `maximumInFlight` nil: twice `workerCount`.
    init<Inputs: Sequence>(inputs: Inputs, maximumInFlight: Int?, workerCount: Int,
                           submit: @escaping (Inputs.Element) async throws(ForkPoolError) -> Future<Output>) throws(ForkPoolError) {
        if let maximumInFlight, maximumInFlight < 1 {
            throw ForkPoolError(.invalidArgument, "maximumInFlight must be at least 1, not \(maximumInFlight)")
        }
        let limit = maximumInFlight ?? workerCount * 2
        makeRun = {
            var iterator = inputs.makeIterator()
            return CompletionRun(maximumInFlight: limit) { () async -> Result<Future<Output>, ForkPoolError>? in
                guard let input = iterator.next() else { return nil }
                do throws(ForkPoolError) {
                    return .success(try await submit(input))
                } catch {
                    return .failure(error)
                }
            }
        }
    }

    func makeAsyncIterator() -> Iterator {
        Iterator(run: makeRun())
    }

    /// Hands over results as they complete. When the calling `Task` is cancelled, the tasks
    /// still owed are cancelled (see ``Future/value``) and `next()` returns nil. Dropping the
    /// iterator early cancels the tasks that have not started.
    struct Iterator: AsyncIteratorProtocol {
        fileprivate let run: CompletionRun<Output>

        mutating func next() async -> Element? {
            await run.next()
        }

        mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
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
