// BenchmarksPage: `Demo benchmarks-page` renders docs/BENCHMARKS.md from what `make bench`
// wrote (bench/results/latest.json, limits.json and, when the cluster bench ran, cluster.json),
// so the page always shows one run's figures, each beside the baseline measured in that run.
import ArgumentParser
import Foundation

struct BenchmarksPage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmarks-page",
        abstract: "Write docs/BENCHMARKS.md from the JSON that `Demo bench` (and the cluster bench) wrote."
    )

    @Option(help: "The JSON `Demo bench --json` wrote.") var json = "bench/results/latest.json"
    @Option(help: "bench/limits' JSON (the kernel's own costs), when not already inside --json.") var limits: String?
    @Option(help: "`PostgresJobHost bench`'s JSON; skipped when the file does not exist.") var cluster: String?
    @Option(help: "bench/http's JSON (the HTTP server through each pool); skipped when the file does not exist.") var http: String?
    @Option(help: "The Markdown file to write.") var output = "docs/BENCHMARKS.md"

    func run() throws {
        guard let data = FileManager.default.contents(atPath: json) else {
            throw ValidationError("no benchmark results at \(json): run `make bench` first")
        }
        let results = try JSONDecoder().decode(Results.self, from: data)
        let limitsData = limits.flatMap { FileManager.default.contents(atPath: $0) }
        let kernel = results.kernel ?? limitsData.flatMap { try? JSONDecoder().decode(KernelBaseline.self, from: $0) }
        let quick = limitsData.flatMap { try? JSONDecoder().decode(RunFlags.self, from: $0) }?.quick ?? false
        // A cluster.json of an older format (no section) is left out.
        let clusterResults = cluster.flatMap { FileManager.default.contents(atPath: $0) }
            .flatMap { try? JSONDecoder().decode(ClusterResults.self, from: $0) }
        let httpResults = http.flatMap { FileManager.default.contents(atPath: $0) }
            .flatMap { try? JSONDecoder().decode(HTTPResults.self, from: $0) }
        var sources = [json]
        if let limits, limitsData != nil { sources.append(limits) }
        if let cluster, clusterResults != nil { sources.append(cluster) }
        if let http, httpResults != nil { sources.append(http) }
        let page = renderBenchmarksPage(results: results, kernel: kernel, cluster: clusterResults, http: httpResults, quick: quick,
                                        sources: sources)
        let url = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(page.utf8).write(to: url)
        print("Benchmarks page: \(output) (from \(sources.joined(separator: ", ")))")
    }
}

/// The one field of bench/limits' JSON the page needs beyond `KernelBaseline`.
struct RunFlags: Codable {
    var quick: Bool?
}

/// What `PostgresJobHost bench` writes (Integrations/ForkPoolPostgres, ClusterBench.swift).
struct ClusterResults: Codable {
    /// The section as `PostgresJobHost bench` wrote it (its figures beside pgqueuer's).
    var markdown: String
}

/// A figure's number: three significant digits or so, thousands grouped.
func pageNumber(_ value: Double) -> String {
    let magnitude = abs(value)
    if magnitude == 0 { return "0" }
    if magnitude >= 1000 {
        let digits = String(Int(magnitude.rounded()))
        var grouped = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(character)
        }
        return (value < 0 ? "-" : "") + grouped
    }
    let digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : magnitude >= 0.01 ? 3 : 4
    return String(format: "%.\(digits)f", value)
}

/// A ratio: two decimals below 10, one below 100, none above.
private func pageRatio(_ value: Double) -> String {
    String(format: value >= 100 ? "%.0f×" : value >= 10 ? "%.1f×" : "%.2f×", value)
}

private func pageDuration(_ seconds: Double) -> String {
    seconds >= 1 ? "\(pageNumber(seconds)) s" : seconds >= 1e-3 ? "\(pageNumber(seconds * 1e3)) ms" : "\(pageNumber(seconds * 1e6)) µs"
}

private func withUnit(_ value: Double, _ unit: String) -> String {
    unit.isEmpty ? pageNumber(value) : "\(pageNumber(value)) \(unit)"
}

/// Escapes what would break a Markdown table cell.
private func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }

/// The whole page. Deterministic: the same JSON gives the same Markdown.
func renderBenchmarksPage(results: Results, kernel: KernelBaseline?, cluster: ClusterResults?, http: HTTPResults? = nil, quick: Bool = false,
                          sources: [String] = ["bench/results/latest.json"]) -> String {
    var lines: [String] = []
    lines += [
        "# Benchmarks",
        "",
        "<!-- Written by `make bench` (`Demo benchmarks-page`) from \(sources.joined(separator: ", ")). Do not edit by hand. -->",
        "",
        "One `make bench` run, on \(results.machine.label); medians of \(results.repetitions) run(s), pool start and "
            + "shutdown included\(quick ? "; a short run (`make bench QUICK=1`): smaller inputs, fewer samples" : "").",
        "Every ForkPool figure stands beside a baseline measured **in the same run** (the kernel's own cost from the C program "
            + "`bench/limits`, a Python executor doing the same work, or Dispatch), and the ratio is ForkPool ÷ baseline. "
            + "The machine may be shared and virtual: read the ratios, not the digits.",
        "",
        "Rerun: `make bench` (about 10 minutes; `make bench QUICK=1` for a short run) writes `bench/results/*.json` and this "
            + "page; `make bench-cluster` alone reruns the PostgreSQL section. What each section runs, and what the ratios "
            + "have shown across runs: [PERFORMANCE.md](PERFORMANCE.md); the code: `Sources/Demo` (`Benchmark.swift`, "
            + "`Figures.swift`) and `bench/python/peer.py`.",
        "",
    ]

    if !results.figures.isEmpty {
        lines += [
            "## Figures against their baselines",
            "",
            "| figure | ForkPool | baseline (same run) | baseline value | ratio | better | goal |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for figure in results.figures {
            lines.append("| \(cell(figure.name)) | \(withUnit(figure.value, figure.unit)) | \(cell(figure.baseline)) | "
                         + "\(withUnit(figure.baselineValue, figure.unit)) | \(pageRatio(figure.ratio)) | \(figure.better) | "
                         + "\(figure.goal.map(cell) ?? "") |")
        }
        lines.append("")
    }

    let swiftRows = results.rows.filter { $0.language == "Swift" }
    if !swiftRows.isEmpty {
        lines += [
            "## The article's workloads",
            "",
            "Each workload sequentially and on each pool; the speed-up is against sequential Swift in this run, and the Python "
                + "column is `bench/python/peer.py` doing the same work with the matching executor and worker count.",
            "",
            "| workload | strategy | workers | median | vs sequential | Python peer | Python median | ForkPool vs Python |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in swiftRows {
            let strategy = Strategy(rawValue: row.strategy)
            let peer = row.pythonMedian == nil ? "" : strategy?.pythonPeer ?? ""
            lines.append("| \(row.workload) | \(strategy?.poolName ?? row.strategy) | \(row.workers) | \(pageDuration(row.median)) | "
                         + "\(row.speedUp.map(pageRatio) ?? "") | \(peer) | \(row.pythonMedian.map(pageDuration) ?? "") | "
                         + "\(row.timesFasterThanPython.map { "\(pageRatio($0)) faster" } ?? "") |")
        }
        lines.append("")
    }

    let identity = results.overhead.filter { $0.workload == "overhead" }
    if !identity.isEmpty {
        lines += [
            "## Overhead: identity tasks",
            "",
            "`map` of tasks that return their input, pool start and shutdown included.",
            "",
            "| pool | workers | tasks | chunk size | median | per task |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in identity {
            let name = row.language == "Swift" ? "ForkPool " + (Strategy(rawValue: row.strategy)?.poolName ?? row.strategy)
                : "Python " + row.strategy
            lines.append("| \(name) | \(row.workers) | \(row.tasks) | \(row.chunkSize.map(String.init) ?? "auto") | "
                         + "\(pageDuration(row.median)) | \(pageNumber(row.microsecondsPerTask)) µs |")
        }
        lines.append("")
    }

    if let kernel {
        lines += [
            "## The kernel's own costs (`bench/limits`, C)",
            "",
            "| measurement | p50 | p99 |",
            "| --- | --- | --- |",
            "| socketpair 16-byte round trip, blocking | \(pageNumber(kernel.socketpair_round_trip.p50_us)) µs | \(pageNumber(kernel.socketpair_round_trip.p99_us)) µs |",
        ]
        if let busy = kernel.busy_poll_round_trip {
            lines.append("| socketpair round trip, both ends busy-polling | \(pageNumber(busy.p50_us)) µs | \(pageNumber(busy.p99_us)) µs |")
        }
        lines += [
            "| mutex/condvar ping-pong | \(pageNumber(kernel.condvar_ping_pong.p50_us)) µs | \(pageNumber(kernel.condvar_ping_pong.p99_us)) µs |",
            "| spin ping-pong | \(pageNumber(kernel.spin_ping_pong.p50_us)) µs | \(pageNumber(kernel.spin_ping_pong.p99_us)) µs |",
            "| fork + exit + wait | \(pageNumber(kernel.fork_exit_wait.p50_us)) µs | \(pageNumber(kernel.fork_exit_wait.p99_us)) µs |",
            "",
            "Bulk echo of \(kernel.bulk_echo_64MiB.bytes >> 20) MiB: \(pageNumber(kernel.bulk_echo_64MiB.bandwidth_MiB_s)) MiB/s."
                + (kernel.pipelined_echo.map {
                    " Pipelined echo (\($0.workers) workers × \($0.window) in flight): \(pageNumber($0.tasks_per_second)) tasks/s."
                } ?? ""),
            "",
        ]
    }

    if let http {
        lines += http.markdown
    }

    if let cluster {
        lines += [cluster.markdown]
    }

    if let agreement = results.taggerAgreement {
        lines += ["## The transform's two taggers", "", agreement.summary + ".", ""]
    }
    let notes = results.notes.filter { $0 != results.taggerAgreement?.summary }
    if !notes.isEmpty {
        lines += ["## Notes from this run", ""] + notes.map { "- \($0)" } + [""]
    }
    return lines.joined(separator: "\n")
}

/// What bench/http (`make bench-http`) wrote: a Hummingbird server doing a CPU job per request
/// through each pool, loaded on loopback, rounds alternating, for each job size.
struct HTTPResults: Codable {
    struct Size: Codable {
        var job_steps: Int
        var process_pool_median: Double
        var thread_pool_median: Double
        var ratio: Double
    }

    var server: String
    var connections: Int
    var seconds: Double
    var workers: Int
    var rounds: Int
    var jobs: [Size]

    var markdown: [String] {
        ["## An HTTP server through each pool", "",
         "\(server); \(connections) keep-alive connections on loopback, one request in flight each, \(Int(seconds)) s per round, "
             + "\(rounds) rounds alternating, \(workers) workers (`bench/http`, `make bench-http`).", "",
         "| job per request | `ProcessPool` requests/s | `ThreadPool` requests/s | ratio (goal ≥ 0.95) |",
         "| --- | ---: | ---: | ---: |"]
            + jobs.map { size in
                "| \(size.job_steps) multiply-adds | \(Int(size.process_pool_median)) | \(Int(size.thread_pool_median)) | "
                    + "**\(String(format: "%.2f", size.ratio))×** |"
            }
            + [""]
    }
}
