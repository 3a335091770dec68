// AsyncHandOff: the least any pool can do for a Swift task that awaits a result another thread
// produces — the task suspends on a continuation, one thread (standing in for a pool's) takes
// the continuations in batches and resumes each with its value at once. No work, no pool, no
// encoding: what is left is the Swift runtime's suspend, resume and task switch on this
// machine's cooperative threads. The many-callers rows with as many async tasks are read against
// it (same callers, same loop, same run): a pool's async rate cannot pass it.
//
//   64 Swift tasks ── withUnsafeContinuation ──▶ locked list ──▶ resumer thread: take all,
//        ▲                                                          resume each (value)
//        └───────────────────────── task resumes, loops ◀───────────┘
import ForkPool
import Foundation
import Glibc

/// One pthread that resumes every continuation handed to it, in arrival order.
private final class Resumer: @unchecked Sendable {
    private let condition = NSCondition()
    private var waiting: [(UnsafeContinuation<Int, Never>, Int)] = []
    private var stopped = false
    private var thread: PosixThread?

    init() throws {
        thread = try PosixThread.start(name: "handoff-resumer") { [self] in run() }
    }

    func hand(_ continuation: UnsafeContinuation<Int, Never>, _ value: Int) {
        condition.lock()
        waiting.append((continuation, value))
        if waiting.count == 1 { condition.signal() }
        condition.unlock()
    }

    private func run() {
        var batch: [(UnsafeContinuation<Int, Never>, Int)] = []
        while true {
            condition.lock()
            while waiting.isEmpty && !stopped { condition.wait() }
            if waiting.isEmpty && stopped {
                condition.unlock()
                return
            }
            swap(&batch, &waiting)
            condition.unlock()
            for (continuation, value) in batch { continuation.resume(returning: value) }
            batch.removeAll(keepingCapacity: true)
        }
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
        thread?.join()
    }
}

/// Seconds for `callers` Swift tasks, each awaiting `each` values that a resumer thread hands
/// back (every value checked): the async hand-off's ceiling.
func asyncHandOff(callers: Int, each: Int) throws -> Double {
    let resumer = try Resumer()
    defer { resumer.stop() }
    return try secondsOfTasks(callers: callers, what: "async hand-off") {
        for value in 0..<each where await withUnsafeContinuation({ resumer.hand($0, value) }) != value {
            throw BenchmarkError(description: "a wrong value came back")
        }
    }
}
