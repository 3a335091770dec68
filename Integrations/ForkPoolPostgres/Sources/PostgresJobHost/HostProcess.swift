// HostProcess: a worker host as a separate process — this program started with `--name …`,
// optionally inside a network namespace (`ip netns exec`), its standard error in a log file;
// ready once it printed "ready". The tests and the cluster benchmark start hosts this way.
@_spi(Integration) import ForkPool

#if canImport(Glibc)
import Glibc
#endif

/// A worker host as a separate process: the PostgresJobHost program.
final class HostProcess: @unchecked Sendable {
    let name: String
    let pid: pid_t
    let logPath: String
    private var reaped = false

    /// The PostgresJobHost program: this one, or the one beside the test runner.
    static var programPath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let running = count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        if running.hasSuffix("/PostgresJobHost") { return running }
        return String(running[..<(running.lastIndex(of: "/") ?? running.startIndex)]) + "/PostgresJobHost"
    }

    /// Starts a host named `name` on `queue`, reaching the database at `url`, inside network
    /// namespace `namespace` if given; returns once it printed "ready".
    init(name: String, queue: String, url: String, namespace: String? = nil, workers: Int = 2, leaseMilliseconds: Int = 1500,
         graceMilliseconds: Int = 30_000, pollMilliseconds: Int = 200, capacity: Int = 0, logLevel: String = "info",
         extra: [String] = []) throws {
        self.name = name
        // Never a name an earlier run (of another user: not ours to truncate) may have left.
        logPath = "/tmp/forkpool-host-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        var arguments = [Self.programPath, "--url", url, "--queue", queue, "--name", name, "--workers", "\(workers)",
                         "--lease-ms", "\(leaseMilliseconds)", "--poll-ms", "\(pollMilliseconds)", "--grace-ms", "\(graceMilliseconds)",
                         "--call-timeout-ms", "2000", "--capacity", "\(capacity)", "--log-level", logLevel] + extra
        if let namespace { arguments = ["/usr/sbin/ip", "netns", "exec", namespace] + arguments }
        var ready: [Int32] = [0, 0]
        guard pipe(&ready) == 0 else { throw ForkPoolError(.systemCallFailed, "pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ready[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addclose(&actions, ready[0])
        posix_spawn_file_actions_addclose(&actions, ready[1])
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var spawned: pid_t = 0
        let status = posix_spawn(&spawned, arguments[0], &actions, nil, argv, environ)
        close(ready[1])
        defer { close(ready[0]) }
        guard status == 0 else { throw ForkPoolError(.systemCallFailed, "posix_spawn \(arguments[0]): \(status)") }
        pid = spawned
        // "ready …\n" once the host claims jobs (or end of file if it died).
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(ready[0], &byte, 1) == 1 && byte != UInt8(ascii: "\n") { line.append(byte) }
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            _ = kill(pid, SIGKILL)
            _ = waitStatus()
            throw ForkPoolError(.workerDied, "host \(name) did not start: \(log)")
        }
    }

    deinit {
        if !reaped {
            _ = kill(pid, SIGKILL)
            _ = waitStatus()
        }
    }

    /// What the host wrote to its standard error so far.
    var log: String {
        let descriptor = open(logPath, O_RDONLY)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func signal(_ signal: Int32) { _ = kill(pid, signal) }

    /// Asks the host to stop gracefully (SIGTERM) and waits for it; its wait status (0: it
    /// exited cleanly; -1: it was still running after `seconds` and was killed).
    func terminate(within seconds: Double = 60) -> Int32 {
        signal(SIGTERM)
        return waitStatus(within: seconds)
    }

    /// Waits for the host to exit; its wait status, or -1 when it was still running after
    /// `seconds` (it is then SIGKILLed and reaped).
    @discardableResult
    func waitStatus(within seconds: Double = 60) -> Int32 {
        var status: Int32 = 0
        var waited = 0.0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { break }
            guard waited < seconds else {
                _ = kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                reaped = true
                return -1
            }
            usleep(10_000)
            waited += 0.01
        }
        reaped = true
        return status
    }
}
