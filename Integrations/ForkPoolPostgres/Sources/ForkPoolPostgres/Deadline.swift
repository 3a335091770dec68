// Deadline: a database call with a time limit. A query on a connection whose network link is
// cut waits for TCP to give up (minutes); the job queue's loops must go on meanwhile — to let
// a lease lapse as it should, and to try again once the link is back. The call that ran out
// of time is left to finish on its own (postgres-nio cannot take back a query already sent);
// if it then succeeds, `onLateResult` gets what it returned (a claim that committed late is
// given back that way).
import Synchronization

/// A database call ran out of time.
struct DeadlineExceeded: Error, CustomStringConvertible {
    let what: String
    let limit: Duration
    var description: String { "\(what) took longer than \(limit)" }
}

/// Runs `operation`, throwing ``DeadlineExceeded`` if it has not finished within `limit`; a
/// result that comes after that goes to `onLateResult`.
func withDeadline<T: Sendable>(_ limit: Duration, _ what: String, onLateResult: (@Sendable (T) -> Void)? = nil,
                               _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let resumed = Mutex(false)
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let finish = { @Sendable (result: Result<T, any Error>) -> Bool in
            guard resumed.withLock({ done in defer { done = true }; return !done }) else { return false }
            continuation.resume(with: result)
            return true
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled else { return }
            _ = finish(.failure(DeadlineExceeded(what: what, limit: limit)))
        }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            timer.cancel()
            if !finish(result), case .success(let late) = result { onLateResult?(late) }
        }
    }
}
