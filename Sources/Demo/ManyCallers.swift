// ManyCallers: the server's case — many threads or Swift tasks sharing one pool, each submitting
// one trivial task and waiting for it, in a loop. Measured for both pools (2 workers) at 1, 8
// and 64 threads and 64 and 1,024 async tasks, beside the raw pipelined socket (bench/limits)
// and Python's executors doing the same loop in the same run; the 64-task async load also beside
// the same Swift tasks' loop with no pool (AsyncHandOff). Also: context switches per task under the
// 8-thread load, and the pool's CPU time over 5 idle seconds after a burst.
import ForkPool
import Foundation
import Glibc
import Workloads

extension Benchmark {
    /// The caller counts measured: threads blocking in `get()`, and Swift tasks awaiting `value`.
    static let manyCallerThreads = [1, 8, 64]
    static let manyCallerTasks = [64, 1024]

    /// Rows `many-callers-K-threads` and `many-callers-K-async` for each pool, `total` tasks
    /// each (split evenly over the callers), every result checked; plus, for the process pool,
    /// `context-switches` (per task, under 8 threads) and `idle-cpu` (seconds of CPU over 5 idle
    /// seconds after a burst).
    func manyCallers(workers: Int, total: Int, idleSeconds: Double) throws -> [Row] {
        var rows: [Row] = []
        if strategies.contains(where: { $0 != .sequential }) {
            // The ceiling of the first async load: the same Swift tasks' loop with no pool at all.
            progress.update("many callers: async hand-off, \(Self.manyCallerTasks[0]) tasks, no pool")
            let callers = Self.manyCallerTasks[0], per = max(1, total / callers)
            // Its best of three: a ceiling, not a typical run (the first also warms the threads up).
            let seconds = try (0..<3).map { _ in try asyncHandOff(callers: callers, each: per) }.min()!
            rows.append(Row(workload: "async-hand-off-\(callers)", language: "Swift", strategy: "none", workers: 1,
                            tasks: callers * per, seconds: [seconds], median: seconds))
        }
        for strategy in strategies where strategy != .sequential {
            for callers in Self.manyCallerThreads {
                let pool = try makeIdentityPool(strategy, workers: workers)
                defer { pool.shutdown() }
                progress.update("many callers: \(strategy.poolName), \(callers) threads")
                let per = max(1, total / callers)
                let probe = strategy == .processes && callers == 8 ? SwitchProbe(pool: pool) : nil
                let dispatcher = strategy == .processes && callers == 8 ? DispatcherWakeups() : nil
                let seconds = try submitFromThreads(pool, callers: callers, each: per)
                if let probe, let dispatcher {
                    rows.append(Row(workload: "context-switches", language: "Swift", strategy: strategy.rawValue, workers: workers,
                                    tasks: callers * per, seconds: [], median: Double(probe.switches()) / Double(callers * per)))
                    rows.append(Row(workload: "dispatcher-wakeups", language: "Swift", strategy: strategy.rawValue, workers: workers,
                                    tasks: callers * per, seconds: [], median: Double(dispatcher.count()) / Double(callers * per)))
                }
                rows.append(Row(workload: "many-callers-\(callers)-threads", language: "Swift", strategy: strategy.rawValue,
                                workers: workers, tasks: callers * per, seconds: [seconds], median: seconds))
            }
            for callers in Self.manyCallerTasks {
                let pool = try makeIdentityPool(strategy, workers: workers)
                defer { pool.shutdown() }
                progress.update("many callers: \(strategy.poolName), \(callers) async tasks")
                let per = max(1, total / callers)
                let seconds = try submitFromTasks(pool, callers: callers, each: per)
                rows.append(Row(workload: "many-callers-\(callers)-async", language: "Swift", strategy: strategy.rawValue,
                                workers: workers, tasks: callers * per, seconds: [seconds], median: seconds))
            }
            if strategy == .processes {
                progress.update("many callers: \(strategy.poolName) idle for \(Int(idleSeconds)) s after a burst")
                let pool = try ProcessPool(workers: workers, work: identity)
                defer { pool.shutdown() }
                _ = try submitFromThreads(pool, callers: 8, each: max(1, total / 80))
                let before = PoolCPU(pool: pool)
                usleep(UInt32(idleSeconds * 1e6))
                rows.append(Row(workload: "idle-cpu", language: "Swift", strategy: strategy.rawValue, workers: workers,
                                tasks: 0, seconds: [idleSeconds], median: before.secondsSince()))
            }
        }
        progress.clear()
        return rows
    }

    private func makeIdentityPool(_ strategy: Strategy, workers: Int) throws -> any WorkerPool<Int, Int> {
        let pool: any WorkerPool<Int, Int> = strategy == .processes
            ? try ProcessPool(workers: workers, work: identity) : try ThreadPool(workers: workers, work: identity)
        _ = try pool.map(Array(0..<200), chunkSize: 1)  // warm up: workers started, buffers grown
        return pool
    }

    /// Seconds for `callers` threads, released together, each looping `submit(i).get()` `each` times.
    func submitFromThreads(_ pool: any WorkerPool<Int, Int>, callers: Int, each: Int) throws -> Double {
        let start = StartLine(callers: callers)
        let failures = Failures()
        let threads = try (0..<callers).map { index in
            try PosixThread.start(name: "caller-\(index)") {
                start.arriveAndWait()
                for value in 0..<each {
                    do {
                        guard try pool.submit(value).get() == value else { return failures.record("a task returned a wrong value") }
                    } catch {
                        return failures.record("\(error)")
                    }
                }
            }
        }
        let began = start.release()
        for thread in threads { thread.join() }
        let seconds = now() - began
        if let failure = failures.first { throw BenchmarkError(description: "many callers: \(failure)") }
        return seconds
    }

    /// Seconds for `callers` Swift tasks, each looping `try await submit(i).value` `each` times.
    func submitFromTasks(_ pool: any WorkerPool<Int, Int>, callers: Int, each: Int) throws -> Double {
        try secondsOfTasks(callers: callers, what: "many callers (async)") {
            for value in 0..<each where try await pool.submit(value).value != value {
                throw BenchmarkError(description: "a task returned a wrong value")
            }
        }
    }
}

/// Seconds for `callers` Swift tasks running `loop` at once, timed from off this thread (a
/// detached task) while this thread waits; the first error thrown, named by `what`, is rethrown.
func secondsOfTasks(callers: Int, what: String, _ loop: @escaping @Sendable () async throws -> Void) throws -> Double {
    let outcome = LockedResult()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let began = now()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<callers { group.addTask(operation: loop) }
                try await group.waitForAll()
            }
            outcome.set(.success(now() - began))
        } catch {
            outcome.set(.failure(BenchmarkError(description: "\(what): \(error)")))
        }
        done.signal()
    }
    done.wait()
    return try outcome.get()
}

/// Lets every caller thread start at once; the clock starts when they are released.
private final class StartLine: @unchecked Sendable {
    private let condition = NSCondition()
    private var waiting = 0
    private var released = false
    private let callers: Int

    init(callers: Int) { self.callers = callers }

    func arriveAndWait() {
        condition.lock()
        waiting += 1
        condition.broadcast()
        while !released { condition.wait() }
        condition.unlock()
    }

    /// Waits until every caller arrived, releases them and returns the start time.
    func release() -> Double {
        condition.lock()
        while waiting < callers { condition.wait() }
        released = true
        let began = now()
        condition.broadcast()
        condition.unlock()
        return began
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    func record(_ message: String) { lock.withLock { messages.append(message) } }
    var first: String? { lock.withLock { messages.first } }
}

private final class LockedResult: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Double, BenchmarkError>?
    func set(_ value: Result<Double, BenchmarkError>) { lock.withLock { result = value } }
    func get() throws -> Double { try lock.withLock { result! }.get() }
}

/// Context switches (voluntary and not) between its creation and `switches()`: of every
/// thread this process ever ran (RUSAGE_SELF sums them, the callers that ended included) and of
/// the pool's workers (their /proc status).
private struct SwitchProbe {
    let workers: [pid_t]
    let start: Int

    init(pool: any WorkerPool<Int, Int>) {
        workers = (pool as? ProcessPool<Int, Int>)?.stats.workers.compactMap(\.processID) ?? []
        start = Self.count(workers)
    }

    func switches() -> Int { Self.count(workers) - start }

    private static func count(_ workers: [pid_t]) -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        var total = usage.ru_nvcsw + usage.ru_nivcsw
        for pid in workers {
            total += statusField("/proc/\(pid)/status", "voluntary_ctxt_switches")
            total += statusField("/proc/\(pid)/status", "nonvoluntary_ctxt_switches")
        }
        return total
    }
}

/// How often the pool's dispatcher thread (named forkpool-disp) went to sleep and was woken
/// since creation: its context switches, from /proc. Zero per task when callers carry the tasks.
struct DispatcherWakeups {
    let start = Self.total()

    func count() -> Int { Self.total() - start }

    private static func total() -> Int {
        directoryEntries("/proc/self/task").reduce(0) { total, task in
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            guard comm.hasPrefix("forkpool-disp") else { return total }
            let status = "/proc/self/task/\(task)/status"
            return total + statusField(status, "voluntary_ctxt_switches") + statusField(status, "nonvoluntary_ctxt_switches")
        }
    }
}

/// The CPU time (user + system) of this process's pool threads and of the pool's workers since
/// creation: what an idle pool burns.
private struct PoolCPU {
    let workers: [pid_t]
    let start: Double

    init(pool: ProcessPool<Int, Int>) {
        workers = pool.stats.workers.compactMap(\.processID)
        start = Self.seconds(workers)
    }

    func secondsSince() -> Double { Self.seconds(workers) - start }

    /// The dispatcher thread (named forkpool-disp) and every worker, from their stat files.
    private static func seconds(_ workers: [pid_t]) -> Double {
        var paths = workers.map { "/proc/\($0)/stat" }
        for task in directoryEntries("/proc/self/task") {
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            if comm.hasPrefix("forkpool") { paths.append("/proc/self/task/\(task)/stat") }
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return paths.reduce(0) { total, path in
            guard let stat = try? String(contentsOfFile: path, encoding: .utf8), let close = stat.lastIndex(of: ")") else { return total }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the name: state is field 3; utime and stime are fields 14 and 15.
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return total }
            return total + (user + system) / ticks
        }
    }
}

private func statusField(_ path: String, _ name: String) -> Int {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
        return Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}
