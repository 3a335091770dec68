// WakeSignal: what a job queue's loop sleeps on — woken by a NOTIFY, by a job that finished,
// or by its own poll timer, whichever comes first. Wakes that come while nobody sleeps are
// kept (at most one), so none is lost between a check and the next sleep.
import Synchronization

final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var sleeper: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Wakes the sleeper, or the next one to sleep.
    func wake() {
        let sleeper = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let sleeper = state.sleeper {
                state.sleeper = nil
                return sleeper
            }
            state.pending = true
            return nil
        }
        sleeper?.resume()
    }

    /// Returns at the next wake, or after `timeout` (or when the calling task is cancelled).
    /// One sleeper at a time.
    func sleep(timeout: Duration) async {
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.wake()
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    state.sleeper = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            wake()
        }
        state.withLock { $0.pending = false }
    }
}
