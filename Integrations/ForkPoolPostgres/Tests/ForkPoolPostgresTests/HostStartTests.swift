// A worker host's start, as an operator sees it in its log: a normal start (the schema
// migrated, the host ready, a job run) says nothing at warning level — in particular not
// postgres-nio's "`PostgresClient.run()` hasn't been called yet", which it logs when a query
// leases a connection before the client's run() began (PostgresJobHost starts the client's
// task and waits for it before it migrates).
import ClusterJobs
@_spi(Integration) import ForkPool
import ForkPoolPostgres
@testable import PostgresJobHost
import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(1)))
struct HostStartTests {
    @Test(arguments: 1...5)
    func aNormalStartLogsNoWarning(round: Int) async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let host = try HostProcess(name: "fresh\(round)", queue: database.queueName, url: database.url)  // --log-level info
        #expect(try await queue.submit(SleepJob(milliseconds: 1, tag: round)).value == HostAnswer(host: "fresh\(round)", value: round))
        let log = host.log
        #expect(!log.contains("hasn't been called"), "\(log)")
        #expect(!log.lowercased().contains("warning"), "\(log)")
        #expect(host.terminate() == 0)
        #expect(host.log.contains("host stopped"))  // the log is the host's (its last line)
    }
}
