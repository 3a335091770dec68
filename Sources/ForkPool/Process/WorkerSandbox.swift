// WorkerSandbox: what a process pool's workers may reach — network, programs, files, memory.
//
//   ProcessPoolConfiguration.sandbox ─ pool creation: checked (paths, limits, this kernel) and
//   turned into a spec (flags, limits, one line per rule path, the runtime's own paths added)
//   ─▶ fork server (forked or fresh) prepares it once ─▶ applied in C in every worker right after
//   fork, before any Swift code runs there (sandbox.c)
//
// The restrictions are the kernel's: setrlimit for the limits, Landlock for the file system, a
// seccomp filter for network and exec; capabilities dropped and no_new_privs whenever anything
// is restricted. A worker whose sandbox cannot be applied never runs a task.
import CForkShim
import ForkPoolWire
import Glibc

/// What the workers of a ``ProcessPool`` or ``ProcessJobPool`` may reach, for running code or
/// input you do not trust: set it as ``ProcessPoolConfiguration/sandbox``.
///
/// ```swift
/// var configuration = ProcessPoolConfiguration()
/// configuration.sandbox = .strict(readable: ["/srv/models"], writable: ["/tmp/thumbnails"])
/// let pool = try ProcessPool(configuration: configuration) { (path: String) in try makeThumbnail(path) }
/// ```
///
/// Every worker — the first ones and every replacement, for both start methods — is locked
/// down after fork and before its first line of Swift runs: its initializer and a job type's
/// `setUpWorker()` run inside the sandbox too. A sandbox that cannot be applied (a kernel
/// without Landlock or seccomp, a path that does not exist) makes pool creation throw; no worker
/// ever runs half-jailed. The default, `WorkerSandbox()`, restricts nothing.
///
/// See the Sandboxing article for what a jailed worker can and cannot still do.
public struct WorkerSandbox: Sendable, Hashable {
    /// Whether the workers may do a kind of thing.
    public enum Permission: Sendable, Hashable {
        case allowed
        case denied
    }

    /// Which files the workers may open.
    public enum FileSystem: Sendable, Hashable {
        /// Whatever the program's user may open.
        case unrestricted
        /// Only beneath these absolute paths (files or directories; each must exist when the
        /// pool starts): `readable` to read (and execute, where exec is allowed), `writable` to
        /// read, write, create, rename and delete. Whatever the worker needs to run stays
        /// readable without being listed: its binary, the directories of its shared libraries,
        /// `/proc/self`, `/dev/null`, time-zone and locale data. Enforced by Landlock.
        case restricted(readable: [String], writable: [String])
    }

    /// Resource limits of each worker (`setrlimit`, soft and hard). nil: as the program has it.
    public struct Limits: Sendable, Hashable {
        /// The most memory the worker may allocate, in bytes (`RLIMIT_DATA`: heap and private
        /// writable mappings, including those a snapshot worker inherits from the program). An
        /// allocation past it fails; in Swift that ends the worker, and its task fails as a
        /// crash does (``CrashPolicy``), the error saying the worker ran out of its memory limit.
        public var memoryBytes: Int?
        /// The most descriptors the worker may have open (`RLIMIT_NOFILE`); past it `open`
        /// fails with `EMFILE`.
        public var openFiles: Int?
        /// The largest file the worker may write, in bytes (`RLIMIT_FSIZE`); a write past it
        /// fails with `EFBIG` (standard output too, when that is a file).
        public var fileSizeBytes: Int?
        /// Whether a crashing worker may leave a core dump (`RLIMIT_CORE`).
        public var coreDumps: Bool

        public init(memoryBytes: Int? = nil, openFiles: Int? = nil, fileSizeBytes: Int? = nil, coreDumps: Bool = true) {
            self.memoryBytes = memoryBytes
            self.openFiles = openFiles
            self.fileSizeBytes = fileSizeBytes
            self.coreDumps = coreDumps
        }
    }

    /// What a call the sandbox forbids does (a network or exec call the seccomp filter stops).
    public enum ViolationResponse: Sendable, Hashable {
        /// The call fails with `EPERM`: the code sees an error it can handle. The default.
        case failWithEPERM
        /// The worker is killed (SIGSYS) at the call; its task fails with
        /// ``ForkPoolError/Code/workerDied`` naming the system call, through the ``CrashPolicy``.
        case killOnViolation
    }

    /// New sockets other than `AF_UNIX` stream or seqpacket ones, and `connect`, `bind`,
    /// `listen`, `accept` and `sendto` an address. The worker's socket to the pool keeps working.
    public var network: Permission
    /// `execve` and `execveat`: running another program. (Denying it also turns off Swift's
    /// crash backtraces in the workers, which need a helper program.)
    public var exec: Permission
    public var fileSystem: FileSystem
    public var limits: Limits
    public var onViolation: ViolationResponse

    public init(network: Permission = .allowed, exec: Permission = .allowed, fileSystem: FileSystem = .unrestricted,
                limits: Limits = Limits(), onViolation: ViolationResponse = .failWithEPERM) {
        self.network = network
        self.exec = exec
        self.fileSystem = fileSystem
        self.limits = limits
        self.onViolation = onViolation
    }

    /// No network, no exec, only `readable` to read and `writable` to write, and limits for a
    /// worker that runs one task at a time: 4 GiB of memory, 256 open files, files up to 1 GiB,
    /// no core dumps. Adjust any of it afterwards (`sandbox.limits.memoryBytes = …`).
    public static func strict(readable: [String] = [], writable: [String] = []) -> WorkerSandbox {
        WorkerSandbox(network: .denied, exec: .denied, fileSystem: .restricted(readable: readable, writable: writable),
                      limits: Limits(memoryBytes: 4 << 30, openFiles: 256, fileSizeBytes: 1 << 30, coreDumps: false))
    }

    /// Restricts nothing (the default).
    var isUnrestricted: Bool { self == WorkerSandbox() }
}

extension WorkerSandbox {
    /// The least memory limit accepted: what a fresh worker takes to start, with room to run.
    static let minimumMemoryBytes = 64 << 20
    /// The fewest open files accepted: standard I/O, the pool socket and room to work.
    static let minimumOpenFiles = 16

    /// Checks the sandbox and returns the spec its fork server prepares (CForkShim.h's
    /// `forkpool_sandbox_check`), or nil when it restricts nothing. `forkingThisProcess`: the
    /// workers are copies of this process (a snapshot start), whose memory counts toward their
    /// limit. Throws `.invalidArgument` for a bad path or limit, `.poolBroken` when this kernel
    /// cannot apply it.
    func spec(forkingThisProcess: Bool) throws(ForkPoolError) -> String? {
        guard !isUnrestricted else { return nil }
        try checkLimits(forkingThisProcess: forkingThisProcess)
        var flags: CInt = CInt(FORKPOOL_SANDBOX_NO_CORE_DUMPS) * (limits.coreDumps ? 0 : 1)
        if network == .denied { flags |= CInt(FORKPOOL_SANDBOX_NETWORK_DENIED) }
        if exec == .denied { flags |= CInt(FORKPOOL_SANDBOX_EXEC_DENIED) }
        if onViolation == .killOnViolation { flags |= CInt(FORKPOOL_SANDBOX_KILL_ON_VIOLATION) }
        var lines: [String] = []
        if case .restricted(let readable, let writable) = fileSystem {
            flags |= CInt(FORKPOOL_SANDBOX_FILESYSTEM_RESTRICTED)
            let rules = try readable.map { path throws(ForkPoolError) in try Self.rule("r", path, "readable") }
                + writable.map { path throws(ForkPoolError) in try Self.rule("w", path, "writable") }
            let runtime = RuntimePaths.current
            let total = readable.count + writable.count + runtime.count
            guard total <= 64 else {
                throw ForkPoolError(.invalidArgument, "a sandbox takes at most \(64 - runtime.count) paths here, not "
                                    + "\(readable.count + writable.count): list directories rather than files")
            }
            lines = runtime.compactMap { try? Self.rule($0.writable ? "w" : "r", $0.path, "runtime") } + rules
        }
        let numbers = [Int(flags), limits.memoryBytes ?? -1, limits.openFiles ?? -1, limits.fileSizeBytes ?? -1]
        let spec = ([numbers.map(String.init).joined(separator: " ")] + lines).joined(separator: "\n")
        var error = [CChar](repeating: 0, count: 512)
        guard forkpool_sandbox_check(spec, &error, error.count) == 0 else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ForkPoolError(.poolBroken, "the workers' sandbox cannot be applied: \(message)")
        }
        return spec
    }

    private func checkLimits(forkingThisProcess: Bool) throws(ForkPoolError) {
        func invalid(_ message: String) -> ForkPoolError { ForkPoolError(.invalidArgument, "sandbox: \(message)") }
        if let memory = limits.memoryBytes {
            guard memory >= Self.minimumMemoryBytes else {
                throw invalid("limits.memoryBytes must be at least \(Self.minimumMemoryBytes) (64 MiB), not \(memory)")
            }
            if forkingThisProcess, let used = RuntimePaths.dataBytesOfThisProcess(), memory < used + Self.minimumMemoryBytes {
                throw invalid("limits.memoryBytes \(memory) leaves a worker no room: a snapshot worker starts as a copy of this "
                              + "program, whose data already takes \(used) bytes; allow at least \(used + Self.minimumMemoryBytes)")
            }
        }
        if let files = limits.openFiles {
            guard files >= Self.minimumOpenFiles else {
                throw invalid("limits.openFiles must be at least \(Self.minimumOpenFiles), not \(files)")
            }
            if let most = RuntimePaths.readText("/proc/sys/fs/nr_open").flatMap({ Int($0.filter(\.isNumber)) }), files > most {
                throw invalid("limits.openFiles \(files) is above the kernel's most, \(most) (fs.nr_open)")
            }
        }
        if let size = limits.fileSizeBytes, size < 0 {
            throw invalid("limits.fileSizeBytes must not be negative, not \(size)")
        }
        // A worker can lower its limits, never raise them past the program's hard limits.
        for (name, value, resource) in [("memoryBytes", limits.memoryBytes, RLIMIT_DATA.rawValue),
                                         ("openFiles", limits.openFiles, RLIMIT_NOFILE.rawValue),
                                         ("fileSizeBytes", limits.fileSizeBytes, RLIMIT_FSIZE.rawValue)] {
            var current = rlimit()
            guard let value, getrlimit(__rlimit_resource_t(resource), &current) == 0, current.rlim_max != rlim_t.max else { continue }
            if UInt64(value) > UInt64(current.rlim_max) {
                throw invalid("limits.\(name) \(value) is above this program's own hard limit of \(current.rlim_max)")
            }
        }
    }

    /// A rule's spec line, "r|w dev ino path": the path must be absolute, one line of text, and
    /// exist now; the fork server refuses it if it names another file by the time it opens it.
    private static func rule(_ access: String, _ path: String, _ kind: String) throws(ForkPoolError) -> String {
        func invalid(_ message: String) -> ForkPoolError { ForkPoolError(.invalidArgument, "sandbox: \(message)") }
        guard !path.isEmpty else { throw invalid("a \(kind) path is empty") }
        guard path.hasPrefix("/") else { throw invalid("the \(kind) path \"\(path)\" is not absolute") }
        guard !path.utf8.contains(0), !path.utf8.contains(UInt8(ascii: "\n")) else {
            throw invalid("the \(kind) path \(String(reflecting: path)) contains a NUL or a line break")
        }
        guard path.utf8.count < 4096 else { throw invalid("a \(kind) path is longer than PATH_MAX") }
        var info = stat()
        guard stat(path, &info) == 0 else {
            let number = errno
            throw ForkPoolError(.invalidArgument, "sandbox: the \(kind) path \(path) cannot be used: \(String(cString: strerror(number)))",
                                errno: number)
        }
        return "\(access) \(info.st_dev) \(info.st_ino) \(path)"
    }
}

/// The paths every worker needs to run, read from this process: its binary, the directories of
/// the shared libraries it has loaded (more may be loaded later), and the system's data a Swift
/// program reads (time zones, locales, the loader's cache, random and null devices).
struct RuntimePaths {
    var path: String
    var writable = false

    static let current: [RuntimePaths] = {
        var paths: [RuntimePaths] = []
        var seen = Set<String>()
        func add(_ path: String, writable: Bool = false) {
            guard !path.isEmpty, seen.insert(path).inserted, access(path, F_OK) == 0 else { return }
            paths.append(RuntimePaths(path: path, writable: writable))
        }
        if let binary = readLink("/proc/self/exe") { add(binary) }
        for line in (readText("/proc/self/maps") ?? "").split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let file = String(line[slash...])
            // A shared library: "libname.so" or "libname.so.6" as the last component.
            guard !file.hasSuffix(" (deleted)"), let end = file.lastIndex(of: "/") else { continue }
            let name = file[file.index(after: end)...]
            guard name.hasSuffix(".so") || name.contains(".so.") else { continue }
            add(end == file.startIndex ? "/" : String(file[..<end]))
        }
        for path in ["/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo", "/usr/lib/locale",
                     "/sys/devices/system/cpu", "/dev/zero", "/dev/urandom", "/dev/random"] {
            add(path)
        }
        add("/dev/null", writable: true)
        return paths
    }()

    /// This process's data (`VmData`, what `RLIMIT_DATA` counts), in bytes.
    static func dataBytesOfThisProcess() -> Int? {
        guard let status = readText("/proc/self/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmData:") }) else { return nil }
        let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first
        return kilobytes.map { $0 * 1024 }
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What a jailed worker's death says about its sandbox (from the note it sent before it died).
enum SandboxReport {
    static func cause(of signal: Int32, note: WorkerNote) -> String? {
        switch note {
        case .forbiddenSystemCall(let number) where signal == SIGSYS:
            let name = forkpool_sandbox_syscall_name(number).map { String(cString: $0) } ?? "number \(number)"
            return ": its sandbox killed it at the system call \(name), which the sandbox forbids"
        case .memoryLimit(let bytes) where signal != SIGKILL && signal != SIGTERM:
            return ": it ran out of memory at its sandbox's limit of \(bytes) bytes (WorkerSandbox.Limits.memoryBytes)"
        default:
            return nil
        }
    }
}
