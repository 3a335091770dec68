// HostOptions: the worker-host program's command line (`--name value` pairs) and the database
// URL it is given, turned into a PostgresClient configuration.
import PostgresNIO

struct HostOptions {
    private var values: [String: String] = [:]

    init(_ arguments: some Sequence<String>) throws {
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard flag.hasPrefix("--"), let value = iterator.next() else {
                throw UsageError(message: "expected --option value pairs, got \(flag)")
            }
            values[String(flag.dropFirst(2))] = value
        }
    }

    func string(_ name: String, default fallback: String? = nil) throws -> String {
        guard let value = values[name] ?? fallback else { throw UsageError(message: "--\(name) is required") }
        return value
    }

    func int(_ name: String, default fallback: Int) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text) else { throw UsageError(message: "--\(name) takes a whole number, not \(text)") }
        return value
    }

    func milliseconds(_ name: String, default fallback: Int) throws -> Duration {
        .milliseconds(try int(name, default: fallback))
    }
}

struct UsageError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension PostgresClient.Configuration {
    /// From `postgres://user[:password]@host[:port]/database` (TLS off: a test cluster's).
    init(url: String) throws {
        guard url.hasPrefix("postgres://") else { throw UsageError(message: "a database URL starts with postgres://, not \(url)") }
        var rest = Substring(url.dropFirst("postgres://".count))
        var username = "postgres", password: String?
        if let at = rest.firstIndex(of: "@") {
            let credentials = rest[..<at].split(separator: ":", maxSplits: 1).map(String.init)
            username = credentials[0]
            password = credentials.count > 1 ? credentials[1] : nil
            rest = rest[rest.index(after: at)...]
        }
        let parts = rest.split(separator: "/", maxSplits: 1).map(String.init)
        let hostPort = parts[0].split(separator: ":").map(String.init)
        self.init(host: hostPort[0], port: hostPort.count > 1 ? Int(hostPort[1]) ?? 5432 : 5432, username: username,
                  password: password, database: parts.count > 1 ? parts[1] : nil, tls: .disable)
        options.connectTimeout = .seconds(5)
    }
}
