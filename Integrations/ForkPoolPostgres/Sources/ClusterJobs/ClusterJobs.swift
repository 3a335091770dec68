// ClusterJobs: the jobs the worker-host program, its tests and the cluster benchmark share —
// each says which host ran it (FORKPOOL_HOST_NAME in the host's environment), so a test can
// tell whose result was recorded.
@_spi(Integration) import ForkPool

#if canImport(Glibc)
import Glibc
#endif

/// The name of the host running this process (`FORKPOOL_HOST_NAME`), or "?".
public func currentHostName() -> String {
    getenv("FORKPOOL_HOST_NAME").map { String(cString: $0) } ?? "?"
}

/// Sleeps, then says which host ran it.
public struct SleepJob: PoolJob {
    public var milliseconds: Int
    public var tag: Int
    public init(milliseconds: Int, tag: Int = 0) {
        self.milliseconds = milliseconds
        self.tag = tag
    }
    public func run() throws -> HostAnswer {
        var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
        return HostAnswer(host: currentHostName(), value: tag)
    }
}

/// What a job answers: the host that ran it and a value.
public struct HostAnswer: Codable, Sendable, Equatable {
    public var host: String
    public var value: Int
    public init(host: String, value: Int) {
        self.host = host
        self.value = value
    }
}

/// Squares a number.
public struct SquareJob: PoolJob {
    public var value: Int
    public init(value: Int) { self.value = value }
    public func run() throws -> Int { value * value }
}

/// Naive recursive Fibonacci: the article's CPU-heavy work, here the benchmark's job.
public struct FibonacciJob: PoolJob {
    public var n: Int
    public init(n: Int) { self.n = n }
    public func run() throws -> Int { Self.fib(n) }
    static func fib(_ n: Int) -> Int { n < 2 ? n : fib(n - 1) + fib(n - 2) }
}

/// Throws.
public struct FailingJob: PoolJob {
    public struct Refused: Error, CustomStringConvertible {
        public var reason: String
        public var description: String { "refused: \(reason)" }
    }
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public func run() throws -> Int { throw Refused(reason: reason) }
}

/// Crashes its worker with SIGSEGV.
public struct CrashingJob: PoolJob {
    public init() {}
    public func run() throws -> Int {
        raise(SIGSEGV)
        return 0
    }
}

/// Carries bytes; answers their count.
public struct BytesJob: PoolJob {
    public var bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
    public func run() throws -> Int { bytes.count }
}

/// Does nothing: the drain benchmark's job (the queue's own cost, nothing else).
public struct NoOpJob: PoolJob {
    public init() {}
    public func run() throws -> Int { 0 }
}

/// A periodic job: says which host ran it.
public struct TickJob: PoolJob {
    public init() {}
    public func run() throws -> HostAnswer { HostAnswer(host: currentHostName(), value: 0) }
}

/// Leaves a trace of every run: appends one line "<host> <tag>" to the file at `path` (O_APPEND,
/// one write: lines of concurrent runs do not mix), then says which host ran it. A test counts
/// the lines to see how many times, and where, the job ran.
public struct MarkJob: PoolJob {
    public struct CannotWrite: Error, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "cannot append to \(path): errno \(errno)" }
    }
    public var path: String
    public var tag: Int
    public init(path: String, tag: Int) {
        self.path = path
        self.tag = tag
    }
    public func run() throws -> HostAnswer {
        let host = currentHostName()
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard descriptor >= 0 else { throw CannotWrite(path: path, errno: errno) }
        defer { close(descriptor) }
        let line = Array("\(host) \(tag)\n".utf8)
        guard write(descriptor, line, line.count) == line.count else { throw CannotWrite(path: path, errno: errno) }
        return HostAnswer(host: host, value: tag)
    }
}

/// Awaits a timer (simulated I/O: a host with `--jobs-per-worker` runs many at once per worker),
/// then does a little CPU work (2,000 steps of a linear congruential generator, as the Python
/// peer's job does) and says which host ran it.
public struct AwaitJob: AsyncPoolJob {
    public var milliseconds: Int
    public var tag: Int
    public init(milliseconds: Int, tag: Int = 0) {
        self.milliseconds = milliseconds
        self.tag = tag
    }
    public func run() async throws -> HostAnswer {
        try await Task.sleep(for: .milliseconds(milliseconds))
        var value = tag
        for _ in 0..<2000 { value = (value &* 1_103_515_245 &+ 12_345) & 0x7FFF_FFFF }
        return HostAnswer(host: currentHostName(), value: value == -1 ? value : tag)
    }
}

/// Every job type above, for a host's pool.
public let clusterJobTypes: [any PoolJob.Type] = [SleepJob.self, SquareJob.self, FibonacciJob.self, FailingJob.self,
                                                  CrashingJob.self, BytesJob.self, NoOpJob.self, TickJob.self, MarkJob.self,
                                                  AwaitJob.self]

extension ProcessPoolConfiguration {
    /// The defaults with crash backtraces off: the hosts, tests and bench crash workers on purpose.
    public static var withoutBacktraces: ProcessPoolConfiguration {
        var configuration = ProcessPoolConfiguration()
        configuration.workerCrashBacktraces = false
        return configuration
    }
}
