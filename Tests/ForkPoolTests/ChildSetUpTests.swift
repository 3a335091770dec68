// What a freshly forked fork server or worker must not keep of its parent: another pool's
// descriptors, the fork server's own (its control socket, its signalfd, the pool's end of the
// worker's socket), the host program's signal handlers and dispositions, a blocked signal
// mask. Each test looks inside the real processes (/proc) or makes the host's set-up bite.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// What descriptor `fd` of process `pid` is (`socket:[123]`, `anon_inode:[signalfd]`, a path).
func descriptorTarget(_ pid: pid_t, _ fd: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    let count = readlink("/proc/\(pid)/fd/\(fd)", &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Every open descriptor's target, of process `pid`.
func descriptorTargets(of pid: pid_t) -> [String] {
    directoryEntries("/proc/\(pid)/fd").compactMap { descriptorTarget(pid, $0) }
}

/// The blocked-signal mask of this process's thread, from /proc (`SigBlk`).
func blockedSignalMask() -> UInt64 {
    guard let status = readFile("/proc/thread-self/status"),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }) else { return .max }
    return UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: " \t"), radix: 16) ?? .max
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension ForkPoolTests {
    @Suite struct ChildSetUpTests {
        @Test func aForkServerAndItsWorkersHoldNoneOfAnotherPoolsDescriptors() throws {
            let first = try ProcessPool(workers: 1) { (n: Int) -> Int in n }
            defer { first.shutdown() }
            #expect(try first.submit(1).get() == 1)
            // The first pool's sockets, as this process holds them (each socket's inode is its own;
            // an eventfd or pidfd reads the same as any other, so those cannot be told apart).
            let firstPools = Set(PoolDescriptors.registered.compactMap { descriptorTarget(getpid(), "\($0)") }
                .filter { $0.hasPrefix("socket:") })
            #expect(!firstPools.isEmpty)
            let second = try ProcessPool(workers: 2) { (n: Int) -> Int in n }
            defer { second.shutdown() }
            let processes = [try #require(second.forkServerProcessID)] + second.workerProcessIDs
            for pid in processes {
                let leaked = Set(descriptorTargets(of: pid)).intersection(firstPools)
                #expect(leaked.isEmpty, "process \(pid) of the second pool holds the first pool's \(leaked.sorted())")
            }
        }

        @Test func aWorkerHoldsOnlyItsOwnSocketOfThePoolsAndNoSignalfd() throws {
            // Everything this process has open before the pool: a worker may inherit these.
            let inheritable = Set(descriptorTargets(of: getpid()))
            let pool = try ProcessPool(workers: 1) { (_: Int) -> [String] in descriptorTargets(of: getpid()) }
            defer { pool.shutdown() }
            let targets = try pool.submit(0).get()
            let fresh = targets.filter { !inheritable.contains($0) }
            // Its own socket; not the fork server's control socket, not the pool's end of its
            // own socketpair, not the fork server's signalfd.
            #expect(fresh.filter { $0.hasPrefix("socket:") }.count == 1, "a worker's sockets beyond its own: \(fresh)")
            #expect(!targets.contains { $0.contains("signalfd") }, "a worker holds the fork server's signalfd")
        }

        @Test func aWorkerRunsWithNoSignalBlocked() throws {
            // The fork server blocks SIGCHLD for its signalfd; its workers must not inherit that.
            let pool = try ProcessPool(workers: 1) { (_: Int) -> UInt64 in blockedSignalMask() }
            defer { pool.shutdown() }
            #expect(try pool.submit(0).get() == 0)
        }

        @Test func theHostsSignalHandlersAndIgnoredSignalsDoNotReachAWorker() throws {
            // A host with a SIGTERM handler and SIGINT ignored: a worker must still die of them.
            let previousTerm = signal(SIGTERM) { _ in }
            let previousInt = signal(SIGINT, SIG_IGN)
            defer {
                signal(SIGTERM, previousTerm)
                signal(SIGINT, previousInt)
            }
            let pids = PIDPipe()
            let pool = try ProcessPool(workers: 1, configuration: .with { $0.workerCrashBacktraces = false }) {
                (reportTo: Int32) -> Int in
                var pid = getpid()
                _ = write(reportTo, &pid, MemoryLayout<pid_t>.size)
                for _ in 0..<1000 { usleep(10_000) }  // at most 10 s: a worker that ignores the signal fails the test, not the run
                return 0
            }
            defer { pool.shutdown() }
            for sent in [SIGTERM, SIGINT] {
                let task = try pool.submit(pids.writeEnd)
                #expect(kill(pids.nextPID(), sent) == 0)
                let error = expectForkPoolError { _ = try task.get() }
                #expect(error?.code == .workerDied)
                #expect(error?.signal == sent, "a worker kept the host's disposition of \(ForkPoolError.signalName(sent))")
            }
        }

        /// In a child process where SIGPIPE has its default action (see
        /// `writingToAWorkerThatDiedNeverRaisesSIGPIPE`). Linux raises no SIGPIPE for a
        /// SOCK_SEQPACKET socket (the control socket's kind) whatever the flags; the same send
        /// on a stream socket is what shows that `forkpool_send_with_fds` passes MSG_NOSIGNAL.
        @Test func aControlMessageToAGoneForkServerFailsWithEPIPEInsteadOfSIGPIPE() async {
            await #expect(processExitsWith: .success) {
                signal(SIGPIPE, SIG_DFL)
                for stream in [false, true] {
                    var fds: [Int32] = [0, 0]
                    #expect((stream ? forkpool_socketpair(&fds) : forkpool_seqpacket_pair(&fds)) == 0)
                    close(fds[1])
                    let message: [UInt8] = Array(repeating: 0, count: 16)
                    let sent = message.withUnsafeBytes { forkpool_send_with_fds(fds[0], $0.baseAddress, $0.count, nil, 0) }
                    let sendErrno = errno
                    #expect(sent == -1)
                    #expect(sendErrno == EPIPE)
                    close(fds[0])
                }
            }
        }
    }
}

extension ForkPoolTests {
    /// Standard output shared with the workers: what a task prints is out before its result,
    /// and what the host had buffered before the pool is printed once, not once per process.
    @Suite struct SharedOutputTests {
        @Test func whatATaskPrintsIsOutBeforeItsResultAndTheHostsBufferIsNotCopied() throws {
            // A file: stdio buffers it fully, nothing leaves by itself. The workers keep it as
            // their standard output.
            let output = try OutputCapture()
            let pool = try output.redirecting {
                // Buffered in this process when the pool forks its fork server (no newline: the
                // test runner may have made standard output line-buffered).
                print("[host text before the pool]", terminator: "")
                return try ProcessPool(workers: 1) { (n: Int) -> Int in
                    print("[task \(n) printed this]", terminator: "")
                    return n
                }
            }
            defer { pool.shutdown() }
            #expect(try pool.submit(7).get() == 7)
            // The worker flushed before it answered: the text is in the file now.
            #expect(output.text.contains("[task 7 printed this]"), "the task's output was still buffered in the worker")
            pool.shutdown()
            let copies = output.text.components(separatedBy: "[host text before the pool]").count - 1
            #expect(copies == 1, "the host's buffered text was printed \(copies) times")
        }
    }
}
