// JobHandle: the submitting side's hold on one job in a PostgresJobQueue — its row's id, and
// the way to its result (awaited through the queue's OutcomeWatcher) or to cancel it.
@_spi(Integration) import ForkPool

/// One job written to a ``PostgresJobQueue``: await ``value`` for its output.
public struct JobHandle<Output: Codable & Sendable>: Sendable {
    /// The job's row (`forkpool_jobs.id`).
    public let id: Int64
    /// The queue the job was written to.
    public let queue: PostgresJobQueue
    private let decode: @Sendable ([UInt8]) throws(ForkPoolError) -> Output
    private let jobName: String

    init(id: Int64, queue: PostgresJobQueue, jobName: String, decode: @escaping @Sendable ([UInt8]) throws(ForkPoolError) -> Output) {
        self.id = id
        self.queue = queue
        self.jobName = jobName
        self.decode = decode
    }

    /// The job's output, once a worker host has recorded it.
    ///
    /// - Throws: the job's failure as its host recorded it (a ``ForkPoolError`` with the code
    ///   the local pool gave: ``ForkPoolError/Code/workFailed`` when the job threw,
    ///   ``ForkPoolError/Code/workerDied`` when it crashed its worker on every attempt, …,
    ///   naming the job), ``ForkPoolError/Code/cancelled`` for a cancelled job or when the
    ///   awaiting task is cancelled (the job itself then goes on).
    public var value: Output {
        get async throws(ForkPoolError) {
            do {
                return try await queue.value(of: id, decode: decode)
            } catch {
                var named = error
                named.jobName = jobName
                throw named
            }
        }
    }

    /// Cancels the job; see ``PostgresJobQueue/cancel(jobID:)``.
    @discardableResult
    public func cancel() async throws -> Bool {
        try await queue.cancel(jobID: id)
    }
}
