// SandboxProbe: one attempt at something a sandbox may forbid, run in a worker, answering
// "ok…" or "errno=N" — the system call's own verdict, so each test sees what the kernel did.
import CFaultInjection
import Glibc
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

enum SandboxProbe: Codable, Sendable {
    /// A TCP connection to 127.0.0.1:port.
    case connectTCP(port: UInt16)
    /// A new IPv6 socket.
    case socketIPv6
    /// `execve("/bin/true")` in the worker itself: on success the worker becomes /bin/true.
    case execveTrue
    /// `/bin/true` started with posix_spawn and waited for.
    case spawnTrue
    /// Reads the file's first bytes.
    case read(path: String)
    /// Creates or truncates the file and writes `text`.
    case write(path: String, text: String)
    /// Allocates and touches this many MiB.
    case allocate(megabytes: Int)
    /// Opens /dev/null up to `count` times: "ok opened N" or "errno=N after N".
    case openFiles(count: Int)
    /// `kill(pid, 0)`.
    case signal(pid: Int32)
    /// `fcntl(fd, F_GETFD)`: whether the descriptor is open here.
    case descriptor(Int32)
    /// The lines of /proc/self/status that say how the process is confined.
    case confinement
    /// This worker's pid.
    case pid
    /// A connection to a named (path) or abstract AF_UNIX stream socket.
    case connectUnix(path: String?, abstractName: String?)
    /// sendto with an address, on a stream socketpair (refused by the kernel if not by a filter).
    case sendToAddress
    /// ioctl(0, TIOCSTI): typing into a terminal.
    case typeIntoTerminal
    /// unshare(CLONE_NEWUSER).
    case newUserNamespace
    /// clone(CLONE_NEWUSER).
    case cloneIntoNewUserNamespace
    /// "leader" if this worker leads a session of its own, else "member".
    case session

    func run() -> String {
        switch self {
        case .connectTCP(let port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return "errno=\(errno)" }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            return result == 0 ? "ok" : "errno=\(errno)"
        case .socketIPv6:
            let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return "errno=\(errno)" }
            close(fd)
            return "ok"
        case .execveTrue:
            let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
            _ = execve("/bin/true", arguments, environ)
            return "errno=\(errno)"
        case .spawnTrue:
            var pid: pid_t = 0
            let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
            let rc = posix_spawn(&pid, "/bin/true", nil, nil, arguments, environ)
            guard rc == 0 else { return "errno=\(rc)" }
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            return status == 0 ? "ok" : "status=\(status)"
        case .read(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return "errno=\(errno)" }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = Glibc.read(fd, &buffer, buffer.count)
            guard count >= 0 else { return "errno=\(errno)" }
            return "ok " + String(decoding: buffer[0..<count], as: UTF8.self)
        case .write(let path, let text):
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return "errno=\(errno)" }
            defer { close(fd) }
            let count = text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
            return count >= 0 ? "ok" : "errno=\(errno)"
        case .allocate(let megabytes):
            let count = megabytes << 20
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                memset(buffer.baseAddress!, 1, count)  // every page touched
                initialized = count
            }
            return "ok \(bytes.count)"
        case .openFiles(let count):
            var opened: [Int32] = []
            defer { opened.forEach { close($0) } }
            for _ in 0..<count {
                let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return "errno=\(errno) after \(opened.count)" }
                opened.append(fd)
            }
            return "ok opened \(opened.count)"
        case .signal(let pid):
            return kill(pid, 0) == 0 ? "ok" : "errno=\(errno)"
        case .descriptor(let fd):
            return fcntl(fd, F_GETFD) >= 0 ? "ok" : "errno=\(errno)"
        case .confinement:
            let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return "errno=\(errno)" }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 8192)
            let count = Glibc.read(fd, &buffer, buffer.count)
            guard count > 0 else { return "errno=\(errno)" }
            return String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n")
                .filter { $0.hasPrefix("NoNewPrivs") || $0.hasPrefix("Seccomp:") || $0.hasPrefix("CapEff") }
                .map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " ") }
                .joined(separator: ";")
        case .pid:
            return "ok \(getpid())"
        case .connectUnix(let path, let name):
            return fault_connect_unix(path, name) == 0 ? "ok" : "errno=\(errno)"
        case .sendToAddress:
            return fault_send_to_address("/tmp/forkpool-no-such-socket") == 0 ? "ok" : "errno=\(errno)"
        case .typeIntoTerminal:
            return fault_type_into_terminal(0) == 0 ? "ok" : "errno=\(errno)"
        case .newUserNamespace:
            return fault_new_user_namespace() == 0 ? "ok" : "errno=\(errno)"
        case .cloneIntoNewUserNamespace:
            return fault_clone_new_user_namespace() == 0 ? "ok" : "errno=\(errno)"
        case .session:
            return getsid(0) == getpid() ? "leader" : "member"
        }
    }
}

/// The probe as a job, for job pools (fresh workers find it by name).
struct SandboxProbeJob: PoolJob {
    var probe: SandboxProbe
    func run() throws -> String { probe.run() }
}

/// "errno=N" for a constant.
func failed(_ number: Int32) -> String { "errno=\(number)" }
