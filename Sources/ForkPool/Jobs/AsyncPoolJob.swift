// AsyncPoolJob: a job whose work awaits (HTTP, a database, files) — written as a PoolJob is,
// with `run() async`. A fresh job pool's worker runs it inside its own Swift concurrency
// runtime; a ThreadJobPool runs it in a Task.
//
//   submit(job) ─▶ the same frame as any job ─▶ fresh worker: JobRegistry ─▶ AsyncJobRunner
//   (a Task on the worker's cooperative pool; the worker loop waits for it) ─▶ reply
//
// A worker forked from a running program (`.snapshot`) cannot start the runtime: the threads
// of the program's own runtime are not in the copy. Such a pool refuses async job types.
import Glibc

/// A ``PoolJob`` whose work awaits: `func run() async throws -> Output`.
///
/// ```swift
/// struct SendReceipt: AsyncPoolJob {
///     var orderID: Int
///     func run() async throws -> Bool {
///         let order = try await database.order(orderID)
///         return try await mailer.send(receipt(for: order))
///     }
/// }
/// let pool = try ProcessJobPool(workers: 2, jobs: [SendReceipt.self, Checksum.self])   // fresh
/// let sent = try await pool.submit(SendReceipt(orderID: 7)).value
/// ```
///
/// It runs on a ``ProcessJobPool`` that starts fresh (the default; a ``ProcessJobPool/StartMethod/snapshot``
/// pool refuses async job types at `init`), beside sync jobs, and on a ``ThreadJobPool``.
public protocol AsyncPoolJob: PoolJob {
    /// What ``run()`` returns (``RunnableJob/Output``).
    associatedtype Output
    /// Computes the job's output; in a ``ProcessJobPool``, in a fresh worker process.
    func run() async throws -> Output
}

extension AsyncPoolJob {
    /// Pools run an async job through its `async` ``run()``; this synchronous form, which
    /// ``RunnableJob`` requires, only throws ``ForkPoolError/Code/invalidArgument`` saying so.
    // (`where Self: Sendable` holds for every job: it only keeps this from being taken for the
    // async `run()` when Swift infers `Output`.)
    public func run() throws -> Output where Self: Sendable {
        throw ForkPoolError(.invalidArgument, "\(Self.jobName) is an async job: run it with `try await job.run()`")
    }
}

/// Runs async work to completion from synchronous code (a fresh worker's loop, a thread pool's
/// thread): a Task on the cooperative pool, the calling thread waiting for it.
enum AsyncJobRunner {
    static func run<Output: Sendable>(_ body: @escaping @Sendable () async throws -> Output) throws -> Output {
        let outcome = Outcome<Output>()
        Task {
            do {
                outcome.finish(.success(try await body()))
            } catch {
                outcome.finish(.failure(error))
            }
        }
        return try outcome.wait().get()
    }

    /// One result, waited for on a condition variable.
    private final class Outcome<Output: Sendable>: @unchecked Sendable {
        private let condition = ConditionLock()
        private var result: Result<Output, any Error>?

        func finish(_ result: Result<Output, any Error>) {
            condition.withLock { self.result = result }
            condition.broadcast()
        }

        func wait() -> Result<Output, any Error> {
            condition.withLock {
                while result == nil { condition.wait() }
                return result!
            }
        }
    }
}
