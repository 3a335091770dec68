// OverheadExtras: the overhead measurements beyond one-at-a-time and chunked identity tasks —
// ThreadPool.map beside DispatchQueue.concurrentPerform, slow tasks with automatic chunks
// beside chunk size 1, and the private memory one worker process adds.
import Dispatch
import ForkPool
import Foundation
import Glibc

/// Busy for `microseconds` of wall time, then returns `n`: a task too slow to batch.
@Sendable func spin(_ n: Int, microseconds: UInt64) -> Int {
    let end = monotonicNanoseconds() + microseconds * 1000
    while monotonicNanoseconds() < end {}
    return n
}

extension Benchmark {
    /// `ThreadPool.map` (automatic chunks) and `DispatchQueue.concurrentPerform` on the same
    /// trivial work, `tasks` inputs, pool already started (concurrentPerform's threads exist
    /// already too): median seconds of `repetitions` each, results checked.
    func threadMapAgainstConcurrentPerform(tasks: Int, workers: Int) throws -> [Row] {
        let inputs = Array(0..<tasks)
        let pool = try ThreadPool(workers: workers, work: identity)
        defer { pool.shutdown() }
        _ = try pool.map(inputs)  // warm up
        var poolSeconds: [Double] = []
        var dispatchSeconds: [Double] = []
        for repetition in 1...max(repetitions, 5) {
            progress.update("thread map: ThreadPool vs concurrentPerform, run \(repetition)")
            var start = now()
            let viaPool = try pool.map(inputs)
            poolSeconds.append(now() - start)
            start = now()
            nonisolated(unsafe) let slots = UnsafeMutableBufferPointer<Int>.allocate(capacity: tasks)
            DispatchQueue.concurrentPerform(iterations: tasks) { index in slots[index] = identity(inputs[index]) }
            let viaDispatch = Array(slots)
            dispatchSeconds.append(now() - start)
            slots.deallocate()
            guard viaPool == inputs, viaDispatch == inputs else {
                throw BenchmarkError(description: "thread map returned wrong results")
            }
        }
        progress.clear()
        return [
            Row(workload: "thread-map", language: "Swift", strategy: Strategy.threads.rawValue, workers: workers,
                tasks: tasks, seconds: poolSeconds, median: median(poolSeconds)),
            Row(workload: "thread-map", language: "Swift", strategy: "concurrentPerform", workers: onlineProcessors,
                tasks: tasks, seconds: dispatchSeconds, median: median(dispatchSeconds)),
        ]
    }

    /// Tasks of `microseconds` each through `ProcessPool.map` with automatic chunks and with
    /// chunk size 1: automatic chunking must not batch slow tasks (no worse than chunk size 1).
    func slowTasks(count: Int, microseconds: UInt64, workers: Int) throws -> [Row] {
        let inputs = Array(0..<count)
        var rows: [Row] = []
        for chunkSize in [1, nil] as [Int?] {
            var seconds: [Double] = []
            for repetition in 1...repetitions {
                progress.update("slow tasks: chunk size \(chunkSize.map(String.init) ?? "auto"), run \(repetition)")
                let (elapsed, results) = try runPool(strategy: .processes, workers: workers, inputs: inputs, chunkSize: chunkSize,
                                                     announce: false) { spin($0, microseconds: microseconds) }
                guard results == inputs else { throw BenchmarkError(description: "slow tasks returned wrong results") }
                seconds.append(elapsed)
            }
            rows.append(Row(workload: "slow-tasks", language: "Swift", strategy: Strategy.processes.rawValue, workers: workers,
                            tasks: count, chunkSize: chunkSize, seconds: seconds, median: median(seconds)))
        }
        progress.clear()
        return rows
    }

    /// The private memory (not shared with the parent) of each worker of a `ProcessPool(workers:
    /// 4)` that has run some tasks: the median over the workers, in bytes, as `median`.
    func workerPrivateMemory() throws -> Row {
        let pool = try ProcessPool(workers: 4, work: identity)
        defer { pool.shutdown() }
        _ = try pool.map(Array(0..<10_000), chunkSize: 10)
        let sizes = pool.stats.workers.compactMap(\.processID).compactMap(privateBytes(of:)).map(Double.init)
        guard !sizes.isEmpty else { throw BenchmarkError(description: "could not read the workers' /proc/<pid>/smaps_rollup") }
        return Row(workload: "worker-memory", language: "Swift", strategy: Strategy.processes.rawValue, workers: 4,
                   tasks: sizes.count, seconds: sizes, median: median(sizes))
    }
}

/// Private_Clean + Private_Dirty of a process, from /proc/<pid>/smaps_rollup, in bytes.
func privateBytes(of pid: pid_t) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return nil }
    var kilobytes = 0
    for line in text.split(separator: "\n") where line.hasPrefix("Private_Clean:") || line.hasPrefix("Private_Dirty:") {
        guard let value = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        kilobytes += value
    }
    return kilobytes * 1024
}
