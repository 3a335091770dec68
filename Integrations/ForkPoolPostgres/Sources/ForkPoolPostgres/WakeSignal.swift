// WakeSignal: what a job queue's loop sleeps on — woken by a NOTIFY, by a job that finished,
// or by its own timer, whichever comes first. A wake that comes while nobody sleeps is kept
// (at most one), so none is lost between a check and the next sleep; a sleep's timer wakes
// only that sleep, never a later one.
import Synchronization

final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var sleeper: CheckedContinuation<Void, Never>?
        /// Counts sleeps: a timer wakes the sleep it was made for, or nothing.
        var generation: UInt64 = 0
        /// A sleep whose timer ran out before it began to wait: it returns at once.
        var expired: UInt64 = 0
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

    /// Ends sleep number `generation` if it still sleeps (its timer ran out).
    private func timeOut(_ generation: UInt64) {
        let sleeper = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.generation == generation else { return nil }
            guard let sleeper = state.sleeper else {
                state.expired = generation  // not waiting yet (descheduled): it will not wait
                return nil
            }
            state.sleeper = nil
            return sleeper
        }
        sleeper?.resume()
    }

    /// Returns at the next wake (or at once if one came since the last sleep), after
    /// `timeout`, or when the calling task is cancelled. One sleeper at a time.
    func sleep(timeout: Duration) async {
        let generation = state.withLock { state -> UInt64 in
            state.generation += 1
            return state.generation
        }
        let timer = Task { [weak self] in
            do { try await Task.sleep(for: timeout) } catch { return }  // cancelled: the sleep is over
            self?.timeOut(generation)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    if Task.isCancelled || state.expired == generation { return true }
                    state.sleeper = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            timeOut(generation)
        }
    }
}
