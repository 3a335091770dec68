// OperatorCommand: `PostgresJobHost status|list|retry|cancel|purge` — an operator's view of and
// hand on a queue, over PostgresJobQueue's operations; one line per fact, an exit status of 1
// and one line saying what was wrong for a bad URL, an unreachable database, a database without
// the schema, an unknown job or a bad argument.
import Foundation
@_spi(Integration) import ForkPool
import ForkPoolPostgres
import Logging
import PostgresNIO

struct OperatorCommand {
    static let names: Set<String> = ["status", "list", "retry", "cancel", "purge"]
    static let usage = """
        usage: PostgresJobHost status --url URL [--queue Q]
               PostgresJobHost list   --url URL [--queue Q] [--state queued|running|succeeded|failed|cancelled] [--limit N]
               PostgresJobHost retry  ID --url URL  |  retry --failed --url URL [--queue Q]
               PostgresJobHost cancel ID --url URL
               PostgresJobHost purge  --finished-before 7d|12h|30m|90s|2026-12-01T00:00:00Z --url URL [--queue Q]
               PostgresJobHost [run] --url URL --queue Q …   (a worker host)
        """

    let options: HostOptions
    let command: String

    init(_ options: HostOptions) throws {
        self.options = options
        command = options.positional.first ?? ""
    }

    func run() async throws {
        let known: [String: Set<String>] = ["status": ["url", "queue"], "list": ["url", "queue", "state", "limit"],
                                            "retry": ["url", "queue", "failed"], "cancel": ["url", "queue"],
                                            "purge": ["url", "queue", "finished-before"]]
        try options.expectOnly(known[command] ?? [], command: command)
        let url = try options.string("url")
        let logger = Logger(label: "forkpool.operator", factory: { _ in SwiftLogNoOpLogHandler() })
        let client = PostgresClient(configuration: try .init(url: url), backgroundLogger: logger)
        let running = await startRunning(client)
        defer { running.cancel() }
        let queue = try PostgresJobQueue(client: client, name: try options.string("queue", default: "default"), logger: logger)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Self.reach(url, logger: logger)
                    try await run(on: queue, client: client)
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(15))
                    throw UsageError(message: "the database at \(redacted(url)) did not answer within 15 s")
                }
                try await group.next()
                group.cancelAll()
            }
        } catch let error as ForkPoolError where error.code == .invalidArgument {
            // The queue's own refusal (no such job, not retryable): its message, without the type.
            throw UsageError(message: error.message)
        } catch let error as PSQLError {
            if error.serverInfo?[.sqlState] == "42P01" || error.serverInfo?[.sqlState] == "42704" {
                throw UsageError(message: "the database at \(redacted(url)) has no forkpool tables: start a worker host on it (or call migrate()) first")
            }
            if let message = error.serverInfo?[.message] { throw UsageError(message: "the database refused: \(message)") }
            throw UsageError(message: "could not reach the database at \(redacted(url)): \(Self.reason(error))")
        }
    }

    /// Connects once, on a connection of its own, and closes it: the client's pool tries a
    /// failed connection again and again without a word, so a refused connection, an unknown
    /// host, a missing database or role would show only as a time-out. This says which.
    static func reach(_ url: String, logger: Logger) async throws {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: try .init(url: url), id: 0, logger: logger)
        } catch let error as PSQLError {
            throw UsageError(message: "could not connect to the database at \(redacted(url)): \(reason(error))")
        } catch let error as UsageError {
            throw error
        } catch {
            throw UsageError(message: "could not connect to the database at \(redacted(url)): \(error)")
        }
        try? await connection.close()
    }

    /// What a PostgresNIO error says (its own description hides it): the server's message, or
    /// the network's error, or the code.
    static func reason(_ error: PSQLError) -> String {
        if let message = error.serverInfo?[.message] { return message }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    private func run(on queue: PostgresJobQueue, client: PostgresClient) async throws {
        switch command {
        case "status":
            let statuses = options.optionalString("queue") == nil ? try await PostgresJobQueue.status(client: client)
                                                                   : [try await queue.status()]
            if statuses.isEmpty { print("no queues: no jobs and no hosts") }
            for status in statuses { print(Self.describe(status)) }
        case "list":
            let state = try options.optionalString("state").map { text in
                guard let state = JobState(rawValue: text) else {
                    throw UsageError(message: "--state takes \(JobState.allCases.map(\.rawValue).joined(separator: ", ")), not \(text)")
                }
                return state
            }
            let limit = try options.int("limit", default: 50)
            guard limit >= 1 else { throw UsageError(message: "--limit takes a number of at least 1, not \(limit)") }
            let jobs = try await queue.jobs(in: state, limit: limit)
            if jobs.isEmpty { print("no \(state.map { $0.rawValue + " " } ?? "")jobs in queue \(queue.name)") }
            for job in jobs { print(Self.describe(job)) }
        case "retry":
            if options.has("failed") {
                guard options.positional.count == 1 else { throw UsageError(message: "retry takes a job id or --failed, not both") }
                print("queued again: \(try await queue.retryFailed()) failed jobs of queue \(queue.name)")
            } else {
                let id = try jobID()
                try await queue.retry(jobID: id)
                print("queued again: job \(id)")
            }
        case "cancel":
            let id = try jobID()
            guard let job = try await queue.job(id: id) else { throw UsageError(message: "there is no job \(id)") }
            guard !job.state.isFinished else { throw UsageError(message: "job \(id) has already finished: \(job.state.rawValue)") }
            let cancelled = try await PostgresJobQueue(client: client, name: job.queue).cancel(jobID: id)
            print(cancelled ? "cancelled: job \(id) (it had not started)" : "asked to cancel: job \(id) is running; its host stops it at its next lease renewal")
        case "purge":
            let date = try Self.date(options.string("finished-before"))
            print("deleted: \(try await queue.purge(finishedBefore: date)) jobs of queue \(queue.name) finished before \(date.ISO8601Format())")
        default:
            throw UsageError(message: Self.usage)
        }
    }

    private func jobID() throws -> Int64 {
        guard options.positional.count == 2 else { throw UsageError(message: "\(command) takes one job id: \(command) ID") }
        guard let id = Int64(options.positional[1]), id > 0 else {
            throw UsageError(message: "a job id is a positive whole number, not \(options.positional[1])")
        }
        return id
    }

    /// `7d`, `12h`, `30m`, `90s` ago, or an ISO 8601 date.
    static func date(_ text: String) throws -> Date {
        let units: [Character: Double] = ["d": 86400, "h": 3600, "m": 60, "s": 1]
        if let unit = text.last, let seconds = units[unit], let count = Double(text.dropLast()), count >= 0 {
            return Date(timeIntervalSinceNow: -count * seconds)
        }
        if let date = try? Date(text, strategy: .iso8601) { return date }
        throw UsageError(message: "--finished-before takes an age (7d, 12h, 30m, 90s) or an ISO 8601 date, not \(text)")
    }

    static func describe(_ status: QueueStatus) -> String {
        var lines = ["queue \(status.queue): " + JobState.allCases.map { "\($0.rawValue) \(status.counts[$0] ?? 0)" }.joined(separator: ", ")]
        if let age = status.oldestQueuedAge { lines.append("  oldest queued job waits \(seconds(age))") }
        let alive = status.hosts.filter(\.isAlive)
        lines.append("  hosts alive: \(alive.count)" + (status.hosts.count > alive.count ? " (and \(status.hosts.count - alive.count) silent)" : ""))
        for host in status.hosts {
            lines.append("    \(host.owner): \(host.isAlive ? "alive" : "silent"), last seen \(seconds(host.lastSeen)) ago, "
                         + "started \(host.startedAt.ISO8601Format())")
        }
        return lines.joined(separator: "\n")
    }

    static func describe(_ job: JobRecord) -> String {
        var line = "\(job.id)\t\(job.state.rawValue)\t\(job.jobName)\tattempts \(job.attempts)/\(job.maximumAttempts)"
        if job.priority != 0 { line += "\tpriority \(job.priority)" }
        line += "\tcreated \(job.createdAt.ISO8601Format())"
        if let owner = job.leaseOwner { line += "\ton \(owner)" }
        if let code = job.errorCode { line += "\t\(code): \(job.errorMessage ?? "")" }
        return line
    }

    private static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f s", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}
