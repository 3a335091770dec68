// ProcessPoolConfiguration: the settings of a process pool (ProcessPool, ProcessJobPool), with
// production defaults. One way to build it: `init()`, then set what differs. Every time is a
// `Duration`; tuning knobs are `@_spi(Tuning)`.
import CForkShim
import CoreMetrics
import Logging

/// Settings for a ``ProcessPool`` or a ``ProcessJobPool``.
///
/// ```swift
/// var configuration = ProcessPoolConfiguration()
/// configuration.taskTimeout = .seconds(5)
/// configuration.crashPolicy = .retry(times: 1)
/// let pool = try ProcessPool(workers: 4, configuration: configuration) { (n: Int) in fib(n) }
/// ```
public struct ProcessPoolConfiguration: Sendable {
    /// The largest payload a frame may carry in either direction, in bytes. A larger input
    /// fails at `submit`; a larger output fails its task; a frame from a worker declaring
    /// more is rejected before anything is allocated for it. Default 256 MiB.
    @_spi(Tuning)
    public var maximumFrameBytes: Int = 256 << 20

    /// Start the fork server and workers in their own process group, so a terminal's Ctrl-C
    /// (SIGINT to the foreground group) reaches only the parent; the workers then die with it
    /// through their parent-death signal. Default true.
    @_spi(Tuning)
    public var workersInOwnProcessGroup = true

    /// Keep Swift's crash backtracer in the workers: a worker that crashes prints a backtrace
    /// to the standard error it shares with the parent, once (a slower death: the backtracer
    /// symbolicates first, tens of milliseconds in a release build and a few hundred in a debug
    /// one). A fault signal ends the worker either way, even one raised or sent. When false
    /// a crashing worker dies silently at once; the task's error still names the signal.
    /// The backtracer starts a helper program, so a ``sandbox`` that denies exec turns it off.
    /// Default true.
    public var workerCrashBacktraces = true

    /// The longest pool creation may take: the fork server started and every
    /// first worker ready (its ``initializer`` run). Past it, creation throws
    /// ``ForkPoolError/Code/poolBroken`` saying the fork server or first worker did not become
    /// ready, and the processes started so far are killed and reaped. Default 30.
    @_spi(Tuning)
    public var startTimeout: Duration = .seconds(30)

    /// How long idle workers get to exit at shutdown before they are killed. Default 5 s.
    public var shutdownGracePeriod: Duration = .seconds(5)

    /// The longest a task may run; nil (the default) for no limit. A task over its limit fails
    /// with ``ForkPoolError/Code/timedOut`` and its worker is killed and replaced.
    public var taskTimeout: Duration?

    /// When a worker must be stopped (time-out, cancellation), the time between SIGTERM and
    /// SIGKILL. Zero (the default) sends SIGKILL at once.
    public var terminationGracePeriod: Duration = .zero

    /// What happens to the task of a worker that dies running it. Default ``CrashPolicy/failTask``.
    public var crashPolicy = CrashPolicy.failTask

    /// Recycle a worker after this many tasks (each worker's limit is raised by a random 0–10%
    /// so they do not all restart at once); nil (the default) never recycles. The replacement is
    /// started before the old worker leaves.
    public var maximumTasksPerWorker: Int?

    /// Recycle a worker whose resident memory (read from /proc after each task) exceeds this
    /// many bytes; nil (the default) for no ceiling.
    public var maximumWorkerResidentBytes: Int?

    /// The most tasks that may wait in the queue (not yet on a worker); nil (the default) for
    /// no bound. When that many wait, `submit` throws ``ForkPoolError/Code/overloaded`` at once
    /// and queues nothing, and `submitWhenReady` suspends until there is room. A task cancelled
    /// while queued frees its place at once. `map` is not refused (it keeps at most
    /// four chunks per worker in flight of its own accord), but its waiting chunks count
    /// toward the bound; `results(for:)` waits for room rather than fail an input.
    public var maximumQueuedTasks: Int?

    /// Runs once in each worker after fork, before its first task. If it throws, the worker
    /// exits; after `maximumConsecutiveStartFailures` (a `@_spi(Tuning)` setting) such failures in a row the pool breaks
    /// (creation throws if it happens while the pool starts).
    public var initializer: (@Sendable () throws -> Void)?

    /// How many workers in a row may fail to start (initializer throws, worker dies before it
    /// is ready, fork fails) before the pool gives up instead of restarting forever. Default 5.
    @_spi(Tuning)
    public var maximumConsecutiveStartFailures = 5

    /// When the Swift `Task` awaiting a task (`await future.value`, `await pool.map(…)`,
    /// `results(for:)`) is cancelled: false (the default) drops only the tasks still queued and
    /// lets running ones finish; true also kills the workers running them (each is replaced),
    /// as ``Future/cancel()`` does.
    public var cancellationKillsRunningTasks = false

    /// Whether a `submit` made while the queue is empty goes straight from the submitting
    /// thread to an idle worker, the reply then read by the first thread that blocks on the
    /// future (`get()`), with no hop through the pool's dispatcher thread. Default true: a
    /// lone `submit` + `get` then costs a few microseconds (less than a socket round trip with
    /// both ends busy-polling). The waiting thread spins for the reply for up to 100 µs, and a
    /// worker that answered such a task spins for up to 100 µs for the next one (with shared
    /// rings, on the ring: no system call); both spins shrink on their own when
    /// replies or tasks come later than that. false: every task goes through the dispatcher
    /// thread, and workers never spin. Tasks with a deadline, and pools with ``taskTimeout``,
    /// ``maximumTasksPerWorker`` or ``maximumWorkerResidentBytes``, always go through the
    /// dispatcher.
    @_spi(Tuning)
    public var usesDirectLanes = true

    /// Whether tasks and replies travel through shared memory: each worker gets a memfd both
    /// sides map, with a ring of 64 slots of 4 KiB each way; a side that has nothing to read
    /// spins briefly, then sleeps until the other rings it on the socket. Frames over a slot
    /// (and large `[UInt8]`s) still go on the socket, which also stays the control path.
    /// Default true. false: everything goes on the socket, as before.
    @_spi(Tuning)
    public var usesSharedMemoryRings = true

    /// The most tasks a worker may hold at once: the one it runs, and under load short tasks
    /// sent behind it, so that it never waits for the pool between tasks and several go out in
    /// one write (replies come back one by one). Only tasks already queued are sent ahead, and
    /// only to a worker whose running task has no deadline: up to this many while its recent
    /// tasks took under 100 µs and its running one has run less than that, one behind the
    /// running task while they took under 1 ms, none for longer tasks; never tasks with a
    /// deadline or a large `[UInt8]`. The check is made when a task is sent: if the task in
    /// front turns out long, the ones behind it wait for it. A task sent ahead is on its way,
    /// as in Python's call queue: `cancel()` returns false for it until it runs (then it kills
    /// its worker, as for any running task), `shutdown(cancelPending: true)` and a cancelled
    /// awaiting `Task` do not drop it, and if its worker dies first it runs on another worker.
    /// Pools with ``taskTimeout``, ``maximumTasksPerWorker`` or ``maximumWorkerResidentBytes``
    /// always send one task at a time. Default 32 (`Demo profile many-async`: 64 async callers
    /// 1.2× faster than with 8); 1 sends one task at a time.
    @_spi(Tuning)
    public var tasksInFlightPerWorker = 32

    /// Where the pool logs its workers' lives: spawned, recycled, crashed or exited, a task
    /// timed out, the pool broken. Everything is logged at `debug` level from the pool's
    /// dispatcher thread (failures also reach the caller as errors), with metadata keys such
    /// as `forkpool.pid`, `forkpool.signal`, `forkpool.exit_status` and `forkpool.task_id`.
    /// nil (the default): `Logger(label: "ForkPool")`, made when the pool is created, so a
    /// `LoggingSystem.bootstrap` done before then is honoured.
    public var logger: Logger?

    /// The swift-metrics factory for the pool's counters and timers
    /// (`forkpool_tasks_completed`, `forkpool_task_failures`, `forkpool_queue_wait`,
    /// `forkpool_run_time`, `forkpool_worker_restarts`). nil (the default): `MetricsSystem.factory`
    /// when the pool is created, which records nothing unless the application bootstrapped a
    /// backend.
    public var metricsFactory: (any MetricsFactory)?

    /// Dimensions added to every metric of the pool, beside `("pool", "process")`, to tell
    /// pools apart, for example `[("name", "thumbnails")]`. Default none.
    public var metricsDimensions: [(String, String)] = []

    /// How many ``AsyncPoolJob``s a worker of a fresh ``ProcessJobPool`` runs at once: while
    /// one awaits (a timer, a socket), the others go on. The jobs of a worker share one thread
    /// for their code, as asyncio's coroutines do. Sync jobs still have a worker to themselves,
    /// and other pools ignore this. Default 1. At any value, an async job's deadline and
    /// `cancel()` cancel its `Task` first; its worker is killed only if it has not ended a
    /// second later.
    public var jobsPerWorker = 1

    /// What the workers may reach: network, programs, files, memory. Default: nothing
    /// restricted. See ``WorkerSandbox``; the sandbox's paths, limits and this kernel's support
    /// for it are checked when the pool is created.
    public var sandbox = WorkerSandbox()

    /// A configuration with every default.
    public init() {}

    /// Checks every setting; the message names the bad one.
    func validate() throws(ForkPoolError) {
        func invalid(_ message: String) -> ForkPoolError { ForkPoolError(.invalidArgument, message) }
        guard maximumFrameBytes >= 1, maximumFrameBytes <= Int(UInt32.max) else {
            throw invalid("maximumFrameBytes must be between 1 and \(UInt32.max), not \(maximumFrameBytes)")
        }
        guard shutdownGracePeriod >= .zero, terminationGracePeriod >= .zero else {
            throw invalid("grace periods must not be negative")
        }
        guard startTimeout > .zero else { throw invalid("startTimeout must be positive, not \(startTimeout)") }
        if let taskTimeout, taskTimeout <= .zero { throw invalid("taskTimeout must be positive, not \(taskTimeout)") }
        if case .retry(let times) = crashPolicy, times < 0 { throw invalid("retry times must not be negative") }
        if let maximumTasksPerWorker, maximumTasksPerWorker < 1 { throw invalid("maximumTasksPerWorker must be at least 1") }
        if let maximumWorkerResidentBytes, maximumWorkerResidentBytes < 1 { throw invalid("maximumWorkerResidentBytes must be positive") }
        if let maximumQueuedTasks, maximumQueuedTasks < 1 {
            throw invalid("maximumQueuedTasks must be at least 1, not \(maximumQueuedTasks)")
        }
        guard (1...64).contains(tasksInFlightPerWorker) else {
            throw invalid("tasksInFlightPerWorker must be between 1 and 64, not \(tasksInFlightPerWorker)")
        }
        guard (1...10_000).contains(jobsPerWorker) else {
            throw invalid("jobsPerWorker must be between 1 and 10000, not \(jobsPerWorker)")
        }
        guard maximumConsecutiveStartFailures >= 1 else { throw invalid("maximumConsecutiveStartFailures must be at least 1") }
    }

    var forkServerOptions: CInt {
        var options: CInt = 0
        if workersInOwnProcessGroup { options |= CInt(FORKPOOL_NEW_PROCESS_GROUP) }
        if keepsCrashBacktraces { options |= CInt(FORKPOOL_KEEP_FAULT_HANDLERS) }
        return options
    }

    /// Workers stay in the fork server's process group (a sandboxed one leaves for a session
    /// of its own).
    var workerForkOptions: CInt {
        var options: CInt = keepsCrashBacktraces ? CInt(FORKPOOL_KEEP_FAULT_HANDLERS) : 0
        if !sandbox.isUnrestricted { options |= CInt(FORKPOOL_SANDBOXED_WORKERS) }
        if usesSharedMemoryRings { options |= CInt(FORKPOOL_SHARED_RINGS) }
        return options
    }

    /// Swift's backtracer runs a helper program: not in a worker that may not run one.
    private var keepsCrashBacktraces: Bool { workerCrashBacktraces && sandbox.exec == .allowed }
}
