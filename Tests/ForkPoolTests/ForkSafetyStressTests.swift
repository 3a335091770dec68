// Fork safety under load: pool after pool is created and used while other threads of this
// process keep busy the locks a fork could copy in the held state: malloc, the Swift runtime's
// generic-metadata and conformance caches, stdio, swift-log, Dispatch and Swift concurrency.
// Every pool must answer; a hang is a failure (with the stuck processes described: state, wait
// channel, kernel stack and, with gdb installed, the user-space stack), never a hang of the run.
//
// Environment: FORKPOOL_STRESS_POOLS, the number of pools (200; 20 under a sanitizer; 1,000 in
// `make soak`); FORKPOOL_STRESS_NOISE, which noise to make (comma-separated, of alloc, types,
// casts, names, stdio, log, dispatch, tasks; all by default; casts and names need types);
// FORKPOOL_STRESS_COLD=1, skip the warm-up in the parent (expect a hang: see the test);
// FORKPOOL_STRESS_GDB=0, no gdb; FORKPOOL_STRESS_HOLD_SECONDS, how long to leave stuck
// processes alive for inspection before they are killed.
import CForkShim
import Dispatch
import ForkPoolTestSupport
import Glibc
import Logging
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

// MARK: Generic types made at run time

/// The second letter of the alphabet `nest` spells types with (the first is `Array`).
struct StressWrap<T> {
    var value: T
}

/// Wraps `value` once per bit of `bits` (`depth` bits, lowest first): in an `Array` for a 1, in
/// a `StressWrap` for a 0. Each (`bits`, `depth`) pair is its own type, so a new pair instantiates
/// new generic metadata at run time (a recursion over ever-new types cannot be specialized).
func nest<T>(_ value: T, bits: UInt64, depth: Int) -> Any {
    if depth == 0 { return value }
    if bits & 1 == 1 { return nest([value], bits: bits >> 1, depth: depth - 1) }
    return nest(StressWrap(value: value), bits: bits >> 1, depth: depth - 1)
}

/// `nest` spelling the number `code` (at least 1): its bits below the leading one.
func nest<T>(_ value: T, code: UInt64) -> Any {
    let depth = 63 - code.leadingZeroBitCount
    return nest(value, bits: code, depth: depth)
}

/// `Array<Array<…<value>…>>`, `depth` levels deep.
func nestArrays<T>(_ value: T, depth: Int) -> Any {
    depth == 0 ? value : nestArrays([value], depth: depth - 1)
}

/// The stress pools' work, in the worker: instantiates generic types the parent never made
/// (a `UInt8` leaf; the noise uses `Int`), asks a conformance of the newest one, allocates.
@Sendable func stressWork(_ n: Int) -> Int {
    let fresh = nest(UInt8(truncatingIfNeeded: n), code: UInt64(n) + (1 << 16))
    let printable = fresh is any CustomStringConvertible ? 1 : 0
    var names = Set<String>()
    for index in 0..<16 { names.insert("\(n)-\(index)") }
    let nested = [[n]]
    return names.count + nested[0][0] + printable
}

/// `stressWork` as a job, for the fresh pools.
struct StressJob: PoolJob {
    var n: Int
    func run() throws -> Int { stressWork(n) }
}

func expectedStressAnswer(_ n: Int) -> Int {
    // The outermost wrapper spells the bit below the code's leading one: an Array (printable)
    // for a 1, a StressWrap (not) for a 0.
    let code = UInt64(n) + (1 << 16)
    let printable = Int((code >> (62 - code.leadingZeroBitCount)) & 1)
    return 16 + n + printable
}

// MARK: Noise

/// A `TextOutputStream` onto a stdio `FILE` (here /dev/null), written under the stream's lock.
struct StdioStream: TextOutputStream, @unchecked Sendable {
    let file: UnsafeMutablePointer<FILE>
    mutating func write(_ string: String) {
        flockfile(file)
        fputs(string, file)
        funlockfile(file)
    }
}

final class StressCounters: Sendable {
    let stopping = Atomic<Bool>(false)
    let allocations = Atomic<Int>(0)
    let newTypes = Atomic<Int>(0)
    let casts = Atomic<Int>(0)
    let stdioLines = Atomic<Int>(0)
    let logMessages = Atomic<Int>(0)
    let dispatched = Atomic<Int>(0)
    let taskTurns = Atomic<Int>(0)
    /// Pools created so far (the noise prints it now and then).
    let pools = Atomic<Int>(0)

    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    var summary: String {
        "allocation rounds \(allocations.load(ordering: .relaxed)), new generic types \(newTypes.load(ordering: .relaxed)), "
            + "successful casts \(casts.load(ordering: .relaxed)), "
            + "stdio lines \(stdioLines.load(ordering: .relaxed)), log messages \(logMessages.load(ordering: .relaxed)), "
            + "Dispatch blocks \(dispatched.load(ordering: .relaxed)), task turns \(taskTurns.load(ordering: .relaxed))"
    }
}

final class StressNode {
    var next: StressNode?
    var payload: [Int]
    init(next: StressNode?, payload: [Int]) {
        self.next = next
        self.payload = payload
    }
}

/// The noise threads, Dispatch blocks and tasks; `stop()` ends every one of them before it returns.
final class NoiseMakers: @unchecked Sendable {
    /// Every kind of noise; `FORKPOOL_STRESS_NOISE` (comma-separated) picks some, to find out
    /// which one a hang needs.
    static let kinds: Set<String> = ["alloc", "types", "casts", "names", "stdio", "log", "dispatch", "tasks"]

    let noise = StressCounters()
    let kinds: Set<String>
    private var threads: [PosixThread] = []
    /// The Dispatch blocks in flight, and the tasks (`stop` waits for both to finish).
    private let blocks = DispatchGroup()
    private let tasks = DispatchGroup()
    private let devNull: UnsafeMutablePointer<FILE>

    init(kinds: Set<String> = NoiseMakers.kinds) throws {
        self.kinds = kinds
        devNull = try #require(fopen("/dev/null", "w"))
        let noise = self.noise
        let stream = StdioStream(file: devNull)
        let blocks = self.blocks
        let tasks = self.tasks

        // (a) Allocation churn: arrays, dictionaries, a linked list of class instances.
        if kinds.contains("alloc") { threads.append(try PosixThread.start(name: "stress-alloc") {
            var round = 0
            while !noise.isStopping {
                var list: StressNode?
                for index in 0..<64 { list = StressNode(next: list, payload: Array(repeating: index, count: index % 17)) }
                var table: [String: [Int]] = [:]
                for index in 0..<32 { table["key\(index + round)"] = Array(0..<(index + round) % 40) }
                withExtendedLifetime((list, table)) {}
                round += 1
                noise.allocations.add(1, ordering: .relaxed)
            }
        }) }

        // (b) New generic metadata: a type never seen before each round and `Array` nested
        // ever deeper (back to 1 at 64) ("types"); conformance look-ups on them ("casts"); now
        // and then a type's name ("names").
        let casts = kinds.contains("casts")
        let names = kinds.contains("names")
        if kinds.contains("types") { threads.append(try PosixThread.start(name: "stress-types") {
            var code: UInt64 = 1
            var depth = 1
            while !noise.isStopping {
                let fresh = nest(Int(code), code: code)
                let deep = nestArrays(depth, depth: depth)
                if casts && fresh is any CustomStringConvertible && deep is any Equatable { noise.casts.add(1, ordering: .relaxed) }
                depth = depth == 64 ? 1 : depth + 1
                if names && code % 64 == 0 { _ = _typeName(type(of: fresh)) }
                code += 1
                noise.newTypes.add(1, ordering: .relaxed)
                // Some 10k new types a second here: the metadata stays within tens of MB a minute.
                if code % 16 == 0 { usleep(500) }
            }
        }) }

        // (c) stdio: lines to /dev/null through a FILE (its lock), and Swift's print, which
        // locks stdout: mostly empty, a visible line every two seconds.
        if kinds.contains("stdio") { threads.append(try PosixThread.start(name: "stress-stdio") {
            var output = stream
            var lastVisible = monotonicNanoseconds()
            while !noise.isStopping {
                for index in 0..<32 {
                    print("stress noise line \(index)", to: &output)
                    fputs("stress noise, straight to stdio\n", stream.file)
                }
                print("", terminator: "")
                noise.stdioLines.add(64, ordering: .relaxed)
                if monotonicNanoseconds() - lastVisible > 2_000_000_000 {
                    print("fork-safety stress: \(noise.pools.load(ordering: .relaxed)) pools so far")
                    lastVisible = monotonicNanoseconds()
                }
                usleep(100)
            }
        }) }

        // (d) swift-log: a StreamLogHandler at trace level (timestamp, formatting, the stream's
        // lock) onto /dev/null, and a Logger from the global factory (the logging system's lock).
        if kinds.contains("log") { threads.append(try PosixThread.start(name: "stress-log") {
            var logger = Logger(label: "forkpool.stress") { StreamLogHandler(label: $0, stream: stream) }
            logger.logLevel = .trace
            var index = 0
            while !noise.isStopping {
                logger.debug("stress noise", metadata: ["index": "\(index)", "pools": "\(noise.pools.load(ordering: .relaxed))"])
                let global = Logger(label: "forkpool.stress.\(index % 8)")
                global.trace("filtered out by the default level")
                index += 1
                noise.logMessages.add(1, ordering: .relaxed)
                if index % 8 == 0 { usleep(100) }
            }
        }) }

        // (e) Dispatch: blocks on the global queue (a few in flight) and a serial queue's sync.
        if kinds.contains("dispatch") { threads.append(try PosixThread.start(name: "stress-dispatch") {
            let serial = DispatchQueue(label: "forkpool.stress.serial")
            var round = 0
            while !noise.isStopping {
                for index in 0..<4 {
                    blocks.enter()
                    DispatchQueue.global().async {
                        let values = (0..<(16 + index)).map { "\($0)" }
                        withExtendedLifetime(values) {}
                        noise.dispatched.add(1, ordering: .relaxed)
                        blocks.leave()
                    }
                }
                serial.sync {
                    let values = Dictionary(uniqueKeysWithValues: (0..<8).map { ($0, [round, $0]) })
                    withExtendedLifetime(values) {}
                }
                _ = blocks.wait(timeout: .now() + .seconds(5))
                round += 1
                usleep(200)  // the cooperative threads the tasks below need are Dispatch's too
            }
        }) }

        // (f) Swift concurrency: tasks that yield and sleep in a loop (mostly asleep, so the
        // cooperative threads, which Dispatch's global queue shares, stay available).
        for index in 0..<(kinds.contains("tasks") ? 4 : 0) {
            tasks.enter()
            Task.detached {
                var turn = 0
                while !noise.isStopping {
                    let values = nestArrays(turn, depth: 1 + (turn + index) % 8)
                    withExtendedLifetime(values) {}
                    if turn % 2 == 0 {
                        try? await Task.sleep(for: .microseconds(300))
                    } else {
                        await Task.yield()
                    }
                    turn += 1
                    noise.taskTurns.add(1, ordering: .relaxed)
                }
                tasks.leave()
            }
        }
    }

    /// Stops the noise: every thread joined, every Dispatch block and task finished.
    func stop() {
        guard !noise.stopping.exchange(true, ordering: .relaxed) else { return }
        for thread in threads { thread.join() }
        threads = []
        _ = blocks.wait(timeout: .now() + .seconds(30))
        _ = tasks.wait(timeout: .now() + .seconds(30))
        fclose(devNull)
    }

    deinit { stop() }
}

// MARK: Diagnosis of a stuck pool

/// The processes of this process's pools now: fork servers (our children) and their children.
func poolProcessTree() -> [(role: String, pid: pid_t)] {
    childProcessIDs().filter { readFile("/proc/\($0)/comm") == "forkpool-server\n" }.flatMap { server in
        [("fork server", server)] + childProcessIDs(of: server).map { ("worker", $0) }
    }
}

/// Where `pid` and each of its threads are: state, kernel wait channel, system call, kernel
/// stack, and (with gdb installed and `FORKPOOL_STRESS_GDB` not 0) the user-space stack.
func describeProcess(_ pid: pid_t, role: String, userStack: Bool = true) -> String {
    func state(_ stat: String?) -> String {
        guard let stat, let close = stat.lastIndex(of: ")") else { return "gone" }
        return String(stat[stat.index(after: close)...].split(separator: " ").first ?? "?")
    }
    func trimmed(_ text: String?) -> String {
        (text ?? "unreadable").trimming("\n ")
    }
    var lines = ["\(role) \(pid): state \(state(readFile("/proc/\(pid)/stat")))"]
    for thread in directoryEntries("/proc/\(pid)/task").sorted() {
        let directory = "/proc/\(pid)/task/\(thread)"
        lines.append("  thread \(thread) \(trimmed(readFile("\(directory)/comm"))): state \(state(readFile("\(directory)/stat"))), "
            + "wchan \(trimmed(readFile("\(directory)/wchan"))), syscall \(trimmed(readFile("\(directory)/syscall")))")
        for frame in trimmed(readFile("\(directory)/stack")).split(separator: "\n") { lines.append("    \(frame)") }
    }
    if userStack, let stack = userSpaceStack(pid) { lines.append(stack) }
    return lines.joined(separator: "\n")
}

/// The stack of `pid`'s threads by gdb (frames only, 30 per thread), or nil without gdb.
func userSpaceStack(_ pid: pid_t) -> String? {
    if let setting = getenv("FORKPOOL_STRESS_GDB"), String(cString: setting) == "0" { return nil }
    guard access("/usr/bin/gdb", X_OK) == 0 else { return nil }
    let script = "timeout 60 /usr/bin/gdb -nx -batch -iex 'set debuginfod enabled off' -p \(pid) "
        + "-ex 'thread apply all bt 30' 2>/dev/null | grep -E '^(#|Thread)' | cut -c1-400"
    guard let output = runShell(script)?.output else { return nil }
    return "  user-space stack (gdb):\n" + output.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n")
}

extension String {
    func trimming(_ characters: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, characters.contains(first) { slice.removeFirst() }
        while let last = slice.last, characters.contains(last) { slice.removeLast() }
        return String(slice)
    }
}

/// Seconds to leave stuck processes alive for inspection (`FORKPOOL_STRESS_HOLD_SECONDS`).
let stressHoldSeconds = getenv("FORKPOOL_STRESS_HOLD_SECONDS").flatMap { UInt32(String(cString: $0)) } ?? 0

/// Describes every process of this process's pools (plus `extra` pids), optionally holds them
/// for inspection, then kills them all.
func diagnoseAndKillPoolProcesses(extra: [pid_t] = []) -> String {
    var processes = poolProcessTree()
    for pid in extra where !processes.contains(where: { $0.pid == pid }) { processes.append(("process", pid)) }
    let report = processes.map { describeProcess($0.pid, role: $0.role) }.joined(separator: "\n")
    if stressHoldSeconds > 0 {
        print("fork-safety stress: holding the stuck processes \(processes.map(\.pid)) for \(stressHoldSeconds) s\n\(report)")
        sleep(stressHoldSeconds)
    }
    for process in processes { kill(process.pid, SIGKILL) }
    return report
}

/// Watches the main loop's progress from a thread of its own: a stage stuck past its limit
/// gets its pool processes described and killed (which should unblock it); stuck 20 s more,
/// the test process is aborted rather than left hanging.
final class StressWatchdog: @unchecked Sendable {
    private let lock = ConditionLock()
    private var stage = "starting"
    private var stageStarted = monotonicNanoseconds()
    private var stageLimit: UInt64 = 40_000_000_000
    private var finished = false
    private var reports: [String] = []
    private var thread: PosixThread?

    init() throws {
        thread = try PosixThread.start(name: "stress-watchdog") { [self] in watch() }
    }

    /// The main loop is now in `newStage`, which should not take more than `seconds`.
    func enter(_ newStage: String, limit seconds: UInt64 = 40) {
        lock.withLock {
            stage = newStage
            stageStarted = monotonicNanoseconds()
            stageLimit = (seconds + UInt64(stressHoldSeconds)) * 1_000_000_000
        }
    }

    /// What the watchdog found, if it had to step in.
    var findings: [String] { lock.withLock { reports } }

    func finish() {
        lock.withLock {
            finished = true
            lock.broadcast()
        }
        thread?.join()
        thread = nil
    }

    private func watch() {
        var killedStage: (String, UInt64)?
        lock.lock()
        defer { lock.unlock() }
        while !finished {
            _ = lock.wait(untilMonotonicNanoseconds: monotonicNanoseconds() + 100_000_000)
            guard !finished else { return }
            let now = monotonicNanoseconds()
            if let (killed, at) = killedStage {
                if killed != stage || stageStarted > at { killedStage = nil; continue }
                if now - at > 20_000_000_000 {
                    let text = "fork-safety stress: \(stage) still stuck 20 s after its pool processes were killed; aborting.\n"
                        + describeProcess(getpid(), role: "test process", userStack: false) + "\n" + reports.joined(separator: "\n")
                    writeToStandardError(text + "\n")
                    abort()
                }
            } else if now - stageStarted > stageLimit {
                let stuck = stage
                lock.unlock()
                let report = "stuck \((now - stageStarted) / 1_000_000_000) s in \(stuck):\n" + diagnoseAndKillPoolProcesses()
                    + "\n" + describeProcess(getpid(), role: "test process", userStack: false)
                writeToStandardError("fork-safety stress: \(report)\n")
                lock.lock()
                reports.append(report)
                killedStage = (stuck, monotonicNanoseconds())
            }
        }
    }
}

// MARK: The test

extension ForkPoolTests {
    @Suite(.disabled(if: sanitizer == "thread", "ThreadSanitizer's runtime is not fork-safe under this load: a worker can block on the sanitizer's own lock (AddressSanitizer runs it)"))
    struct ForkSafetyStressTests {
        static var poolCount: Int {
            if let text = getenv("FORKPOOL_STRESS_POOLS"), let count = Int(String(cString: text)), count > 0 { return count }
            return sanitizer == nil ? 200 : 20
        }

        static var noiseKinds: Set<String> {
            guard let text = getenv("FORKPOOL_STRESS_NOISE") else { return NoiseMakers.kinds }
            return Set(String(cString: text).split(separator: ",").map(String.init)).intersection(NoiseMakers.kinds)
        }

        /// FORKPOOL_STRESS_COLD=1: the work is not run once in the parent first (this shows the
        /// hazard the README's Limits describe: some pool hangs within a few dozen).
        static var cold: Bool { getenv("FORKPOOL_STRESS_COLD").map { String(cString: $0) == "1" } ?? false }

        /// One pool under test, of either start method.
        struct StressPool {
            let submit: (Int) throws(ForkPoolError) -> Future<Int>
            let processIDs: () -> [pid_t]
            let shutdown: (Bool) -> Void
        }

        func makePool(_ method: ProcessJobPool.StartMethod, workers: Int) throws -> StressPool {
            let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            if method == .fresh {
                let pool = try ProcessJobPool(workers: workers, startMethod: .fresh, configuration: quiet, jobs: [StressJob.self])
                return StressPool(submit: { n throws(ForkPoolError) in try pool.submit(StressJob(n: n)) },
                                  processIDs: { (pool.forkServerProcessID.map { [$0] } ?? []) + pool.workerProcessIDs },
                                  shutdown: pool.shutdown(cancelPending:))
            }
            let pool = try ProcessPool(workers: workers, configuration: quiet, work: stressWork)
            return StressPool(submit: { n throws(ForkPoolError) in try pool.submit(n) },
                              processIDs: { (pool.forkServerProcessID.map { [$0] } ?? []) + pool.workerProcessIDs },
                              shutdown: pool.shutdown(cancelPending:))
        }

        /// Both start methods. A fresh pool's workers are new processes: the work is never run
        /// in the parent first, and no lock the noise holds can be inherited (half as many
        /// pools: each start is an exec of this binary).
        @Test(arguments: [ProcessJobPool.StartMethod.snapshot, .fresh])
        func everyPoolAnswersWhileOtherThreadsHoldLocks(method: ProcessJobPool.StartMethod) throws {
            let count = method == .fresh ? max(1, Self.poolCount / 2) : Self.poolCount
            let childrenBefore = childProcessIDs()
            let noise = try NoiseMakers(kinds: Self.noiseKinds)
            defer { noise.stop() }
            let watchdog = try StressWatchdog()
            defer { watchdog.finish() }
            usleep(100_000)  // the noise is up to speed before the first fork
            // Counted with the noise running (its /dev/null stream, Dispatch's own descriptors).
            let descriptorsBefore = openFileDescriptorCount()

            var startTimes: [UInt64] = []
            let began = monotonicNanoseconds()
            for index in 0..<count {
                let workers = 1 + index % 2
                let inputs = (0..<workers).map { index * 8 + $0 }
                // The rule the README's Limits give: whatever the work needs of the Swift runtime
                // for the first time (new generic types, a conformance asked of a new type) is
                // done once here, in the parent, before the pool is made. A worker is a copy of
                // this process at that instant and finds it all cached; unwarmed, it may block
                // forever on a runtime lock a noise thread held then (FORKPOOL_STRESS_COLD=1).
                if !Self.cold && method == .snapshot { _ = inputs.map(stressWork) }
                watchdog.enter("creating pool \(index) (\(workers) workers)")
                let started = monotonicNanoseconds()
                let pool = try makePool(method, workers: workers)
                noise.noise.pools.add(1, ordering: .relaxed)
                watchdog.enter("waiting for pool \(index)'s answers")
                let futures = try inputs.map { try pool.submit($0) }
                var answers: [Int?] = []
                for future in futures {
                    let remaining = 30 - Double(monotonicNanoseconds() - started) / 1e9
                    answers.append(try future.get(timeout: .seconds(max(remaining, 0.001))))
                }
                if answers.contains(where: { $0 == nil }) {
                    watchdog.enter("describing pool \(index), which did not answer", limit: 300)
                    let report = diagnoseAndKillPoolProcesses(extra: pool.processIDs())
                    let message = "pool \(index) (\(workers) workers) did not answer within 30 s; answers \(answers); "
                        + "noise \(noise.kinds.sorted())\n" + report
                    Issue.record(Comment(rawValue: message))
                    watchdog.enter("shutting down stuck pool \(index)")
                    pool.shutdown(true)
                    break
                }
                startTimes.append(monotonicNanoseconds() - started)
                #expect(answers == inputs.map { expectedStressAnswer($0) }, "pool \(index)")
                watchdog.enter("shutting down pool \(index)")
                pool.shutdown(false)
            }
            let elapsed = Double(monotonicNanoseconds() - began) / 1e9
            let descriptorsAfter = openFileDescriptorCount()
            watchdog.enter("stopping the noise")
            noise.stop()
            watchdog.finish()
            for finding in watchdog.findings { Issue.record("the watchdog stepped in: \(finding)") }

            let sorted = startTimes.sorted()
            let milliseconds = { (nanoseconds: UInt64) in format3(Double(nanoseconds) / 1e6) }
            print("fork-safety stress (\(method)): \(startTimes.count) of \(count) pools answered in \(format3(elapsed)) s; "
                  + "start (create to first answer) worst \(milliseconds(sorted.last ?? 0)) ms, "
                  + "median \(milliseconds(sorted.isEmpty ? 0 : sorted[sorted.count / 2])) ms; "
                  + "noise \(noise.kinds.sorted().joined(separator: ",")): \(noise.noise.summary)")
            #expect(startTimes.count == count)
            #expect(childProcessIDs() == childrenBefore)
            #expect(descriptorsAfter == descriptorsBefore)
        }
    }
}

/// Writes `text` to descriptor 2 directly (no stdio lock: the watchdog must not wait on one).
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

/// `value` with three decimals.
func format3(_ value: Double) -> String {
    let thousandths = Int((value * 1000).rounded())
    let fraction = String(abs(thousandths) % 1000)
    return "\(thousandths / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
}
