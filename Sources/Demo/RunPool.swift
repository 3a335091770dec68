// runPool: the article's `run_pool(strategy:)` in Swift — time one run of one workload with
// one strategy, pool start-up and shutdown included, as the article's `with` block does.
import ForkPool
import Glibc

/// How a workload's inputs are run: in this thread, or on one of ForkPool's pools.
enum Strategy: String, CaseIterable, Codable, Sendable {
    case sequential
    case threads
    case processes

    /// The name the article would print.
    var poolName: String {
        switch self {
        case .sequential: "sequential"
        case .threads: "ThreadPool"
        case .processes: "ProcessPool"
        }
    }

    /// The Python executor doing the same job, for the comparison column.
    var pythonPeer: String? {
        switch self {
        case .sequential: nil
        case .threads: "ThreadPoolExecutor"
        case .processes: "ProcessPoolExecutor"
        }
    }
}

/// Seconds on the monotonic clock.
func now() -> Double {
    Double(monotonicNanoseconds()) / 1e9
}

/// Times one run of `work` over `inputs`; prints the article's line when `announce` is set.
/// `chunkSize` nil lets the pool choose (`map(_:)`); a number forces `map(_:chunkSize:)`.
func runPool<Input: Codable & Sendable, Output: Codable & Sendable>(
    strategy: Strategy, workers: Int, inputs: [Input], chunkSize: Int? = nil, announce: Bool = true,
    work: @escaping @Sendable (Input) throws -> Output
) throws -> (seconds: Double, results: [Output]) {
    let start = now()
    let results: [Output]
    switch strategy {
    case .sequential:
        results = try inputs.map(work)
    case .threads, .processes:
        // The article's `with ProcessPoolExecutor(...) as executor: executor.map(...)`.
        let pool: any WorkerPool<Input, Output> = strategy == .threads
            ? try ThreadPool(workers: workers, work: work) : try ProcessPool(workers: workers, work: work)
        defer { pool.shutdown() }
        results = try pool.map(inputs, chunkSize: chunkSize)
    }
    let seconds = now() - start
    if announce {
        let label = strategy == .sequential ? "sequential code" : "\(strategy.poolName) with \(workers) workers"
        print("Time to complete using \(label): \(formatSeconds(seconds))s")
    }
    return (seconds, results)
}

func formatSeconds(_ value: Double, digits: Int = 2) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    var fraction = String(scaled % Int(scale))
    while fraction.count < digits { fraction = "0" + fraction }
    return digits == 0 ? "\(whole)" : "\(whole).\(fraction)"
}
