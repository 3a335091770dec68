// AsyncJobsBench: background jobs that await — each waits for a 10 ms timer (simulated I/O),
// then does a little CPU work — on a 2-worker fresh job pool: as async jobs run 100 at once
// per worker (`jobsPerWorker: 100`), beside the same work as sync jobs (which hold their worker
// while they wait), and beside Python's ProcessPoolExecutor whose workers run their share
// under asyncio (bench/peers/async_jobs_peer.py). Rounds alternate within one run.
import ForkPool
import Foundation
import Glibc

/// The CPU part of a job: 2,000 steps of a linear congruential generator (the Python peer runs
/// the same loop).
@Sendable func littleWork(_ seed: Int) -> Int {
    var value = seed
    for _ in 0..<2000 { value = (value &* 1_103_515_245 &+ 12_345) & 0x7FFF_FFFF }
    return value
}

/// Awaits a 10 ms timer, then does a little work.
struct TimerThenWorkJob: AsyncPoolJob {
    var seed: Int
    func run() async throws -> Int {
        try await Task.sleep(for: .milliseconds(10))
        return littleWork(seed)
    }
}

/// The same, synchronously: the worker sleeps through the 10 ms.
struct SleepThenWorkJob: PoolJob {
    var seed: Int
    func run() throws -> Int {
        usleep(10_000)
        return littleWork(seed)
    }
}

extension Benchmark {
    /// Rows "async-jobs": strategy "async, jobsPerWorker 100", "sync", and (when it ran)
    /// "ProcessPoolExecutor + asyncio"; `tasks` jobs per round, seconds per round.
    func asyncJobs(count: Int, rounds: Int, python: String?) throws -> [Row] {
        var configuration = ProcessPoolConfiguration()
        configuration.jobsPerWorker = 100
        let pool = try ProcessJobPool(workers: 2, configuration: configuration, jobs: [TimerThenWorkJob.self, SleepThenWorkJob.self])
        defer { pool.shutdown() }
        let expected = (0..<count).map(littleWork)
        var asyncSeconds: [Double] = [], syncSeconds: [Double] = []
        for round in 1...rounds {
            progress.update("async jobs: round \(round) of \(rounds), async")
            var start = now()
            let outputs = try (0..<count).map { try pool.submit(TimerThenWorkJob(seed: $0)) }.map { try $0.get() }
            asyncSeconds.append(now() - start)
            progress.update("async jobs: round \(round) of \(rounds), sync")
            start = now()
            let syncOutputs = try pool.map((0..<count).map(SleepThenWorkJob.init), chunkSize: 1)
            syncSeconds.append(now() - start)
            guard outputs == expected, syncOutputs == expected else {
                throw BenchmarkError(description: "an async-jobs round returned wrong values")
            }
        }
        var rows = [
            Row(workload: "async-jobs", language: "Swift", strategy: "async, jobsPerWorker 100", workers: 2, tasks: count,
                seconds: asyncSeconds, median: median(asyncSeconds)),
            Row(workload: "async-jobs", language: "Swift", strategy: "sync", workers: 2, tasks: count,
                seconds: syncSeconds, median: median(syncSeconds)),
        ]
        if let python, let peer = Self.pythonAsyncJobs(python: python, count: count, rounds: rounds) {
            rows.append(Row(workload: "async-jobs", language: "Python", strategy: "ProcessPoolExecutor + asyncio", workers: 2,
                            tasks: count, seconds: peer, median: median(peer)))
        }
        progress.clear()
        return rows
    }

    /// Runs bench/peers/async_jobs_peer.py; nil if it cannot.
    static func pythonAsyncJobs(python: String, count: Int, rounds: Int) -> [Double]? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "bench/peers/async_jobs_peer.py", "--jobs", "\(count)", "--workers", "2", "--rounds", "\(rounds)"]
        let output = Pipe()
        process.standardOutput = output
        guard (try? process.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        struct Report: Decodable { var seconds: [Double] }
        guard process.terminationStatus == 0, let report = try? JSONDecoder().decode(Report.self, from: data) else { return nil }
        return report.seconds
    }
}
