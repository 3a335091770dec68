// WaitStatus: how a child process ended, decoded once from `waitpid`'s status word.
import CForkShim

enum WaitStatus: Equatable {
    /// It called `exit` (or returned from `main`) with this status.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)

    /// Decodes a raw wait status (the shim wraps the macros Swift does not import).
    init(raw: CInt) {
        self = forkpool_wifsignaled(raw) != 0 ? .signaled(forkpool_wtermsig(raw)) : .exited(forkpool_wexitstatus(raw))
    }
}

extension WaitStatus: CustomStringConvertible {
    var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "signal \(signal) (\(ForkPoolError.signalName(signal)))"
        }
    }
}
