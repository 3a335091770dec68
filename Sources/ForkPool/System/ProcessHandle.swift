// ProcessHandle: a child process the pool signals and waits for, through its pidfd — a
// signal sent through a pidfd can never reach a recycled pid, and the pidfd turns readable the
// moment the process exits.
import CForkShim
import Glibc

struct ProcessHandle {
    let pid: pid_t
    /// The process's pidfd, registered with the pool descriptors.
    let pidfd: CInt

    /// Sends `signal`; false if the process is gone.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        forkpool_pidfd_send_signal(pidfd, signal) == 0
    }

    /// Waits until `deadline` (monotonic ns) at most for the process to exit; true if it has.
    func waitForExit(until deadline: UInt64) -> Bool {
        SystemCall.waitReadable(pidfd, until: deadline)
    }

    /// Closes the pidfd (and unregisters it).
    func close() { PoolDescriptors.close(pidfd) }

    /// Resident memory in bytes, from /proc/<pid>/statm (0 if unreadable).
    func residentBytes() -> Int {
        let fd = open("/proc/\(pid)/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return 0 }
        let fields = buffer[0..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }
}
