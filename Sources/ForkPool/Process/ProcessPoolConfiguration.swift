// ProcessPoolConfiguration: the knobs of a ProcessPool, with production defaults.
import CForkShim

/// Settings for a ``ProcessPool``. Also reachable as `ProcessPool.Configuration`.
public struct ProcessPoolConfiguration: Sendable {
    /// The largest payload a frame may carry in either direction, in bytes. A larger input
    /// fails at `submit`; a larger output fails its task; a frame from a worker declaring
    /// more is rejected before anything is allocated for it. Default 256 MiB.
    public var maximumFrameBytes: Int = 256 << 20

    /// Start workers in their own process group, so a terminal's Ctrl-C (SIGINT to the
    /// foreground group) reaches only the parent, which then shuts the pool down; the workers
    /// also die with the parent through their parent-death signal. Default true.
    public var workersInOwnProcessGroup = true

    /// Keep Swift's crash backtracer in the workers: a worker that crashes prints a backtrace
    /// to the standard error it shares with the parent (slower death: about 15 ms). When false
    /// a crashing worker dies silently at once; the task's error still names the signal.
    /// Default true.
    public var workerCrashBacktraces = true

    /// Seconds that idle workers get to exit at shutdown before they are killed. Default 5.
    public var shutdownGracePeriod: Double = 5

    public init() {}

    /// Creates a configuration, changing only the settings given.
    public init(maximumFrameBytes: Int = 256 << 20, workersInOwnProcessGroup: Bool = true,
                workerCrashBacktraces: Bool = true, shutdownGracePeriod: Double = 5) {
        self.maximumFrameBytes = maximumFrameBytes
        self.workersInOwnProcessGroup = workersInOwnProcessGroup
        self.workerCrashBacktraces = workerCrashBacktraces
        self.shutdownGracePeriod = shutdownGracePeriod
    }

    var forkOptions: CInt {
        var options: CInt = 0
        if workersInOwnProcessGroup { options |= CInt(FORKPOOL_NEW_PROCESS_GROUP) }
        if workerCrashBacktraces { options |= CInt(FORKPOOL_KEEP_FAULT_HANDLERS) }
        return options
    }
}
