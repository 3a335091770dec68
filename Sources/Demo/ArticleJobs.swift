// ArticleJobs: the article's three workloads as jobs, so that one job pool per strategy runs
// all three (`Demo article`), and the benchmark's figure for it: one ProcessJobPool running the
// three workloads' jobs mixed, beside three single-function ProcessPools doing the same work
// at the same time (time, and the private memory of all their workers).
import Dispatch
import ForkPool
import Foundation
import Workloads

/// transform: tag one sentence.
struct TagJob: PoolJob {
    var sentence: String
    func run() throws -> TaggedSentence { tagSentence(sentence) }
}

/// io: one file round trip.
struct FileJob: PoolJob {
    var task: FileRoundTrip
    func run() throws -> Int { try fileRoundTrip(task) }
}

/// cpu: the article's naive Fibonacci.
struct FibonacciJob: PoolJob {
    var n: Int
    func run() throws -> Int { cpuIntensiveTransform(n) }
}

let articleJobs: [any PoolJob.Type] = [TagJob.self, FileJob.self, FibonacciJob.self]

/// The article's `run_pool(strategy, fn, inputs)` with job pools: one pool per strategy runs all
/// three workloads, each timed; returns the three workloads' results for checking.
func runJobPool(strategy: Strategy, workers: Int, sentences: [String], files: [FileRoundTrip], numbers: [Int])
    throws -> (tagged: [TaggedSentence], sizes: [Int], fibonacci: [Int]) {
    let pool: any JobPool = strategy == .processes
        ? try ProcessJobPool(workers: workers, jobs: articleJobs) : try ThreadJobPool(workers: workers, jobs: articleJobs)
    defer { pool.shutdown() }
    func timed<T>(_ what: String, _ body: () throws -> T) rethrows -> T {
        let start = now()
        let result = try body()
        print("Time to complete \(what) using one \(strategy == .processes ? "ProcessJobPool" : "ThreadJobPool") "
              + "with \(workers) workers: \(formatSeconds(now() - start))s")
        return result
    }
    return (try timed("transform") { try pool.map(sentences.map(TagJob.init)) },
            try timed("io") { try pool.map(files.map(FileJob.init)) },
            try timed("cpu") { try pool.map(numbers.map(FibonacciJob.init)) })
}

extension Benchmark {
    /// One ProcessJobPool with every job mixed (submitted interleaved, all in flight), beside
    /// three ProcessPools — one per workload, as a program without job pools needs — doing the
    /// same work at the same time from three threads. Rows `job-pool` and `three-pools`: median
    /// seconds of `repetitions`; `job-pool-memory` and `three-pools-memory`: the private memory of
    /// all the workers after a run, in bytes. Every result is checked.
    func jobPoolAgainstThreePools(workers: Int) throws -> [Row] {
        let sentences = Corpus.articleSentences + Corpus.sentences(count: max(0, sizes.sentences / 4 - 5))
        let directory = try makeScratchDirectory()
        defer { removeScratchDirectory(directory) }
        let files = (0..<(sizes.ioTasks / 4)).map { FileRoundTrip(directory: directory, index: $0, lines: sizes.ioLines) }
        let numbers = articleFibonacciInputs
        let expected = (sentences.map(tagSentence), try files.map(fileRoundTrip), numbers.map(cpuIntensiveTransform))
        let tasks = sentences.count + files.count + numbers.count
        var jobSeconds: [Double] = [], threeSeconds: [Double] = []
        var jobMemory = 0.0, threeMemory = 0.0
        for repetition in 1...repetitions {
            progress.update("job pool: one ProcessJobPool, three workloads mixed, run \(repetition)")
            var start = now()
            let pool = try ProcessJobPool(workers: workers, jobs: articleJobs)
            // Interleaved: the pool sees the three kinds of job at once, as a server would.
            var tagged: [Future<TaggedSentence>] = [], sized: [Future<Int>] = [], computed: [Future<Int>] = []
            for index in 0..<max(sentences.count, files.count, numbers.count) {
                if index < numbers.count { computed.append(try pool.submit(FibonacciJob(n: numbers[index]))) }
                if index < sentences.count { tagged.append(try pool.submit(TagJob(sentence: sentences[index]))) }
                if index < files.count { sized.append(try pool.submit(FileJob(task: files[index]))) }
            }
            let results = (try tagged.map { try $0.get() }, try sized.map { try $0.get() }, try computed.map { try $0.get() })
            jobSeconds.append(now() - start)
            jobMemory = Double(pool.stats.workers.compactMap(\.processID).compactMap(privateBytes(of:)).reduce(0, +))
            pool.shutdown()
            guard results == expected else { throw BenchmarkError(description: "the job pool returned different results") }

            progress.update("job pool: three ProcessPools, the same work, run \(repetition)")
            start = now()
            let tagPool = try ProcessPool(workers: workers, work: tagSentence)
            let filePool = try ProcessPool(workers: workers, work: fileRoundTrip)
            let fibPool = try ProcessPool(workers: workers, work: cpuIntensiveTransform)
            let outcome = ThreePoolOutcome()
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) { outcome.set(tagged: Result { () throws(ForkPoolError) in try tagPool.map(sentences) }) }
            DispatchQueue.global().async(group: group) { outcome.set(sized: Result { () throws(ForkPoolError) in try filePool.map(files) }) }
            DispatchQueue.global().async(group: group) { outcome.set(computed: Result { () throws(ForkPoolError) in try fibPool.map(numbers) }) }
            group.wait()
            threeSeconds.append(now() - start)
            threeMemory = Double((tagPool.stats.workers.compactMap(\.processID) + filePool.stats.workers.compactMap(\.processID) + fibPool.stats.workers.compactMap(\.processID))
                .compactMap(privateBytes(of:)).reduce(0, +))
            for pool in [tagPool, filePool, fibPool] as [any WorkerPool] { pool.shutdown() }
            guard try outcome.results() == expected else {
                throw BenchmarkError(description: "the three pools returned different results")
            }
        }
        progress.clear()
        func row(_ workload: String, _ workerCount: Int, _ seconds: [Double], _ median: Double) -> Row {
            Row(workload: workload, language: "Swift", strategy: Strategy.processes.rawValue, workers: workerCount, tasks: tasks,
                seconds: seconds, median: median)
        }
        return [row("job-pool", workers, jobSeconds, median(jobSeconds)),
                row("three-pools", 3 * workers, threeSeconds, median(threeSeconds)),
                row("job-pool-memory", workers, [jobMemory], jobMemory),
                row("three-pools-memory", 3 * workers, [threeMemory], threeMemory)]
    }
}

/// The three pools' results, set from three threads.
private final class ThreePoolOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var tagged: Result<[TaggedSentence], ForkPoolError>?
    private var sized: Result<[Int], ForkPoolError>?
    private var computed: Result<[Int], ForkPoolError>?

    func set(tagged value: Result<[TaggedSentence], ForkPoolError>) { lock.withLock { tagged = value } }
    func set(sized value: Result<[Int], ForkPoolError>) { lock.withLock { sized = value } }
    func set(computed value: Result<[Int], ForkPoolError>) { lock.withLock { computed = value } }

    func results() throws -> ([TaggedSentence], [Int], [Int]) {
        try lock.withLock { (try tagged!.get(), try sized!.get(), try computed!.get()) }
    }
}
