// `Demo profile`: one hot loop of the library, alone, for a profiler — for example
// `perf record -e cpu-clock $(swift build -c release --show-bin-path)/Demo profile map-auto`, or
// the same under `valgrind --tool=callgrind`. Each case is a benchmark's inner loop without the
// timing around it, except `transform-phases`, which times the transform's pool phase by phase.
import ArgumentParser
@_spi(Tuning) import ForkPool
import ForkPoolWire
import Foundation
import Glibc
import Histogram
import Workloads

enum ProfileCase: String, CaseIterable, ExpressibleByArgument {
    /// `submit` + `get` of a trivial task, one at a time (the latency figure).
    case roundTrip = "round-trip"
    /// A 64 MiB `[UInt8]` sent to a worker and back (the bulk figure).
    case bulk
    /// `map` with automatic chunking over trivial Int tasks (the throughput figure).
    case mapAuto = "map-auto"
    /// `ThreadPool.map` over trivial Int tasks.
    case threadMap = "thread-map"
    /// 8 threads (`--callers`) sharing a 2-worker ProcessPool, each looping `submit` + `get`.
    case manyCallers = "many-callers"
    /// 64 Swift tasks sharing a 2-worker ProcessPool, each looping `await submit(…).value`.
    case manyAsync = "many-async"
    /// 64 Swift tasks, each looping on a continuation one thread resumes: no pool (the async
    /// ceiling the many-async figure is read against).
    case asyncHandOff = "async-hand-off"
    /// A fresh ProcessJobPool created, answering once and shut down, over and over, with
    /// `--heap-mib` MiB of touched heap in this process (the heap section's start).
    case freshStart = "fresh-start"
    /// 200,000 records encoded and decoded as one [Record], in this thread (the codec alone).
    case recordsCodec = "records-codec"
    /// `map` of 200,000 records on a 2-worker ProcessPool (structured payloads).
    case recordsMap = "records-map"
    /// The transform workload (tagging sentences) on a 2-worker ProcessPool.
    case transform
    /// The transform workload's 4,000 results encoded and decoded as one [TaggedSentence], in this
    /// thread (the codec alone), beside the sequential tagging they come from.
    case transformCodec = "transform-codec"
    /// Where the transform's time goes on a 2-worker ProcessPool: create, map and shutdown
    /// apart, this process's page faults meanwhile, the CPU time the workers and this process
    /// spent on the map, the same tagging with an output of one byte per tag (what the pool
    /// costs when the output costs next to nothing) and with the full output coded by hand
    /// instead of through Codable.
    case transformPhases = "transform-phases"
}

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one of the library's hot loops alone, for perf or callgrind.")

    @Argument(help: "What to run: \(ProfileCase.allCases.map(\.rawValue).joined(separator: ", ")).")
    var hotLoop: ProfileCase

    @Option(help: "Round trips, bulk transfers, map inputs, or sentences (transform cases).")
    var iterations: Int?

    @Option(help: "many-callers: how many threads share the pool.")
    var callers = 8

    @Flag(help: "round-trip: send every task through the dispatcher thread (no direct lane).")
    var noLanes = false

    @Option(name: .customLong("heap-mib"), help: "fresh-start: MiB of heap allocated and touched first.")
    var heapMiB = 0

    /// A 2-worker identity pool under `load` (the benchmark, the pool, the task count): its
    /// rate and the dispatcher's wake-ups per task.
    private func manyCallers(label: String, _ load: (Benchmark, ProcessPool<Int, Int>, Int) throws -> Double) throws {
        let pool = try ProcessPool(workers: min(2, onlineProcessors)) { (n: Int) in n }
        defer { pool.shutdown() }
        let benchmark = Benchmark(workloads: [], strategies: [.processes], workerCounts: [], latencyWorkerCounts: [],
                                  repetitions: 1, sizes: Sizes(), progress: Progress())
        let tasks = iterations ?? 400_000
        let wakeups = DispatcherWakeups()
        let seconds = try load(benchmark, pool, tasks)
        let perTask = Double(wakeups.count()) / Double(tasks)
        print("\(label): \(Int(Double(tasks) / seconds)) tasks/s, \(String(format: "%.3f", perTask)) dispatcher wake-ups per task")
    }

    func validate() throws {
        if callers < 1 { throw ValidationError("--callers must be at least 1") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        // The many-caller loops split the iterations between their callers: each runs at least one.
        let callerCount: Int? = switch hotLoop {
        case .manyCallers: callers
        case .manyAsync, .asyncHandOff: 64
        default: nil
        }
        if let callerCount, let iterations, iterations < callerCount {
            throw ValidationError("--iterations must be at least \(callerCount) for \(hotLoop.rawValue): one per caller")
        }
    }

    func run() throws {
        switch hotLoop {
        case .roundTrip:
            var configuration = ProcessPoolConfiguration()
            configuration.usesDirectLanes = !noLanes
            let pool = try ProcessPool(workers: 1, configuration: configuration) { (n: Int) in n }
            let histogram = try roundTrips(on: pool, samples: iterations ?? 20_000)
            print("round trip p50 \(Double(histogram.valueAtPercentile(50)) / 1000) µs, p99 \(Double(histogram.valueAtPercentile(99)) / 1000) µs")
        case .bulk:
            let pool = try ProcessPool(workers: 1) { (payload: [UInt8]) in payload }
            defer { pool.shutdown() }
            let payload = [UInt8](repeating: 0xA5, count: 64 << 20)
            for _ in 0..<(iterations ?? 10) where try pool.submit(payload).get().count != payload.count {
                throw BenchmarkError(description: "bulk round trip returned a different size")
            }
        case .mapAuto:
            let inputs = Array(0..<(iterations ?? 1_000_000))
            let pool = try ProcessPool(workers: min(2, onlineProcessors)) { (n: Int) in n }
            defer { pool.shutdown() }
            guard try pool.map(inputs) == inputs else { throw BenchmarkError(description: "map returned wrong results") }
        case .manyCallers:
            try manyCallers(label: "\(callers) threads") { try $0.submitFromThreads($1, callers: callers, each: $2 / callers) }
        case .manyAsync:
            try manyCallers(label: "64 async tasks") { try $0.submitFromTasks($1, callers: 64, each: $2 / 64) }
        case .asyncHandOff:
            let tasks = iterations ?? 400_000
            let seconds = try asyncHandOff(callers: 64, each: tasks / 64)
            print("async hand-off, 64 tasks: \(Int(Double(tasks) / seconds)) tasks/s")
        case .freshStart:
            let heap = heapMiB > 0 ? UnsafeMutableRawPointer.allocate(byteCount: heapMiB << 20, alignment: 4096) : nil
            heap?.initializeMemory(as: UInt8.self, repeating: 1, count: heapMiB << 20)
            defer { heap?.deallocate() }
            var seconds: [Double] = []
            for _ in 0..<(iterations ?? 20) {
                let start = now()
                let pool = try ProcessJobPool(workers: 1, jobs: [FibonacciJob.self])
                guard try pool.submit(FibonacciJob(n: 10)).get() == 55 else { throw BenchmarkError(description: "fib(10) != 55") }
                seconds.append(now() - start)
                pool.shutdown()
            }
            print("fresh start with +\(heapMiB) MiB: median \(median(seconds) * 1e3) ms")
        case .recordsCodec:
            let count = iterations ?? 200_000
            let (codec, copy, bytes) = try recordsCodecAlone(count: count, repetitions: 5)
            print("codec: \(codec) ns/record, memcpy: \(copy) ns/record, \(bytes / count) bytes/record")
        case .recordsMap:
            let records = (0..<(iterations ?? 200_000)).map(Record.make)
            let start = now()
            let (_, results) = try runPool(strategy: .processes, workers: 2, inputs: records, announce: false, work: touchRecord)
            print("records map: \(Int(Double(records.count) / (now() - start))) records/s (\(results.count))")
        case .transform:
            let sentences = Corpus.articleSentences + Corpus.sentences(count: iterations ?? 4000)
            let start = now()
            let (_, results) = try runPool(strategy: .processes, workers: 2, inputs: sentences, announce: false, work: tagSentence)
            print("transform: \(now() - start) s for \(results.count) sentences")
        case .transformCodec:
            let sentences = Corpus.articleSentences + Corpus.sentences(count: iterations ?? 4000)
            let codec = PayloadCodec<[TaggedSentence]>()
            var tagging: [Double] = [], encoding: [Double] = [], decoding: [Double] = []
            var tagged: [TaggedSentence] = []
            for _ in 0..<5 {
                let start = now()
                tagged = sentences.map(tagSentence)
                tagging.append(now() - start)
            }
            for _ in 0..<41 {
                var start = now()
                var bytes: [UInt8] = []
                try codec.encode(tagged, into: &bytes)
                encoding.append(now() - start)
                start = now()
                let back = try bytes.withUnsafeBytes { try codec.decode(from: $0) }
                decoding.append(now() - start)
                guard back == tagged else { throw BenchmarkError(description: "the codec changed the sentences") }
            }
            func ms(_ runs: [Double]) -> String { "\(formatSeconds(median(runs) * 1e3)) (min \(formatSeconds(runs.min()! * 1e3)))" }
            var bytes: [UInt8] = []
            try codec.encode(tagged, into: &bytes)
            print("transform codec: encode \(ms(encoding)) ms + decode \(ms(decoding)) ms; sequential tagging \(ms(tagging)) ms "
                  + "(\(sentences.count) sentences, \(bytes.count) bytes encoded)")
        case .transformPhases:
            try transformPhases(sentences: Corpus.articleSentences + Corpus.sentences(count: iterations ?? 4000))
        case .threadMap:
            let inputs = Array(0..<(iterations ?? 1_000_000))
            let pool = try ThreadPool(workers: min(2, onlineProcessors)) { (n: Int) in n }
            defer { pool.shutdown() }
            guard try pool.map(inputs) == inputs else { throw BenchmarkError(description: "map returned wrong results") }
        }
    }
}

/// `Demo profile transform-phases`: medians of 7 runs of each measurement.
private func transformPhases(sentences: [String]) throws {
    func minorFaults() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_minflt
    }
    func ms(_ runs: [Double]) -> String { formatSeconds(median(runs) * 1e3) }
    @Sendable func tagIndices(_ sentence: String) -> [UInt8] {
        tagSentence(sentence).tags.map(tagIndex)
    }
    /// Nanoseconds `pid` has run on a CPU (its main thread; a worker has no other). `stat`'s
    /// clock ticks (10 ms here) are too coarse for a 20 ms map.
    func cpuNanoseconds(_ pid: pid_t) -> Double {
        let schedstat = try? String(contentsOfFile: "/proc/\(pid)/schedstat", encoding: .utf8)
        return schedstat?.split(separator: " ").first.flatMap { Double($0) } ?? .nan
    }
    func processCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
    var sequential: [Double] = [], create: [Double] = [], map: [Double] = [], shutdown: [Double] = [], faults: [Double] = []
    var workerCPU: [Double] = [], parentCPU: [Double] = []
    var compactSequential: [Double] = [], compactPool: [Double] = [], handPool: [Double] = []
    for _ in 0..<7 {
        var start = now()
        let expected = sentences.map(tagSentence)
        sequential.append(now() - start)
        let faultsBefore = minorFaults()
        start = now()
        let pool = try ProcessPool(workers: 2, work: tagSentence)
        let created = now()
        let parentBefore = processCPUSeconds()
        let results = try pool.map(sentences)
        let mapped = now()
        parentCPU.append(processCPUSeconds() - parentBefore)
        workerCPU.append(pool.stats.workers.compactMap(\.processID).map(cpuNanoseconds).reduce(0, +) / 1e9)
        pool.shutdown()
        let ended = now()
        faults.append(Double(minorFaults() - faultsBefore))
        guard results == expected else { throw BenchmarkError(description: "the pool's tags differ from sequential ones") }
        (create, map, shutdown) = (create + [created - start], map + [mapped - created], shutdown + [ended - mapped])

        start = now()
        let compactExpected = sentences.map(tagIndices)
        compactSequential.append(now() - start)
        start = now()
        let compactPoolUsed = try ProcessPool(workers: 2, work: tagIndices)
        let compact = try compactPoolUsed.map(sentences)
        compactPoolUsed.shutdown()
        compactPool.append(now() - start)
        guard compact == compactExpected else { throw BenchmarkError(description: "the pool's tag bytes differ") }

        start = now()
        let handPoolUsed = try ProcessPool(workers: 2, work: handCodedTagging)
        let hand = try handPoolUsed.map(sentences).map(handDecoded)
        handPoolUsed.shutdown()
        handPool.append(now() - start)
        guard hand == expected else { throw BenchmarkError(description: "the hand-coded sentences differ") }
    }
    print("transform (\(sentences.count) sentences, ProcessPool(workers: 2)): sequential \(ms(sequential)) ms; "
          + "pool create \(ms(create)) + map \(ms(map)) + shutdown \(ms(shutdown)) ms; "
          + "\(Int(median(faults))) page faults in this process meanwhile")
    print("CPU time during map: the workers \(ms(workerCPU)) ms together (fork to end of map), this process \(ms(parentCPU)) ms")
    print("the same tagging with one byte per tag as the output: sequential \(ms(compactSequential)) ms, "
          + "ProcessPool(workers: 2) \(ms(compactPool)) ms (create and shutdown included)")
    print("the full output coded by hand as one [UInt8] per sentence (no Codable), then made into [TaggedSentence]: "
          + "ProcessPool(workers: 2) \(ms(handPool)) ms (create and shutdown included)")
}

/// A part of speech's index in `PartOfSpeech.allCases`: the byte Swift stores for a case of an
/// enum without payloads is its index in declaration order, which `allCases` follows (checked
/// against `allCases` for every case). Hashing or comparing the tags instead goes through their
/// String raw values.
private func tagIndex(_ tag: PartOfSpeech) -> UInt8 {
    withUnsafeBytes(of: tag) { $0[0] }
}
private let tagsByIndex: [PartOfSpeech] = {
    let cases = PartOfSpeech.allCases
    precondition(MemoryLayout<PartOfSpeech>.size == 1 && cases.indices.allSatisfy { Int(tagIndex(cases[$0])) == $0 })
    return cases
}()

/// A tagged sentence as bytes without Codable (about the floor a generated binary conformance
/// could reach): the sentence's UTF-8 length (4 bytes, little-endian) and bytes, the token
/// count (4), each token's length (2) and bytes, then one byte per tag (its case's index).
@Sendable private func handCodedTagging(_ sentence: String) -> [UInt8] {
    let tagged = tagSentence(sentence)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(8 + tagged.sentence.utf8.count * 2 + tagged.tokens.count * 3)
    func append(_ value: Int, width: Int) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0.prefix(width)) }
    }
    append(tagged.sentence.utf8.count, width: 4)
    bytes += tagged.sentence.utf8
    append(tagged.tokens.count, width: 4)
    for token in tagged.tokens {
        append(token.utf8.count, width: 2)
        bytes += token.utf8
    }
    for tag in tagged.tags { bytes.append(tagIndex(tag)) }
    return bytes
}

/// `handCodedTagging`'s bytes back as a TaggedSentence (they come from this program's own
/// workers: no checks).
private func handDecoded(_ bytes: [UInt8]) -> TaggedSentence {
    bytes.withUnsafeBufferPointer { buffer in
        var position = 0
        func integer(width: Int) -> Int {
            var value = 0
            for index in 0..<width { value |= Int(buffer[position + index]) << (index * 8) }
            position += width
            return value
        }
        func string(count: Int) -> String {
            defer { position += count }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[position..<(position + count)]), as: UTF8.self)
        }
        let sentence = string(count: integer(width: 4))
        let count = integer(width: 4)
        let tokens = (0..<count).map { _ in string(count: integer(width: 2)) }
        let tags = (0..<count).map { index in tagsByIndex[Int(buffer[position + index])] }
        return TaggedSentence(sentence: sentence, tokens: tokens, tags: tags)
    }
}
