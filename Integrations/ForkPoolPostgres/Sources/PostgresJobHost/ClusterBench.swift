// ClusterBench: `PostgresJobHost bench` — the same jobs on a local ProcessJobPool and through
// PostgreSQL on 1, 2 and 3 worker hosts (separate processes of this program, one worker each),
// and the time to recover a killed host's jobs.
//
//   local:      ProcessJobPool(workers: 1 and 2).map(jobs)             ─▶ jobs/s, lone-job latency
//   k hosts:    PostgresJobQueue.map(jobs): one INSERT ─▶ hosts (16 claims each) ─▶ every value
//                                                                       ─▶ jobs/s, lone-job latency
//   recovery:   host A holds two jobs ─ SIGKILL ─▶ host B claims them once A's lease lapses
//                                               ─▶ kill → claimed, kill → results
// All on this machine: more hosts than cores add no CPU, only processes; the figures show the
// queue's cost and its scaling up to the core count, not a cluster's.
import ClusterJobs
@_spi(Integration) import ForkPool
import ForkPoolPostgres
import Foundation
import Logging
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

struct ClusterBench {
    let options: HostOptions

    func run() async throws {
        let url = try options.string("url")
        let quick = try options.int("quick", default: 0) != 0
        let jobCount = quick ? 400 : 2000
        let fibonacci = 25
        let jobs = (0..<jobCount).map { _ in FibonacciJob(n: fibonacci) }
        var report: [String: Any] = ["jobs": jobCount, "job": "FibonacciJob(n: \(fibonacci))",
                                     "cores": sysconf(Int32(_SC_NPROCESSORS_ONLN))]
        print("cluster bench: \(jobCount) × FibonacciJob(n: \(fibonacci)); one worker per host; \(report["cores"]!) cores")

        var local: [[String: Any]] = []
        for workers in [1, 2] {
            let pool = try ProcessJobPool(workers: workers, configuration: .withoutBacktraces,
                                          jobs: clusterJobTypes)
            _ = try await pool.map(jobs.prefix(50))
            let started = ContinuousClock.now
            let outputs = try await pool.map(jobs)
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            precondition(outputs.count == jobCount)
            var lone: [Double] = []
            for value in 0..<50 {
                let start = ContinuousClock.now
                _ = try await pool.submit(SquareJob(value: value)).value
                lone.append((ContinuousClock.now - start) / .seconds(1))
            }
            pool.shutdown()
            let row: [String: Any] = ["workers": workers, "jobsPerSecond": Double(jobCount) / seconds, "loneLatency": percentiles(lone)]
            print(String(format: "  local ProcessJobPool, %d worker(s): %8.0f jobs/s   lone job p50 %7.3f ms",
                         workers, Double(jobCount) / seconds, percentiles(lone)["p50"]! * 1000))
            local.append(row)
        }
        report["local"] = local
        let baseline = local[1]["jobsPerSecond"] as! Double

        let logger = Logger(label: "forkpool.bench")
        let client = PostgresClient(configuration: try .init(url: url), backgroundLogger: logger)
        let running = Task { await client.run() }
        defer { running.cancel() }
        var clusters: [[String: Any]] = []
        for hostCount in 1...3 {
            let queue = try PostgresJobQueue(client: client, name: "bench-\(hostCount)-\(getpid())", logger: logger)
            try await queue.migrate()
            let hosts = try (0..<hostCount).map {
                try HostProcess(name: "bench\($0)", queue: queue.name, url: url, workers: 1, leaseMilliseconds: 30_000,
                                pollMilliseconds: 1000, capacity: 16)
            }
            _ = try await queue.map(jobs.prefix(20))  // every host connected and warm
            let started = ContinuousClock.now
            let outputs = try await queue.map(jobs)
            precondition(outputs.count == jobCount)
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            var lone: [Double] = []
            for value in 0..<30 {
                let start = ContinuousClock.now
                _ = try await queue.submit(SquareJob(value: value)).value
                lone.append((ContinuousClock.now - start) / .seconds(1))
            }
            for host in hosts { host.signal(SIGTERM) }
            for host in hosts { host.waitStatus() }
            let rate = Double(jobCount) / seconds
            clusters.append(["hosts": hostCount, "jobsPerSecond": rate, "ratioToLocal2": rate / baseline,
                             "loneLatency": percentiles(lone)])
            print(String(format: "  PostgreSQL, %d host(s):             %8.0f jobs/s (%.2f× local, 2 workers)   lone job p50 %7.3f ms  p90 %7.3f ms",
                         hostCount, rate, rate / baseline, percentiles(lone)["p50"]! * 1000, percentiles(lone)["p90"]! * 1000))
        }
        report["postgres"] = clusters
        report["recovery"] = try await measureRecovery(client: client, url: url, logger: logger)

        if let path = try? options.string("json") {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: path))
            print("  wrote \(path)")
        }
    }

    /// Host A holds two 500 ms jobs when it is SIGKILLed; host B (already running, polling)
    /// claims them once A's 2 s lease lapses.
    private func measureRecovery(client: PostgresClient, url: String, logger: Logger) async throws -> [String: Any] {
        let lease = 2000
        let queue = try PostgresJobQueue(client: client, name: "bench-recovery-\(getpid())", logger: logger)
        let doomed = try HostProcess(name: "doomed", queue: queue.name, url: url, workers: 2, leaseMilliseconds: lease,
                                     pollMilliseconds: 200, capacity: 2)
        let handles = try await queue.submit(contentsOf: [SleepJob(milliseconds: 500, tag: 1), SleepJob(milliseconds: 500, tag: 2)])
        while try await owners(of: handles.map(\.id), client: client, logger: logger) != ["doomed", "doomed"] {
            try await Task.sleep(for: .milliseconds(5))
        }
        let survivor = try HostProcess(name: "survivor", queue: queue.name, url: url, workers: 2, leaseMilliseconds: lease,
                                       pollMilliseconds: 200, capacity: 2)
        let killed = ContinuousClock.now
        doomed.signal(SIGKILL)
        doomed.waitStatus()
        while try await owners(of: handles.map(\.id), client: client, logger: logger) != ["survivor", "survivor"] {
            try await Task.sleep(for: .milliseconds(5))
        }
        let claimed = (ContinuousClock.now - killed) / .seconds(1)
        for handle in handles { _ = try await handle.value }
        let finished = (ContinuousClock.now - killed) / .seconds(1)
        survivor.signal(SIGTERM)
        survivor.waitStatus()
        print(String(format: "  recovery of a SIGKILLed host's 2 jobs (lease %d ms, poll 200 ms): claimed by another host after %.2f s, results after %.2f s (the jobs take 0.5 s)",
                     lease, claimed, finished))
        return ["leaseMilliseconds": lease, "secondsUntilClaimed": claimed, "secondsUntilResults": finished, "jobSeconds": 0.5]
    }

    private func owners(of ids: [Int64], client: PostgresClient, logger: Logger) async throws -> [String] {
        var owners: [String] = []
        for try await owner in try await client.query("SELECT coalesce(lease_owner, '') FROM forkpool_jobs WHERE id = ANY(\(ids)) ORDER BY id",
                                                      logger: logger).decode(String.self) {
            owners.append(owner)
        }
        return owners
    }

    private func percentiles(_ samples: [Double]) -> [String: Double] {
        let sorted = samples.sorted()
        return ["p50": sorted[sorted.count / 2], "p90": sorted[sorted.count * 9 / 10], "max": sorted.last!]
    }
}
