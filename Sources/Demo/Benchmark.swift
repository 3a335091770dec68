// Benchmark: runs each workload with each strategy and worker count, several times, checks
// every result against the sequential run, and collects rows for the table, JSON and chart.
import Dispatch
@_spi(Tuning) import ForkPool
import Glibc
import Histogram
import Workloads

/// One configuration's measurements (a row of the table and of the JSON).
struct Row: Codable, Sendable {
    var workload: String
    /// "Swift" or "Python".
    var language: String
    /// sequential / threads / processes, or the Python executor's name.
    var strategy: String
    var workers: Int
    var tasks: Int
    var chunkSize: Int?
    var seconds: [Double]
    var median: Double
    /// Swift rows: the sequential median divided by this median.
    var speedUp: Double?
    /// Latency rows: 99th percentile, seconds.
    var p99: Double?
    /// Swift rows: the Python peer's median (same workload, inputs, kind of pool, workers).
    var pythonMedian: Double?
    /// Swift rows: pythonMedian / median — how many times faster than the Python peer.
    var timesFasterThanPython: Double?

    /// Microseconds per task (overhead rows).
    var microsecondsPerTask: Double { median / Double(max(tasks, 1)) * 1e6 }
}

extension Row {
    /// A latency row: p50 (as the median) and p99 of one pool's round trips.
    init(roundTrip workload: String, strategy: Strategy, _ histogram: Histogram<UInt64>) {
        let p50 = Double(histogram.valueAtPercentile(50)) / 1e9
        self.init(workload: workload, language: "Swift", strategy: strategy.rawValue, workers: 1, tasks: Int(histogram.totalCount),
                  seconds: [p50], median: p50, p99: Double(histogram.valueAtPercentile(99)) / 1e9)
    }
}

/// `samples` timed round trips of one trivial task (`submit` + `get`, nothing else in flight)
/// after 10% more untimed ones to warm up; shuts the pool down. The benchmark's latency rows
/// and `Demo profile round-trip` both run this loop.
func roundTrips(on pool: any WorkerPool<Int, Int>, samples: Int) throws -> Histogram<UInt64> {
    defer { pool.shutdown() }
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    for index in 0..<(samples + samples / 10) {
        let start = monotonicNanoseconds()
        guard try pool.submit(index).get() == index else {
            throw BenchmarkError(description: "a round trip returned a wrong value")
        }
        if index >= samples / 10 { _ = histogram.record(monotonicNanoseconds() - start) }
    }
    return histogram
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

struct Benchmark {
    var workloads: [WorkloadName]
    var strategies: [Strategy]
    var workerCounts: [Int]
    var latencyWorkerCounts: [Int]
    var repetitions: Int
    var sizes: Sizes
    var progress: Progress

    /// Runs every selected workload; throws if any strategy's output differs from sequential.
    func run() throws -> [Row] {
        var rows: [Row] = []
        for workload in workloads {
            switch workload {
            case .transform:
                let sentences = Corpus.articleSentences + Corpus.sentences(count: max(0, sizes.sentences - 5))
                rows += try measure(workload, inputs: sentences, work: tagSentence)
            case .io, .ioLatency:
                let directory = try makeScratchDirectory()
                defer { removeScratchDirectory(directory) }
                let latency = workload == .io ? 0 : sizes.latencyMicroseconds
                let count = workload == .io ? sizes.ioTasks : sizes.latencyTasks
                let lines = workload == .io ? sizes.ioLines : 10
                let inputs = (0..<count).map { FileRoundTrip(directory: directory, index: $0, lines: lines, latencyMicroseconds: latency) }
                rows += try measure(workload, inputs: inputs, work: fileRoundTrip) {
                    let left = leftoverFiles(in: directory)
                    guard left == 0 else { throw BenchmarkError(description: "\(left) io files were left behind") }
                }
            case .cpu:
                rows += try measure(workload, inputs: articleFibonacciInputs, work: cpuIntensiveTransform)
            case .cpuLarge:
                let inputs = (0..<sizes.cpuRepeats).flatMap { _ in articleFibonacciInputs }
                rows += try measure(workload, inputs: inputs, work: cpuIntensiveTransform)
            }
        }
        return rows
    }

    /// Times the sequential baseline, then each pool at each worker count.
    private func measure<Input: Codable & Sendable, Output: Codable & Sendable & Equatable>(
        _ workload: WorkloadName, inputs: [Input], work: @escaping @Sendable (Input) throws -> Output,
        afterEachRun check: () throws -> Void = {}
    ) throws -> [Row] {
        var rows: [Row] = []
        var expected: [Output]?
        var sequentialMedian: Double?
        var plan: [(Strategy, Int)] = [(.sequential, 1)]
        let counts = workload == .ioLatency ? latencyWorkerCounts : workerCounts
        for strategy in strategies where strategy != .sequential {
            plan += counts.map { (strategy, $0) }
        }
        for (strategy, workers) in plan {
            var seconds: [Double] = []
            for repetition in 1...repetitions {
                progress.update("\(workload.rawValue): \(strategy.poolName) × \(workers), run \(repetition)/\(repetitions)")
                let (elapsed, results) = try runPool(strategy: strategy, workers: workers, inputs: inputs,
                                                     announce: false, work: work)
                try check()
                if let expected {
                    guard results == expected else {
                        throw BenchmarkError(description: "\(workload.rawValue) with \(strategy.poolName) × \(workers) "
                                             + "returned results that differ from the sequential run")
                    }
                } else {
                    expected = results
                }
                seconds.append(elapsed)
            }
            let middle = median(seconds)
            if strategy == .sequential { sequentialMedian = middle }
            rows.append(Row(workload: workload.rawValue, language: "Swift", strategy: strategy.rawValue, workers: workers,
                            tasks: inputs.count, seconds: seconds, median: middle,
                            speedUp: sequentialMedian.map { $0 / middle }))
        }
        progress.clear()
        return rows
    }

    /// The cost of one trivial task's round trip (`submit` + `get`, nothing else in flight) and
    /// of starting a pool: medians over many samples, one row each per pool.
    func roundTripAndStart(samples: Int) throws -> [Row] {
        var rows: [Row] = []
        for strategy in strategies where strategy != .sequential {
            progress.update("round trip: \(strategy.poolName)")
            let pool: any WorkerPool<Int, Int> = strategy == .processes
                ? try ProcessPool(workers: 1, work: identity) : try ThreadPool(workers: 1, work: identity)
            rows.append(Row(roundTrip: "round-trip", strategy: strategy, try roundTrips(on: pool, samples: samples)))
            if strategy == .processes {
                // The same through the dispatcher thread (no direct lane), for comparison.
                progress.update("round trip: ProcessPool without lanes")
                var configuration = ProcessPoolConfiguration()
                configuration.usesDirectLanes = false
                let queued = try ProcessPool(workers: 1, configuration: configuration, work: identity)
                rows.append(Row(roundTrip: "round-trip-no-lanes", strategy: strategy, try roundTrips(on: queued, samples: samples)))
            }
            var starts: [Double] = []
            for _ in 0..<20 {
                let start = now()
                let started: any WorkerPool<Int, Int> = strategy == .processes
                    ? try ProcessPool(workers: 4, work: identity) : try ThreadPool(workers: 4, work: identity)
                starts.append(now() - start)
                started.shutdown()
            }
            rows.append(Row(workload: "pool-start", language: "Swift", strategy: strategy.rawValue, workers: 4,
                            tasks: 1, seconds: starts, median: median(starts)))
        }
        progress.clear()
        return rows
    }

    /// A large `[UInt8]` sent to a worker and back (identity): the median seconds of at least
    /// ten round trips (each allocates fresh 64 MiB arrays, so single runs vary).
    func bulkRoundTrip(bytes: Int) throws -> Row {
        let pool = try ProcessPool(workers: 1) { (payload: [UInt8]) -> [UInt8] in payload }
        defer { pool.shutdown() }
        let payload = [UInt8](repeating: 0xA5, count: bytes)
        for _ in 0..<2 { _ = try pool.submit(payload).get() }  // warm up: buffers grown once
        var seconds: [Double] = []
        for repetition in 1...max(repetitions, 10) {
            progress.update("bulk: \(bytes >> 20) MiB round trip \(repetition)")
            let start = now()
            let back = try pool.submit(payload).get()
            seconds.append(now() - start)
            guard back.count == bytes, back.first == 0xA5, back.last == 0xA5 else {
                throw BenchmarkError(description: "bulk round trip returned different bytes")
            }
        }
        progress.clear()
        return Row(workload: "bulk", language: "Swift", strategy: Strategy.processes.rawValue, workers: 1,
                   tasks: bytes, seconds: seconds, median: median(seconds))
    }

    /// The cost of the machinery: identity tasks one at a time and in fixed chunks
    /// (`overheadTasks` of them), and with the pool's automatic chunking (`throughputTasks`).
    func overhead(workers: Int, chunkSizes: [Int]) throws -> [Row] {
        var rows: [Row] = []
        for strategy in strategies where strategy != .sequential {
            for chunkSize in chunkSizes + [nil] {
                let inputs = Array(0..<(chunkSize == nil ? sizes.throughputTasks : sizes.overheadTasks))
                var seconds: [Double] = []
                for repetition in 1...repetitions {
                    progress.update("overhead: \(strategy.poolName), chunk size \(chunkSize.map(String.init) ?? "auto"), "
                                    + "run \(repetition)/\(repetitions)")
                    let (elapsed, results) = try runPool(strategy: strategy, workers: workers, inputs: inputs,
                                                         chunkSize: chunkSize, announce: false, work: identity)
                    guard results == inputs else {
                        throw BenchmarkError(description: "overhead run with \(strategy.poolName) returned wrong results")
                    }
                    seconds.append(elapsed)
                }
                rows.append(Row(workload: "overhead", language: "Swift", strategy: strategy.rawValue, workers: workers,
                                tasks: inputs.count, chunkSize: chunkSize, seconds: seconds, median: median(seconds)))
            }
        }
        progress.clear()
        return rows
    }
}

/// Files still in `directory` (every io task removes its own).
func leftoverFiles(in directory: String) -> Int {
    directoryEntries(directory).count
}

/// Nanoseconds on the monotonic clock (Dispatch's uptime clock: CLOCK_MONOTONIC on Linux).
func monotonicNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}
