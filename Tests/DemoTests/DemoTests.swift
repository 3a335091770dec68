// The Demo's promises: every strategy returns exactly the sequential results on every
// workload, and `bench --json` writes a parseable file with a row per configuration.
import ForkPoolTestSupport
import Foundation
import Glibc
import Testing
@testable import Demo
import Workloads

@Suite(.serialized) struct DemoTests {
    @Test func strategiesAgreeWithSequentialOnEveryWorkload() throws {
        let sentences = Corpus.articleSentences + Corpus.sentences(count: 40)
        let directory = try makeScratchDirectory()
        defer { removeScratchDirectory(directory) }
        let files = (0..<60).map { FileRoundTrip(directory: directory, index: $0, lines: 30) }
        let (_, taggedExpected) = try runPool(strategy: .sequential, workers: 1, inputs: sentences, announce: false, work: tagSentence)
        let (_, filesExpected) = try runPool(strategy: .sequential, workers: 1, inputs: files, announce: false, work: fileRoundTrip)
        let (_, fibExpected) = try runPool(strategy: .sequential, workers: 1, inputs: Array(10...22), announce: false, work: cpuIntensiveTransform)
        #expect(fibExpected == (10...22).map(fibonacci))
        for strategy in [Strategy.threads, .processes] {
            for workers in [1, 3] {
                #expect(try runPool(strategy: strategy, workers: workers, inputs: sentences, announce: false, work: tagSentence).results == taggedExpected)
                #expect(try runPool(strategy: strategy, workers: workers, inputs: files, announce: false, work: fileRoundTrip).results == filesExpected)
                #expect(try runPool(strategy: strategy, workers: workers, inputs: Array(10...22), chunkSize: 4, announce: false,
                                    work: cpuIntensiveTransform).results == fibExpected)
            }
        }
        #expect(leftoverFiles(in: directory) == 0)

        // The article with job pools: one pool per strategy runs all three workloads.
        for strategy in [Strategy.processes, .threads] {
            let results = try runJobPool(strategy: strategy, workers: 2, sentences: sentences, files: files, numbers: Array(10...22))
            #expect(results.tagged == taggedExpected && results.sizes == filesExpected && results.fibonacci == fibExpected)
        }
        #expect(leftoverFiles(in: directory) == 0)
    }

    @Test func benchJSONParsesAndHasARowPerConfiguration() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("forkpool-demo-test-\(getpid()).json").path
        let svg = path.replacingOccurrences(of: ".json", with: ".svg")
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: svg)
        }
        let bench = try Bench.parse([
            "--quick", "--no-python", "--workers", "1", "2", "--latency-workers", "2",
            "--sentences", "30", "--io-tasks", "40", "--latency-ms", "1", "--cpu-repeats", "1", "--overhead-tasks", "200", "--throughput-tasks", "300",
            "--many-callers-tasks", "2048", "--idle-seconds", "0.2", "--heap-mib", "64", "--records", "500",
            "--json", path, "--svg", svg,
        ])
        // Off the cooperative pool: the benchmark blocks its thread for seconds, and its async
        // callers, like other tests' tasks, need the pool's threads.
        try await offCooperativePool { try bench.run() }
        let results = try JSONDecoder().decode(Results.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        // transform, io, cpu, cpu-large: sequential + 2 pools × 2 worker counts; io-latency: 1 + 2 × 1.
        #expect(results.rows.count == 4 * 5 + 3)
        for workload in WorkloadName.allCases {
            let rows = results.rows.filter { $0.workload == workload.rawValue }
            #expect(rows.contains { $0.strategy == "sequential" && $0.speedUp == 1 })
            #expect(rows.allSatisfy { $0.seconds.count == 1 && $0.median > 0 && $0.tasks > 0 })
        }
        #expect(results.overhead.filter { $0.workload == "overhead" }.count == 6)  // 2 pools × chunk sizes 1, 1000, auto
        #expect(results.overhead.filter { $0.workload == "round-trip" && $0.p99 != nil }.count == 2)
        #expect(results.overhead.filter { $0.workload == "bulk" && $0.tasks == 64 << 20 }.count == 1)
        #expect(results.overhead.filter { $0.workload == "pool-start" && $0.workers == 4 }.count == 2)
        // Many callers: both pools at 1, 8 and 64 threads and 64 and 1,024 async tasks, every
        // task counted; the process pool's context switches and idle CPU (which may be 0).
        for pool in ["processes", "threads"] {
            for load in ["1-threads", "8-threads", "64-threads", "64-async", "1024-async"] {
                let row = results.overhead.first { $0.workload == "many-callers-\(load)" && $0.strategy == pool }
                #expect(row.map { $0.tasks >= 1024 && $0.median > 0 } == true, "\(pool) \(load)")
            }
        }
        // The async loads' ceiling, the same Swift tasks with no pool, and the figures read against it.
        #expect(results.overhead.contains { $0.workload == "async-hand-off-64" && $0.tasks >= 1024 && $0.median > 0 })
        #expect(results.figures.filter { $0.baseline.hasPrefix("no pool: 64 Swift tasks") }.map(\.name).allSatisfy { $0.contains(" 64 async") })
        #expect(results.figures.filter { $0.baseline.hasPrefix("no pool: 64 Swift tasks") }.count == 2)
        #expect(results.figures.contains { $0.name.hasPrefix("ProcessPool, 64 async") && $0.baseline == "ThreadPool, the same async tasks" })
        #expect(results.overhead.contains { $0.workload == "context-switches" && $0.median > 0 })
        #expect(results.overhead.contains { $0.workload == "records" && $0.tasks == 500 && $0.median > 0 })
        #expect(results.overhead.filter { $0.workload == "records-codec" && $0.median > 0 }.count == 2)
        for method in ["snapshot", "fresh"] {
            let heapRows = results.overhead.filter { $0.strategy == method && $0.workload.hasPrefix("heap-") }
            #expect(heapRows.count == 4 && heapRows.allSatisfy { $0.median > 0 } && Set(heapRows.map(\.tasks)) == [0, 64], "\(method)")
        }
        #expect(results.figures.contains { $0.name.hasPrefix(".fresh create + first answer, +64 MiB") })
        for workload in ["job-pool", "three-pools", "job-pool-memory", "three-pools-memory"] {
            #expect(results.overhead.contains { $0.workload == workload && $0.median > 0 }, "\(workload)")
        }
        #expect(results.overhead.contains { $0.workload == "idle-cpu" && $0.median >= 0 })
        #expect(results.overhead.filter { $0.workload != "idle-cpu" }.allSatisfy { $0.median > 0 })
        #expect(results.notes.contains { $0.contains("--no-python") })
        let chart = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(chart.hasPrefix("<svg"))
        #expect(chart.components(separatedBy: "<rect x=").count - 1 >= results.rows.count)

    }

    @Test func aFreshPoolStartsFromAProgramRunThroughARelativeSymlink() throws {
        // The Demo binary beside this test binary, run as ./demo-link from another directory:
        // a fresh job pool's fork server is that binary started anew (/proc/self/exe).
        let exe = try #require(try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        let demo = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("Demo").path
        try #require(FileManager.default.isExecutableFile(atPath: demo), "no Demo binary at \(demo)")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("forkpool-symlink-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("demo-link").path, withDestinationPath: demo)
        // (runShell: Foundation's Process would close its descriptors later, on a thread of its
        // own, under the next test's descriptor counts.)
        let (status, text) = try #require(runShell("cd '\(directory.path)' && exec ./demo-link profile fresh-start --iterations 2"))
        #expect(status == 0)
        #expect(text.contains("fresh start with +0 MiB: median"), "\(text)")
    }

    @Test func taggerAgreementComparesOnlySentencesTokenizedAlike() {
        let ours = [tagSentence("How now brown cow."), tagSentence("It's late.")]
        var spacy = [ours[0].tokens.map { [$0, "X"] }, [["It", "PRON"], ["'s", "AUX"], ["late", "ADJ"], ["."], ["extra", "X"]]]
        spacy[0][0][1] = ours[0].tags[0].rawValue  // one tag the same
        let agreement = TaggerAgreement(swift: ours, spacy: spacy)
        #expect(agreement.sentences == 2 && agreement.tokenizationDiffers == 1)
        #expect(agreement.tokens == ours[0].tokens.count && agreement.sameTag == 1 + ours[0].tags.dropFirst().filter { $0 == .other }.count)
        #expect(agreement.summary.contains("1 differ"))
    }

    @Test func benchRejectsBadArguments() {
        #expect(throws: (any Error).self) { try Bench.parse(["--workers", "0"]) }
        #expect(throws: (any Error).self) { try Bench.parse(["--workloads", "nonsense"]) }
        #expect(throws: (any Error).self) { try Bench.parse(["--repetitions", "0"]) }
        #expect(throws: (any Error).self) { try Bench.parse(["--many-callers-tasks", "0"]) }
        #expect(throws: (any Error).self) { try Bench.parse(["--idle-seconds", "-1"]) }
        #expect(throws: (any Error).self) { try Bench.parse(["--heap-mib", "-1"]) }
        #expect(throws: (any Error).self) { try Bench.parse(["--records", "0"]) }
    }
}
