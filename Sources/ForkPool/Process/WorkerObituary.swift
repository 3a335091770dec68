// WorkerObituary: how a worker's death is described — its pid, how it ended, the task it ran,
// and what its sandbox said about it last (WorkerNotes, read from its socket by whoever read it).
//
//   wait status (fork server's report) + notes ─▶ error(status:task:) ─▶ the task's ForkPoolError
//
// A value apart from the worker's record, so a caller reading by lane can describe the death
// once it is done reading, without holding the record (and through it the lane).
import Glibc

/// How a worker's death is described: what may outlive its record (a caller reading by lane
/// describes it once done reading, the last note from the worker's sandbox included), and
/// nothing that holds its socket.
struct WorkerObituary {
    let pid: pid_t
    let notes: WorkerNotes

    func error(status: WaitStatus, task: PendingTask?) -> ForkPoolError {
        let running = task.map { " while running task \($0.id)" } ?? ""
        switch status {
        case .signaled(let signal):
            let cause = notes.latest.flatMap { SandboxReport.cause(of: signal, note: $0) } ?? ""
            return ForkPoolError(.workerDied, "worker process \(pid) was killed by \(status)\(running)\(cause)",
                                 taskID: task?.id, processID: pid, signal: signal)
        case .exited(let exitStatus):
            return ForkPoolError(.workerDied, "worker process \(pid) exited with status \(exitStatus)\(running)",
                                 taskID: task?.id, processID: pid, exitStatus: exitStatus)
        }
    }

}
