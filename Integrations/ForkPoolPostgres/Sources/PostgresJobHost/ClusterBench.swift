// ClusterBench: `PostgresJobHost bench` — the PostgreSQL queue beside its peer, pgqueuer, on the
// same PostgreSQL, interleaved; writes JSON and the Markdown section docs/BENCHMARKS.md shows.
//
//   drain:    hosts (this program, 2 workers each, default settings) ready and idle ─▶ one
//             INSERT of N no-op jobs ─▶ until no row of the queue is queued or running (polled
//             every 5 ms, each state through its own partial index) ─▶ jobs/s; transactions = pg_stat_database.xact_commit delta (read
//             2 s after the drain, when every backend has flushed its counts) minus the polls,
//             ÷ jobs. pgqueuer: the same N no-op jobs, 2 consumer processes, the same polling
//             (bench/peers/pgqueuer_peer.py). Rounds interleave: ForkPool 1 host, pgqueuer,
//             ForkPool 2 hosts, 3 hosts.
//   lone job: 1 idle host, submit → `await handle.value`, one at a time; pgqueuer: enqueue →
//             its completion watcher, at its lowest-latency setting.
//   history:  1 host drains N jobs beside an empty table, then beside 1,000,000 finished rows
//             of the same queue (inserted by SQL, then VACUUM ANALYZE), twice, alternating.
//   recovery: a SIGKILLed host's jobs claimed by another host once its lease lapsed.
// All on this machine: more hosts than cores add processes, not CPU.
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

    struct Drain {
        var seconds: Double
        var jobs: Int
        var transactions: Int
        var polls: Int
        var rate: Double { Double(jobs) / seconds }
        var transactionsPerJob: Double { Double(max(transactions - polls, 0)) / Double(jobs) }
        var json: [String: Any] {
            ["seconds": seconds, "jobs": jobs, "jobsPerSecond": rate, "xactCommits": transactions, "pollQueries": polls,
             "transactionsPerJob": transactionsPerJob]
        }
    }

    func run() async throws {
        let url = try options.string("url")
        let quick = try options.int("quick", default: 0) != 0
        let jobCount = try options.int("jobs", default: quick ? 2000 : 10_000)
        let rounds = try options.int("rounds", default: quick ? 1 : 3)
        let historyRows = quick ? 200_000 : 1_000_000
        let peer = options.optionalString("pgqueuer-python").flatMap { $0.isEmpty ? nil : $0 }
        let peerScript = try options.string("pgqueuer-script", default: "bench/peers/pgqueuer_peer.py")
        // `--sections drain,lone,history,recovery` (default all): rerun a part.
        let sections = Set(try options.string("sections", default: "drain,lone,history,recovery,async").split(separator: ",").map(String.init))
        let hostCounts = try options.string("hosts", default: "1,2,3").split(separator: ",").compactMap { Int($0) }
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var report: [String: Any] = ["jobs": jobCount, "job": "NoOpJob", "cores": cores, "rounds": rounds]
        print("cluster bench: \(jobCount) no-op jobs; hosts of 2 workers with default settings; \(cores) cores; \(rounds) round(s)")

        let logger = Logger(label: "forkpool.bench")
        let client = PostgresClient(configuration: try .init(url: url), backgroundLogger: logger)
        let running = await startRunning(client)
        defer { running.cancel() }
        try await PostgresJobQueue(client: client, name: "bench", logger: logger).migrate()

        // Local ceiling: the same jobs on a ProcessJobPool in this process.
        let pool = try ProcessJobPool(workers: 2, configuration: .withoutBacktraces, jobs: clusterJobTypes)
        _ = try await pool.map((0..<1000).map { _ in NoOpJob() })
        let localStart = ContinuousClock.now
        _ = try await pool.map((0..<jobCount).map { _ in NoOpJob() })
        let localRate = Double(jobCount) / ((ContinuousClock.now - localStart) / .seconds(1))
        pool.shutdown()
        print(String(format: "  local ProcessJobPool(workers: 2).map: %8.0f jobs/s (the ceiling: no database)", localRate))
        report["localJobsPerSecond"] = localRate

        var peerInstalled = false
        if let peer {
            do {
                _ = try runPeer(peer, script: peerScript, ["install-schema", "--url", url])
                peerInstalled = true
            } catch {
                print("  pgqueuer: could not install its schema (\(error)); its figures are skipped")
            }
        } else {
            print("  pgqueuer: not installed (make bench-cluster installs it into bench/.venv); its figures are skipped")
        }

        var drains: [Int: [Drain]] = [1: [], 2: [], 3: []]
        var peerDrains: [[String: Any]] = []
        for round in 1...rounds where sections.contains("drain") {
            for hostCount in ([1, 0] + hostCounts.filter { $0 != 1 }).filter({ $0 == 0 || hostCounts.contains($0) }) {
                if hostCount == 0 {
                    guard peerInstalled, let peer else { continue }
                    do {
                        let result = try runPeer(peer, script: peerScript, ["drain", "--url", url, "--jobs", "\(jobCount)", "--processes", "2"])
                        peerDrains.append(result)
                        print(String(format: "  round %d  pgqueuer, 2 processes:   %8.0f jobs/s  %.3f transactions/job", round,
                                     result["jobsPerSecond"] as? Double ?? 0, peerTransactionsPerJob(result) ?? .nan))
                    } catch {
                        print("  round \(round)  pgqueuer: \(error)")
                    }
                    continue
                }
                let drain = try await drainOnHosts(hostCount, jobs: jobCount, url: url, client: client, logger: logger)
                drains[hostCount]!.append(drain)
                print(String(format: "  round %d  ForkPool, %d host(s):      %8.0f jobs/s  %.3f transactions/job", round, hostCount,
                             drain.rate, drain.transactionsPerJob))
            }
        }
        report["drain"] = drains.keys.sorted().map { ["hosts": $0, "runs": drains[$0]!.map(\.json)] }
        report["pgqueuerDrain"] = peerDrains

        var peerLone: [String: Any]?
        if sections.contains("lone") {
            let lone = try await loneJob(url: url, client: client, logger: logger, samples: quick ? 30 : 100)
            report["loneJob"] = lone
            print(String(format: "  lone job, ForkPool (1 idle host): p50 %.2f ms  p90 %.2f ms", lone["p50"]! * 1000, lone["p90"]! * 1000))
        }
        if sections.contains("lone"), peerInstalled, let peer {
            do {
                peerLone = try runPeer(peer, script: peerScript, ["lone", "--url", url, "--samples", quick ? "30" : "100"])
            } catch {
                print("  lone job, pgqueuer: \(error)")
            }
            if let p50 = peerLone?["p50"] as? Double {
                print(String(format: "  lone job, pgqueuer: p50 %.2f ms  p90 %.2f ms", p50 * 1000, (peerLone?["p90"] as? Double ?? 0) * 1000))
            }
        }
        report["pgqueuerLone"] = peerLone ?? [:]

        if sections.contains("history") {
            report["history"] = try await historyDrains(rows: historyRows, jobs: jobCount, rounds: quick ? 1 : 2, url: url,
                                                        client: client, logger: logger)
        }
        if sections.contains("recovery") {
            report["recovery"] = try await measureRecovery(client: client, url: url, logger: logger)
        }
        if sections.contains("async") {
            report["asyncJobs"] = try await asyncDrains(jobs: jobCount, rounds: rounds, url: url, client: client, logger: logger,
                                                        peer: peerInstalled ? peer : nil, peerScript: peerScript)
        }
        report["markdown"] = markdown(report, drains: drains, peerDrains: peerDrains, peerLone: peerLone, localRate: localRate)

        if let path = try? options.string("json") {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: path))
            print("  wrote \(path)")
        }
    }

    // MARK: Measurements

    /// `hostCount` hosts with default settings drain `jobs` no-op jobs written in one INSERT.
    private func drainOnHosts(_ hostCount: Int, jobs: Int, url: String, client: PostgresClient, logger: Logger) async throws -> Drain {
        let queue = try PostgresJobQueue(client: client, name: "drain-\(hostCount)-\(UInt32.random(in: 0...UInt32.max))", logger: logger)
        let hosts = try (0..<hostCount).map { try defaultHost("drain\($0)", queue: queue.name, url: url) }
        defer { stop(hosts) }
        _ = try await queue.map((0..<200).map { _ in NoOpJob() })  // every host connected and warm
        return try await drain(queue, jobs: jobs, client: client, logger: logger)
    }

    /// Async jobs (each awaits a 10 ms timer, then a little CPU work): one host whose 2 workers
    /// run 100 at once each, beside pgqueuer's 2 processes running the same as async
    /// entrypoints, interleaved round by round.
    private func asyncDrains(jobs: Int, rounds: Int, url: String, client: PostgresClient, logger: Logger, peer: String?,
                             peerScript: String) async throws -> [String: Any] {
        var ours: [Double] = [], theirs: [Double] = []
        for round in 1...rounds {
            let queue = try PostgresJobQueue(client: client, name: "async-\(UInt32.random(in: 0...UInt32.max))", logger: logger)
            let host = try HostProcess(name: "async0", queue: queue.name, url: url, workers: 2, leaseMilliseconds: 30_000,
                                       pollMilliseconds: 1000, capacity: 0, logLevel: "notice", extra: ["--jobs-per-worker", "100"])
            _ = try await queue.map((0..<200).map { _ in NoOpJob() })  // connected and warm
            let drained = try await drain(queue, jobs: jobs, client: client, logger: logger) { AwaitJob(milliseconds: 10, tag: $0) }
            stop([host])
            ours.append(drained.rate)
            print(String(format: "  round %d  async jobs, ForkPool 1 host × 2 workers × 100 at once: %8.0f jobs/s", round, drained.rate))
            guard let peer else { continue }
            do {
                let result = try runPeer(peer, script: peerScript, ["drain", "--url", url, "--jobs", "\(jobs)", "--processes", "2",
                                                                     "--await-ms", "10"])
                let rate = result["jobsPerSecond"] as? Double ?? 0
                theirs.append(rate)
                print(String(format: "  round %d  async jobs, pgqueuer 2 processes:                 %8.0f jobs/s", round, rate))
            } catch {
                print("  round \(round)  async jobs, pgqueuer: \(error)")
            }
        }
        return ["forkPool": ours, "pgqueuer": theirs, "jobs": jobs, "awaitMilliseconds": 10]
    }

    private func drain<Job: PoolJob>(_ queue: PostgresJobQueue, jobs: Int, client: PostgresClient, logger: Logger,
                                     job: (Int) -> Job = { _ in NoOpJob() }) async throws -> Drain {
        try await Task.sleep(for: .seconds(2))  // every backend has flushed its counts
        let before = try await transactions(client: client, logger: logger)
        let started = ContinuousClock.now
        _ = try await queue.submit(contentsOf: (0..<jobs).map(job))
        var polls = 0
        while true {
            polls += 1
            var left: Int64 = 0
            for try await count in try await client.query("""
                SELECT (SELECT count(*) FROM forkpool_jobs WHERE queue = \(queue.name) AND state = 'queued')
                     + (SELECT count(*) FROM forkpool_jobs WHERE queue = \(queue.name) AND state = 'running')
                """, logger: logger).decode(Int64.self) { left = count }
            if left == 0 { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        let seconds = ((ContinuousClock.now - started) / .seconds(1))
        try await Task.sleep(for: .seconds(2))
        let after = try await transactions(client: client, logger: logger)
        return Drain(seconds: seconds, jobs: jobs, transactions: Int(after - before), polls: polls + 1)
    }

    private func transactions(client: PostgresClient, logger: Logger) async throws -> Int64 {
        for try await count in try await client.query("""
            SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()
            """, logger: logger).decode(Int64.self) { return count }
        return 0
    }

    private func loneJob(url: String, client: PostgresClient, logger: Logger, samples: Int) async throws -> [String: Double] {
        let queue = try PostgresJobQueue(client: client, name: "lone-\(UInt32.random(in: 0...UInt32.max))", logger: logger)
        let host = try defaultHost("lone", queue: queue.name, url: url)
        defer { stop([host]) }
        for value in 0..<10 { _ = try await queue.submit(SquareJob(value: value)).value }
        var latencies: [Double] = []
        for value in 0..<samples {
            let start = ContinuousClock.now
            _ = try await queue.submit(SquareJob(value: value)).value
            latencies.append(((ContinuousClock.now - start) / .seconds(1)))
        }
        return percentiles(latencies)
    }

    /// Alternates: the table emptied, a drain; 1,000,000 finished rows of the queue added, a drain.
    private func historyDrains(rows: Int, jobs: Int, rounds: Int, url: String, client: PostgresClient,
                               logger: Logger) async throws -> [String: Any] {
        let queue = try PostgresJobQueue(client: client, name: "history-\(UInt32.random(in: 0...UInt32.max))", logger: logger)
        let host = try defaultHost("history", queue: queue.name, url: url)
        defer { stop([host]) }
        var empty: [Drain] = [], full: [Drain] = []
        for _ in 0..<rounds {
            _ = try await client.query("TRUNCATE forkpool_jobs", logger: logger)
            _ = try await client.query("VACUUM ANALYZE forkpool_jobs", logger: logger)
            empty.append(try await drain(queue, jobs: jobs, client: client, logger: logger))
            _ = try await client.query("""
                INSERT INTO forkpool_jobs (queue, job_name, payload, state, attempts, max_attempts, result, finished_at)
                SELECT \(queue.name), 'NoOpJob', '\\x00'::bytea, 'succeeded', 1, 3, '\\x00'::bytea, now() - interval '1 hour'
                FROM generate_series(1, \(Int64(rows)))
                """, logger: logger)
            _ = try await client.query("VACUUM ANALYZE forkpool_jobs", logger: logger)
            full.append(try await drain(queue, jobs: jobs, client: client, logger: logger))
            print(String(format: "  history: drain beside an empty table %8.0f jobs/s, beside %d finished rows %8.0f jobs/s (%.2f×)",
                         empty.last!.rate, rows, full.last!.rate, full.last!.rate / empty.last!.rate))
        }
        _ = try await client.query("TRUNCATE forkpool_jobs", logger: logger)
        return ["finishedRows": rows, "empty": empty.map(\.json), "full": full.map(\.json)]
    }

    /// Host A holds two 500 ms jobs when it is SIGKILLed; host B (already running, polling)
    /// claims them once A's 2 s lease lapsed and the rescuer queued them again.
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
        let claimed = ((ContinuousClock.now - killed) / .seconds(1))
        for handle in handles { _ = try await handle.value }
        let finished = ((ContinuousClock.now - killed) / .seconds(1))
        survivor.signal(SIGTERM)
        survivor.waitStatus()
        print(String(format: "  recovery of a SIGKILLed host's 2 jobs (lease %d ms, poll 200 ms): claimed by another host after %.2f s, results after %.2f s (the jobs take 0.5 s)",
                     lease, claimed, finished))
        return ["leaseMilliseconds": lease, "secondsUntilClaimed": claimed, "secondsUntilResults": finished, "jobSeconds": 0.5]
    }

    // MARK: Parts

    /// A host as a user runs it: 2 workers, the default lease, poll interval and capacity.
    private func defaultHost(_ name: String, queue: String, url: String) throws -> HostProcess {
        try HostProcess(name: name, queue: queue, url: url, workers: 2, leaseMilliseconds: 30_000, pollMilliseconds: 1000,
                        capacity: 0, logLevel: "notice")
    }

    private func stop(_ hosts: [HostProcess]) {
        for host in hosts { host.signal(SIGTERM) }
        for host in hosts { host.waitStatus() }
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
        return ["p50": sorted[sorted.count / 2], "p90": sorted[sorted.count * 9 / 10], "p99": sorted[sorted.count * 99 / 100],
                "max": sorted.last!]
    }

    /// Runs the pgqueuer peer script; its last line of output, as JSON.
    private func runPeer(_ python: String, script: String, _ arguments: [String]) throws -> [String: Any] {
        let output = try runProgram([python, script] + arguments)
        guard let last = output.split(separator: "\n").last,
              let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
            throw UsageError(message: "pgqueuer peer \(arguments.first ?? ""): no JSON in its output: \(output.suffix(400))")
        }
        if let error = json["error"] { throw UsageError(message: "pgqueuer peer \(arguments.first ?? ""): \(error)") }
        return json
    }

    func peerTransactionsPerJob(_ result: [String: Any]) -> Double? {
        guard let transactions = result["xactCommits"] as? Int, let polls = result["pollQueries"] as? Int,
              let jobs = result["jobs"] as? Int, jobs > 0 else { return nil }
        return Double(max(transactions - polls, 0)) / Double(jobs)
    }
}

/// Runs a program to its end; its standard output (standard error goes to this one's).
func runProgram(_ arguments: [String]) throws -> String {
    var output: [Int32] = [0, 0]
    guard pipe(&output) == 0 else { throw UsageError(message: "pipe failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, output[1], 1)
    posix_spawn_file_actions_addclose(&actions, output[0])
    posix_spawn_file_actions_addclose(&actions, output[1])
    // Every signal unblocked and at its default in the child (this process's threads block
    // some, and a child inherits the mask: a peer that waits for SIGTERM would never get it).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t(), all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let status = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    close(output[1])
    defer { close(output[0]) }
    guard status == 0 else { throw UsageError(message: "could not start \(arguments[0]): \(String(cString: strerror(status)))") }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(output[0], &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += chunk[..<count]
    }
    var waitStatus: Int32 = 0
    while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
    return String(decoding: bytes, as: UTF8.self)
}
