// The Demo's command line. `Demo` (or `Demo article`) replays the article: each workload on
// each pool, printing "Time to complete using …". `Demo bench` is the benchmark behind
// `make bench`: table, Python peers, JSON and chart; `Demo benchmarks-page` turns that JSON into
// docs/BENCHMARKS.md.
import ArgumentParser
import Foundation
import ForkPool
import Workloads

extension WorkloadName: ExpressibleByArgument {}
extension Strategy: ExpressibleByArgument {}

@main
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ForkPool's demo: the concurrent.futures article's workloads on process and thread pools.",
        subcommands: [Article.self, Bench.self, BenchmarksPage.self, Soak.self, Profile.self],
        defaultSubcommand: Article.self
    )
}

struct Article: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay the article: transform, io and cpu on ThreadPool and ProcessPool, timed."
    )

    @Option(help: "Workers per pool (the article uses 4).")
    var workers = 4

    func run() throws {
        print("transform — the article's five sentences, tagged:")
        let (_, tagged) = try runPool(strategy: .processes, workers: workers, inputs: Corpus.articleSentences, work: tagSentence)
        _ = try runPool(strategy: .threads, workers: workers, inputs: Corpus.articleSentences, work: tagSentence)
        for sentence in tagged { print("  \(sentence.rendered)") }

        print("\nio — 10,000 small file round trips:")
        let directory = try makeScratchDirectory()
        defer { removeScratchDirectory(directory) }
        let files = (0..<10_000).map { FileRoundTrip(directory: directory, index: $0, lines: 20) }
        for strategy in [Strategy.processes, .threads] {
            _ = try runPool(strategy: strategy, workers: workers, inputs: files, work: fileRoundTrip)
        }

        print("\ncpu — fib(n) for n in \(articleFibonacciInputs):")
        let (_, expected) = try runPool(strategy: .sequential, workers: 1, inputs: articleFibonacciInputs, work: cpuIntensiveTransform)
        for strategy in [Strategy.processes, .threads] {
            let (_, results) = try runPool(strategy: strategy, workers: workers, inputs: articleFibonacciInputs, work: cpuIntensiveTransform)
            guard results == expected else { throw BenchmarkError(description: "\(strategy.poolName) returned \(results)") }
        }
        print("  \(expected)\n")

        print("One pool, many kinds of work — each strategy's one job pool runs all three workloads as jobs:")
        let jobFiles = (0..<2_000).map { FileRoundTrip(directory: directory, index: $0, lines: 20) }
        for strategy in [Strategy.processes, .threads] {
            let results = try runJobPool(strategy: strategy, workers: workers, sentences: Corpus.articleSentences, files: jobFiles,
                                         numbers: articleFibonacciInputs)
            guard results.tagged == tagged, results.fibonacci == expected, results.sizes.count == jobFiles.count else {
                throw BenchmarkError(description: "the \(strategy.poolName) job pool returned different results")
            }
        }
        print("")
        try demonstrateIsolation(workers: workers)
        print("Swift has no GIL: threads and processes both use every core for CPU work. Processes buy isolation;")
        print("threads buy cheap hand-off. `make bench` measures both against Python's executors.")
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark every workload × strategy × worker count, beside Python's executors.",
        discussion: """
        Each configuration runs --repetitions times (pool start and shutdown included, as the
        article's `with` block); the table shows medians, the speed-up against sequential Swift
        and, where bench/python/peer.py ran the same work, the ratio against the Python peer.
        Every strategy's results are checked against the sequential results.
        """
    )

    @Option(parsing: .upToNextOption, help: "Workloads to run: transform, io, io-latency, cpu, cpu-large.")
    var workloads: [WorkloadName] = WorkloadName.allCases

    @Option(parsing: .upToNextOption, help: "Strategies: sequential, threads, processes (sequential always runs as the baseline).")
    var strategies: [Strategy] = Strategy.allCases

    @Option(parsing: .upToNextOption, help: "Worker counts for the pools.")
    var workers: [Int] = [1, 2, 4]

    @Option(name: .customLong("latency-workers"), parsing: .upToNextOption, help: "Worker counts for io-latency (waiting scales past the core count).")
    var latencyWorkers: [Int] = [1, 2, 4, 16, 64]

    @Option(help: "Runs per configuration; the table reports the median.")
    var repetitions: Int?

    @Flag(help: "Small sizes and one repetition: the whole run in well under a minute.")
    var quick = false

    @Option(help: "Sentences for transform.") var sentences: Int?
    @Option(name: .customLong("io-tasks"), help: "File round trips for io.") var ioTasks: Int?
    @Option(name: .customLong("latency-ms"), help: "Milliseconds each io-latency task waits.") var latencyMilliseconds: Int?
    @Option(name: .customLong("cpu-repeats"), help: "How many times cpu-large repeats the list 30…35.") var cpuRepeats: Int?
    @Option(name: .customLong("overhead-tasks"), help: "Identity tasks in the overhead test (chunk sizes 1 and 1000).") var overheadTasks: Int?
    @Option(name: .customLong("throughput-tasks"), help: "Identity tasks for automatic chunking (and multiprocessing.Pool.map).")
    var throughputTasks: Int?
    @Flag(name: .customLong("no-overhead"), help: "Skip the trivial-task overhead test.") var noOverhead = false
    @Flag(name: .customLong("no-many-callers"), help: "Skip the many-callers test (threads and async tasks sharing a pool).")
    var noManyCallers = false
    @Option(name: .customLong("many-callers-tasks"), help: "Tasks per many-callers configuration (Swift).") var manyCallersTasks: Int?
    @Option(name: .customLong("idle-seconds"), help: "How long the idle pool's CPU time is watched after a burst.")
    var idleSeconds = 5.0
    @Option(name: .customLong("records"), help: "Records in the structured-payload test (map and codec).") var records: Int?
    @Option(name: .customLong("heap-mib"), help: "The extra heap (MiB) of the heap section's big-heap runs; 0 skips the section.")
    var heapMiB: Int?

    @Option(help: "Write all results as JSON to this file.") var json: String?
    @Option(help: "JSON written by bench/limits in this run: the kernel's own costs, for ratios.") var limits: String?
    @Option(help: "Write the chart (SVG) to this file.") var svg: String?
    @Option(help: "The Python interpreter for the peers.") var python = "python3"
    @Option(name: .customLong("python-peer"), help: "The peer script.") var pythonPeer = "bench/python/peer.py"
    @Flag(name: .customLong("no-python"), help: "Do not run the Python peers.") var noPython = false
    @Option(name: .customLong("swift-version"), help: "Label for the machine line.") var swiftVersion = "Swift 6"

    func validate() throws {
        guard workers.allSatisfy({ $0 >= 1 }), latencyWorkers.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("worker counts must be at least 1")
        }
        if let repetitions, repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if let manyCallersTasks, manyCallersTasks < 1 { throw ValidationError("--many-callers-tasks must be at least 1") }
        if let heapMiB, heapMiB < 0 { throw ValidationError("--heap-mib must not be negative") }
        if let records, records < 1 { throw ValidationError("--records must be at least 1") }
        guard idleSeconds >= 0 else { throw ValidationError("--idle-seconds must not be negative") }
    }

    func run() throws {
        var sizes = quick ? Sizes.quick : Sizes()
        if let sentences { sizes.sentences = sentences }
        if let ioTasks { sizes.ioTasks = ioTasks }
        if let latencyMilliseconds { sizes.latencyMicroseconds = latencyMilliseconds * 1000 }
        if let cpuRepeats { sizes.cpuRepeats = cpuRepeats }
        if let overheadTasks { sizes.overheadTasks = overheadTasks }
        if let throughputTasks { sizes.throughputTasks = throughputTasks }
        let repetitions = repetitions ?? (quick ? 1 : 3)
        let benchmark = Benchmark(workloads: workloads, strategies: strategies, workerCounts: workers,
                                  latencyWorkerCounts: latencyWorkers, repetitions: repetitions, sizes: sizes,
                                  progress: Progress())
        var machine = Machine.current(swiftVersion: swiftVersion)
        print("ForkPool benchmark on \(machine.label)")
        print("Medians of \(repetitions) run(s); each run includes pool start and shutdown.\n")

        // The overhead figures first, right after bench/limits measured their kernel baselines
        // and before the workloads' file I/O leaves writeback and page-cache churn behind.
        let overheadWorkers = min(2, onlineProcessors)
        let chunkSizes = [1, 1000]
        var overhead = noOverhead ? [] : try benchmark.overhead(workers: overheadWorkers, chunkSizes: chunkSizes)
        var latency = noOverhead ? [] : try benchmark.roundTripAndStart(samples: quick ? 500 : 5000)
        let bulk = noOverhead || !strategies.contains(.processes) ? nil : try benchmark.bulkRoundTrip(bytes: 64 << 20)
        if let bulk { latency.append(bulk) }
        if !noOverhead && strategies.contains(.processes) {
            latency += try benchmark.sandboxCost(samples: quick ? 1000 : 10_000)
        }
        var extras: [Row] = []
        if !noOverhead {
            if strategies.contains(.threads) {
                extras += try benchmark.threadMapAgainstConcurrentPerform(tasks: sizes.throughputTasks, workers: overheadWorkers)
            }
            if strategies.contains(.processes) {
                extras += try benchmark.slowTasks(count: quick ? 40 : 100, microseconds: 2000, workers: overheadWorkers)
                extras.append(try benchmark.workerPrivateMemory())
                extras += try benchmark.asyncJobs(count: quick ? 200 : 1000, rounds: quick ? 1 : 3, python: noPython ? nil : python)
            }
        }
        // Many callers next, while the machine is still quiet.
        let manyCallers = noManyCallers ? [] : try benchmark.manyCallers(
            workers: overheadWorkers, total: manyCallersTasks ?? (quick ? 20_000 : 200_000), idleSeconds: idleSeconds)
        // One job pool running the three workloads mixed, beside three single-function pools.
        let jobPools = noOverhead || !strategies.contains(.processes) ? [] : try benchmark.jobPoolAgainstThreePools(workers: overheadWorkers)
        // Structured payloads: map of records, and the codec alone beside memcpy.
        let recordCount = noOverhead || !strategies.contains(.processes) ? nil : (records ?? (quick ? 50_000 : 200_000))
        var records: [Row] = []
        if let recordCount {
            records.append(try benchmark.recordsMap(count: recordCount, workers: overheadWorkers))
            let codec = try recordsCodecAlone(count: recordCount, repetitions: repetitions)
            records.append(Row(workload: "records-codec", language: "Swift", strategy: "codec", workers: 1, tasks: codec.bytes,
                               seconds: [codec.codec], median: codec.codec))
            records.append(Row(workload: "records-codec", language: "Swift", strategy: "memcpy", workers: 1, tasks: codec.bytes,
                               seconds: [codec.memcpy], median: codec.memcpy))
        }
        // Start and respawn against the parent's heap, for both start methods.
        let heapMiB = heapMiB ?? (quick ? 400 : 1600)
        let heap = noOverhead || heapMiB == 0 || !strategies.contains(.processes)
            ? [] : try benchmark.heapStarts(extraBytes: heapMiB << 20, samples: quick ? 3 : 5)
        // The article's workloads from the program's own heap (HeapBench.swift).
        releaseFreedHeap()
        var rows = try benchmark.run()
        let kernel = limits.flatMap(KernelBaseline.load)
        if limits != nil && kernel == nil { print("note: could not read \(limits!)") }

        var notes: [String] = []
        var taggerAgreement: TaggerAgreement?
        if noPython {
            notes.append("Python peers not run (--no-python)")
        } else {
            let spec = PythonPeer.spec(for: benchmark, cpuWorkers: quick ? [workers.max() ?? 4] : workers,
                                       overheadWorkers: overheadWorkers, chunkSizes: chunkSizes, includeOverhead: !noOverhead,
                                       manyCallersTotal: noManyCallers ? nil : (quick ? 4_000 : 20_000), recordCount: recordCount)
            Progress().update("Python peers: running bench/python/peer.py …")
            let (report, note) = PythonPeer.run(python: python, script: pythonPeer, spec: spec)
            Progress().clear()
            if let note { notes.append(note) }
            if let report {
                machine.python = report.python
                notes += report.notes
                let pythonRows = report.rows.map(Row.init(python:))
                let measuresOverhead: (Row) -> Bool = {
                    ["overhead", "worker-memory", "records"].contains($0.workload) || $0.workload.hasPrefix("many-callers")
                }
                if let tagging = report.spacy_tagging, workloads.contains(.transform) {
                    let sentences = Corpus.articleSentences + Corpus.sentences(count: max(0, sizes.sentences - 5))
                    let agreement = TaggerAgreement(swift: sentences.map(tagSentence), spacy: tagging)
                    taggerAgreement = agreement
                    notes.append(agreement.summary)
                }
                attachPythonPeers(&rows, python: pythonRows.filter { !measuresOverhead($0) })
                rows += pythonRows.filter { !measuresOverhead($0) }
                overhead += pythonRows.filter(measuresOverhead)
                notes.append("Python cpu and transform peers ran once per configuration (CPython takes seconds per run)"
                             + (quick ? ", cpu at \(workers.max() ?? 4) workers only (--quick)" : ""))
            }
        }
        notes.append("cpu-large has no Python peer: in CPython the repeated list takes minutes per run")

        let figures = collectFigures(kernel: kernel, overhead: overhead, latency: latency + extras)
        let callerFigures = collectManyCallerFigures(kernel: kernel, rows: manyCallers + overhead) + collectJobPoolFigures(rows: jobPools)
        let heapFigures = collectHeapFigures(rows: heap)
        let recordFigures = collectRecordFigures(rows: records + overhead)
        let results = Results(machine: machine, repetitions: repetitions, rows: rows, taggerAgreement: taggerAgreement,
                              overhead: overhead + latency + extras + manyCallers + jobPools + heap + records,
                              kernel: kernel, figures: figures + callerFigures + heapFigures + recordFigures, notes: notes)
        print(renderTable(results))
        if !overhead.isEmpty { print("\n" + renderOverhead(overhead)) }
        if !latency.isEmpty { print("\n" + renderLatency(latency.filter { $0.workload != "bulk" })) }
        if !figures.isEmpty { print("\n" + renderFigures(figures)) }
        if !callerFigures.isEmpty {
            print("\n" + renderFigures(callerFigures, title: "Many callers and many kinds of work, 2 workers (ratio = ForkPool ÷ baseline, same run):"))
        }
        if !recordFigures.isEmpty {
            print("\n" + renderFigures(recordFigures, title: "Structured payloads (same run):"))
        }
        if !heapFigures.isEmpty {
            print("\n" + renderFigures(heapFigures, title: "Heap: a pool's start and a worker's respawn against the parent's heap (same run):"))
        }
        print("")
        for note in notes { print("note: \(note)") }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try write(encoder.encode(results), to: json)
            print("JSON results: \(json)")
        }
        if let svg {
            try write(Data(renderChart(results).utf8), to: svg)
            print("Chart (open in a browser): \(svg)")
        }
    }

    private func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }
}
