// RecordsBench: structured payloads — `map` of many small records through a ProcessPool with a
// trivial work function (so the figure is the codec's and the pool's, not the work's), beside
// multiprocessing.Pool.map (pickle) on the same records in the same run; and the codec alone,
// one thread, beside copying the same bytes with memcpy.
import ForkPool
import ForkPoolWire
import Foundation
import Glibc

/// The benchmark's record: a few fields of the common kinds.
struct Record: Codable, Sendable, Equatable {
    var id: Int
    var name: String
    var tags: [String]
    var scores: [Double]

    /// The `index`-th record (the Python peer makes the same ones).
    static func make(_ index: Int) -> Record {
        Record(id: index, name: "record-\(index)", tags: ["alpha", "tag\(index % 7)", "beta"],
               scores: [Double(index) * 0.5, 1.25, Double(index % 13)])
    }
}

/// The work: the record back, its id negated (so the output is checked, not just echoed).
@Sendable func touchRecord(_ record: Record) -> Record {
    var out = record
    out.id = -record.id
    return out
}

extension Benchmark {
    /// `map` of `count` records on a ProcessPool of `workers` (pool start included), median of
    /// `repetitions`; row `records`.
    func recordsMap(count: Int, workers: Int) throws -> Row {
        let records = (0..<count).map(Record.make)
        let expected = records.map(touchRecord)
        var seconds: [Double] = []
        for repetition in 1...repetitions {
            progress.update("records: map of \(count) on ProcessPool × \(workers), run \(repetition)")
            let (elapsed, results) = try runPool(strategy: .processes, workers: workers, inputs: records, announce: false,
                                                 work: touchRecord)
            guard results == expected else { throw BenchmarkError(description: "records came back different") }
            seconds.append(elapsed)
        }
        progress.clear()
        return Row(workload: "records", language: "Swift", strategy: Strategy.processes.rawValue, workers: workers, tasks: count,
                   seconds: seconds, median: median(seconds))
    }
}

/// The codec alone: encoding and decoding `count` records as one `[Record]` (what a chunk of
/// `map` carries), one thread, and copying the same number of bytes with memcpy; nanoseconds
/// per record, medians of `repetitions` (at least 5).
func recordsCodecAlone(count: Int, repetitions: Int) throws -> (codec: Double, memcpy: Double, bytes: Int) {
    let records = (0..<count).map(Record.make)
    var codecRuns: [Double] = [], copyRuns: [Double] = []
    var size = 0
    for _ in 0..<max(repetitions, 5) {
        let start = now()
        let payload = try RecordsCodec.encode(records)
        let back = try RecordsCodec.decode(payload)
        codecRuns.append(now() - start)
        guard back == records else { throw BenchmarkError(description: "the codec changed the records") }
        size = payload.count
        var copy = [UInt8](repeating: 0, count: payload.count)
        let copyStart = now()
        payload.withUnsafeBytes { source in copy.withUnsafeMutableBytes { _ = memcpy($0.baseAddress!, source.baseAddress!, source.count) } }
        copyRuns.append(now() - copyStart)
        withExtendedLifetime(copy) {}
    }
    return (median(codecRuns) / Double(count) * 1e9, median(copyRuns) / Double(count) * 1e9, size)
}

/// ForkPool's own payload codec for `[Record]` (package access), as `map`'s chunks use it.
enum RecordsCodec {
    static let codec = PayloadCodec<[Record]>()

    static func encode(_ records: [Record]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try codec.encode(records, into: &bytes)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> [Record] {
        try bytes.withUnsafeBytes { try codec.decode(from: $0) }
    }
}
