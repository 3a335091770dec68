// Pool start is bounded: a fork server or first worker that never becomes ready makes
// creation throw within `startTimeout`, and leaves no process and no descriptor behind.
import Glibc
import Testing
@testable import ForkPool

extension ForkPoolTests {
    @Suite struct PoolStartTests {
        /// Creates a pool whose start never completes and checks the failure and the clean-up.
        func expectStartTimesOut(initializer: @escaping @Sendable () throws -> Void,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
            let fdsBefore = openFileDescriptorCount()
            let configuration = ProcessPoolConfiguration(workerCrashBacktraces: false, initializer: initializer, startTimeout: 1)
            let started = monotonicNanoseconds()
            let error = expectForkPoolError({
                _ = try ProcessPool(workers: 2, configuration: configuration) { (n: Int) -> Int in n }
            }, sourceLocation: sourceLocation)
            let seconds = Double(monotonicNanoseconds() - started) / 1e9
            #expect(error?.code == .poolBroken, sourceLocation: sourceLocation)
            #expect(error?.message.contains("did not become ready") == true, sourceLocation: sourceLocation)
            #expect(error?.message.contains("startTimeout") == true, sourceLocation: sourceLocation)
            // Not a timing assertion: a start that ignored its time-out would never return.
            #expect(seconds >= 1 && seconds < 30, "creation gave up after \(seconds) s", sourceLocation: sourceLocation)
            #expect(waitUntil { childProcessIDs().isEmpty }, "no fork server or worker is left", sourceLocation: sourceLocation)
            #expect(openFileDescriptorCount() == fdsBefore, sourceLocation: sourceLocation)
        }

        @Test func aFirstWorkerThatNeverBecomesReadyFailsCreation() {
            expectStartTimesOut { while true { pause() } }
        }

        @Test func aForkServerThatStopsFailsCreation() {
            // The worker stops its fork server (SIGSTOP): no report, no spawn, no exit status
            // ever comes from it again; the pool must still give up, kill both and reap.
            expectStartTimesOut {
                kill(getppid(), SIGSTOP)
                while true { pause() }
            }
        }

        @Test func aStartTimeoutMustBePositive() {
            for bad in [0, -1, Double.nan, .infinity] {
                let error = expectForkPoolError {
                    _ = try ProcessPool(workers: 1, configuration: .init(startTimeout: bad)) { (n: Int) -> Int in n }
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("startTimeout") == true)
            }
        }

        @Test func aPoolThatStartsInTimeIsUnaffected() throws {
            let pool = try ProcessPool(workers: 2, configuration: .init(startTimeout: 30)) { (n: Int) -> Int in n + 1 }
            defer { pool.shutdown() }
            #expect(try pool.submit(41).get() == 42)
        }
    }
}
