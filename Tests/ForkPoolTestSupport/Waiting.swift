// Waiting in tests: one poll with one generous deadline, a hang guard and never a timing
// assertion. What decides an ordering is a gate (Pipes.swift), not a wait.
import Foundation
import Glibc

/// How long `waitUntil` polls before it gives up: generous, so that only a hang fails it.
public let waitUntilDeadline: Duration = .seconds(30)

/// Polls `condition` every 10 ms until it holds; false if it still does not after
/// `waitUntilDeadline`. Blocks the calling thread.
public func waitUntil(_ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + waitUntilDeadline
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// `waitUntil` for async code that waits for other tasks: it suspends between polls instead of
/// blocking a thread of the cooperative pool, which those tasks may need. (Another name, not an
/// async overload: that would be chosen in every async test that means to block.)
public func suspendUntil(_ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + waitUntilDeadline
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Runs blocking `work` on a thread of its own and suspends until it is done: a test that
/// blocks (a `get()`, a pipe read, a whole benchmark) must not hold a thread of the
/// cooperative pool, which has one thread per core and which other tests' tasks need.
public func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
