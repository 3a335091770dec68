// HeapBench: how a pool's start and a worker's respawn grow with the parent's heap, for both
// start methods — `.snapshot` forks the running program (page tables copied), `.fresh` starts
// the program's binary anew (nothing of the parent copied). The "heap" section of `make bench`.
import ForkPool
import Foundation
import Glibc

/// Ends its worker with SIGKILL: a crash whose replacement the pool forks.
struct CrashJob: PoolJob {
    func run() throws -> Int {
        raise(SIGKILL)
        return 0
    }
}

extension Benchmark {
    /// For each start method and each heap (this process's own, then with `extraBytes` more
    /// allocated and touched): the median of `samples` runs (after one untimed) of create + first answer + shutdown
    /// (`heap-start`), and of a crash's replacement — the time from a worker's death to the
    /// next answer (`heap-respawn`). Rows carry the method as strategy and the extra MiB as tasks.
    func heapStarts(extraBytes: Int, samples: Int) throws -> [Row] {
        var rows: [Row] = []
        for extra in [0, extraBytes] {
            let heap = extra > 0 ? UnsafeMutableRawPointer.allocate(byteCount: extra, alignment: 4096) : nil
            if let heap { heap.initializeMemory(as: UInt8.self, repeating: 1, count: extra) }  // resident, as a server's caches
            defer { heap?.deallocate() }
            // A second to settle, both heaps alike: right after 1.6 GiB is first touched, the
            // kernel is busy with it for a while and any process start is slower (measured:
            // 1.7× for five fresh starts at once, none after a second), and a server's caches
            // are built long before it starts a pool.
            usleep(1_000_000)
            // Fresh first: a snapshot pool's processes, which map the whole heap, take a while
            // to tear down after shutdown, on the other core.
            for method in [ProcessJobPool.StartMethod.fresh, .snapshot] {
                let configuration = ProcessPoolConfiguration.withoutBacktraces
                var starts: [Double] = [], respawns: [Double] = []
                for sample in 0...samples {  // sample 0 warms up (page cache, the kernel settling after the heap was touched)
                    progress.update("heap: \(method), +\(extra >> 20) MiB, sample \(sample)/\(samples)")
                    let start = now()
                    let pool = try ProcessJobPool(workers: 1, startMethod: method, configuration: configuration, jobs: [FibonacciJob.self, CrashJob.self])
                    guard try pool.submit(FibonacciJob(n: 10)).get() == 55 else { throw BenchmarkError(description: "fib(10) != 55") }
                    starts.append(now() - start)
                    // The crash: its future fails when the worker's death is reported; the
                    // replacement is forked then, and answers the next task.
                    let died = Result { () throws(ForkPoolError) in try pool.submit(CrashJob()).get() }
                    guard case .failure(let error) = died, error.code == .workerDied else {
                        throw BenchmarkError(description: "the crash job did not crash its worker")
                    }
                    let afterDeath = now()
                    guard try pool.submit(FibonacciJob(n: 10)).get() == 55 else { throw BenchmarkError(description: "fib(10) != 55") }
                    respawns.append(now() - afterDeath)
                    pool.shutdown()
                    if sample == 0 {
                        starts.removeAll()
                        respawns.removeAll()
                    }
                }
                let name = method == .fresh ? "fresh" : "snapshot"
                rows.append(Row(workload: "heap-start", language: "Swift", strategy: name, workers: 1, tasks: extra >> 20,
                                seconds: starts, median: median(starts)))
                rows.append(Row(workload: "heap-respawn", language: "Swift", strategy: name, workers: 1, tasks: extra >> 20,
                                seconds: respawns, median: median(respawns)))
            }
        }
        progress.clear()
        return rows
    }
}

/// The heap figures: each start method's start and respawn with a big heap beside the same with
/// the program's own heap, and a fresh start beside a snapshot one.
func collectHeapFigures(rows: [Row]) -> [Figure] {
    func row(_ workload: String, _ method: String, big: Bool) -> Row? {
        rows.filter { $0.workload == workload && $0.strategy == method }.sorted { $0.tasks < $1.tasks }.dropFirst(big ? 1 : 0).first
    }
    var figures: [Figure] = []
    for workload in ["heap-start", "heap-respawn"] {
        let what = workload == "heap-start" ? "create + first answer" : "respawn after a crash"
        for method in ["snapshot", "fresh"] {
            guard let big = row(workload, method, big: true), let small = row(workload, method, big: false), big.tasks > 0 else { continue }
            figures.append(Figure(".\(method) \(what), +\(big.tasks) MiB heap", big.median * 1e3, "ms",
                                  against: "the same with the program's own heap", small.median * 1e3, better: "lower",
                                  goal: method == "fresh" ? "≤ 1.2" : nil))
        }
    }
    if let fresh = row("heap-start", "fresh", big: false), let snapshot = row("heap-start", "snapshot", big: false) {
        figures.append(Figure(".fresh create + first answer", fresh.median * 1e3, "ms", against: ".snapshot, same heap",
                              snapshot.median * 1e3, better: "lower", goal: "≤ 3"))
    }
    return figures
}

/// Gives what earlier sections allocated and freed back to the kernel. glibc keeps freed memory
/// in its heap (122 MiB of it after the sections before the article's workloads, measured
/// here), and a `.snapshot` pool forks all of it: page tables to copy, pages shared
/// copy-on-write. So each section's pools fork from the program's own heap, not from what the
/// previous section left behind; the heap section above measures what a big heap costs.
func releaseFreedHeap() {
    typealias MallocTrim = @convention(c) (Int) -> CInt
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
}
