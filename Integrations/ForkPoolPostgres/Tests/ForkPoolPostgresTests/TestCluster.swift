// TestCluster: the real parts the tests use — the throw-away PostgreSQL cluster that
// scripts/pg-sandbox.sh started (FORKPOOL_PG_URL; its restart script), worker hosts in this
// process, and a look at the rows themselves. Hosts as separate processes are
// PostgresJobHost's HostProcess (the program, optionally inside a network namespace).
import ClusterJobs
@_spi(Integration) import ForkPool
import ForkPoolPostgres
@testable import PostgresJobHost
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

struct MissingDatabase: Error, CustomStringConvertible {
    var description: String {
        "FORKPOOL_PG_URL is not set: run these tests through `make test` (or Integrations/ForkPoolPostgres/scripts/pg-sandbox.sh swift test)"
    }
}

/// One test's view of the database: a running client and a queue name of its own.
final class TestDatabase: Sendable {
    static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["FORKPOOL_PG_URL"] else { throw MissingDatabase() }
        return url
    }

    let url: String
    let client: PostgresClient
    let queueName: String
    private let running: Task<Void, Never>
    let logger = Logger(label: "forkpool.test")

    init(queueName: String = "test-\(UInt32.random(in: 0...UInt32.max))") async throws {
        url = try Self.url()
        client = PostgresClient(configuration: try .init(url: url), backgroundLogger: logger)  // PostgresJobHost's URL parser
        running = Task { [client] in await client.run() }
        self.queueName = queueName
        try await makeQueue().migrate()
    }

    deinit { running.cancel() }

    func makeQueue(_ configure: (inout PostgresJobQueue.Configuration) -> Void = { _ in }) throws -> PostgresJobQueue {
        var configuration = PostgresJobQueue.Configuration()
        configuration.pollInterval = .milliseconds(250)
        configuration.retryBackoff = RetryBackoff(initial: .milliseconds(100), maximum: .seconds(1))
        configure(&configuration)
        return try PostgresJobQueue(client: client, name: queueName, configuration: configuration, logger: logger)
    }

    /// A job's row, as stored.
    struct Row: Sendable {
        let state: String
        let attempts: Int32
        let leaseOwner: String?
        let errorCode: String?
        let errorMessage: String?
    }

    func row(_ id: Int64) async throws -> Row {
        let rows = try await client.query("""
            SELECT state::text, attempts, lease_owner, error_code, error_message FROM forkpool_jobs WHERE id = \(id)
            """, logger: logger)
        for try await (state, attempts, owner, code, message) in rows.decode((String, Int32, String?, String?, String?).self) {
            return Row(state: state, attempts: attempts, leaseOwner: owner, errorCode: code, errorMessage: message)
        }
        throw ForkPoolError(.invalidArgument, "no job \(id)")
    }

    /// How many rows this test's queue has.
    func rowCount() async throws -> Int {
        for try await count in try await client.query("SELECT count(*) FROM forkpool_jobs WHERE queue = \(queueName)", logger: logger)
            .decode(Int64.self) { return Int(count) }
        return 0
    }

    /// How many of this test's jobs are in `state` (with more than `attemptsAbove` attempts).
    func count(state: String, attemptsAbove: Int = 0) async throws -> Int {
        let rows = try await client.query("""
            SELECT count(*) FROM forkpool_jobs WHERE queue = \(queueName) AND state::text = \(state) AND attempts > \(attemptsAbove)
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Waits (up to `seconds`) until `condition` holds.
    func waitUntil(_ what: String, seconds: Double = 30, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw ForkPoolError(.timedOut, "waited \(seconds) s for \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Runs a command (`/bin/sh -c`); throws unless it exits 0.
func shell(_ command: String) throws {
    var spawned: pid_t = 0
    let words: [String] = ["/bin/sh", "-c", command]
    let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    guard posix_spawn(&spawned, "/bin/sh", nil, nil, argv, environ) == 0 else { throw ForkPoolError(.systemCallFailed, command) }
    var status: Int32 = 0
    while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
    guard status == 0 else { throw ForkPoolError(.systemCallFailed, "`\(command)` failed with status \(status)") }
}

/// An in-process worker host (its pool's workers answer with `name`).
struct LocalHost {
    let pool: ProcessJobPool
    let worker: PostgresJobWorker
    let running: Task<Void, any Error>

    init(queue: PostgresJobQueue, name: String = "local", workers: Int = 2, lease: Duration = .milliseconds(1500),
         logger: Logger? = nil, configure: (inout PostgresJobWorker.Configuration) -> Void = { _ in }) throws {
        setenv("FORKPOOL_HOST_NAME", name, 1)
        pool = try ProcessJobPool(workers: workers, configuration: .withoutBacktraces,
                                  jobs: clusterJobTypes)
        var configuration = PostgresJobWorker.Configuration()
        configuration.hostName = name
        configuration.leaseDuration = lease
        configuration.pollInterval = .milliseconds(200)
        configuration.databaseCallTimeout = .seconds(2)
        configure(&configuration)
        let worker = try PostgresJobWorker(queue: queue, pool: pool, configuration: configuration, logger: logger)
        self.worker = worker
        running = Task { try await worker.run() }
    }

    func stop() async {
        running.cancel()
        _ = try? await running.value
        pool.shutdown(cancelPending: true)
    }
}

/// A logger whose messages a test can read: "level message" lines, info and above.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "forkpool.capture") { _ in Handler(capture: self) }
        logger.logLevel = .info
        return logger
    }

    /// Every message so far, one a line.
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .info

        func log(event: LogEvent) {
            let line = "\(event.level) \(event.message)" + (event.metadata.map { " \($0)" } ?? "")
            capture.lines.withLock { $0.append(line) }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
    }
}

/// Runs `body` with an in-process worker host on `queue`, stopping the host afterwards even
/// when `body` throws.
func withLocalHost<T>(queue: PostgresJobQueue, lease: Duration = .milliseconds(1500),
                      configure: (inout PostgresJobWorker.Configuration) -> Void = { _ in },
                      _ body: (LocalHost) async throws -> T) async throws -> T {
    let host = try LocalHost(queue: queue, lease: lease, configure: configure)
    do {
        let result = try await body(host)
        await host.stop()
        return result
    } catch {
        await host.stop()
        throw error
    }
}
