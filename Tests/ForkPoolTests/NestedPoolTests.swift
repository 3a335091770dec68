// Pools inside a ProcessPool's worker: a ProcessPool or ThreadPool made, used and shut down
// within a task leaves the worker as it found it; the worker's registry of pool descriptors
// names only what the worker really has open; an inner worker's crash fails the inner task only.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// What a task that ran a pool of its own saw in its worker process.
struct NestedReport: Codable, Sendable, Equatable {
    var pid: pid_t
    var descriptorsBefore: Int
    var descriptorsAfter: Int
    var threadsBefore: Int
    var threadsAfter: Int
    var childrenAfter: [pid_t]
    var answers: [Int]
}

/// What an inner pool's failure looked like from the outer worker's task.
struct InnerFailure: Codable, Sendable {
    var pid: pid_t
    var code: String?
    var signal: Int32?
    var innerWorker: pid_t?
}

/// A worker's registry of pool descriptors, as the worker sees it.
struct RegistrySnapshot: Codable, Sendable {
    var pid: pid_t
    var socket: CInt
    var registered: [CInt]
    /// Registered descriptors that are not open in the worker.
    var closed: [CInt]
}

/// Where a symbolic link points (for /proc/PID/fd/N: "socket:[inode]", a path, ...).
func linkTarget(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count >= 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Threads of this process.
func threadCount() -> Int {
    directoryEntries("/proc/self/task").count
}

/// In a worker: makes an inner pool (squares plus `base`), uses it (`submit` and `map`), shuts
/// it down, and reports what the worker had before and after.
func reportOnInnerPool(base: Int, _ makeInner: () throws -> any WorkerPool<Int, Int>) -> NestedReport {
    let descriptorsBefore = openFileDescriptorCount()
    let threadsBefore = threadCount()
    var answers: [Int] = []
    do {
        let inner = try makeInner()
        let futures = try (1...4).map { try inner.submit($0) }
        answers = try futures.map { try $0.get() }
        answers += try inner.map(Array(5...20))
        inner.shutdown()
    } catch {
        answers = [-1]
    }
    return NestedReport(pid: getpid(), descriptorsBefore: descriptorsBefore, descriptorsAfter: openFileDescriptorCount(),
                        threadsBefore: threadsBefore, threadsAfter: threadCount(), childrenAfter: childProcessIDs(),
                        answers: answers)
}

/// Runs one inner pool per base in `outer`'s workers and checks each worker's report: the right
/// answers, and its descriptors, threads and children as before (the inner pool's fork server
/// and workers reaped; a thread pool starts no process at all).
func expectInnerPoolsLeaveTheWorkersAsTheyWere(_ outer: ProcessPool<Int, NestedReport>, bases: [Int],
                                               sourceLocation: SourceLocation = #_sourceLocation) throws {
    let reports = try outer.map(bases)
    for (base, report) in zip(bases, reports) {
        #expect(report.answers == (1...20).map { $0 * $0 + base }, sourceLocation: sourceLocation)
        #expect(report.descriptorsAfter == report.descriptorsBefore, sourceLocation: sourceLocation)
        #expect(report.threadsAfter == report.threadsBefore, sourceLocation: sourceLocation)
        #expect(report.childrenAfter.isEmpty, sourceLocation: sourceLocation)
        #expect(outer.workerProcessIDs.contains(report.pid), sourceLocation: sourceLocation)
    }
}

extension ForkPoolTests {
    @Suite(.disabled(if: sanitizer == "thread", "ThreadSanitizer cannot start threads in a forked child of a multi-threaded process (its own CHECK fails; an inner pool starts a dispatcher thread in the worker)"))
    struct NestedPoolTests {
        let quiet = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false }

        @Test func processPoolInsideAWorkerLeavesItAsItWas() throws {
            let outer = try ProcessPool(workers: 2) { (base: Int) -> NestedReport in
                reportOnInnerPool(base: base) { try ProcessPool(workers: 2) { (n: Int) -> Int in n * n + base } }
            }
            defer { outer.shutdown() }
            try expectInnerPoolsLeaveTheWorkersAsTheyWere(outer, bases: [100, 200, 300])
            // And again in the same workers: nothing accumulated from the first inner pools.
            let again = try outer.map([1, 2])
            #expect(again.allSatisfy { $0.descriptorsAfter == $0.descriptorsBefore && $0.answers.count == 20 })
        }

        @Test func threadPoolInsideAWorkerLeavesItAsItWas() throws {
            let outer = try ProcessPool(workers: 2) { (base: Int) -> NestedReport in
                reportOnInnerPool(base: base) { try ThreadPool(workers: 3) { (n: Int) -> Int in n * n + base } }
            }
            defer { outer.shutdown() }
            try expectInnerPoolsLeaveTheWorkersAsTheyWere(outer, bases: [7, 8, 9])
        }

        // The registry a worker inherits must be reset to the worker's own socket: a worker
        // forked by the fork server must not list the server's control socket (closed at fork),
        // and must list its own socket, which a pool made inside the worker then keeps out of
        // its fork server and workers.
        @Test func aWorkersDescriptorRegistryListsOnlyWhatItHasOpen() throws {
            let outer = try ProcessPool(workers: 2) { (_: Int) -> RegistrySnapshot in
                let registered = PoolDescriptors.registered
                return RegistrySnapshot(pid: getpid(), socket: WorkerLoop.socketInThisWorker,
                                        registered: registered.sorted(),
                                        closed: registered.filter { fcntl($0, F_GETFD) == -1 }.sorted())
            }
            defer { outer.shutdown() }
            for snapshot in try outer.map(Array(0..<4), chunkSize: 1) {
                #expect(snapshot.socket >= 0)
                #expect(snapshot.closed.isEmpty,
                        "worker \(snapshot.pid) registers descriptors it does not have open: \(snapshot.closed) (registry \(snapshot.registered), own socket \(snapshot.socket))")
                #expect(Set(snapshot.registered).isSubset(of: [snapshot.socket]),
                        "worker \(snapshot.pid) registers more than its own socket \(snapshot.socket): \(snapshot.registered)")
            }
        }

        @Test func aPoolInsideAWorkerDoesNotHandTheWorkersSocketToItsProcesses() throws {
            // Each process of the inner pool (fork server, workers) that holds a descriptor for
            // the outer worker's socket: it would keep that connection to the outer pool open.
            let outer = try ProcessPool(workers: 1) { (_: Int) -> [String] in
                let socket = WorkerLoop.socketInThisWorker
                guard let target = linkTarget("/proc/self/fd/\(socket)") else { return ["no socket \(socket)"] }
                guard let inner = try? ProcessPool(workers: 2, work: { (n: Int) -> Int in n }) else { return ["no inner pool"] }
                defer { inner.shutdown() }
                _ = try? inner.map([1, 2, 3, 4])
                let processes = [("fork server", inner.forkServerProcessID ?? -1)] + inner.workerProcessIDs.map { ("worker", $0) }
                var holders: [String] = []
                for (role, pid) in processes {
                    for name in directoryEntries("/proc/\(pid)/fd") where linkTarget("/proc/\(pid)/fd/\(name)") == target {
                        holders.append("inner \(role) \(pid) fd \(name)")
                    }
                }
                return holders
            }
            defer { outer.shutdown() }
            let holders = try outer.submit(0).get()
            #expect(holders.isEmpty, "the outer worker's socket is held by \(holders)")
        }

        @Test(arguments: ["SIGKILL", "null write"])
        func innerWorkersCrashFailsOnlyTheInnerTask(how: String) throws {
            let quiet = self.quiet
            let outer = try ProcessPool(workers: 2, configuration: quiet) { (n: Int) -> InnerFailure in
                guard n == 0 else { return InnerFailure(pid: getpid(), code: nil, signal: nil, innerWorker: nil) }
                do {
                    let inner = try ProcessPool(workers: 1, configuration: quiet) { (_: Int) -> Int in
                        if how == "SIGKILL" {
                            raise(SIGKILL)
                        } else {
                            UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = 1
                        }
                        return 0
                    }
                    defer { inner.shutdown() }
                    let innerWorker = inner.workerProcessIDs.first
                    _ = try inner.submit(1).get()
                    return InnerFailure(pid: getpid(), code: "success", signal: nil, innerWorker: innerWorker)
                } catch let error as ForkPoolError {
                    return InnerFailure(pid: getpid(), code: error.code.words, signal: error.signal,
                                        innerWorker: error.processID)
                } catch {
                    return InnerFailure(pid: getpid(), code: "\(error)", signal: nil, innerWorker: nil)
                }
            }
            defer { outer.shutdown() }
            let workersBefore = Set(outer.workerProcessIDs)
            let crashing = try outer.submit(0)
            let others = try (1...6).map { try outer.submit($0) }
            let failure = try crashing.get()
            #expect(failure.code == ForkPoolError.Code.workerDied.words)
            #expect(failure.signal == (how == "SIGKILL" ? SIGKILL : SIGSEGV))
            #expect(failure.innerWorker != nil && failure.innerWorker != failure.pid)
            #expect(workersBefore.contains(failure.pid))
            for other in others {
                let answer = try other.get()
                #expect(answer.code == nil && workersBefore.contains(answer.pid))
            }
            // The outer worker that ran the crashing inner pool is the same process, still serving.
            #expect(Set(outer.workerProcessIDs) == workersBefore)
            #expect(outer.stats.restarts == 0)
            let later = try outer.map(Array(1...8))
            #expect(later.allSatisfy { workersBefore.contains($0.pid) })
        }
    }
}
