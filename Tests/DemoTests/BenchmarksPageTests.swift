// `Demo benchmarks-page`: a small results file, as `Demo bench --json` and the cluster bench
// write them, becomes Markdown with every figure beside its baseline and ratio.
import Foundation
import Glibc
import Testing
@testable import Demo

@Suite struct BenchmarksPageTests {
    static let results = """
    {
      "machine": {"cpu": "Test CPU", "cores": 2, "memoryGiB": 8, "kernel": "Linux 6.1 x86_64", "swift": "Swift 6.3.1", "python": "3.11.7"},
      "repetitions": 3,
      "rows": [
        {"workload": "cpu", "language": "Swift", "strategy": "sequential", "workers": 1, "tasks": 6, "seconds": [0.0796], "median": 0.0796, "speedUp": 1},
        {"workload": "cpu", "language": "Swift", "strategy": "processes", "workers": 2, "tasks": 6, "seconds": [0.0568], "median": 0.0568,
         "speedUp": 1.40, "pythonMedian": 1.50, "timesFasterThanPython": 26.4},
        {"workload": "cpu", "language": "Python", "strategy": "ProcessPoolExecutor", "workers": 2, "tasks": 6, "seconds": [1.5], "median": 1.5}
      ],
      "overhead": [
        {"workload": "overhead", "language": "Swift", "strategy": "processes", "workers": 2, "tasks": 100000, "chunkSize": 1,
         "seconds": [0.99], "median": 0.99}
      ],
      "kernel": {
        "socketpair_round_trip": {"p50_us": 48.1, "p99_us": 61.9},
        "busy_poll_round_trip": {"p50_us": 2.8, "p99_us": 4.0},
        "condvar_ping_pong": {"p50_us": 49.2, "p99_us": 70},
        "spin_ping_pong": {"p50_us": 0.2, "p99_us": 0.4},
        "fork_exit_wait": {"p50_us": 225, "p99_us": 400},
        "bulk_echo_64MiB": {"bytes": 67108864, "median_seconds": 0.03, "bandwidth_MiB_s": 4425}
      },
      "figures": [
        {"name": "ProcessPool submit+get p50 (vs busy-poll)", "value": 5.4, "unit": "µs",
         "baseline": "socketpair round trip, both ends busy-polling, p50 (C)", "baselineValue": 2.87, "ratio": 1.88,
         "better": "lower", "goal": "≤ 1.5"},
        {"name": "ProcessPool.map, automatic chunks", "value": 43500000, "unit": "tasks/s",
         "baseline": "multiprocessing.Pool.map", "baselineValue": 6260000, "ratio": 6.95, "better": "higher", "goal": "≥ 2"}
      ],
      "notes": ["cpu-large has no Python peer"]
    }
    """

    static let cluster = """
    {"jobs": 10000, "markdown": "## Past one machine: PostgreSQL (`make bench-cluster`)\\n\\n| ForkPool, 1 host × 2 workers | 9000 |\\n"}
    """

    @Test func rendersEveryFigureWithItsBaselineAndRatio() throws {
        let results = try JSONDecoder().decode(Results.self, from: Data(Self.results.utf8))
        let cluster = try JSONDecoder().decode(ClusterResults.self, from: Data(Self.cluster.utf8))
        let page = renderBenchmarksPage(results: results, kernel: results.kernel, cluster: cluster)
        let lines = page.split(separator: "\n").map(String.init)

        #expect(page.hasPrefix("# Benchmarks\n"))
        #expect(page.contains("2 cores (Test CPU), 8 GiB, Linux 6.1 x86_64, Swift 6.3.1, Python 3.11.7"))
        #expect(page.contains("make bench"))  // how to rerun
        // Each figure: its value, the baseline's name and value, the ratio and the goal, on one row.
        #expect(lines.contains("| ProcessPool submit+get p50 (vs busy-poll) | 5.40 µs | socketpair round trip, both ends busy-polling, "
                               + "p50 (C) | 2.87 µs | 1.88× | lower | ≤ 1.5 |"))
        #expect(lines.contains("| ProcessPool.map, automatic chunks | 43,500,000 tasks/s | multiprocessing.Pool.map | "
                               + "6,260,000 tasks/s | 6.95× | higher | ≥ 2 |"))
        // The workload table: Swift rows only, with the speed-up and the Python peer.
        #expect(lines.contains("| cpu | ProcessPool | 2 | 56.8 ms | 1.40× | ProcessPoolExecutor | 1.50 s | 26.4× faster |"))
        #expect(lines.contains("| cpu | sequential | 1 | 79.6 ms | 1.00× |  |  |  |"))
        #expect(!page.contains("| cpu | ProcessPoolExecutor |"))
        #expect(lines.contains("| ForkPool ProcessPool | 2 | 100000 | 1 | 990 ms | 9.90 µs |"))
        // The kernel's costs and the cluster.
        #expect(lines.contains("| socketpair round trip, both ends busy-polling | 2.80 µs | 4.00 µs |"))
        // The cluster bench's own section, as it wrote it.
        #expect(lines.contains("## Past one machine: PostgreSQL (`make bench-cluster`)"))
        #expect(lines.contains("| ForkPool, 1 host × 2 workers | 9000 |"))
        #expect(lines.contains("- cpu-large has no Python peer"))
    }

    @Test func theSubcommandWritesThePageFromFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("forkpool-page-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("latest.json").path
        let output = directory.appendingPathComponent("docs/BENCHMARKS.md").path
        try Data(Self.results.utf8).write(to: URL(fileURLWithPath: json))
        let command = try BenchmarksPage.parse(["--json", json, "--cluster", directory.appendingPathComponent("absent.json").path,
                                                "--output", output])
        try command.run()
        let page = try String(contentsOfFile: output, encoding: .utf8)
        #expect(page.contains("| 1.88× |"))
        #expect(!page.contains("Past one machine"))  // no cluster file, no cluster section
    }
}
