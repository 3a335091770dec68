// The article's I/O-bound workload, with real system calls: each task writes a small file
// of "Hello World<n>" lines under a scratch directory, reads it back, checks it, and removes
// it — on every path, including errors. A latency mode stands in for a network call.
import Glibc

/// One I/O task: which file to write, how many lines, and how long to wait first.
public struct FileRoundTrip: Codable, Sendable, Equatable {
    /// The scratch directory (it must exist); the file is `<directory>/task-<index>.txt`.
    public var directory: String
    public var index: Int
    /// Lines of "Hello World<n>\n" to write.
    public var lines: Int
    /// Microseconds to wait before the file work, standing in for a network round trip.
    public var latencyMicroseconds: Int

    public init(directory: String, index: Int, lines: Int = 100, latencyMicroseconds: Int = 0) {
        self.directory = directory
        self.index = index
        self.lines = lines
        self.latencyMicroseconds = latencyMicroseconds
    }

    public var path: String { "\(directory)/task-\(index).txt" }

    /// The bytes the task writes.
    public var contents: [UInt8] {
        var bytes: [UInt8] = []
        for count in 0..<lines { bytes.append(contentsOf: "Hello World\(count)\n".utf8) }
        return bytes
    }
}

/// Why an I/O task failed: the call and its errno.
public struct FileRoundTripError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let path: String
    public let errno: Int32
    public var description: String { "\(call)(\(path)) failed: \(String(cString: strerror(errno)))" }
}

/// Runs one I/O task; returns the number of bytes written and read back. The file is
/// removed before this returns or throws.
public func runFileRoundTrip(_ task: FileRoundTrip) throws -> Int {
    if task.latencyMicroseconds > 0 {
        var remaining = timespec(tv_sec: task.latencyMicroseconds / 1_000_000,
                                 tv_nsec: (task.latencyMicroseconds % 1_000_000) * 1000)
        var left = timespec()
        while nanosleep(&remaining, &left) != 0 && errno == EINTR { remaining = left }
    }
    let path = task.path
    let contents = task.contents
    let writer = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard writer >= 0 else { throw FileRoundTripError(call: "open", path: path, errno: errno) }
    defer { unlink(path) }
    let written = contents.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
    let writeErrno = errno
    close(writer)
    guard written == contents.count else {
        throw FileRoundTripError(call: "write", path: path, errno: written < 0 ? writeErrno : EIO)
    }
    let reader = open(path, O_RDONLY | O_CLOEXEC)
    guard reader >= 0 else { throw FileRoundTripError(call: "open", path: path, errno: errno) }
    defer { close(reader) }
    var back = [UInt8](repeating: 0, count: contents.count + 1)
    var total = 0
    while true {
        let count = back.withUnsafeMutableBytes { read(reader, $0.baseAddress! + total, $0.count - total) }
        if count < 0 {
            if errno == EINTR { continue }
            throw FileRoundTripError(call: "read", path: path, errno: errno)
        }
        if count == 0 || total + count == back.count { total += count; break }
        total += count
    }
    guard total == contents.count, back.prefix(total).elementsEqual(contents) else {
        throw FileRoundTripError(call: "verify", path: path, errno: EIO)
    }
    return total
}

/// A fresh scratch directory under $TMPDIR (or /tmp) for I/O tasks.
public func makeScratchDirectory() throws -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(base)/forkpool-io-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else {
        throw FileRoundTripError(call: "mkdtemp", path: base, errno: errno)
    }
    return String(cString: made)
}

/// Removes a scratch directory and any file left in it.
public func removeScratchDirectory(_ directory: String) {
    for name in directoryEntries(directory) { unlink("\(directory)/\(name)") }
    rmdir(directory)
}

/// The names in a directory, without "." and ".." (empty if it cannot be read).
public func directoryEntries(_ directory: String) -> [String] {
    guard let handle = opendir(directory) else { return [] }
    defer { closedir(handle) }
    var names: [String] = []
    while let entry = readdir(handle) {
        let name = direntName(entry)
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The name in a directory entry. Read through a pointer up to its NUL: the kernel's record can
/// be shorter than `struct dirent`, so copying the whole `d_name` array would read past it.
func direntName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    return String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}
