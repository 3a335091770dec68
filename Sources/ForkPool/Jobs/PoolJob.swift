// PoolJob: work that a job pool runs — the value carries the inputs, `run()` computes. A
// `ProcessJobPool` sends the value (Codable) to a worker process by the job's name; a
// `ThreadJobPool` runs it on a pthread in this process, so there a job need only be Sendable
// (`RunnableJob`).

/// Work a ``ThreadJobPool`` can run: a `Sendable` value whose ``run()`` computes the output.
/// A ``PoolJob`` is a `RunnableJob` that can also cross to a worker process.
public protocol RunnableJob: Sendable {
    /// What ``run()`` returns.
    associatedtype Output: Sendable
    /// The job's name: how a pool registers it, and how it travels on the wire. Default: the
    /// module-qualified type name, as in `"MyApp.Resize"`. Two job types of one pool must not
    /// share a name.
    static var jobName: String { get }
    /// Computes the job's output; in a ``ProcessJobPool``, in a worker process.
    func run() throws -> Output
}

extension RunnableJob {
    /// The module-qualified type name, as in `"MyApp.Resize"`.
    public static var jobName: String { String(reflecting: Self.self) }
}

/// Work that a pool can run: the value carries the inputs; ``RunnableJob/run()`` computes in a
/// worker. Any ``ProcessJobPool`` created with the type among its `jobs` runs it, beside other
/// job types, on the same workers.
///
/// ```swift
/// struct Checksum: PoolJob {
///     var path: String
///     func run() throws -> UInt64 { try fnv1a(contentsOf: path) }
/// }
/// let pool = try ProcessJobPool(workers: 4, jobs: [Resize.self, Checksum.self])
/// let sums = try pool.map(files.map(Checksum.init))
/// ```
public protocol PoolJob: RunnableJob, Codable where Output: Codable {
    /// Runs once in each worker process before its first job, for every job type of the pool:
    /// the place to open what a job of this type needs (a model, a cache), in place of an
    /// ``ProcessPoolConfiguration/initializer`` closure, which cannot go to a fresh worker. If it
    /// throws, the worker fails to start (`maximumConsecutiveStartFailures`, a `@_spi(Tuning)` setting).
    /// Default: nothing.
    static func setUpWorker() throws
}

extension PoolJob {
    /// Nothing to set up.
    public static func setUpWorker() throws {}
}
