// WakeSignal on its own (no database): a wake before a sleep is kept, a sleep ends at its
// timeout — and a timer of an earlier sleep, woken early, never cuts a later sleep short (a
// loop that sleeps again must really sleep, not spin).
import Testing
@testable import ForkPoolPostgres

@Suite(.timeLimit(.minutes(1)))
struct WakeSignalTests {
    @Test func aWakeIsKeptAndASleepLastsItsTimeoutAfterAnEarlyWake() async throws {
        let signal = WakeSignal()
        signal.wake()
        var started = ContinuousClock.now
        await signal.sleep(timeout: .seconds(30))  // the kept wake: returns at once
        #expect(ContinuousClock.now - started < .seconds(5))

        // Woken early, ten times over: each next sleep still waits for its own timeout.
        for _ in 0..<10 {
            let waker = Task {
                try await Task.sleep(for: .milliseconds(5))
                signal.wake()
            }
            await signal.sleep(timeout: .seconds(30))
            try await waker.value
        }
        started = ContinuousClock.now
        var sleeps = 0
        while ContinuousClock.now - started < .milliseconds(500) {
            await signal.sleep(timeout: .milliseconds(100))
            sleeps += 1
        }
        #expect(sleeps <= 6, "a 100 ms sleep returned early: \(sleeps) sleeps in 500 ms")
    }

    @Test func aCancelledSleeperReturnsPromptly() async throws {
        let signal = WakeSignal()
        let sleeper = Task { await signal.sleep(timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        let started = ContinuousClock.now
        sleeper.cancel()
        await sleeper.value
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
