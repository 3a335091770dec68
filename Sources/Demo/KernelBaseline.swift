// KernelBaseline: the figures bench/limits (C) measured in this same run — what the kernel
// itself costs for a socketpair round trip, a condvar hand-off, a bulk echo and a fork — so
// every ForkPool overhead figure is printed as a ratio to it.
import Foundation

struct KernelBaseline: Codable {
    struct Latency: Codable {
        var p50_us: Double
        var p99_us: Double
    }

    struct Bulk: Codable {
        var bytes: Int
        var median_seconds: Double
        var bandwidth_MiB_s: Double
    }

    var socketpair_round_trip: Latency
    var condvar_ping_pong: Latency
    var spin_ping_pong: Latency
    var fork_exit_wait: Latency
    var bulk_echo_64MiB: Bulk

    static func load(_ path: String) -> KernelBaseline? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(KernelBaseline.self, from: data)
    }
}

/// ForkPool's overhead figures beside the kernel's, as value and ratio.
func renderAgainstKernel(_ baseline: KernelBaseline, latency: [Row], bulk: Row?) -> String {
    var lines = ["Against the kernel (bench/limits, C, same run):"]
    func micro(_ seconds: Double) -> String { "\(formatSeconds(seconds * 1e6, digits: 1)) µs" }
    for row in latency where row.workload == "round-trip" {
        let raw = row.strategy == "processes" ? baseline.socketpair_round_trip : baseline.condvar_ping_pong
        let what = row.strategy == "processes" ? "socketpair 16-byte round trip" : "mutex/condvar ping-pong"
        lines.append("  \(row.strategy == "processes" ? "ProcessPool" : "ThreadPool ") submit+get p50 \(micro(row.median)), "
                     + "p99 \(micro(row.p99 ?? 0)); raw \(what) p50 \(formatSeconds(raw.p50_us, digits: 1)) µs, "
                     + "p99 \(formatSeconds(raw.p99_us, digits: 1)) µs → p50 ratio \(formatSeconds(row.median * 1e6 / raw.p50_us, digits: 2))×")
    }
    if let start = latency.first(where: { $0.workload == "pool-start" && $0.strategy == "processes" }) {
        lines.append("  ProcessPool(workers: 4) ready in \(micro(start.median)); raw fork+exit+wait p50 "
                     + "\(formatSeconds(baseline.fork_exit_wait.p50_us, digits: 1)) µs")
    }
    if let bulk {
        let bandwidth = 2 * Double(bulk.tasks) / bulk.median / 1_048_576
        lines.append("  64 MiB [UInt8] round trip through a worker: \(formatSeconds(bulk.median * 1000, digits: 1)) ms, "
                     + "\(formatSeconds(bandwidth, digits: 0)) MiB/s; raw bulk echo \(formatSeconds(baseline.bulk_echo_64MiB.bandwidth_MiB_s, digits: 0)) MiB/s "
                     + "→ \(formatSeconds(bandwidth / baseline.bulk_echo_64MiB.bandwidth_MiB_s, digits: 2))× of raw")
    }
    return lines.joined(separator: "\n")
}
