// Processes and threads as /proc and the kernel show them.
import Glibc

/// What is left of a process.
public enum ProcessLiveness: Sendable {
    /// It runs (or sleeps, or is stopped): not yet exited.
    case running
    /// It exited and awaits its parent's `waitpid` (a zombie).
    case zombie
    /// No such process: exited and reaped.
    case gone
}

/// Whether `pid` runs, exited unreaped, or is gone.
public func liveness(of pid: pid_t) -> ProcessLiveness {
    guard let state = statFields(of: pid)?.first else { return .gone }
    return state == "Z" || state == "X" ? .zombie : .running
}

/// The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or nil if
/// the process is gone.
public func statFields(of pid: pid_t) -> [Substring]? {
    guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ")
}

/// The pids whose parent is `parent` (default: this process), read from /proc (zombies included).
public func childProcessIDs(of parent: pid_t = getpid()) -> [pid_t] {
    directoryEntries("/proc").compactMap { name -> pid_t? in
        guard let pid = pid_t(name), let fields = statFields(of: pid) else { return nil }
        return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
    }
}

/// The names of this process's threads, from /proc/self/task/*/comm.
public func threadNames() -> [String] {
    directoryEntries("/proc/self/task").compactMap { tid in
        readFile("/proc/self/task/\(tid)/comm").map { String($0.prefix { $0 != "\n" }) }
    }
}

/// The ids of this process's threads whose name starts with `prefix`.
public func threadIDs(named prefix: String) -> Set<String> {
    Set(directoryEntries("/proc/self/task").filter { tid in
        readFile("/proc/self/task/\(tid)/comm")?.hasPrefix(prefix) == true
    })
}

/// What this process (and so a child it forks) does with a signal.
public enum SignalDisposition: Equatable, Sendable {
    /// `SIG_DFL`: the default action (for SIGTERM, the end of the process).
    case defaultAction
    /// `SIG_IGN`.
    case ignored
    /// A handler function of its own.
    case handler
}

/// The disposition of `signal` in this process.
public func signalDisposition(_ signal: Int32) -> SignalDisposition {
    var action = sigaction()
    guard sigaction(signal, nil, &action) == 0 else { return .defaultAction }
    switch unsafeBitCast(action.__sigaction_handler, to: Int.self) {
    case 0: return .defaultAction
    case 1: return .ignored
    default: return .handler
    }
}

/// Whether this process has a handler function of its own for `signal` (not `SIG_DFL`, not
/// `SIG_IGN`): Swift's crash backtracer installs one for the fatal signals.
public func hasSignalHandler(_ signal: Int32) -> Bool {
    signalDisposition(signal) == .handler
}

/// Runs `/bin/sh -c script` (posix_spawn: no fork of this multi-threaded process) and returns
/// its exit status and standard output, or nil if it could not be started. Every descriptor it
/// used is closed when it returns.
public func runShell(_ script: String) -> (status: Int32, output: String)? {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return nil }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    let words: [String] = ["/bin/sh", "-c", script]
    let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/bin/sh", &actions, nil, arguments, environ)
    close(fds[1])
    defer { close(fds[0]) }
    guard spawned == 0 else { return nil }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fds[0], &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return ((status >> 8) & 0xFF, String(decoding: bytes, as: UTF8.self))
}

/// A file's whole content (for /proc files, whose size `stat` does not tell), or nil if it
/// cannot be opened.
public func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The names in a directory, without "." and "..".
public func directoryEntries(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        // Through a pointer up to the NUL: the kernel's record may be shorter than `dirent`.
        let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        let name = String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
