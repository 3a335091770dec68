// HostOptions: the PostgresJobHost program's command line — words before the first option
// (the command and its arguments), `--name value` pairs, and bare switches (`--failed`) — and
// the database URL it is given, turned into a PostgresClient configuration.
import PostgresNIO

struct HostOptions {
    /// The words that are not options, in order.
    private(set) var positional: [String] = []
    private var values: [String: String] = [:]
    private var switches: Set<String> = []
    static let switchNames: Set<String> = ["failed", "quiet"]

    init(_ arguments: some Sequence<String>) throws {
        var iterator = arguments.makeIterator()
        while let word = iterator.next() {
            guard word.hasPrefix("--") else {
                positional.append(word)
                continue
            }
            let name = String(word.dropFirst(2))
            if Self.switchNames.contains(name) {
                switches.insert(name)
                continue
            }
            guard let value = iterator.next() else { throw UsageError(message: "\(word) needs a value") }
            values[name] = value
        }
    }

    func string(_ name: String, default fallback: String? = nil) throws -> String {
        guard let value = values[name] ?? fallback else { throw UsageError(message: "--\(name) is required") }
        return value
    }

    func optionalString(_ name: String) -> String? { values[name] }

    func int(_ name: String, default fallback: Int) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text) else { throw UsageError(message: "--\(name) takes a whole number, not \(text)") }
        return value
    }

    func milliseconds(_ name: String, default fallback: Int) throws -> Duration {
        .milliseconds(try int(name, default: fallback))
    }

    func has(_ name: String) -> Bool { switches.contains(name) }

    /// Every option given, for checking that a command knows them all.
    var optionNames: Set<String> { Set(values.keys).union(switches) }

    /// Throws unless every option given is one of `known`.
    func expectOnly(_ known: Set<String>, command: String) throws {
        if let unknown = optionNames.subtracting(known).sorted().first {
            throw UsageError(message: "\(command) does not take --\(unknown) (it takes \(known.sorted().map { "--" + $0 }.joined(separator: ", ")))")
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A database URL, `postgres://user[:password]@host[:port]/database` (or `postgresql://`),
/// taken apart.
struct DatabaseURL {
    var host: String
    var port = 5432
    var username = "postgres"
    var password: String?
    var database: String?

    init(_ url: String) throws {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: { url.hasPrefix($0) }) else {
            throw UsageError(message: "a database URL looks like postgres://user@host:port/database, not \(redacted(url))")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at].split(separator: ":", maxSplits: 1).map(String.init)
            if let name = credentials.first { username = name }
            password = credentials.count > 1 ? credentials[1] : nil
            rest = rest[rest.index(after: at)...]
        }
        let parts = rest.split(separator: "/", maxSplits: 1).map(String.init)
        guard let hostPort = parts.first, !hostPort.isEmpty else { throw UsageError(message: "the database URL \(redacted(url)) names no host") }
        let pieces = hostPort.split(separator: ":").map(String.init)
        if pieces.count > 1 {
            guard pieces.count == 2, let number = Int(pieces[1]), (1...65535).contains(number) else {
                throw UsageError(message: "the database URL \(redacted(url)) has a bad port: \(pieces.dropFirst().joined(separator: ":"))")
            }
            port = number
        }
        host = pieces[0]
        database = parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil
    }
}

extension PostgresClient.Configuration {
    /// From `postgres://user[:password]@host[:port]/database` (or `postgresql://`; TLS off: a
    /// local cluster's).
    init(url: String) throws {
        let parsed = try DatabaseURL(url)
        self.init(host: parsed.host, port: parsed.port, username: parsed.username, password: parsed.password,
                  database: parsed.database, tls: .disable)
        options.connectTimeout = .seconds(5)
    }
}

extension PostgresConnection.Configuration {
    /// One connection to the database at `url` (as ``PostgresClient/Configuration/init(url:)``).
    init(url: String) throws {
        let parsed = try DatabaseURL(url)
        self.init(host: parsed.host, port: parsed.port, username: parsed.username, password: parsed.password,
                  database: parsed.database, tls: .disable)
        options.connectTimeout = .seconds(5)
    }
}

/// `url` with its password, if any, replaced by `***`: for messages.
func redacted(_ url: String) -> String {
    guard let scheme = url.range(of: "://"), let at = url.range(of: "@", options: .backwards),
          scheme.upperBound < at.lowerBound else { return url }
    let credentials = url[scheme.upperBound..<at.lowerBound]
    guard let colon = credentials.firstIndex(of: ":") else { return url }
    return url[..<url.index(after: colon)] + "***" + url[at.lowerBound...]
}
