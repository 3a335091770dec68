// Pool start is bounded: a fork server or first worker that never becomes ready makes
// creation throw within `startTimeout`, and leaves no process and no descriptor behind.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

extension ForkPoolTests {
    @Suite struct PoolStartTests {
        /// Creates a pool whose start never completes and checks the failure and the clean-up.
        func expectStartTimesOut(initializer: @escaping @Sendable () throws -> Void,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
            let fdsBefore = openFileDescriptorCount()
            let configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false; $0.initializer = initializer; $0.startTimeout = .seconds(1) }
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
            for bad in [Duration.zero, .seconds(-1)] {
                let error = expectForkPoolError {
                    _ = try ProcessPool(workers: 1, configuration: .with { $0.startTimeout = bad }) { (n: Int) -> Int in n }
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("startTimeout") == true)
            }
        }

        @Test func aPoolThatStartsInTimeIsUnaffected() throws {
            let pool = try ProcessPool(workers: 2, configuration: .with { $0.startTimeout = .seconds(30) }) { (n: Int) -> Int in n + 1 }
            defer { pool.shutdown() }
            #expect(try pool.submit(41).get() == 42)
        }
    }
}

extension ForkPoolTests {
    /// The dispatcher's poll loop never crashes its host: when it cannot wait any more (here:
    /// its eventfd closed by someone else), the pool breaks with the errno and cleans up.
    @Suite struct DispatcherFailureTests {
        @Test func aPollThatFailsBreaksThePoolWithItsErrno() throws {
            // poll(2) fails with EINVAL when it is given more descriptors than RLIMIT_NOFILE
            // allows: a limit of 2 for a moment, while the dispatcher polls 2 + 2 of them.
            var configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            configuration.usesDirectLanes = false
            let pool = try ProcessPool(workers: 2, configuration: configuration) { (n: Int) -> Int in n }
            #expect(try pool.submit(1).get() == 1)
            var limit = rlimit()
            #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
            var low = limit
            low.rlim_cur = 2
            #expect(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &low) == 0)
            // Whatever happens below, the limit comes back before anything else needs a descriptor.
            defer { setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) }
            // The submit wakes the dispatcher, whose next poll fails; a slow run (a sanitizer's)
            // may see the dispatcher poll again on its own first, and then the submit itself is
            // refused with the same error.
            let error = expectForkPoolError { _ = try pool.submit(2).get() }
            #expect(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
            #expect(error?.code == .poolBroken)
            #expect(error?.errno == EINVAL)
            #expect(error?.message.contains("poll failed") == true)
            #expect(expectForkPoolError { _ = try pool.submit(3) }?.errno == EINVAL)
            pool.shutdown()
            #expect(waitUntil { childProcessIDs().isEmpty })
        }

        @Test func anEventFDClosedFromOutsideBreaksThePoolWithEBADF() throws {
            let fdsBefore = openFileDescriptorCount()
            let pids = PIDPipe()
            var configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            configuration.usesDirectLanes = false
            let pool = try ProcessPool(workers: 2, configuration: configuration) { (reportTo: Int32) -> Int in
                guard reportTo >= 0 else { return 7 }
                var pid = getpid()
                _ = write(reportTo, &pid, MemoryLayout<pid_t>.size)
                while true { pause() }
            }
            let first = try pool.submit(pids.writeEnd)
            let firstPID = pids.nextPID()
            let second = try pool.submit(pids.writeEnd)
            _ = pids.nextPID()
            let queued = try pool.submit(-1)
            #expect(close(pool.dispatcher.wake.descriptor) == 0)
            // Wake the dispatcher through its other channel: the fork server reports a death.
            #expect(kill(firstPID, SIGKILL) == 0)
            // The death and the lost eventfd arrive in the same poll: either is a true account.
            let firstError = expectForkPoolError { _ = try first.get() }
            #expect(firstError?.signal == SIGKILL || firstError?.errno == EBADF)
            for future in [second, queued] {
                let error = expectForkPoolError { _ = try future.get() }
                #expect(error?.code == .poolBroken)
                #expect(error?.errno == EBADF)
                #expect(error?.taskID == future.taskID)
            }
            let refused = expectForkPoolError { _ = try pool.submit(-1) }
            #expect(refused?.code == .poolBroken)
            #expect(refused?.errno == EBADF)
            #expect(refused?.message.contains("eventfd") == true)
            pool.shutdown()
            #expect(waitUntil { childProcessIDs().isEmpty })
            #expect(openFileDescriptorCount() == fdsBefore + 2)  // the PIDPipe's two ends
        }
    }
}
