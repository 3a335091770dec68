// PostgresJobHost: a worker host as a program, and an operator's command line for a queue.
//
//   PostgresJobHost [run] --url postgres://… --queue Q --name A [--workers 2] [--jobs-per-worker 1] [--lease-ms 30000]
//                   [--poll-ms 1000] [--grace-ms 30000] [--capacity N] [--retention-s S]
//                   [--periodic-every-ms MS] [--log-level info]
//       a PostgresClient and a PostgresJobWorker in a ServiceGroup, running the ClusterJobs on a
//       local ProcessJobPool until SIGTERM (graceful: running jobs finish or are released) or
//       SIGINT; prints "ready" on standard output once the schema is migrated. The tests start
//       several of these, some in network namespaces.
//   PostgresJobHost status|list|retry|cancel|purge …   OperatorCommand (run with no argument
//       for the list)
//   PostgresJobHost bench …                            ClusterBench
import ClusterJobs
@_spi(Integration) import ForkPool
import ForkPoolPostgres
import Logging
import PostgresNIO
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

@main
enum PostgresJobHost {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            switch arguments.first {
            case nil: throw UsageError(message: OperatorCommand.usage)  // nothing to go on: what it takes
            case "bench": try await ClusterBench(options: HostOptions(arguments.dropFirst())).run()
            case "run": try await runHost(HostOptions(arguments.dropFirst()))
            case let command? where OperatorCommand.names.contains(command):
                try await OperatorCommand(HostOptions(arguments)).run()
            case let word? where !word.hasPrefix("--"):
                throw UsageError(message: "unknown command \(word)\n" + OperatorCommand.usage)
            default: try await runHost(HostOptions(arguments))
            }
        } catch {
            let line = Array("PostgresJobHost: \(error)\n".utf8)
            _ = write(2, line, line.count)
            exit(1)
        }
    }

    static func runHost(_ options: HostOptions) async throws {
        let name = try options.string("name", default: "host-\(getpid())")
        setenv("FORKPOOL_HOST_NAME", name, 1)  // before the pool starts: its workers answer with it
        let level = Logger.Level(rawValue: try options.string("log-level", default: "notice")) ?? .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "forkpool.host.\(name)")
        let client = PostgresClient(configuration: try .init(url: options.string("url")), backgroundLogger: logger)
        var queueConfiguration = PostgresJobQueue.Configuration()
        let retention = try options.int("retention-s", default: 7 * 24 * 3600)
        queueConfiguration.retention = retention > 0 ? .seconds(retention) : nil
        queueConfiguration.retryBackoff = RetryBackoff(initial: try options.milliseconds("retry-ms", default: 100), maximum: .seconds(10))
        let queue = try PostgresJobQueue(client: client, name: try options.string("queue", default: "default"),
                                         configuration: queueConfiguration, logger: logger)
        var poolConfiguration = ProcessPoolConfiguration.withoutBacktraces
        poolConfiguration.jobsPerWorker = try options.int("jobs-per-worker", default: 1)
        let pool = try ProcessJobPool(workers: try options.int("workers", default: 2), configuration: poolConfiguration,
                                      jobs: clusterJobTypes)
        defer { pool.shutdown(cancelPending: true) }
        var configuration = PostgresJobWorker.Configuration()
        configuration.hostName = name
        configuration.leaseDuration = try options.milliseconds("lease-ms", default: 30_000)
        configuration.pollInterval = try options.milliseconds("poll-ms", default: 1000)
        configuration.shutdownGracePeriod = try options.milliseconds("grace-ms", default: 30_000)
        configuration.databaseCallTimeout = try options.milliseconds("call-timeout-ms", default: 10_000)
        let capacity = try options.int("capacity", default: 0)
        configuration.capacity = capacity > 0 ? capacity : nil
        let every = try options.int("periodic-every-ms", default: 0)
        if every > 0 {
            configuration.periodicJobs = [try PeriodicJob(name: "tick", schedule: .every(.milliseconds(every)), job: TickJob())]
        }
        let worker = try PostgresJobWorker(queue: queue, pool: pool, configuration: configuration, logger: logger)

        let clientTask = await startRunning(client)
        try await migrate(queue, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm], cancellationSignals: [.sigint], logger: logger))
        let ready = Array("ready \(worker.owner)\n".utf8)
        _ = write(1, ready, ready.count)
        try await group.run()
        clientTask.cancel()
        let counters = worker.counters
        logger.notice("host stopped", metadata: ["claimed": "\(counters.claimed)", "settled": "\(counters.settled)",
                                                 "retried": "\(counters.retried)", "dropped": "\(counters.dropped)",
                                                 "released": "\(counters.released)", "scheduled": "\(counters.scheduled)"])
    }

    /// Migrates, trying again while the database is not up yet (for 30 s).
    static func migrate(_ queue: PostgresJobQueue, logger: Logger) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                return try await queue.migrate()
            } catch where ContinuousClock.now < deadline {
                logger.info("database not ready; trying again", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Starts `client.run()` in a task and returns once that task has begun (just before it calls
/// `run()`), so that no query is made before it: postgres-nio warns that `run()` has not been
/// called otherwise. Cancel the task to close the client.
func startRunning(_ client: PostgresClient) async -> Task<Void, Never> {
    let (started, starting) = AsyncStream.makeStream(of: Void.self)
    let running = Task {
        starting.finish()
        await client.run()
    }
    for await _ in started {}
    await Task.yield()
    return running
}
