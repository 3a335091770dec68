// Hygiene at scale: 1,000 pools created and destroyed, 1,000 workers crashed, and the fork
// server itself killed — no zombie, no leaked descriptor, no leaked temporary file.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// Names in /tmp that ForkPool could have left (it creates none; this proves it).
func temporaryEntries() -> Set<String> {
    Set(directoryEntries("/tmp").filter { $0.lowercased().contains("forkpool") })
}

extension ForkPoolTests {
    @Suite struct HygieneTests {
        @Test func aThousandPoolsLeaveNothingBehind() throws {
            let fdsBefore = openFileDescriptorCount()
            let temporaryBefore = temporaryEntries()
            for round in 0..<1000 {
                let pool = try ProcessPool(workers: 1) { (n: Int) -> Int in n + round }
                if round % 100 == 0 { #expect(try pool.submit(1).get() == 1 + round) }
                pool.shutdown()
            }
            #expect(childProcessIDs().isEmpty)
            #expect(openFileDescriptorCount() == fdsBefore)
            #expect(temporaryEntries() == temporaryBefore)
            #expect(!threadNames().contains("forkpool-disp"))
        }

        @Test func theForkServerAndWorkersAreNamedForPsAndTop() throws {
            let pool = try ProcessPool(workers: 2) { (n: Int) -> Int in n }
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            #expect(readFile("/proc/\(server)/comm") == "forkpool-server\n")
            #expect(pool.workerProcessIDs.count == 2)
            for pid in pool.workerProcessIDs {
                #expect(readFile("/proc/\(pid)/comm") == "forkpool-worker\n")
            }
        }

        @Test func aThousandCrashesLeaveNothingBehind() throws {
            let configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            let pool = try ProcessPool(workers: 2, configuration: configuration, work: obey)
            try expectPoolServesWithFullStrength(pool)  // steady state before counting
            let fdsBefore = openFileDescriptorCount()
            let server = try #require(pool.forkServerProcessID)
            var crashed = 0
            for batch in 0..<10 {
                let futures = try (0..<100).map { try pool.submit($0 % 2 == 0 ? .exit(Int32(3 + batch)) : .segfault) }
                for future in futures {
                    if expectForkPoolError({ _ = try future.get() })?.code == .workerDied { crashed += 1 }
                }
            }
            #expect(crashed == 1000)
            try expectPoolServesWithFullStrength(pool)
            // Every crashed worker was reaped by the fork server: only the live ones remain.
            #expect(Set(childProcessIDs(of: server)) == Set(pool.workerProcessIDs))
            #expect(waitUntil { openFileDescriptorCount() == fdsBefore }, "\(openFileDescriptorCount()) descriptors, \(fdsBefore) before")
            pool.shutdown()
            #expect(childProcessIDs().isEmpty)
            #expect(openFileDescriptorCount() < fdsBefore)
        }

        @Test func killingTheForkServerFailsRunningTasksAndThePoolRecovers() throws {
            let pids = PIDPipe()
            let configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }
            let pool = try ProcessPool(workers: 2, configuration: configuration, work: obey)
            defer { pool.shutdown() }
            let server = try #require(pool.forkServerProcessID)
            let running = try pool.submit(.reportPID(fd: pids.writeEnd, sleepMilliseconds: -1))
            let worker = pids.nextPID()
            #expect(kill(server, SIGKILL) == 0)
            let error = expectForkPoolError { _ = try running.get() }
            #expect(error?.code == .workerDied)
            #expect(error?.message.contains("fork server") == true)
            #expect(waitUntil { liveness(of: worker) != .running })
            try expectPoolServesWithFullStrength(pool)
            #expect(pool.forkServerProcessID != server)
        }
    }
}
