// SandboxBench: what a jailed worker costs — the lone round trip and a pool's start with
// `WorkerSandbox.strict()` beside the same without a sandbox, measured in alternating rounds
// of the same run (so drift of the machine falls on both). The figures hold them to the goals:
// round trip within 5 %, start within 2×.
@_spi(Tuning) import ForkPool

extension Benchmark {
    /// Rows "sandbox-round-trip" (p50 per round; the row's median is the median of the rounds')
    /// and "sandbox-pool-start" (4 workers), strategy "unsandboxed" or "strict".
    func sandboxCost(samples: Int, rounds: Int = 5) throws -> [Row] {
        var strict = ProcessPoolConfiguration()
        strict.sandbox = .strict()
        let configurations = [("unsandboxed", ProcessPoolConfiguration()), ("strict", strict)]
        var trips: [String: [Double]] = [:], p99s: [String: [Double]] = [:], starts: [String: [Double]] = [:]
        for round in 1...rounds {
            for (name, configuration) in configurations {
                progress.update("sandbox cost: round \(round) of \(rounds), \(name)")
                let pool = try ProcessPool(workers: 1, configuration: configuration, work: identity)
                let histogram = try roundTrips(on: pool, samples: samples / rounds)
                trips[name, default: []].append(Double(histogram.valueAtPercentile(50)) / 1e9)
                p99s[name, default: []].append(Double(histogram.valueAtPercentile(99)) / 1e9)
                for _ in 0..<4 {
                    let start = now()
                    let started = try ProcessPool(workers: 4, configuration: configuration, work: identity)
                    starts[name, default: []].append(now() - start)
                    started.shutdown()
                }
            }
        }
        progress.clear()
        return configurations.flatMap { name, _ -> [Row] in
            [Row(workload: "sandbox-round-trip", language: "Swift", strategy: name, workers: 1, tasks: samples,
                 seconds: trips[name]!, median: median(trips[name]!), p99: median(p99s[name]!)),
             Row(workload: "sandbox-pool-start", language: "Swift", strategy: name, workers: 4, tasks: 1,
                 seconds: starts[name]!, median: median(starts[name]!))]
        }
    }
}
