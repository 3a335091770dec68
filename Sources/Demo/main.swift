// Demo: the article's CPU-bound workload (naive recursive Fibonacci of 30…35) on a
// ProcessPool and a ThreadPool, timed side by side. The full three-workload benchmark is
// `make bench`.
import ForkPool
import Glibc

func fib(_ n: Int) -> Int {
    n < 2 ? n : fib(n - 1) + fib(n - 2)
}

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Times one run of `fib` over `inputs` with the given strategy, as the article's `run_pool`.
func runPool(strategy: String, workers: Int, inputs: [Int]) throws -> [Int] {
    let start = now()
    let results: [Int]
    switch strategy {
    case "ProcessPool":
        results = try withProcessPool(workers: workers, work: fib) { pool in try pool.map(inputs) }
    case "ThreadPool":
        results = try withThreadPool(workers: workers, work: fib) { pool in try pool.map(inputs) }
    default:
        results = inputs.map(fib)
    }
    let seconds = now() - start
    print("Time to complete using \(strategy) with \(workers) workers: \(String(format2: seconds))s")
    return results
}

extension String {
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

let inputs = [30, 31, 32, 33, 34, 35]
let workers = 4
let expected = try runPool(strategy: "sequential", workers: 1, inputs: inputs)
for strategy in ["ProcessPool", "ThreadPool"] {
    let results = try runPool(strategy: strategy, workers: workers, inputs: inputs)
    guard results == expected else {
        print("\(strategy) returned \(results), expected \(expected)")
        exit(1)
    }
}
print("fib(\(inputs)) = \(expected)")

/// Median of `samples` seconds, reported in microseconds.
func medianMicroseconds(_ samples: [Double]) -> Double {
    samples.sorted()[samples.count / 2] * 1e6
}

/// The cost of the machinery itself: starting a pool, and one tiny task's round trip.
func measureOverhead() throws {
    var starts: [Double] = []
    for _ in 0..<20 {
        let start = now()
        let pool = try ProcessPool(workers: 4) { (n: Int) -> Int in n }
        starts.append(now() - start)
        pool.shutdown()
    }
    print("ProcessPool(workers: 4) ready in \(Int(medianMicroseconds(starts))) µs (median of 20)")

    let pools: [(String, any WorkerPool<Int, Int>)] = [
        ("ProcessPool", try ProcessPool(workers: 1) { (n: Int) -> Int in n }),
        ("ThreadPool", ThreadPool(workers: 1) { (n: Int) -> Int in n }),
    ]
    for (name, pool) in pools {
        var trips: [Double] = []
        for index in 0..<5000 {
            let start = now()
            _ = try pool.submit(index).get()
            trips.append(now() - start)
        }
        pool.shutdown()
        print("\(name): submit + get of one trivial task: \(Int(medianMicroseconds(trips))) µs (median of 5000)")
    }
}

try measureOverhead()
