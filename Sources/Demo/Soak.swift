// Soak: millions of tiny tasks and thousands of worker crashes through one ProcessPool,
// reporting this process's resident memory and open descriptors before and after. Neither
// may grow: the run fails if descriptors grow at all or memory grows past a small allowance.
import ArgumentParser
import ForkPool
import Foundation
import Glibc
import Workloads

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Soak a ProcessPool: tiny tasks and crashes; resident memory and descriptors must not grow."
    )

    @Option(help: "Tiny tasks to run (in chunks of 1,000, plus every 100th round one by one).") var tasks = 10_000_000
    @Option(help: "Worker crashes to provoke.") var crashes = 10_000
    @Option(help: "Workers in the pool.") var workers = 2

    func run() throws {
        let pool = try ProcessPool(workers: workers, configuration: .withoutBacktraces) { (n: Int) -> Int in
            if n < 0 { raise(SIGKILL) }
            return n &+ 1
        }
        defer { pool.shutdown() }
        // Warm up with one round of each kind, so the baseline includes the allocator's
        // high-water mark for a round; growth after that is a leak.
        _ = try pool.map(Array(0..<100_000), chunkSize: 1_000)
        _ = try (0..<10_000).map { try pool.submit($0).get() }
        for future in try (0..<100).map({ _ in try pool.submit(-1) }) { _ = try? future.get() }
        waitForFullStrength(pool)
        let start = Snapshot()
        print("start: \(start)")
        let began = now()
        var done = 0
        var round = 0
        let progress = Progress()
        while done < tasks {
            let count = min(100_000, tasks - done)
            let inputs = Array(done..<done + count)
            let outputs = round % 100 == 99 ? try inputs.map { try pool.submit($0).get() } : try pool.map(inputs, chunkSize: 1_000)
            guard outputs.elementsEqual(inputs.lazy.map { $0 &+ 1 }) else {
                throw BenchmarkError(description: "wrong results in round \(round)")
            }
            done += count
            round += 1
            progress.update("tasks: \(done)/\(tasks)")
        }
        var crashed = 0
        while crashed < crashes {
            let batch = (0..<min(100, crashes - crashed)).map { _ in -1 }
            for future in try batch.map({ try pool.submit($0) }) {
                let outcome = Result { () throws(ForkPoolError) in try future.get() }
                guard case .failure(let error) = outcome, error.code == .workerDied else {
                    throw BenchmarkError(description: "a crashing task did not fail with workerDied: \(outcome)")
                }
                crashed += 1
            }
            progress.update("crashes: \(crashed)/\(crashes)")
        }
        progress.clear()
        _ = try pool.map(Array(0..<10_000), chunkSize: 1_000)
        waitForFullStrength(pool)
        let end = Snapshot()
        let seconds = now() - began
        print("end:   \(end)")
        print("\(done) tasks and \(crashed) crashes in \(formatSeconds(seconds, digits: 1)) s; "
              + "\(pool.stats.workers.compactMap(\.processID).count) live workers")
        let allowance = 16 << 20
        guard end.descriptors <= start.descriptors else {
            throw BenchmarkError(description: "open descriptors grew from \(start.descriptors) to \(end.descriptors)")
        }
        guard end.residentBytes <= start.residentBytes + allowance else {
            throw BenchmarkError(description: "resident memory grew by \((end.residentBytes - start.residentBytes) >> 20) MiB")
        }
        print("ok: descriptors did not grow; resident memory within \(allowance >> 20) MiB of the start")
    }
}

/// Waits (up to 10 s) until every crashed worker has been replaced, so snapshots compare
/// like with like.
func waitForFullStrength(_ pool: ProcessPool<Int, Int>) {
    for _ in 0..<1000 where pool.stats.workers.compactMap(\.processID).count < pool.stats.workers.count {
        usleep(10_000)
    }
}

/// This process's resident memory and open descriptors.
struct Snapshot: CustomStringConvertible {
    var residentBytes = 0
    var descriptors = 0

    init() {
        // /proc is read through Foundation, as everywhere in the Demo: "size resident …" in pages.
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           case let fields = statm.split(separator: " "), fields.count > 1, let resident = Int(fields[1]) {
            residentBytes = resident * sysconf(Int32(_SC_PAGESIZE))
        }
        descriptors = directoryEntries("/proc/self/fd").count - 1  // less the one listing them
    }

    var description: String { "resident \(residentBytes >> 20) MiB, \(descriptors) open descriptors" }
}
