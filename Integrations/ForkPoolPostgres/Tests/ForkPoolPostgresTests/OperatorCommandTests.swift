// The operator's command line, as an operator runs it: the built PostgresJobHost program
// (`status`, `list`, `retry`, `cancel`, `purge`) as a separate process, its standard output,
// standard error and exit status read back. Provoked: a queue with a busy host, a waiting job,
// failed, cancelled and finished jobs (what status and list say; what retry, cancel and purge
// change in the rows), and every way a command can be given wrong — a bad URL, a database
// nothing answers on, an unknown job, a bad state, an unknown option, a missing --url, an
// unknown command, a database without the schema: each exits 1 with one line saying what was
// wrong, promptly (an unreachable database within 20 s, never a hang).
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

/// One run of the PostgresJobHost program.
struct ProgramRun: CustomStringConvertible {
    /// The exit status; -N when signal N ended it; nil when it was still running at the time
    /// limit (it was killed).
    let status: Int32?
    let output: String
    let errors: String
    let seconds: Double
    var description: String { "status \(status.map(String.init) ?? "none (killed)"), \(seconds) s\nstdout: \(output)\nstderr: \(errors)" }
}

/// Runs the PostgresJobHost program beside the test runner with `arguments`, its standard
/// output and error in temporary files; kills it after `limit` seconds.
func runHostProgram(_ arguments: [String], limit: Double = 40) async throws -> ProgramRun {
    let base = "/tmp/forkpool-op-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let outPath = base + ".out", errPath = base + ".err"
    defer { unlink(outPath); unlink(errPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let words = [HostProcess.programPath] + arguments
    let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let started = ContinuousClock.now
    let spawned = posix_spawn(&pid, words[0], &actions, nil, argv, environ)
    guard spawned == 0 else { throw ForkPoolError(.systemCallFailed, "posix_spawn \(words[0]): \(spawned)") }
    var status: Int32 = 0
    var exited = false
    while ContinuousClock.now - started < .seconds(limit) {
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { exited = true; break }
        if result < 0 && errno != EINTR { break }
        try? await Task.sleep(for: .milliseconds(20))
    }
    if !exited {
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    let code: Int32? = !exited ? nil : (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
    return ProgramRun(status: code, output: read(outPath), errors: read(errPath), seconds: seconds)
}

@Suite(.serialized, .timeLimit(.minutes(1)))
struct OperatorCommandTests {
    @Test func statusShowsCountsTheOldestQueuedJobAndTheHostsAlive() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        // One worker, one claim: the long job runs, the square waits queued.
        let host = try HostProcess(name: "op-busy", queue: database.queueName, url: database.url, workers: 1, leaseMilliseconds: 1500,
                                   graceMilliseconds: 0, capacity: 1)
        let long = try await queue.submit(SleepJob(milliseconds: 30_000, tag: 1))
        try await database.waitUntil("the host runs the long job") { try await database.row(long.id).state == "running" }
        let waiting = try await queue.submit(SquareJob(value: 3))
        try await database.waitUntil("the host is recorded alive") {
            try await queue.status().hosts.contains { $0.owner == "op-busy" && $0.isAlive }
        }
        try await Task.sleep(for: .milliseconds(1200))
        #expect(try await database.row(waiting.id).state == "queued")

        let status = try await runHostProgram(["status", "--url", database.url, "--queue", database.queueName])
        #expect(status.status == 0, "\(status)")
        #expect(status.output.contains("queue \(database.queueName): scheduled 0, queued 1, running 1, succeeded 0, failed 0, cancelled 0"), "\(status)")
        #expect(status.output.contains("hosts alive: 1\n"), "\(status)")
        #expect(status.output.contains("op-busy: alive, last seen"), "\(status)")
        let age = status.output.split(separator: "\n").first { $0.contains("oldest queued job waits") }
            .flatMap { Double($0.split(separator: " ").dropLast().last ?? "") }
        #expect(age.map { $0 >= 1.0 && $0 < 30 } == true, "\(status)")
        #expect(status.errors.isEmpty, "\(status)")

        // Every queue of the database: this one among them.
        let all = try await runHostProgram(["status", "--url", database.url])
        #expect(all.status == 0 && all.output.contains("queue \(database.queueName): scheduled 0, queued 1, running 1"), "\(all)")

        // Stopped (gracefully), the host is no longer listed; its job was given back.
        #expect(host.terminate() == 0)
        let after = try await runHostProgram(["status", "--url", database.url, "--queue", database.queueName])
        #expect(after.status == 0 && after.output.contains("queued 2, running 0") && after.output.contains("hosts alive: 0\n"), "\(after)")
    }

    @Test func listRetryAndCancelChangeWhatTheySay() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let url = database.url, name = database.queueName
        let host = try HostProcess(name: "op-host", queue: name, url: url)
        let failing = try await queue.submit(contentsOf: [FailingJob(reason: "one"), FailingJob(reason: "two")])
        for handle in failing { await #expect(throws: ForkPoolError.self) { try await handle.value } }
        #expect(host.terminate() == 0)  // no host: what the commands change stays to be seen

        let list = try await runHostProgram(["list", "--url", url, "--queue", name, "--state", "failed"])
        #expect(list.status == 0, "\(list)")
        for handle in failing {
            #expect(list.output.contains("\(handle.id)\tfailed\tClusterJobs.FailingJob\tattempts 1/3"), "\(list)")
        }
        #expect(list.output.contains("refused: one") && list.output.contains("refused: two"), "\(list)")
        let none = try await runHostProgram(["list", "--url", url, "--queue", name, "--state", "succeeded"])
        #expect(none.status == 0 && none.output == "no succeeded jobs in queue \(name)\n", "\(none)")

        // One failed job queued again: attempts from zero, its error gone.
        let retry = try await runHostProgram(["retry", "\(failing[0].id)", "--url", url])
        #expect(retry.status == 0 && retry.output == "queued again: job \(failing[0].id)\n", "\(retry)")
        var row = try await database.row(failing[0].id)
        #expect(row.state == "queued" && row.attempts == 0 && row.errorCode == nil && row.errorMessage == nil)
        // It is no longer failed: retrying it again is refused.
        let again = try await runHostProgram(["retry", "\(failing[0].id)", "--url", url])
        #expect(again.status == 1, "\(again)")
        #expect(again.errors == "PostgresJobHost: job \(failing[0].id) is queued: only a failed or cancelled job can be retried\n", "\(again)")

        // Every failed job of the queue: the other one.
        let retryFailed = try await runHostProgram(["retry", "--failed", "--url", url, "--queue", name])
        #expect(retryFailed.status == 0 && retryFailed.output == "queued again: 1 failed jobs of queue \(name)\n", "\(retryFailed)")
        #expect(try await database.row(failing[1].id).state == "queued")

        // A queued job cancelled: it will not run.
        let cancel = try await runHostProgram(["cancel", "\(failing[1].id)", "--url", url])
        #expect(cancel.status == 0 && cancel.output == "cancelled: job \(failing[1].id) (it had not started)\n", "\(cancel)")
        row = try await database.row(failing[1].id)
        #expect(row.state == "cancelled" && row.errorCode == "cancelled")
        let twice = try await runHostProgram(["cancel", "\(failing[1].id)", "--url", url])
        #expect(twice.status == 1 && twice.errors.contains("job \(failing[1].id) has already finished: cancelled"), "\(twice)")

        // A host again: the retried job runs (and fails again, on its first attempt).
        let second = try HostProcess(name: "op-host2", queue: name, url: url)
        try await database.waitUntil("the retried job runs again") { try await database.row(failing[0].id).state == "failed" }
        row = try await database.row(failing[0].id)
        #expect(row.attempts == 1 && row.errorMessage?.contains("refused: one") == true)
        #expect(try await database.row(failing[1].id).state == "cancelled")
        #expect(second.terminate() == 0)
    }

    @Test func purgeDeletesFinishedJobsOnly() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let url = database.url, name = database.queueName
        let host = try HostProcess(name: "op-purge", queue: name, url: url, graceMilliseconds: 0)
        #expect(try await queue.submit(SquareJob(value: 4)).value == 16)
        await #expect(throws: ForkPoolError.self) { try await queue.submit(FailingJob(reason: "purged")).value }
        let later = try await queue.submit(SquareJob(value: 5), notBefore: Date(timeIntervalSinceNow: 3600))
        let cancelled = try await queue.submit(SquareJob(value: 6), notBefore: Date(timeIntervalSinceNow: 3600))
        #expect(try await cancelled.cancel())
        let running = try await queue.submit(SleepJob(milliseconds: 30_000, tag: 1))
        try await database.waitUntil("the host runs the long job") { try await database.row(running.id).state == "running" }
        try await Task.sleep(for: .milliseconds(50))

        let purge = try await runHostProgram(["purge", "--finished-before", "0s", "--url", url, "--queue", name])
        #expect(purge.status == 0 && purge.output.hasPrefix("deleted: 3 jobs of queue \(name) finished before"), "\(purge)")
        #expect(try await database.rowCount() == 2)
        #expect(try await database.row(later.id).state == "scheduled")
        #expect(try await database.row(running.id).state == "running")
        let nothing = try await runHostProgram(["purge", "--finished-before", "0s", "--url", url, "--queue", name])
        #expect(nothing.status == 0 && nothing.output.hasPrefix("deleted: 0 jobs"), "\(nothing)")
        #expect(host.terminate() == 0)
    }

    /// Each wrong command: exit status 1, and one line on standard error saying what was wrong.
    @Test func wrongCommandsExitWithOneLineSayingWhatWasWrong() async throws {
        let database = try await TestDatabase()
        let url = database.url, name = database.queueName
        func expectRefused(_ arguments: [String], saying expected: String, within limit: Double = 15,
                           sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let run = try await runHostProgram(arguments)
            #expect(run.status == 1, "\(run)", sourceLocation: sourceLocation)
            #expect(run.errors.hasPrefix("PostgresJobHost: ") && run.errors.contains(expected), "\(run)", sourceLocation: sourceLocation)
            #expect(run.errors.split(separator: "\n").count == 1, "\(run)", sourceLocation: sourceLocation)
            #expect(!run.errors.contains("ForkPoolError(") && !run.errors.contains("PSQLError"), "\(run)", sourceLocation: sourceLocation)
            #expect(run.output.isEmpty, "\(run)", sourceLocation: sourceLocation)
            #expect(run.seconds < limit, "\(run)", sourceLocation: sourceLocation)
        }
        try await expectRefused(["status", "--url", "http://x"], saying: "a database URL looks like postgres://user@host:port/database")
        try await expectRefused(["status", "--url", "postgres://postgres@127.0.0.1:1/x"],
                                saying: "could not connect to the database at postgres://postgres@127.0.0.1:1/x: ", within: 20)
        try await expectRefused(["status", "--url", "postgres://postgres@127.0.0.1:1/x"], saying: "Connection refused", within: 20)
        try await expectRefused(["cancel", "999999999", "--url", url], saying: "there is no job 999999999")
        try await expectRefused(["retry", "999999999", "--url", url], saying: "there is no job 999999999")
        try await expectRefused(["list", "--state", "lost", "--url", url, "--queue", name],
                                saying: "--state takes scheduled, queued, running, succeeded, failed, cancelled, not lost")
        try await expectRefused(["status", "--url", url, "--colour", "red"], saying: "status does not take --colour")
        try await expectRefused(["status"], saying: "--url is required")
        try await expectRefused(["cancel", "seven", "--url", url], saying: "a job id is a positive whole number, not seven")
        try await expectRefused(["purge", "--finished-before", "soon", "--url", url], saying: "--finished-before takes an age")

        // A database without the schema: the server is there, the tables are not.
        let empty = "emptydb_\(UInt32.random(in: 0...UInt32.max))"
        _ = try await database.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(empty)"), logger: database.logger)
        let emptyURL = String(url[..<url.lastIndex(of: "/")!]) + "/" + empty
        for arguments in [["status"], ["list", "--state", "failed"], ["cancel", "1"], ["retry", "--failed"],
                          ["purge", "--finished-before", "7d"]] {
            try await expectRefused(arguments + ["--url", emptyURL], saying: "the database at \(emptyURL) has no forkpool tables")
        }
        // A database that does not exist.
        let missingURL = String(url[..<url.lastIndex(of: "/")!]) + "/" + empty + "_missing"
        try await expectRefused(["status", "--url", missingURL],
                                saying: "could not connect to the database at \(missingURL): database \"\(empty)_missing\" does not exist")
        let strangerURL = url.replacingOccurrences(of: "postgres://postgres@", with: "postgres://stranger@")
        try await expectRefused(["list", "--url", strangerURL], saying: "role \"stranger\" does not exist")
        _ = try await database.client.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(empty) WITH (FORCE)"), logger: database.logger)

        // An unknown command: named, then the usage (several lines); no command at all: the usage.
        let unknown = try await runHostProgram(["frobnicate", "--url", url])
        #expect(unknown.status == 1 && unknown.errors.contains("unknown command frobnicate") && unknown.errors.contains("usage:"), "\(unknown)")
        let bare = try await runHostProgram([])
        #expect(bare.status == 1 && bare.errors.contains("usage:") && bare.output.isEmpty, "\(bare)")
    }
}
