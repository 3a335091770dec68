// Report: the benchmark's outputs — the table a person reads, the JSON a program reads, and an
// SVG chart (grouped bars per workload, log scale) a browser shows.
import Foundation

struct Machine: Codable {
    var cpu: String
    var cores: Int
    var memoryGiB: Int
    var kernel: String
    var swift: String
    var python: String?

    static func current(swiftVersion: String) -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let kilobytes = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return Machine(cpu: model, cores: sysconf(Int32(_SC_NPROCESSORS_ONLN)), memoryGiB: (kilobytes + 524_288) / 1_048_576,
                       kernel: "Linux \(release) \(machine)", swift: swiftVersion)
    }

    var label: String {
        "\(cores) cores (\(cpu)), \(memoryGiB) GiB, \(kernel), \(swift)" + (python.map { ", Python \($0)" } ?? "")
    }
}

struct Results: Codable {
    var machine: Machine
    var repetitions: Int
    var rows: [Row]
    /// The Swift tagger against spaCy on the transform sentences, when the spaCy peer ran.
    var taggerAgreement: TaggerAgreement?
    var overhead: [Row]
    /// bench/limits' figures from the same run, when it ran.
    var kernel: KernelBaseline?
    /// Every overhead figure beside its baseline from this run, with the ratio.
    var figures: [Figure]
    var notes: [String]
}

/// Fills each Swift pool row's Python columns from the peer row with the same workload, kind of
/// pool and worker count.
func attachPythonPeers(_ rows: inout [Row], python: [Row]) {
    for index in rows.indices where rows[index].language == "Swift" {
        guard let strategy = Strategy(rawValue: rows[index].strategy), let peer = strategy.pythonPeer,
              let match = python.first(where: { $0.workload == rows[index].workload && $0.strategy == peer && $0.workers == rows[index].workers })
        else { continue }
        rows[index].pythonMedian = match.median
        rows[index].timesFasterThanPython = match.median / rows[index].median
    }
}

private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let gap = String(repeating: " ", count: max(0, width - text.count))
    return right ? gap + text : text + gap
}

private func ratio(_ value: Double) -> String {
    value >= 100 ? "\(formatSeconds(value, digits: 0))×" : value >= 10 ? "\(formatSeconds(value, digits: 1))×" : "\(formatSeconds(value, digits: 2))×"
}

/// "3.2× faster" or "1.5× slower": how a ForkPool time compares with a baseline's.
private func comparison(_ baselineOverOurs: Double) -> String {
    baselineOverOurs >= 1 ? "\(ratio(baselineOverOurs)) faster" : "\(ratio(1 / baselineOverOurs)) slower"
}

private func duration(_ seconds: Double) -> String {
    seconds >= 1 ? "\(formatSeconds(seconds, digits: 2)) s" : "\(formatSeconds(seconds * 1000, digits: 1)) ms"
}

/// The main table: workload × strategy × workers.
func renderTable(_ results: Results) -> String {
    var lines: [String] = []
    let header = pad("workload", 11) + pad("strategy", 12) + pad("workers", 8, right: true) + pad("median", 11, right: true)
        + pad("speed-up", 10, right: true) + "   " + pad("Python peer, same work", 32) + pad("Swift vs Python", 16, right: true)
    lines.append(header)
    lines.append(String(repeating: "─", count: header.count))
    var lastWorkload = ""
    for row in results.rows where row.language == "Swift" {
        if row.workload != lastWorkload && !lastWorkload.isEmpty { lines.append("") }
        lastWorkload = row.workload
        let strategy = Strategy(rawValue: row.strategy)?.poolName ?? row.strategy
        var line = pad(row.workload, 11) + pad(strategy, 12) + pad("\(row.workers)", 8, right: true)
            + pad(duration(row.median), 11, right: true) + pad(row.speedUp.map(ratio) ?? "", 10, right: true)
        if let python = row.pythonMedian, let faster = row.timesFasterThanPython {
            let peer = Strategy(rawValue: row.strategy)?.pythonPeer ?? ""
            line += "   " + pad("\(peer) \(duration(python))", 32) + pad(comparison(faster), 16, right: true)
        }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

/// The overhead table: trivial tasks, one at a time and chunked, ForkPool against Python.
func renderOverhead(_ rows: [Row]) -> String {
    let rows = rows.filter { $0.workload == "overhead" }
    guard let first = rows.first else { return "" }
    var lines = ["Overhead: identity tasks, \(first.workers) workers (map, including pool start and shutdown)"]
    let header = pad("", 2) + pad("pool", 34) + pad("tasks", 10, right: true) + pad("chunk size", 11, right: true)
        + pad("median", 11, right: true) + pad("per task", 12, right: true)
    lines.append(header)
    lines.append(String(repeating: "─", count: header.count))
    for row in rows {
        let name = row.language == "Swift" ? "ForkPool " + (Strategy(rawValue: row.strategy)?.poolName ?? row.strategy)
            : "Python " + row.strategy
        lines.append(pad("", 2) + pad(name, 34) + pad("\(row.tasks)", 10, right: true)
                     + pad(row.chunkSize.map(String.init) ?? "auto", 11, right: true)
                     + pad(duration(row.median), 11, right: true)
                     + pad("\(formatSeconds(row.microsecondsPerTask, digits: 2)) µs", 12, right: true))
    }
    let forkPool = rows.filter { $0.language == "Swift" && $0.strategy == Strategy.processes.rawValue }
    let python = rows.filter { $0.language == "Python" && $0.strategy == "ProcessPoolExecutor" }
    for swiftRow in forkPool where swiftRow.chunkSize != nil {
        if let peer = python.first(where: { $0.chunkSize == swiftRow.chunkSize }) {
            lines.append("  ProcessPool vs ProcessPoolExecutor at chunk size \(swiftRow.chunkSize ?? 1): "
                         + comparison(peer.median / swiftRow.median))
        }
    }
    if let pool = rows.first(where: { $0.strategy == "multiprocessing.Pool" }),
       let automatic = forkPool.first(where: { $0.chunkSize == nil }) {
        lines.append("  ProcessPool.map (automatic chunks) vs multiprocessing.Pool.map (automatic chunks), per task: "
                     + comparison(pool.microsecondsPerTask / automatic.microsecondsPerTask))
    }
    return lines.joined(separator: "\n")
}

/// One trivial task's round trip and a pool's start, per pool.
func renderLatency(_ rows: [Row]) -> String {
    var lines = ["Latency: one trivial task, submit + get, nothing else in flight (median); pool start with 4 workers (median of 20)"]
    for row in rows {
        let sandboxed = row.workload.hasPrefix("sandbox-")
        let name = sandboxed ? "ProcessPool" : Strategy(rawValue: row.strategy)?.poolName ?? row.strategy
        let what = switch row.workload {
        case "round-trip": "round trip p50"
        case "round-trip-no-lanes": "round trip p50, lanes off"
        case "sandbox-round-trip": "round trip p50, \(row.strategy)"
        case "sandbox-pool-start": "start (4 workers), \(row.strategy)"
        default: "start (4 workers)"
        }
        var line = "  " + pad(name, 13) + pad(what, 27) + pad("\(formatSeconds(row.median * 1e6, digits: 1)) µs", 14, right: true)
        if let p99 = row.p99 { line += "   p99 \(formatSeconds(p99 * 1e6, digits: 1)) µs" }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

/// Grouped bars per workload: median wall time on a log scale, Swift and Python side by side.
func renderChart(_ results: Results) -> String {
    let bars = results.rows
    let workloads = bars.reduce(into: [String]()) { if !$0.contains($1.workload) { $0.append($1.workload) } }
    let barWidth = 16.0, gap = 4.0, groupGap = 36.0, top = 60.0, plotHeight = 320.0, left = 70.0
    let positive = bars.map(\.median).filter { $0 > 0 }
    let lowest = log10(max(positive.min() ?? 0.001, 1e-4)), highest = log10(max(positive.max() ?? 1, 1e-3))
    let low = floor(lowest), high = max(ceil(highest), low + 1)
    func y(_ seconds: Double) -> Double { top + plotHeight * (1 - (log10(max(seconds, 1e-6)) - low) / (high - low)) }
    func color(_ row: Row) -> String {
        switch (row.language, row.strategy) {
        case ("Swift", "sequential"): "#888888"
        case ("Swift", "threads"): "#1f77b4"
        case ("Swift", "processes"): "#ff7f0e"
        case (_, "ThreadPoolExecutor"): "#aec7e8"
        default: "#ffbb78"
        }
    }
    var x = left + 10
    var body = ""
    for workload in workloads {
        let group = bars.filter { $0.workload == workload }
        let start = x
        for row in group {
            let height = top + plotHeight - y(row.median)
            let tag = row.language == "Python" ? "py\(row.workers)" : row.strategy == "sequential" ? "seq" : "\(row.strategy.prefix(1).uppercased())\(row.workers)"
            body += "<rect x=\"\(x)\" y=\"\(y(row.median))\" width=\"\(barWidth)\" height=\"\(max(height, 1))\" fill=\"\(color(row))\">"
                + "<title>\(row.language) \(row.strategy) × \(row.workers): \(duration(row.median))</title></rect>\n"
            body += "<text x=\"\(x + barWidth / 2)\" y=\"\(top + plotHeight + 12)\" font-size=\"8\" text-anchor=\"middle\">\(tag)</text>\n"
            x += barWidth + gap
        }
        body += "<text x=\"\((start + x - gap) / 2)\" y=\"\(top + plotHeight + 30)\" font-size=\"12\" text-anchor=\"middle\" font-weight=\"bold\">\(workload)</text>\n"
        x += groupGap
    }
    let width = x + 20
    var axis = ""
    var decade = low
    while decade <= high {
        let seconds = pow(10, decade)
        axis += "<line x1=\"\(left)\" x2=\"\(width - 10)\" y1=\"\(y(seconds))\" y2=\"\(y(seconds))\" stroke=\"#dddddd\"/>\n"
        axis += "<text x=\"\(left - 6)\" y=\"\(y(seconds) + 4)\" font-size=\"10\" text-anchor=\"end\">\(duration(seconds))</text>\n"
        decade += 1
    }
    let legend = [("Swift sequential", "#888888"), ("ForkPool ThreadPool", "#1f77b4"), ("ForkPool ProcessPool", "#ff7f0e"),
                  ("Python ThreadPoolExecutor", "#aec7e8"), ("Python ProcessPoolExecutor", "#ffbb78")]
        .enumerated().map { index, item in
            "<rect x=\"\(left + Double(index) * 190)\" y=\"28\" width=\"12\" height=\"12\" fill=\"\(item.1)\"/>"
                + "<text x=\"\(left + Double(index) * 190 + 16)\" y=\"38\" font-size=\"11\">\(item.0)</text>"
        }.joined(separator: "\n")
    return """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(max(width, 900)))" height="\(Int(top + plotHeight + 60))" font-family="sans-serif">
    <rect width="100%" height="100%" fill="white"/>
    <text x="\(left)" y="18" font-size="14" font-weight="bold">ForkPool make bench — median wall time per run (log scale; lower is better). \(xmlEscaped(results.machine.label))</text>
    \(legend)
    \(axis)\(body)<text x="14" y="\(top + plotHeight / 2)" font-size="11" transform="rotate(-90 14 \(top + plotHeight / 2))">seconds</text>
    </svg>

    """
}

func xmlEscaped(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;")
}
