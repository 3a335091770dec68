// HangGuard: every test in ForkPoolTests fails within a time limit instead of hanging.
//
// Swift Testing's `.timeLimit` cannot interrupt a test blocked in a system call (a `get()` on a
// task whose worker never answers), so a broken mechanism would hang `make test` until CI's
// own limit. Each test case arms a watchdog; one that is still running at its limit is named
// on standard error, this process's children (fork servers) and their process groups (their
// workers and any crash backtracer) are killed, and the test process exits with status 1: a red
// run within a minute, never a wedged one.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

struct HangGuard: TestTrait, SuiteTrait, TestScoping {
    var seconds: Int
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else { return try await function() }  // suites: their tests are guarded
        // Under a sanitizer everything is several times slower (a fork copies the shadow
        // memory's page tables too): the same guard, five times the time.
        let ticket = Watchdog.shared.arm(seconds: sanitizer == nil ? seconds : seconds * 5, name: test.name)
        defer { Watchdog.shared.disarm(ticket) }
        try await function()
    }
}

extension Trait where Self == HangGuard {
    /// Ends the test run (status 1, the test named) if a test runs longer than `seconds`.
    static func hangGuard(seconds: Int) -> Self { HangGuard(seconds: seconds) }
}

/// One thread that checks the armed deadlines once a second.
final class Watchdog: @unchecked Sendable {
    static let shared = Watchdog()

    private let lock = ConditionLock()
    private var armed: [Int: (deadline: UInt64, name: String, seconds: Int)] = [:]
    private var nextTicket = 0
    private var thread: PosixThread?

    func arm(seconds: Int, name: String) -> Int {
        lock.withLock {
            if thread == nil { thread = try? PosixThread.start(name: "hang-guard") { [self] in watch() } }
            nextTicket += 1
            armed[nextTicket] = (monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000, name, seconds)
            return nextTicket
        }
    }

    func disarm(_ ticket: Int) {
        _ = lock.withLock { armed.removeValue(forKey: ticket) }
    }

    private func watch() {
        while true {
            sleep(1)
            let now = monotonicNanoseconds()
            guard let late = lock.withLock({ armed.values.first { $0.deadline <= now } }) else { continue }
            let message = "\n✘ HangGuard: test \(late.name) did not finish within \(late.seconds) s; ending the test run\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            // Each fork server leads its own process group, with its workers and any crash
            // backtracer they started (which, left alive, would hold the test's output open).
            for child in childProcessIDs() {
                if getpgid(child) == child { kill(-child, SIGKILL) }
                kill(child, SIGKILL)
            }
            _exit(1)
        }
    }
}
