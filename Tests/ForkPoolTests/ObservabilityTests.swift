// Observability, provoked for real: the log events a pool emits as its workers start, crash,
// time out and are recycled (with pid, signal and task id), its swift-metrics counters and
// timers (through MetricsTestKit's TestMetrics, passed in, never bootstrapped), and `stats`.
import CoreMetrics
import ForkPoolTestSupport
import Glibc
import Logging
import MetricsTestKit
import Synchronization
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct ObservabilityTests {
        /// Metrics, logs and the PostgreSQL job queue's table keep a code by its name.
        @Test func everyErrorCodeHasAStableNameThatMapsBack() {
            let codes = ForkPoolError.Code.allCases
            for code in codes { #expect(ForkPoolError.Code(name: code.name) == code) }
            #expect(Set(codes.map(\.name)).count == codes.count)
            #expect(ForkPoolError.Code.workerDied.name == "workerDied" && ForkPoolError.Code.unknownJob.name == "unknownJob")
            #expect(ForkPoolError.Code(name: "noSuchCode") == nil)
        }

        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        /// A quiet configuration that logs into `recorder` and measures into `metrics`.
        func observed(by recorder: LogRecorder = LogRecorder(), _ metrics: TestMetrics = TestMetrics()) -> ProcessPoolConfiguration {
            var configuration = quiet
            configuration.logger = recorder.logger
            configuration.metricsFactory = metrics
            return configuration
        }

        // MARK: Log events

        @Test func startingAPoolLogsEachWorkerSpawnedWithItsPidAndSlot() throws {
            let recorder = LogRecorder()
            let pool = try ProcessPool(workers: 2, configuration: observed(by: recorder), work: obey)
            defer { pool.shutdown() }
            let spawned = recorder.events("worker spawned")
            #expect(spawned.count == 2)
            #expect(Set(spawned.compactMap { $0["forkpool.pid"].flatMap { pid_t($0) } }) == Set(pool.workerProcessIDs))
            #expect(Set(spawned.compactMap { $0["forkpool.worker"] }) == ["0", "1"])
            // A library logs at debug level only: the caller gets the failures as errors.
            #expect(recorder.all.allSatisfy { $0.level == .debug })
        }

        @Test func aWorkerKilledMidTaskIsLoggedAsCrashedWithPidSignalAndTaskID() throws {
            let recorder = LogRecorder()
            let pool = try ProcessPool(workers: 2, configuration: observed(by: recorder), work: obey)
            defer { pool.shutdown() }
            let victim = try pool.submit(.raise(SIGKILL))
            let error = expectForkPoolError { _ = try victim.get() }
            let pid = try #require(error?.processID)
            #expect(waitUntil { !recorder.events("worker crashed").isEmpty })
            let crash = try #require(recorder.events("worker crashed").first)
            #expect(crash["forkpool.pid"] == "\(pid)")
            #expect(crash["forkpool.signal"] == "\(SIGKILL)")
            #expect(crash["forkpool.task_id"] == "\(victim.taskID)")
            #expect(crash["forkpool.exit_status"] == nil)
            #expect(crash.level == .debug)
            // Its replacement is spawned into the same slot.
            #expect(waitUntil { recorder.events("worker spawned").count == 3 })
            #expect(recorder.events("worker spawned").last?["forkpool.worker"] == crash["forkpool.worker"])
        }

        @Test func aWorkerPastItsTaskLimitIsLoggedAsRecycledThenExited() throws {
            let recorder = LogRecorder()
            var configuration = observed(by: recorder)
            configuration.maximumTasksPerWorker = 2  // + 0–10 % jitter: exactly 2
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let pids = try [pool.submit(.processID).get(), pool.submit(.processID).get()]
            #expect(pids[0] == pids[1])
            #expect(waitUntil { !recorder.events("worker exited").isEmpty })
            let recycled = try #require(recorder.events("worker recycled").first)
            #expect(recycled["forkpool.pid"] == "\(pids[0])")
            #expect(recycled["forkpool.reason"] == "task limit")
            #expect(recycled["forkpool.tasks_done"] == "2")
            let exited = try #require(recorder.events("worker exited").first)
            #expect(exited["forkpool.pid"] == "\(pids[0])")
            #expect(exited["forkpool.reason"] == "recycled")
            #expect(exited["forkpool.exit_status"] == "0")
            #expect(recorder.events("worker crashed").isEmpty)
            #expect(try pool.submit(.processID).get() != pids[0])
        }

        @Test func aTimeOutIsLoggedWithTaskAndPidAndItsWorkerExitsKilled() throws {
            let recorder = LogRecorder()
            let pool = try ProcessPool(workers: 1, configuration: observed(by: recorder), work: obey)
            defer { pool.shutdown() }
            let slow = try pool.submit(.sleep(milliseconds: 10_000), timeout: .milliseconds(100))
            let error = expectForkPoolError { _ = try slow.get() }
            #expect(error?.code == .timedOut)
            let pid = try #require(error?.processID)
            let timedOut = try #require(recorder.events("task timed out").first)
            #expect(timedOut["forkpool.task_id"] == "\(slow.taskID)")
            #expect(timedOut["forkpool.pid"] == "\(pid)")
            #expect(waitUntil { !recorder.events("worker exited").isEmpty })
            let exited = try #require(recorder.events("worker exited").first)
            #expect(exited["forkpool.pid"] == "\(pid)")
            #expect(exited["forkpool.reason"] == "timedOut")
            #expect(exited["forkpool.signal"] == "\(SIGKILL)")
            #expect(recorder.events("worker crashed").isEmpty)
        }

        @Test func aCrashUnderBreakPoolIsLoggedAsPoolBroken() throws {
            let recorder = LogRecorder()
            var configuration = observed(by: recorder)
            configuration.crashPolicy = .breakPool
            let pool = try ProcessPool(workers: 1, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            _ = expectForkPoolError { _ = try pool.submit(.raise(SIGKILL)).get() }
            #expect(waitUntil { !recorder.events("pool broken").isEmpty })
            #expect(recorder.events("pool broken").first?["forkpool.error"]?.contains("SIGKILL") == true)
        }

        // MARK: Metrics

        @Test func metricsCountTasksAndFailuresAndTimeEveryTask() throws {
            let metrics = TestMetrics()
            let pool = try ProcessPool(workers: 2, configuration: observed(metrics), work: obey)
            defer { pool.shutdown() }
            let futures = try (0..<10).map { _ in try pool.submit(.processID) } + [pool.submit(.fail("probe failed"))]
            for future in futures { _ = try? future.get() }

            let process = ("pool", "process")
            #expect(try metrics.expectCounter("forkpool_tasks_completed", [process, ("outcome", "success")]).totalValue == 10)
            #expect(try metrics.expectCounter("forkpool_tasks_completed", [process, ("outcome", "failure")]).totalValue == 1)
            #expect(try metrics.expectCounter("forkpool_task_failures", [process, ("code", "workFailed")]).totalValue == 1)
            #expect(metrics.counterTotal(label: "forkpool_task_failures") == 1)
            let queueWait = try metrics.expectTimer("forkpool_queue_wait", [process]).values
            let runTime = try metrics.expectTimer("forkpool_run_time", [process]).values
            #expect(queueWait.count == 11)
            #expect(runTime.count == 11)
            #expect(queueWait.allSatisfy { $0 > 0 })
            #expect(runTime.allSatisfy { $0 > 0 })
            #expect(try metrics.expectCounter("forkpool_worker_restarts", [process]).totalValue == 0)
        }

        @Test func metricsCountACrashAsWorkerDiedAndItsReplacementAsARestart() throws {
            let metrics = TestMetrics()
            var configuration = observed(metrics)
            configuration.metricsDimensions = [("name", "crashy")]
            let pool = try ProcessPool(workers: 2, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            _ = expectForkPoolError { _ = try pool.submit(.raise(SIGKILL)).get() }
            let dimensions = [("pool", "process"), ("name", "crashy")]
            #expect(try metrics.expectCounter("forkpool_task_failures", dimensions + [("code", "workerDied")]).totalValue == 1)
            #expect(try metrics.expectCounter("forkpool_tasks_completed", dimensions + [("outcome", "failure")]).totalValue == 1)
            #expect(waitUntil { (try? metrics.expectCounter("forkpool_worker_restarts", dimensions).totalValue) == 1 })
            #expect(try pool.map([Command](repeating: .processID, count: 4)).count == 4)
        }

        @Test func cancelledTasksAreNotCounted() throws {
            let metrics = TestMetrics()
            let pool = try ProcessPool(workers: 1, configuration: observed(metrics), work: obey)
            defer { pool.shutdown() }
            let running = try pool.submit(.sleep(milliseconds: 10_000))
            let queued = try pool.submit(.processID)
            #expect(waitUntil { pool.stats.queuedTasks == 1 })
            #expect(queued.cancel())
            #expect(running.cancel())  // kills its worker
            #expect(waitUntil { pool.stats.restarts == 1 && pool.workerProcessIDs.count == 1 })
            _ = try pool.submit(.processID).get()
            #expect(pool.stats.tasksCompleted == 1)
            #expect(pool.stats.tasksFailed == 0)
            #expect(metrics.counterTotal(label: "forkpool_tasks_completed") == 1)
        }

        @Test func threadPoolMetricsCountTasksFailuresAndRunTime() throws {
            let metrics = TestMetrics()
            let pool = try ThreadPool(workers: 2, metricsFactory: metrics) { (n: Int) throws -> Int in
                if n < 0 { throw TestFailure(description: "negative") }
                return n
            }
            defer { pool.shutdown() }
            for n in 0..<5 { _ = try pool.submit(n).get() }
            _ = expectForkPoolError { _ = try pool.submit(-1).get() }
            let thread = ("pool", "thread")
            #expect(try metrics.expectCounter("forkpool_tasks_completed", [thread, ("outcome", "success")]).totalValue == 5)
            #expect(try metrics.expectCounter("forkpool_tasks_completed", [thread, ("outcome", "failure")]).totalValue == 1)
            #expect(try metrics.expectCounter("forkpool_task_failures", [thread, ("code", "workFailed")]).totalValue == 1)
            #expect(try metrics.expectTimer("forkpool_run_time", [thread]).values.count == 6)
        }

        // MARK: stats

        @Test func processPoolStatsAddUpPerWorkerAndCountRestarts() throws {
            let pool = try ProcessPool(workers: 2, configuration: quiet, work: obey)
            defer { pool.shutdown() }
            let before = pool.stats
            #expect(before.workers.count == 2)
            #expect(before.tasksCompleted == 0 && before.restarts == 0 && before.queuedTasks == 0)
            #expect(Set(before.workers.compactMap(\.processID)) == Set(pool.workerProcessIDs))

            let outputs = try pool.map([Command](repeating: .sleep(milliseconds: 1), count: 40))
            let stats = pool.stats
            // Counted before the futures completed: no waiting needed. One chunk, one task.
            #expect(stats.tasksCompleted == Int(pool.tasksCreated))
            #expect(stats.workers.map(\.tasksCompleted).reduce(0, +) == stats.tasksCompleted)
            #expect(stats.tasksFailed == 0)
            #expect(stats.queuedTasks == 0)
            #expect(stats.workers.allSatisfy { $0.busyTime > .zero })
            for worker in stats.workers {
                #expect(worker.tasksCompleted == 0 || outputs.contains(Int(worker.processID ?? 0)))
            }

            // A task that kills its worker: a failure of that worker's slot, then a restart there.
            _ = expectForkPoolError { _ = try pool.submit(.raise(SIGKILL)).get() }
            let afterCrash = pool.stats
            #expect(afterCrash.tasksFailed == 1)
            #expect(afterCrash.tasksCompleted == stats.tasksCompleted + 1)
            let slot = try #require(afterCrash.workers.indices.first { afterCrash.workers[$0].tasksFailed == 1 })
            #expect(waitUntil { pool.stats.restarts == 1 && pool.stats.workers[slot].processID != nil })
            let restarted = pool.stats
            #expect(restarted.workers[slot].restarts == 1)
            #expect(restarted.workers[1 - slot].restarts == 0)
            #expect(Set(restarted.workers.compactMap(\.processID)) == Set(pool.workerProcessIDs))
        }

        @Test func threadPoolStatsCountPerThreadWithoutPidsOrRestarts() throws {
            let pool = try ThreadPool(workers: 2) { (n: Int) throws -> Int in
                if n < 0 { throw TestFailure(description: "negative") }
                usleep(100)
                return n
            }
            defer { pool.shutdown() }
            #expect(try pool.map(Array(0..<100), chunkSize: 10).count == 100)
            _ = expectForkPoolError { _ = try pool.submit(-1).get() }
            let stats = pool.stats
            #expect(stats.workers.count == 2)
            #expect(stats.tasksCompleted == 11)
            #expect(stats.tasksFailed == 1)
            #expect(stats.workers.map(\.tasksCompleted).reduce(0, +) == 11)
            #expect(stats.workers.map(\.tasksFailed).reduce(0, +) == 1)
            #expect(stats.workers.map(\.busyTime).reduce(.zero, +) > .milliseconds(10))
            #expect(stats.workers.allSatisfy { $0.processID == nil && $0.restarts == 0 })
            #expect(stats.restarts == 0 && stats.queuedTasks == 0)
        }
    }
}

/// What a probe task does in its worker.
/// Records every log event of the loggers it makes, from any thread.
final class LogRecorder: Sendable {
    struct Event: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]

        subscript(key: String) -> String? { metadata[key] }
    }

    private let recorded = Mutex<[Event]>([])

    var logger: Logger {
        Logger(label: "ForkPoolTests") { _ in Handler(recorder: self) }
    }

    var all: [Event] { recorded.withLock { $0 } }

    func events(_ message: String) -> [Event] { all.filter { $0.message == message } }

    fileprivate func record(_ event: LogEvent) {
        let metadata = (event.metadata ?? [:]).mapValues { "\($0)" }
        recorded.withLock { $0.append(Event(level: event.level, message: "\(event.message)", metadata: metadata)) }
    }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel = Logger.Level.trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            recorder.record(event)
        }
    }
}
