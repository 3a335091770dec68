// DispatcherSettings: what a process pool's dispatcher is made with and what it derives from
// it, where it is in its life, what it publishes for other threads and what it was asked at
// shutdown — the values the dispatcher's state is built from, each its own type.
import Glibc

/// A pool's size and configuration as the dispatcher keeps them.
struct DispatcherSettings: Sendable {
    var workerCount: Int
    var configuration: ProcessPoolConfiguration
    /// Set when the fork server starts fresh from the program's binary (FreshStart);
    /// nil: it is forked from this process (`workerMain` then runs in each worker).
    var fresh: FreshStartSettings?
    /// The workers' sandbox as the fork server prepares it (WorkerSandbox.spec); nil for none.
    var sandboxSpec: String?

    /// These settings with `sandboxSpec` made from the configuration's sandbox (checked: it
    /// throws for a sandbox that cannot be applied).
    func withSandboxSpec() throws(ForkPoolError) -> DispatcherSettings {
        var settings = self
        settings.sandboxSpec = try configuration.sandbox.spec(forkingThisProcess: fresh == nil)
        return settings
    }

    /// Whether the pool keeps a time or recycling limit per task, which only the dispatcher
    /// thread keeps, and whose bookkeeping assumes one task per worker.
    var limitsEachTask: Bool {
        configuration.taskTimeout != nil || configuration.maximumTasksPerWorker != nil
            || configuration.maximumWorkerResidentBytes != nil
    }
    /// Whether single tasks may go by lane at all: not with limits per task.
    var lanesEnabled: Bool { configuration.usesDirectLanes && !limitsEachTask }
    /// How many tasks a worker may have in flight (more than one: short tasks are sent
    /// behind the running one under load); 1 with limits per task.
    var tasksInFlightPerWorker: Int { limitsEachTask ? 1 : configuration.tasksInFlightPerWorker }
}

/// The pids the dispatcher publishes for other threads: the live, ready workers and the
/// fork server while it runs.
struct PublishedProcesses {
    var workers: [pid_t] = []
    var forkServer: pid_t?
}

/// Where a pool is in its life, as its dispatcher sees it.
enum DispatcherPhase {
    case starting
    case running
    case failedToStart(ForkPoolError)
    case broken(ForkPoolError)
    case stopped
}

/// Whether shutdown was asked for, and how: queued tasks run (`drain`) or are cancelled.
enum ShutdownRequest: Equatable {
    case none
    case drain
    case cancelPending

    var asked: Bool { self != .none }

    /// Asks for shutdown; a request to cancel stands once made.
    mutating func ask(cancelPending: Bool) {
        if cancelPending { self = .cancelPending } else if self == .none { self = .drain }
    }
}
