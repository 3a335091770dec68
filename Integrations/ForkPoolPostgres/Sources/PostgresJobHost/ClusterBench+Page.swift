// ClusterBench+Page: the Markdown section of docs/BENCHMARKS.md that `PostgresJobHost bench`
// writes into its JSON — every ForkPool figure beside pgqueuer's from the same run, and how each
// was taken.
import Foundation

extension ClusterBench {
    func markdown(_ report: [String: Any], drains: [Int: [Drain]], peerDrains: [[String: Any]],
                          peerLone: [String: Any]?, localRate: Double) -> String {
        func median(_ values: [Double]) -> Double? {
            guard !values.isEmpty else { return nil }
            return values.sorted()[values.count / 2]
        }
        func number(_ value: Double) -> String {
            guard value >= 100 else { return String(format: "%.2f", value) }
            var digits = String(Int(value.rounded())), grouped = ""
            while digits.count > 3 {
                grouped = "," + digits.suffix(3) + grouped
                digits = String(digits.dropLast(3))
            }
            return digits + grouped
        }
        func settings(_ value: Any?) -> String {
            guard let settings = value as? [String: Any] else { return "" }
            return settings.keys.sorted().map { "\($0) \(settings[$0].map { "\($0)" } ?? "")" }.joined(separator: ", ")
        }
        func runs(_ values: [Double]) -> String { values.map(number).joined(separator: ", ") }
        let jobs = report["jobs"] as? Int ?? 0
        let peerRates = peerDrains.compactMap { $0["jobsPerSecond"] as? Double }
        let peerMedian = median(peerRates)
        var lines = [
            "## Past one machine: PostgreSQL (`make bench-cluster`)",
            "",
            "Drain: \(number(Double(jobs))) no-op jobs written in one INSERT while the hosts wait, timed until no row of the queue is queued "
                + "or running (polled every 5 ms). ForkPool hosts are this repository's `PostgresJobHost` program with 2 workers "
                + "each and default settings; pgqueuer \(peerDrains.first?["version"] as? String ?? "1.6.0") runs 2 consumer "
                + "processes on the same PostgreSQL, in the same run, interleaved round by round. Transactions per job: the "
                + "database's `xact_commit` delta (read 2 s after the drain) minus the bench's own polls, ÷ jobs. All on one "
                + "\(report["cores"] as? Int ?? 0)-core machine: more hosts add processes, not CPU.",
            "",
            "| | jobs/s (median) | runs | vs pgqueuer (median) | transactions/job |",
            "| --- | --- | --- | --- | --- |",
        ]
        for hosts in [1, 2, 3] {
            let rates = drains[hosts]!.map(\.rate)
            guard let rate = median(rates) else { continue }
            let ratio = peerMedian.map { String(format: "%.2f×", rate / $0) } ?? "—"
            let transactions = median(drains[hosts]!.map(\.transactionsPerJob)).map { String(format: "%.3f", $0) } ?? "—"
            lines.append("| ForkPool, \(hosts) host\(hosts == 1 ? "" : "s") × 2 workers | \(number(rate)) | \(runs(rates)) | \(ratio) | \(transactions) |")
        }
        if let peerMedian {
            let transactions = median(peerDrains.compactMap(peerTransactionsPerJob)).map { String(format: "%.3f", $0) } ?? "—"
            lines.append("| pgqueuer, 2 processes | \(number(peerMedian)) | \(runs(peerRates)) | 1.00× | \(transactions) |")
        }
        lines.append("| local `ProcessJobPool(workers: 2).map`, no database | \(number(localRate)) | | | |")
        if let ratios = zip(drains[1]!.map(\.rate), peerRates).map({ $0 / $1 }) as [Double]?, !ratios.isEmpty {
            lines += ["", "One host ÷ pgqueuer, round by round: " + ratios.map { String(format: "%.2f×", $0) }.joined(separator: ", ") + "."]
        }
        if let first = peerDrains.first {
            lines += ["", "pgqueuer's drain settings (its best on this machine, found by trying batch sizes and managers per process): "
                      + settings(first["settings"]) + "."]
        }
        if let lone = report["loneJob"] as? [String: Double] {
            lines += ["", "Lone job (submit → `await handle.value` on an idle host, one at a time): p50 \(String(format: "%.2f", lone["p50"]! * 1000)) ms, "
                      + "p90 \(String(format: "%.2f", lone["p90"]! * 1000)) ms"
                      + ((peerLone?["p50"] as? Double).map {
                          String(format: "; pgqueuer (enqueue → its completion watcher, at its lowest-latency settings: %@): "
                                 + "p50 %.2f ms, p90 %.2f ms — ForkPool's p50 is %.2f× pgqueuer's",
                                 settings(peerLone?["settings"]), $0 * 1000, (peerLone?["p90"] as? Double ?? 0) * 1000, lone["p50"]! / $0)
                      } ?? "") + "."]
        }
        if let history = report["history"] as? [String: Any], let empty = history["empty"] as? [[String: Any]],
           let full = history["full"] as? [[String: Any]] {
            let emptyRates = empty.compactMap { $0["jobsPerSecond"] as? Double }, fullRates = full.compactMap { $0["jobsPerSecond"] as? Double }
            let ratios = zip(fullRates, emptyRates).map { String(format: "%.2f×", $0 / $1) }.joined(separator: ", ")
            lines += ["", "History: one host drained the same jobs beside an empty table at \(runs(emptyRates)) jobs/s and beside "
                      + "\(number(Double(history["finishedRows"] as? Int ?? 0))) finished rows of its queue at \(runs(fullRates)) jobs/s "
                      + "(beside ÷ empty: \(ratios))."]
        }
        if let recovery = report["recovery"] as? [String: Any] {
            lines += ["", String(format: "Recovery: a SIGKILLed host's two 0.5 s jobs were claimed by another host %.2f s after the kill "
                                 + "(lease %d ms, poll 200 ms) and their results were in %.2f s after it.",
                                 recovery["secondsUntilClaimed"] as? Double ?? 0, recovery["leaseMilliseconds"] as? Int ?? 0,
                                 recovery["secondsUntilResults"] as? Double ?? 0)]
        }
        if let async = report["asyncJobs"] as? [String: Any], let ours = median(async["forkPool"] as? [Double] ?? []) {
            let theirs = median(async["pgqueuer"] as? [Double] ?? [])
            lines += ["", "Async jobs: \(number(Double(async["jobs"] as? Int ?? 0))) jobs that each await a 10 ms timer, then do a little "
                      + "CPU work, drained as above: one `PostgresJobHost --jobs-per-worker 100` (2 workers, 100 async jobs at once "
                      + "each) beside pgqueuer's 2 processes running the same as an async entrypoint, interleaved round by round.", "",
                      "| | jobs/s (median) | runs | vs pgqueuer (median) |", "| --- | --- | --- | --- |",
                      "| ForkPool, 1 host × 2 workers × 100 at once | \(number(ours)) | \(runs(async["forkPool"] as? [Double] ?? [])) | "
                      + "\(theirs.map { String(format: "%.2f×", ours / $0) } ?? "—") |"]
            if let theirs {
                lines.append("| pgqueuer, 2 processes | \(number(theirs)) | \(runs(async["pgqueuer"] as? [Double] ?? [])) | 1.00× |")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
