// Worker hosts as separate processes, and the faults the queue promises to survive, provoked
// for real: a host SIGKILLed mid-job (its leases lapse; another host runs the jobs), two hosts
// racing past a lapsed lease (a host SIGSTOPped past its lease, then let go: the result is
// recorded once, by the host that holds the claim), a host SIGSTOPped past its lease while a
// job waits in its claim book behind a busy worker (let go, it re-checks the claim and never
// starts the job another host ran: every run of that job leaves a line in a file), the
// database restarting mid-run (hosts and submitters reconnect and go on), and a graceful
// shutdown (SIGTERM: running jobs finish; past the grace period they are released, their
// attempt not counted).
import ClusterJobs
@_spi(Integration) import ForkPool
import ForkPoolPostgres
@testable import PostgresJobHost
import Foundation
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(1)))
struct HostFaultTests {
    @Test func aKilledHostsJobsRunOnAnotherHost() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let doomed = try HostProcess(name: "doomed", queue: database.queueName, url: database.url, leaseMilliseconds: 1000)
        let handles = try await queue.submit(contentsOf: (0..<4).map { SleepJob(milliseconds: 3000, tag: $0) })
        try await database.waitUntil("the doomed host holds all four jobs") {
            var held = 0
            for handle in handles where try await database.row(handle.id).leaseOwner == "doomed" { held += 1 }
            return held == 4
        }
        doomed.signal(SIGKILL)
        _ = doomed.waitStatus()
        let killedAt = ContinuousClock.now
        let survivor = try HostProcess(name: "survivor", queue: database.queueName, url: database.url, capacity: 4)
        var answers: [HostAnswer] = []
        for handle in handles { answers.append(try await handle.value) }
        #expect(answers == (0..<4).map { HostAnswer(host: "survivor", value: $0) })
        #expect(ContinuousClock.now - killedAt < .seconds(30))
        for handle in handles {
            let row = try await database.row(handle.id)
            #expect(row.state == "succeeded" && row.attempts == 2)
        }
        #expect(survivor.terminate() == 0)
    }

    @Test func tenThousandAsyncJobsSurviveAKilledHostEachResultRecordedOnce() async throws {
        // Hosts that run 100 async jobs at once per worker; one is killed mid-run. Every job
        // ends succeeded, with the answer of the host whose claim it held, exactly once.
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let doomed = try HostProcess(name: "doomed", queue: database.queueName, url: database.url, leaseMilliseconds: 1000,
                                     extra: ["--jobs-per-worker", "100"])
        let handles = try await queue.submit(contentsOf: (0..<10_000).map { AwaitJob(milliseconds: 20, tag: $0) })
        try await database.waitUntil("the doomed host has finished a few thousand jobs", seconds: 50) {
            try await database.count(state: "succeeded") >= 2_000
        }
        doomed.signal(SIGKILL)
        _ = doomed.waitStatus()
        let survivor = try HostProcess(name: "survivor", queue: database.queueName, url: database.url,
                                       extra: ["--jobs-per-worker", "100"])
        try await database.waitUntil("every job succeeded", seconds: 50) {
            try await database.count(state: "succeeded") == 10_000
        }
        var hosts: [String: Int] = [:]
        for (index, handle) in handles.enumerated() where index < 500 || index >= 9_500 {
            let answer = try await handle.value
            #expect(answer.value == index)
            hosts[answer.host, default: 0] += 1
        }
        #expect(try await database.rowCount() == 10_000)
        // A job the killed host had claimed ran again on the survivor: its second attempt.
        #expect(try await database.count(state: "succeeded", attemptsAbove: 1) > 0)
        #expect(Set(hosts.keys).isSubset(of: ["doomed", "survivor"]) && hosts["survivor", default: 0] > 0, "\(hosts)")
        #expect(survivor.terminate() == 0)
    }

    @Test func aCancellationOutlivesTheHostThatRanTheJob() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let doomed = try HostProcess(name: "doomed", queue: database.queueName, url: database.url, leaseMilliseconds: 1000)
        let handle = try await queue.submit(SleepJob(milliseconds: 60_000, tag: 1))
        try await database.waitUntil("the doomed host runs the job") { try await database.row(handle.id).leaseOwner == "doomed" }
        doomed.signal(SIGSTOP)  // it cannot act on the request: its lease lapses with the job unfinished
        #expect(try await handle.cancel() == false)  // running: marked for its host
        doomed.signal(SIGKILL)
        _ = doomed.waitStatus()
        let survivor = try HostProcess(name: "survivor", queue: database.queueName, url: database.url)
        let error = await #expect(throws: ForkPoolError.self) { try await handle.value }
        #expect(error?.code == .cancelled)
        #expect(try await database.row(handle.id).state == "cancelled")
        #expect(survivor.terminate() == 0)
    }

    @Test func aResultIsRecordedOnceWhenTwoHostsRacePastALapsedLease() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let stalled = try HostProcess(name: "stalled", queue: database.queueName, url: database.url, leaseMilliseconds: 1000)
        let handle = try await queue.submit(SleepJob(milliseconds: 2500, tag: 1))
        try await database.waitUntil("the stalled host holds the job") { try await database.row(handle.id).leaseOwner == "stalled" }
        // Its host stops (its pool's worker goes on running the job); the lease lapses.
        stalled.signal(SIGSTOP)
        let other = try HostProcess(name: "other", queue: database.queueName, url: database.url, leaseMilliseconds: 1000)
        try await database.waitUntil("the other host claims the job") { try await database.row(handle.id).leaseOwner == "other" }
        // The stalled host wakes with the job done (or about to be) and a claim that is no longer its.
        stalled.signal(SIGCONT)
        #expect(try await handle.value == HostAnswer(host: "other", value: 1))
        let row = try await database.row(handle.id)
        #expect(row.state == "succeeded" && row.attempts == 2)
        try await database.waitUntil("the stalled host drops its outcome") { stalled.log.contains("outcome dropped") }
        // Still the other host's result, and the stalled host goes on serving.
        #expect(try await queue.submit(SquareJob(value: 6)).value == 36)
        #expect(try await database.row(handle.id).state == "succeeded")
        for host in [stalled, other] {
            #expect(host.terminate() == 0)
        }
        #expect(stalled.log.contains("dropped=1"))
    }

    /// The host's only worker is busy with a long job while a second job, X, waits in its claim
    /// book; the host stalls (SIGSTOP) past its lease, another host runs both jobs, and the long
    /// job ends on the stalled host's worker meanwhile. Let go (SIGCONT), the stalled host finds
    /// the worker free and X's lease stale by its own clock: it must re-check X's claim by token
    /// (lost) and not start it. Without the fresh-lease rule in ClaimBook.grant, X runs twice.
    @Test func aStalledHostNeverStartsAJobWhoseClaimItMayHaveLost() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let marks = "/tmp/forkpool-marks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(marks) }
        let stalled = try HostProcess(name: "stalled", queue: database.queueName, url: database.url, workers: 1,
                                      leaseMilliseconds: 1000, capacity: 2)
        let long = try await queue.submit(SleepJob(milliseconds: 2500, tag: 1))
        try await database.waitUntil("the stalled host runs the long job") { try await database.row(long.id).leaseOwner == "stalled" }
        let longStarted = ContinuousClock.now  // at the latest
        try await Task.sleep(for: .milliseconds(100))  // its runner has the worker: X's comes second
        let x = try await queue.submit(MarkJob(path: marks, tag: 2))
        try await database.waitUntil("the stalled host holds X too") { try await database.row(x.id).leaseOwner == "stalled" }
        #expect(try await database.row(long.id).leaseOwner == "stalled")
        stalled.signal(SIGSTOP)
        // The other host takes both once their leases lapse (its rescuer queues them again).
        let other = try HostProcess(name: "other", queue: database.queueName, url: database.url, workers: 2,
                                    leaseMilliseconds: 1000, capacity: 2)
        #expect(try await x.value == HostAnswer(host: "other", value: 2))
        // Let go only once the long job has surely ended on the stalled host's worker: the
        // stalled host then wakes with a free worker and X next in line.
        let ended = longStarted + .milliseconds(2500 + 700)
        if ContinuousClock.now < ended { try await Task.sleep(until: ended, clock: .continuous) }
        stalled.signal(SIGCONT)
        try await database.waitUntil("the stalled host gives up X") { stalled.log.contains("job \(x.id)'s claim was lost") }
        #expect(try await long.value == HostAnswer(host: "other", value: 1))
        #expect(try await database.row(x.id).state == "succeeded")
        for host in [stalled, other] {
            #expect(host.terminate() == 0)
        }
        // Every run of X left a line: one, on the other host.
        let lines = try String(contentsOfFile: marks, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == ["other 2"])
        #expect(stalled.log.contains("job \(x.id)'s claim was lost before it ran"))
        #expect(stalled.log.contains("dropped=2"))
    }

    @Test func hostsAndSubmittersGoOnAfterTheDatabaseRestarts() async throws {
        let restart = try #require(ProcessInfo.processInfo.environment["FORKPOOL_PG_RESTART"])
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let host = try HostProcess(name: "steady", queue: database.queueName, url: database.url, leaseMilliseconds: 3000)
        let handles = try await queue.submit(contentsOf: (0..<20).map { SleepJob(milliseconds: 300, tag: $0) })
        try await database.waitUntil("the host runs jobs") { try await database.row(handles[0].id).state != "queued" }
        try shell(restart + " > /dev/null")
        var answers: [Int] = []
        for handle in handles { answers.append(try await handle.value.value) }
        #expect(answers == Array(0..<20))
        let later = try await queue.submit(SquareJob(value: 11))
        #expect(try await later.value == 121)
        for handle in handles { #expect(try await database.row(handle.id).state == "succeeded") }
        #expect(host.terminate() == 0)
    }

    @Test func aGracefulShutdownFinishesRunningJobsOrReleasesThem() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        // A long grace period: the running jobs finish and are recorded before the host exits.
        let patient = try HostProcess(name: "patient", queue: database.queueName, url: database.url, graceMilliseconds: 30_000)
        let finishing = try await queue.submit(contentsOf: [SleepJob(milliseconds: 800, tag: 1), SleepJob(milliseconds: 800, tag: 2)])
        try await database.waitUntil("the host runs both") {
            let first = try await database.row(finishing[0].id).state, second = try await database.row(finishing[1].id).state
            return first == "running" && second == "running"
        }
        #expect(patient.terminate() == 0)
        for handle in finishing { #expect(try await database.row(handle.id).state == "succeeded") }
        // A short one: the running job is stopped and given back, its attempt not counted.
        let hasty = try HostProcess(name: "hasty", queue: database.queueName, url: database.url, graceMilliseconds: 200)
        let long = try await queue.submit(SleepJob(milliseconds: 60_000, tag: 3))
        try await database.waitUntil("the host runs it") { try await database.row(long.id).state == "running" }
        #expect(hasty.terminate() == 0)
        let released = try await database.row(long.id)
        #expect(released.state == "queued" && released.attempts == 0 && released.leaseOwner == nil)
        #expect(hasty.log.contains("released=1"))
        _ = try await long.cancel()
    }
}
