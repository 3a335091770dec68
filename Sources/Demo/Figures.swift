// Figures: the "overhead" section's summary — every ForkPool overhead figure as a value beside
// a baseline measured in the same run (the kernel's own cost from bench/limits, a Python pool,
// or Dispatch), with the ratio and the goal it is held to. The table prints them and the JSON
// carries them as `figures`.
import Foundation

struct Figure: Codable {
    var name: String
    var value: Double
    var unit: String
    var baseline: String
    var baselineValue: Double
    /// value ÷ baselineValue.
    var ratio: Double
    /// "lower" when a smaller ratio is better (costs), "higher" when a larger one is (rates).
    var better: String
    /// The goal for the ratio, when the project set one (issue #5).
    var goal: String?

    init(_ name: String, _ value: Double, _ unit: String, against baseline: String, _ baselineValue: Double,
         better: String, goal: String? = nil) {
        self.name = name
        self.value = value
        self.unit = unit
        self.baseline = baseline
        self.baselineValue = baselineValue
        ratio = baselineValue > 0 ? value / baselineValue : 0
        self.better = better
        self.goal = goal
    }
}

/// Collects the figures that the run measured (each needs its value and its baseline).
func collectFigures(kernel: KernelBaseline?, overhead: [Row], latency: [Row]) -> [Figure] {
    var figures: [Figure] = []
    func row(_ workload: String, _ strategy: String, chunk: Int?? = nil) -> Row? {
        (overhead + latency).first {
            $0.workload == workload && $0.strategy == strategy && (chunk == nil || $0.chunkSize == chunk!)
        }
    }
    let processes = Strategy.processes.rawValue, threads = Strategy.threads.rawValue
    if let kernel {
        if let trip = row("round-trip", processes) {
            figures.append(Figure("ProcessPool submit+get p50", trip.median * 1e6, "µs",
                                  against: "socketpair 16-byte round trip p50 (C)", kernel.socketpair_round_trip.p50_us,
                                  better: "lower", goal: "≤ 1.5"))
            figures.append(Figure("ProcessPool submit+get p99", (trip.p99 ?? 0) * 1e6, "µs",
                                  against: "socketpair 16-byte round trip p99 (C)", kernel.socketpair_round_trip.p99_us,
                                  better: "lower"))
        }
        if let trip = row("round-trip", processes), let busy = kernel.busy_poll_round_trip {
            figures.append(Figure("ProcessPool submit+get p50 (vs busy-poll)", trip.median * 1e6, "µs",
                                  against: "socketpair round trip, both ends busy-polling, p50 (C)", busy.p50_us,
                                  better: "lower", goal: "≤ 1"))
        }
        if let trip = row("round-trip", processes), let shared = kernel.shm_round_trip {
            figures.append(Figure("ProcessPool submit+get p50 (vs shared memory)", trip.median * 1e6, "µs",
                                  against: "one shared cache line between two spinning processes, p50 (C)", shared.p50_us,
                                  better: "lower"))
            figures.append(Figure("ProcessPool submit+get p50, shared rings", trip.median * 1e6, "µs",
                                  against: "1 µs", 1, better: "lower", goal: "≤ 1"))
        }
        if let trip = row("round-trip-no-lanes", processes) {
            figures.append(Figure("ProcessPool submit+get p50, lanes off", trip.median * 1e6, "µs",
                                  against: "socketpair 16-byte round trip p50 (C)", kernel.socketpair_round_trip.p50_us,
                                  better: "lower"))
        }
        if let trip = row("round-trip", threads) {
            figures.append(Figure("ThreadPool submit+get p50", trip.median * 1e6, "µs",
                                  against: "mutex/condvar ping-pong p50 (C)", kernel.condvar_ping_pong.p50_us,
                                  better: "lower", goal: "≤ 1.5"))
        }
        if let start = row("pool-start", processes) {
            figures.append(Figure("ProcessPool(workers: 4) ready", start.median * 1e3, "ms",
                                  against: "4 × fork+exit+wait (C)", 4 * kernel.fork_exit_wait.p50_us / 1e3, better: "lower"))
        }
        if let bulk = row("bulk", processes) {
            figures.append(Figure("64 MiB [UInt8] round trip", 2 * Double(bulk.tasks) / bulk.median / 1_048_576, "MiB/s",
                                  against: "bulk echo, 64 MiB (C)", kernel.bulk_echo_64MiB.bandwidth_MiB_s,
                                  better: "higher", goal: "≥ 0.5"))
        }
    }
    if let concurrent = row("async-jobs", "async, jobsPerWorker 100"), let sync = row("async-jobs", "sync") {
        figures.append(Figure("\(concurrent.tasks) jobs awaiting 10 ms, 2 workers, jobsPerWorker 100", Double(concurrent.tasks) / concurrent.median,
                              "jobs/s", against: "the same work as sync jobs", Double(sync.tasks) / sync.median,
                              better: "higher", goal: "≥ 30"))
        if let peer = row("async-jobs", "ProcessPoolExecutor + asyncio") {
            figures.append(Figure("\(concurrent.tasks) jobs awaiting 10 ms, 2 workers, jobsPerWorker 100", Double(concurrent.tasks) / concurrent.median,
                                  "jobs/s", against: "ProcessPoolExecutor, each worker running its share under asyncio",
                                  Double(peer.tasks) / peer.median, better: "higher"))
        }
    }
    if let jailed = row("sandbox-round-trip", "strict"), let plain = row("sandbox-round-trip", "unsandboxed") {
        figures.append(Figure("ProcessPool submit+get p50, WorkerSandbox.strict()", jailed.median * 1e6, "µs",
                              against: "the same without a sandbox (alternating rounds)", plain.median * 1e6,
                              better: "lower", goal: "≤ 1.05"))
    }
    if let jailed = row("sandbox-pool-start", "strict"), let plain = row("sandbox-pool-start", "unsandboxed") {
        figures.append(Figure("ProcessPool(workers: 4) ready, WorkerSandbox.strict()", jailed.median * 1e3, "ms",
                              against: "the same without a sandbox (alternating rounds)", plain.median * 1e3,
                              better: "lower", goal: "≤ 2"))
    }
    if let automatic = row("overhead", processes, chunk: .some(nil)),
       let peer = row("overhead", "multiprocessing.Pool") {
        figures.append(Figure("ProcessPool.map, automatic chunks", Double(automatic.tasks) / automatic.median, "tasks/s",
                              against: "multiprocessing.Pool.map", Double(peer.tasks) / peer.median, better: "higher", goal: "≥ 2"))
    }
    for chunk in [1, 1000] {
        if let swift = row("overhead", processes, chunk: .some(chunk)),
           let peer = overhead.first(where: { $0.strategy == "ProcessPoolExecutor" && $0.chunkSize == chunk }) {
            figures.append(Figure("ProcessPool.map, chunk size \(chunk), per task", swift.microsecondsPerTask, "µs",
                                  against: "ProcessPoolExecutor.map(chunksize=\(chunk))", peer.microsecondsPerTask, better: "lower"))
        }
    }
    if let automatic = row("slow-tasks", processes, chunk: .some(nil)), let single = row("slow-tasks", processes, chunk: .some(1)) {
        figures.append(Figure("ProcessPool.map of \(automatic.tasks) slow tasks, automatic chunks", automatic.median * 1e3, "ms",
                              against: "the same with chunk size 1", single.median * 1e3, better: "lower", goal: "≤ 1 (±noise)"))
    }
    if let pool = row("thread-map", threads), let dispatch = row("thread-map", "concurrentPerform") {
        figures.append(Figure("ThreadPool.map, automatic chunks", Double(pool.tasks) / pool.median, "tasks/s",
                              against: "DispatchQueue.concurrentPerform", Double(dispatch.tasks) / dispatch.median,
                              better: "higher", goal: "≥ 1"))
    }
    if let memory = row("worker-memory", processes) {
        if let peer = row("worker-memory", "ProcessPoolExecutor") {
            figures.append(Figure("private memory per ProcessPool worker", memory.median / 1024, "KiB",
                                  against: "per ProcessPoolExecutor worker (CPython)", peer.median / 1024, better: "lower"))
        }
    }
    return figures
}

func renderFigures(_ figures: [Figure],
                   title: String = "Overhead against baselines measured in this run (ratio = ForkPool ÷ baseline):") -> String {
    guard !figures.isEmpty else { return "" }
    var lines = [title]
    for figure in figures {
        let digits = figure.value >= 100 ? 0 : 1
        var line = "  \(figure.name): \(formatSeconds(figure.value, digits: digits)) \(figure.unit)"
            + " vs \(figure.baseline) \(formatSeconds(figure.baselineValue, digits: figure.baselineValue >= 100 ? 0 : 1)) \(figure.unit)"
            + " → \(formatSeconds(figure.ratio, digits: 2))× (\(figure.better) is better"
        if let goal = figure.goal { line += "; goal \(goal)" }
        lines.append(line + ")")
    }
    return lines.joined(separator: "\n")
}

/// The many-callers figures: each load's tasks per second beside the raw pipelined socket (C)
/// and Python's executor doing the same loop, the async loads also beside their loop with no
/// pool (the ceiling of any pool's async rate); context switches and dispatcher wake-ups per
/// task; idle CPU.
func collectManyCallerFigures(kernel: KernelBaseline?, rows: [Row]) -> [Figure] {
    var figures: [Figure] = []
    func row(_ workload: String, _ strategy: String) -> Row? {
        rows.first { $0.workload == workload && $0.strategy == strategy }
    }
    let loads = Benchmark.manyCallerThreads.map { ("many-callers-\($0)-threads", "\($0) threads × submit+get") }
        + Benchmark.manyCallerTasks.map { ("many-callers-\($0)-async", "\($0) async tasks × await submit") }
    for strategy in [Strategy.processes, .threads] {
        guard let peer = strategy.pythonPeer else { continue }
        for (workload, label) in loads {
            guard let swift = row(workload, strategy.rawValue) else { continue }
            let rate = Double(swift.tasks) / swift.median
            let name = "\(strategy.poolName), \(label)"
            if strategy == .processes, let pipelined = kernel?.pipelined_echo {
                figures.append(Figure(name, rate, "tasks/s",
                                      against: "pipelined echo, \(pipelined.workers) workers × \(pipelined.window) in flight (C)",
                                      pipelined.tasks_per_second, better: "higher",
                                      goal: workload.hasSuffix("-1-threads") ? nil : workload == "many-callers-64-async" ? "≥ 1.0" : "≥ 0.5"))
            }
            if strategy == .processes, workload == "many-callers-8-threads" {
                if let threads = row(workload, Strategy.threads.rawValue) {
                    figures.append(Figure(name, rate, "tasks/s", against: "ThreadPool, the same 8 callers",
                                          Double(threads.tasks) / threads.median, better: "higher", goal: "≥ 1.0"))
                }
                if let shared = kernel?.shm_ring_callers {
                    figures.append(Figure(name, rate, "tasks/s",
                                          against: "shared-memory slots, \(shared.workers) workers, \(shared.callers) blocking callers (C)",
                                          shared.tasks_per_second, better: "higher", goal: "≥ 0.8"))
                }
            }
            if strategy == .processes, workload.hasSuffix("-async"), let threads = row(workload, Strategy.threads.rawValue) {
                figures.append(Figure(name, rate, "tasks/s", against: "ThreadPool, the same async tasks",
                                      Double(threads.tasks) / threads.median, better: "higher",
                                      goal: workload == "many-callers-64-async" ? "stretch: ≥ 1.0" : nil))
            }
            // The ceiling was measured with the first async load's callers: only that load is read against it.
            if workload == "many-callers-\(Benchmark.manyCallerTasks[0])-async",
               let ceiling = row("async-hand-off-\(Benchmark.manyCallerTasks[0])", "none") {
                figures.append(Figure(name, rate, "tasks/s",
                                      against: "no pool: \(Benchmark.manyCallerTasks[0]) Swift tasks awaiting a continuation one thread resumes",
                                      Double(ceiling.tasks) / ceiling.median, better: "higher"))
            }
            if let python = row(workload, peer) {
                figures.append(Figure(name, rate, "tasks/s", against: "Python \(peer), same loop",
                                      Double(python.tasks) / python.median, better: "higher"))
            }
        }
    }
    if let switches = row("context-switches", Strategy.processes.rawValue) {
        figures.append(Figure("ProcessPool, 8 threads: context switches per task", switches.median, "",
                              against: "the goal", 0.5, better: "lower", goal: "≤ 1"))
    }
    if let switches = row("context-switches", Strategy.processes.rawValue),
       let wakeups = row("dispatcher-wakeups", Strategy.processes.rawValue) {
        figures.append(Figure("ProcessPool, 8 threads: dispatcher wake-ups per task", wakeups.median, "",
                              against: "all context switches per task", switches.median, better: "lower",
                              goal: "≈ 0: the dispatcher only supervises"))
    }
    if let idle = row("idle-cpu", Strategy.processes.rawValue) {
        figures.append(Figure("ProcessPool CPU over \(Int(idle.seconds.first ?? 5)) idle s after a burst", idle.median * 1e3, "ms",
                              against: "the idle wall time", (idle.seconds.first ?? 5) * 1e3, better: "lower", goal: "≈ 0"))
    }
    return figures
}

/// The job-pool figures: one ProcessJobPool running the three workloads mixed, beside three
/// single-function ProcessPools doing the same work at once (time, and their workers' memory).
func collectJobPoolFigures(rows: [Row]) -> [Figure] {
    func row(_ workload: String) -> Row? { rows.first { $0.workload == workload } }
    var figures: [Figure] = []
    if let jobs = row("job-pool"), let three = row("three-pools") {
        figures.append(Figure("ProcessJobPool(workers: \(jobs.workers)), three workloads' \(jobs.tasks) jobs mixed", jobs.median * 1e3, "ms",
                              against: "three ProcessPool(workers: \(jobs.workers)), one per workload, at once", three.median * 1e3,
                              better: "lower"))
    }
    if let jobs = row("job-pool-memory"), let three = row("three-pools-memory") {
        figures.append(Figure("private memory of the job pool's \(jobs.workers) workers", jobs.median / 1024, "KiB",
                              against: "of the three pools' \(three.workers) workers", three.median / 1024, better: "lower"))
    }
    return figures
}

/// The structured-payload figures: `map` of records beside multiprocessing.Pool.map, and the
/// codec alone beside memcpy of the same bytes.
func collectRecordFigures(rows: [Row]) -> [Figure] {
    var figures: [Figure] = []
    if let swift = rows.first(where: { $0.workload == "records" && $0.language == "Swift" }),
       let python = rows.first(where: { $0.workload == "records" && $0.strategy == "multiprocessing.Pool" }) {
        figures.append(Figure("ProcessPool.map of \(swift.tasks) records {id, name, tags, scores}", Double(swift.tasks) / swift.median,
                              "records/s", against: "multiprocessing.Pool.map (pickle), same records", Double(python.tasks) / python.median,
                              better: "higher", goal: "≥ 4"))
    }
    if let codec = rows.first(where: { $0.workload == "records-codec" && $0.strategy == "codec" }),
       let copy = rows.first(where: { $0.workload == "records-codec" && $0.strategy == "memcpy" }) {
        figures.append(Figure("codec alone, encode + decode, per record (one thread)", codec.median, "ns",
                              against: "memcpy of the same \(codec.tasks) bytes, per record", copy.median, better: "lower"))
    }
    return figures
}
