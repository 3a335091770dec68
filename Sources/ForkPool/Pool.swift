// Pool, WorkerPool, JobPool: the calls every pool shares, written once.
//
//   pool.submit / submitWhenReady / map / results ─▶ protocol extension (this file)
//        ─▶ the pool's engine seam (`_tasks`, `_jobs`, `_control`) ─▶ its engine:
//           TypedTasks + Dispatcher (processes) or ThreadTasks + ThreadEngine (threads)
//
// The four pool classes only create their engine and add what is theirs (a deadline per
// task on process pools). The seams are underscored: ForkPool's own, not API.
import Glibc

/// What every pool has: its size, its counts, and its shutdown. ``WorkerPool`` (one work
/// function over many inputs) and ``JobPool`` (any registered job) build on it.
///
/// Only ForkPool's pools conform: ``ProcessPool``, ``ThreadPool``, ``ProcessJobPool`` and
/// ``ThreadJobPool``. All calls may be made from any number of threads at once.
public protocol Pool: AnyObject, Sendable {
    /// ForkPool's own seam between a pool and its engine; not API.
    var _control: any _PoolControl { get }
}

/// ForkPool's own seam: what a pool's engine does for the ``Pool`` calls. Not API.
public protocol _PoolControl: Sendable {
    var workerCount: Int { get }
    var stats: PoolStats { get }
    func shutdown(cancelPending: Bool)
}

extension Pool {
    /// The number of workers (processes or threads) the pool keeps running (also
    /// `stats.workers.count`).
    var workerCount: Int { _control.workerCount }

    /// What the pool has done so far: per worker and in total, plus the tasks waiting in the
    /// queue. Each call takes a fresh snapshot; a chunk of `map` counts as one task. See
    /// ``PoolStats``.
    public var stats: PoolStats { _control.stats }

    /// Stops accepting tasks and waits until every worker has exited. Queued tasks still run
    /// unless `cancelPending` is true, in which case they fail with
    /// ``ForkPoolError/Code/cancelled``. Running tasks always finish (a process pool's worker
    /// running one is not killed). Idempotent; concurrent callers all wait. Dropping the last
    /// reference to a pool does the same with `cancelPending: false`.
    public func shutdown(cancelPending: Bool = false) {
        _control.shutdown(cancelPending: cancelPending)
    }
}

// MARK: - Value pools

/// A pool that runs one function, fixed at creation, over many inputs: ``ProcessPool`` in
/// pre-forked worker processes, ``ThreadPool`` on pthreads. Use it to pick processes or
/// threads at run time (`any WorkerPool<Int, Int>`).
public protocol WorkerPool<Input, Output>: Pool {
    /// What the work function takes: one element of the inputs.
    associatedtype Input: Sendable
    /// What the work function returns for one input.
    associatedtype Output: Sendable
    /// ForkPool's own seam between a pool and its engine; not API.
    var _tasks: any _ValueTasks<Input, Output> { get }
}

/// ForkPool's own seam: what a value pool's engine does for the ``WorkerPool`` calls. Not API.
public protocol _ValueTasks<Input, Output>: Sendable {
    associatedtype Input: Sendable
    associatedtype Output: Sendable
    func submit(_ input: Input) throws(ForkPoolError) -> Future<Output>
    func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output>
    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int?) throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input
    func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int?) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input
}

extension WorkerPool {
    /// Queues one input and returns a future for its output.
    ///
    /// - Throws: ``ForkPoolError`` with ``ForkPoolError/Code/overloaded`` when the pool's queue
    ///   is full (its `maximumQueuedTasks`; nothing is queued), ``ForkPoolError/Code/poolShutDown``
    ///   after `shutdown`, or, on a process pool, a coding error if the input cannot be encoded
    ///   (it is encoded here, on the calling thread).
    public func submit(_ input: Input) throws(ForkPoolError) -> Future<Output> {
        try _tasks.submit(input)
    }

    /// Queues one input like ``submit(_:)``, but when the queue is full suspends the calling
    /// task until there is room instead of throwing ``ForkPoolError/Code/overloaded``; callers
    /// waiting for room are served first come, first served.
    ///
    /// - Throws: ``ForkPoolError/Code/cancelled`` when the calling `Task` is cancelled while it
    ///   waits (nothing is queued then); ``ForkPoolError/Code/poolShutDown`` when the pool shuts
    ///   down meanwhile.
    public func submitWhenReady(_ input: Input) async throws(ForkPoolError) -> Future<Output> {
        try await _tasks.submitWhenReady(input)
    }

    /// Runs the work on every input in parallel and returns the outputs in input order,
    /// blocking until all are done.
    ///
    /// With `chunkSize` nil (the default) the pool picks how many inputs to hand a worker at
    /// once: it times the inputs as they complete and batches fast ones (about 2 ms of work a
    /// chunk) while slow ones go one at a time. With a `chunkSize`, that many go at once
    /// (Python's `Executor.map(chunksize:)`; a process pool sends fewer when a chunk would
    /// exceed its frame limit). On the first failure in input order the
    /// work not yet started is cancelled and that failure is thrown.
    ///
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` when `chunkSize` is below 1; the first
    ///   failure otherwise.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int? = nil) throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        try _tasks.map(inputs, chunkSize: chunkSize)
    }

    /// The async form of ``WorkerPool/map(_:chunkSize:)-72qez``: suspends the calling task instead of
    /// blocking its thread. Cancelling the calling `Task` cancels the chunks not yet started
    /// (and, on a process pool with
    /// ``ProcessPoolConfiguration/cancellationKillsRunningTasks``, kills the workers running
    /// the others), then throws ``ForkPoolError/Code/cancelled``.
    public func map<Inputs: Sequence>(_ inputs: Inputs, chunkSize: Int? = nil) async throws(ForkPoolError) -> [Output]
    where Inputs.Element == Input {
        try await _tasks.map(inputs, chunkSize: chunkSize)
    }

    /// Every input's result, handed over in the order the tasks complete (Python's
    /// `as_completed` / `imap_unordered`): each element is the input's position (0 for the
    /// first) and its task's `Result`; a failed task is an element too, so the sequence never
    /// throws. Inputs are read lazily and at most `maximumInFlight` results are owed at once
    /// (default: twice the worker count), so a slow consumer holds back the submitting and an
    /// endless input is fine. Each iteration submits the inputs anew; cancelling the iterating
    /// `Task` cancels the tasks still owed.
    ///
    /// - Throws: ``ForkPoolError/Code/invalidArgument`` when `maximumInFlight` is below 1.
    public func results<Inputs: Sequence>(for inputs: Inputs, maximumInFlight: Int? = nil) throws(ForkPoolError)
        -> some AsyncSequence<(index: Int, result: Result<Output, ForkPoolError>), Never>
    where Inputs.Element == Input {
        // The sequence holds the pool, as a caller iterating it expects: dropping the pool
        // meanwhile would shut it down.
        try CompletedResults(inputs: inputs, maximumInFlight: maximumInFlight, workerCount: workerCount) { [self] input async throws(ForkPoolError) in
            try await submitWhenReady(input)
        }
    }
}

// MARK: - Job pools

/// A pool that runs any job whose type it was created with, on the same workers:
/// ``ProcessJobPool`` in pre-forked worker processes (jobs that are ``PoolJob``s),
/// ``ThreadJobPool`` on pthreads (any ``RunnableJob``). Jobs of different types may be in
/// flight at once; `map` takes jobs of one type.
public protocol JobPool: Pool {
    /// ForkPool's own seam between a pool and its engine; not API.
    var _jobs: any _JobTasks { get }
}

/// ForkPool's own seam: what a job pool's engine does for the ``JobPool`` calls. Not API.
public protocol _JobTasks: Sendable {
    func submit<Job: RunnableJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output>
    func submitWhenReady<Job: RunnableJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output>
    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int?) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob
    func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int?) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob
}

extension JobPool {
    /// Queues one job and returns a future for its output.
    ///
    /// - Throws: ``ForkPoolError/Code/unknownJob`` when the job's type is not one of the pool's
    ///   (a process pool registers only ``PoolJob`` types; nothing is queued),
    ///   ``ForkPoolError/Code/overloaded`` when the queue is full,
    ///   ``ForkPoolError/Code/poolShutDown`` after `shutdown`, or a coding error.
    public func submit<Job: RunnableJob>(_ job: Job) throws(ForkPoolError) -> Future<Job.Output> {
        try _jobs.submit(job)
    }

    /// Queues one job like ``submit(_:)``, but when the queue is full suspends the calling task
    /// until there is room; cancelling it meanwhile throws ``ForkPoolError/Code/cancelled``
    /// with nothing queued.
    public func submitWhenReady<Job: RunnableJob>(_ job: Job) async throws(ForkPoolError) -> Future<Job.Output> {
        try await _jobs.submitWhenReady(job)
    }

    /// Runs every job (all of one type) and returns the outputs in order, with chunk sizes
    /// chosen as ``WorkerPool/map(_:chunkSize:)-72qez`` chooses them (or exactly `chunkSize`).
    /// The first failure in order cancels the rest and is thrown.
    public func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int? = nil) throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        try _jobs.map(jobs, chunkSize: chunkSize)
    }

    /// The async form of ``JobPool/map(_:chunkSize:)-3o745``; cancelling the calling `Task` cancels the
    /// jobs not yet started and throws ``ForkPoolError/Code/cancelled``.
    public func map<Jobs: Sequence>(_ jobs: Jobs, chunkSize: Int? = nil) async throws(ForkPoolError) -> [Jobs.Element.Output]
    where Jobs.Element: RunnableJob {
        try await _jobs.map(jobs, chunkSize: chunkSize)
    }

    /// Every job's result in the order the jobs complete, as
    /// ``WorkerPool/results(for:maximumInFlight:)`` does for inputs.
    public func results<Jobs: Sequence>(for jobs: Jobs, maximumInFlight: Int? = nil) throws(ForkPoolError)
        -> some AsyncSequence<(index: Int, result: Result<Jobs.Element.Output, ForkPoolError>), Never>
    where Jobs.Element: RunnableJob {
        try CompletedResults(inputs: jobs, maximumInFlight: maximumInFlight, workerCount: workerCount) { [self] job async throws(ForkPoolError) in
            try await submitWhenReady(job)
        }
    }
}

// MARK: - Scoped pools

/// The number of online processors: the default worker count.
@usableFromInline
var defaultWorkerCount: Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Runs `body` with `pool`, then shuts it down: letting queued work finish when `body`
/// returns, cancelling it when `body` throws.
func withShutdown<Scoped: Pool, Result>(of pool: Scoped, _ body: (Scoped) throws -> Result) throws -> Result {
    do {
        let result = try body(pool)
        pool.shutdown(cancelPending: false)
        return result
    } catch {
        pool.shutdown(cancelPending: true)
        throw error
    }
}
