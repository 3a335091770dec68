// PythonPeer: runs bench/python/peer.py — the article's executors doing the same work on the
// same inputs — in the same run as the Swift measurements, and reads back its rows.
import Foundation
import Workloads

struct PythonJob: Codable {
    var workload: String
    var strategies: [String]
    var workers: [Int]
    var repetitions: Int
    var inputs: [JSONValue]?
    var tasks: Int?
    var lines: Int?
    var latency_us: Int?
}

/// Just enough JSON to pass Ints and Strings as inputs.
enum JSONValue: Codable {
    case int(Int)
    case string(String)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) { self = .int(value) } else { self = .string(try container.decode(String.self)) }
    }
}

struct PythonSpec: Codable {
    struct Overhead: Codable {
        var tasks: Int
        var chunksizes: [Int]
        var workers: Int
        /// Tasks for multiprocessing.Pool.map with its automatic chunks.
        var pool_tasks: Int
    }

    struct ManyCallers: Codable {
        var workers: Int
        var total_tasks: Int
        var threads: [Int]
        var async_tasks: [Int]
    }

    struct Records: Codable {
        var count: Int
        var workers: Int
        var repetitions: Int
    }

    var jobs: [PythonJob]
    var overhead: Overhead?
    var many_callers: ManyCallers?
    var records: Records?
}

struct PythonReport: Codable {
    struct PythonRow: Codable {
        var workload: String
        var strategy: String
        var workers: Int
        var tasks: Int
        var seconds: [Double]
        var median: Double
        var chunksize: JSONValue?
    }

    var python: String
    var spacy: Bool
    var rows: [PythonRow]
    var notes: [String]
    /// spaCy's (token, tag) pairs for each transform sentence, when the transform peer ran.
    var spacy_tagging: [[[String]]]?
}

enum PythonPeer {
    /// Runs the peer script; returns nil (with the reason) when Python cannot be run.
    static func run(python: String, script: String, spec: PythonSpec) -> (report: PythonReport?, note: String?) {
        guard FileManager.default.fileExists(atPath: script) else {
            return (nil, "Python peer skipped: \(script) not found (run from the repository root)")
        }
        let specURL = FileManager.default.temporaryDirectory.appendingPathComponent("forkpool-peer-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: specURL) }
        do {
            try JSONEncoder().encode(spec).write(to: specURL)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python, script, "--spec", specURL.path]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                return (nil, "Python peer failed with status \(process.terminationStatus)")
            }
            return (try JSONDecoder().decode(PythonReport.self, from: data), nil)
        } catch {
            return (nil, "Python peer skipped: \(error)")
        }
    }

    /// What the peer must run to mirror `benchmark`.
    static func spec(for benchmark: Benchmark, cpuWorkers: [Int], overheadWorkers: Int, chunkSizes: [Int],
                     includeOverhead: Bool, manyCallersTotal: Int?, recordCount: Int?) -> PythonSpec {
        let pythonRepetitions = 1  // CPython's cpu and transform runs take seconds each
        let executors = benchmark.strategies.compactMap(\.pythonPeer)
        var jobs: [PythonJob] = []
        for workload in benchmark.workloads {
            let sizes = benchmark.sizes
            switch workload {
            case .cpu:
                jobs.append(PythonJob(workload: "cpu", strategies: executors, workers: cpuWorkers,
                                      repetitions: pythonRepetitions, inputs: articleFibonacciInputs.map(JSONValue.int)))
            case .io:
                jobs.append(PythonJob(workload: "io", strategies: executors, workers: benchmark.workerCounts,
                                      repetitions: benchmark.repetitions, tasks: sizes.ioTasks, lines: sizes.ioLines, latency_us: 0))
            case .ioLatency:
                jobs.append(PythonJob(workload: "io-latency", strategies: executors, workers: benchmark.latencyWorkerCounts,
                                      repetitions: benchmark.repetitions, tasks: sizes.latencyTasks, lines: 10,
                                      latency_us: sizes.latencyMicroseconds))
            case .transform:
                let sentences = Corpus.articleSentences + Corpus.sentences(count: max(0, sizes.sentences - 5))
                jobs.append(PythonJob(workload: "transform", strategies: executors, workers: benchmark.workerCounts,
                                      repetitions: pythonRepetitions, inputs: sentences.map(JSONValue.string)))
            case .cpuLarge:
                break  // Swift only: in Python this list would take minutes per run
            }
        }
        let overhead = includeOverhead && benchmark.strategies.contains(.processes)
            ? PythonSpec.Overhead(tasks: benchmark.sizes.overheadTasks, chunksizes: chunkSizes, workers: overheadWorkers,
                                  pool_tasks: benchmark.sizes.throughputTasks)
            : nil
        let manyCallers = manyCallersTotal.map {
            PythonSpec.ManyCallers(workers: overheadWorkers, total_tasks: $0, threads: Benchmark.manyCallerThreads,
                                   async_tasks: Benchmark.manyCallerTasks)
        }
        let records = recordCount.map { PythonSpec.Records(count: $0, workers: overheadWorkers, repetitions: 1) }
        return PythonSpec(jobs: jobs, overhead: overhead, many_callers: manyCallers, records: records)
    }
}

extension Row {
    init(python row: PythonReport.PythonRow) {
        var chunk: Int?
        if case .int(let value)? = row.chunksize { chunk = value }
        self.init(workload: row.workload, language: "Python", strategy: row.strategy, workers: row.workers,
                  tasks: row.tasks, chunkSize: chunk, seconds: row.seconds, median: row.median)
    }
}
