// The pools as swift-service-lifecycle Services, for real: a ServiceGroup runs a pool whose
// workers are held busy (a pipe the test controls), tasks queue up behind them, and then a
// graceful shutdown (triggerGracefulShutdown, or a real SIGTERM) or a cancellation arrives.
// Serialized: the tests count this process's threads, like ForkPoolTests.
@_spi(Testing) @_spi(Tuning) @_spi(Integration) import ForkPool
import ForkPoolServiceLifecycle
import ForkPoolTestSupport
import Glibc
import ServiceLifecycle
import Testing

/// A one-worker ProcessPool running in a ServiceGroup, its worker held by a task and ten tasks
/// queued behind it. `release()` cancels the group and lets the worker go.
struct HeldPoolInGroup {
    let hold = WorkerHold()
    let pool: ProcessPool<Job, Int>
    let holder: Future<Int>
    let workerPID: pid_t
    let queued: [Future<Int>]
    let group: ServiceGroup
    let running: Task<Void, any Error>

    init() throws {
        pool = try ProcessPool(workers: 1, work: perform)
        holder = try pool.submit(hold.job)
        workerPID = try #require(hold.waitForHolder())
        queued = try (1...10).map { [pool] in try pool.submit(.square($0)) }
        group = ServiceGroup(services: [pool])
        running = Task { [group] in try await group.run() }
    }

    func release() {
        running.cancel()
        hold.release(1)
    }
}

@Suite(.serialized, .timeLimit(.minutes(2)))
struct ForkPoolServiceLifecycleTests {
    @Test func processPoolFinishesQueuedTasksOnGracefulShutdown() async throws {
        let hold = WorkerHold()
        let pool = try ProcessPool(workers: 2, work: perform)
        let group = ServiceGroup(services: [pool])
        let outcome = try await runGracefulShutdown(of: pool, held: hold) {
            await group.triggerGracefulShutdown()
        } runGroup: {
            try await group.run()
        }
        expectFinishedGracefully(pool, outcome)
    }

    /// SIGTERM to the whole process, in a child process of its own (an exit test): the signal
    /// handler libdispatch installs for ServiceLifecycle stays for the life of the process and
    /// re-masks the thread that catches the signal, which the rest of this test run must not
    /// inherit. The child must survive the signal and exit normally.
    @Test func processPoolShutsDownGracefullyOnSIGTERM() async {
        await #expect(processExitsWith: .success) {
            let hold = WorkerHold()
            let pool = try ProcessPool(workers: 2, work: perform)
            let group = ServiceGroup(services: [pool], gracefulShutdownSignals: [.sigterm])
            let outcome = try await runGracefulShutdown(of: pool, held: hold) {
                // Only once ServiceLifecycle replaced the default action (which would end this
                // process) is the signal sent: it ignores the signal and watches it with a
                // DispatchSource, whose handler libdispatch may or may not install by then.
                let installed = await suspendUntil { signalDisposition(SIGTERM) != .defaultAction }
                try #require(installed, "ServiceGroup never installed its SIGTERM handler")
                #expect(kill(getpid(), SIGTERM) == 0)
            } runGroup: {
                try await group.run()
            }
            expectFinishedGracefully(pool, outcome)
        }
    }

    @Test func cancellingTheGroupCancelsQueuedTasks() async throws {
        let held = try HeldPoolInGroup()
        let (hold, pool, holder, workerPID, queued, running) =
            (held.hold, held.pool, held.holder, held.workerPID, held.queued, held.running)
        defer { held.release() }

        running.cancel()
        // The worker is still held, so nothing queued can have run: each is cancelled, or the
        // deadline (a hang guard only) passes.
        let allCancelled = await suspendUntil { queued.allSatisfy(\.isDone) }
        #expect(allCancelled)
        hold.release(1)
        _ = await running.result  // returns: run() does not throw on cancellation

        #expect(try holder.get() == Int(workerPID), "a running task still finishes")
        for future in queued {
            #expect(fails(future, with: .cancelled))
        }
        #expect(submitIsRefused(pool))
        #expect(liveness(of: workerPID) == .gone)
        #expect(pool.workerProcessIDs.isEmpty && pool.forkServerProcessID == nil)
    }

    @Test func cancellationDuringGracefulShutdownCancelsWhatIsStillQueued() async throws {
        let held = try HeldPoolInGroup()
        let (hold, pool, holder, workerPID, queued, group, running) =
            (held.hold, held.pool, held.holder, held.workerPID, held.queued, held.group, held.running)
        defer { held.release() }

        await group.triggerGracefulShutdown()
        let refusing = await suspendUntil { submitIsRefused(pool) }
        #expect(refusing, "the graceful shutdown began")
        #expect(queued.allSatisfy { !$0.isDone }, "a graceful shutdown keeps the queued tasks")
        running.cancel()
        let allCancelled = await suspendUntil { queued.allSatisfy(\.isDone) }
        #expect(allCancelled)
        hold.release(1)
        _ = await running.result

        #expect(try holder.get() == Int(workerPID))
        #expect(queued.allSatisfy { fails($0, with: .cancelled) })
        #expect(liveness(of: workerPID) == .gone)
    }

    @Test func threadPoolFinishesQueuedTasksOnGracefulShutdown() async throws {
        // By thread id: other tests' pools start and stop their threads meanwhile.
        let threadsBefore = threadIDs(named: "forkpool-t")
        let hold = WorkerHold()
        let pool = try ThreadPool(workers: 2, work: perform)
        let threadsOfPool = threadIDs(named: "forkpool-t").subtracting(threadsBefore)
        #expect(threadsOfPool.count >= 2)
        let group = ServiceGroup(services: [pool])
        let outcome = try await runGracefulShutdown(of: pool, held: hold) {
            await group.triggerGracefulShutdown()
        } runGroup: {
            try await group.run()
        }
        #expect(outcome.holders.allSatisfy { (try? $0.get()) == Int(getpid()) })
        #expect(try outcome.queued.map { try $0.get() } == (1...20).map { $0 * $0 })
        #expect(outcome.lateAccepted.allSatisfy { (try? $0.get()) == 49 })
        #expect(submitIsRefused(pool))
        #expect(threadIDs(named: "forkpool-t").isDisjoint(with: threadsOfPool), "every pool thread was joined before run() returned")
    }

    @Test func runOutsideAServiceGroupReturnsWhenItsTaskIsCancelled() async throws {
        let hold = WorkerHold()
        let pool = try ThreadPool(workers: 1, work: perform)
        let holder = try pool.submit(hold.job)
        _ = try #require(hold.waitForHolder())
        let queued = try pool.submit(.square(3))
        let running = Task { await pool.run() }
        defer {
            running.cancel()
            hold.release(1)
        }

        running.cancel()
        let cancelled = await suspendUntil { queued.isDone }
        #expect(cancelled)
        hold.release(1)
        await running.value

        #expect(try holder.get() == Int(getpid()))
        #expect(fails(queued, with: .cancelled))
        #expect(submitIsRefused(pool))
    }
}

// MARK: - The graceful scenario shared by ProcessPool, ThreadPool and SIGTERM

/// The futures of one graceful-shutdown scenario.
struct GracefulOutcome {
    var holders: [Future<Int>]
    var queued: [Future<Int>]
    /// Submitted after the shutdown was triggered but accepted before the pool stopped
    /// accepting (usually none): they must complete too.
    var lateAccepted: [Future<Int>]
    var workerPIDs: [pid_t]
    var forkServerPID: pid_t?
}

/// Holds both workers of `pool`, queues 20 tasks behind them, runs the group, `trigger`s the
/// graceful shutdown and waits until the pool refuses new tasks, and only then lets the
/// workers go. So the 20 tasks were provably still queued when the shutdown began. Returns once
/// the group's `run()` (and so the pool's `run()`) has returned.
func runGracefulShutdown<Pool: WorkerPool>(
    of pool: Pool, held hold: WorkerHold,
    trigger: () async throws -> Void,
    runGroup: @escaping @Sendable () async throws -> Void
) async throws -> GracefulOutcome where Pool.Input == Job, Pool.Output == Int {
    let holders = try (0..<pool.stats.workers.count).map { _ in try pool.submit(hold.job) }
    let reported = (0..<pool.stats.workers.count).compactMap { _ in hold.waitForHolder() }
    try #require(reported.count == pool.stats.workers.count, "the workers never picked up the holding tasks")
    let processPool = pool as? ProcessPool<Job, Int>
    let workerPIDs = processPool?.workerProcessIDs ?? []
    let forkServerPID = processPool?.forkServerProcessID
    let queued = try (1...20).map { try pool.submit(.square($0)) }

    async let groupRun: Void = runGroup()
    // Declared after `groupRun`, so it runs before an early exit awaits the group: never leave
    // a worker held, or the group's shutdown would wait for it forever.
    defer { hold.release(pool.stats.workers.count) }
    try await trigger()
    var lateAccepted: [Future<Int>] = []
    let refusing = await suspendUntil {
        do {
            lateAccepted.append(try pool.submit(.square(7)))
            return false
        } catch {
            return (error as? ForkPoolError)?.code == .poolShutDown
        }
    }
    #expect(refusing, "the pool never stopped accepting tasks")
    #expect(queued.allSatisfy { !$0.isDone }, "the queued tasks waited behind the held workers")
    hold.release(pool.stats.workers.count)
    try await groupRun
    return GracefulOutcome(holders: holders, queued: queued, lateAccepted: lateAccepted,
                           workerPIDs: workerPIDs, forkServerPID: forkServerPID)
}

/// What a graceful shutdown of a ProcessPool must leave behind: every task done with its
/// result, no new task accepted, no worker and no fork server alive.
func expectFinishedGracefully(_ pool: ProcessPool<Job, Int>, _ outcome: GracefulOutcome,
                              sourceLocation: SourceLocation = #_sourceLocation) {
    let holderPIDs = outcome.holders.compactMap { try? $0.get() }.map { pid_t($0) }
    #expect(Set(holderPIDs) == Set(outcome.workerPIDs), "each held worker finished its task", sourceLocation: sourceLocation)
    #expect(outcome.workerPIDs.count == 2, sourceLocation: sourceLocation)
    #expect(outcome.queued.map { try? $0.get() } == (1...20).map { $0 * $0 }, sourceLocation: sourceLocation)
    #expect(outcome.lateAccepted.allSatisfy { (try? $0.get()) == 49 }, sourceLocation: sourceLocation)
    #expect(submitIsRefused(pool), sourceLocation: sourceLocation)
    for pid in outcome.workerPIDs + [outcome.forkServerPID].compactMap({ $0 }) {
        #expect(liveness(of: pid) == .gone, "process \(pid) outlived the pool's run()", sourceLocation: sourceLocation)
    }
    #expect(outcome.forkServerPID != nil, sourceLocation: sourceLocation)
    #expect(pool.workerProcessIDs.isEmpty && pool.forkServerProcessID == nil, sourceLocation: sourceLocation)
}

// MARK: - Helpers

/// A task for either pool.
enum Job: Codable, Sendable {
    case square(Int)
    /// Writes the pid of the process running it to `report`, then blocks until a byte arrives
    /// on `gate`; returns that pid.
    case holdWorker(report: Int32, gate: Int32)
}

@Sendable func perform(_ job: Job) -> Int {
    switch job {
    case .square(let n):
        return n * n
    case .holdWorker(let report, let gate):
        var pid = getpid()
        _ = write(report, &pid, MemoryLayout<pid_t>.size)
        var byte: UInt8 = 0
        _ = read(gate, &byte, 1)
        return Int(pid)
    }
}

/// Two pipes: a held worker reports on one and waits on the other (a gate) until the test
/// releases it. Created before a ProcessPool, so its workers inherit them.
final class WorkerHold: Sendable {
    private let reports = PIDPipe()
    private let gate = Gate()

    var job: Job { .holdWorker(report: reports.writeEnd, gate: gate.readEnd) }

    /// The pid a holding task reported once it runs; nil if none did within a minute (a hang
    /// guard, not a timing assertion).
    func waitForHolder() -> pid_t? { reports.nextPID(within: 60) }

    /// Lets `count` held tasks go on (extra bytes stay in the pipe, harmlessly).
    func release(_ count: Int) { gate.open(count) }
}

/// Whether `submit` now fails with `.poolShutDown`.
func submitIsRefused<Pool: WorkerPool>(_ pool: Pool) -> Bool where Pool.Input == Job {
    do {
        _ = try pool.submit(.square(1))
        return false
    } catch {
        return error.code == .poolShutDown
    }
}

func fails(_ future: Future<Int>, with code: ForkPoolError.Code) -> Bool {
    do {
        _ = try future.get()
        return false
    } catch {
        return error.code == code
    }
}
