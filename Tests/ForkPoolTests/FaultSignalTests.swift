// Every fault signal, however it reaches a task (raised, pthread_kill, sent from another
// process, the real fault), ends its worker and fails only that task — with Swift's crash
// backtracer in the workers and without — and the pool serves the next task. A raised or sent
// signal that the backtracer swallowed would show here as a task that succeeded.
import CFaultInjection
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// A fault signal, named in test output ("SIGSEGV", not "11").
struct FaultSignal: Sendable, CustomTestStringConvertible {
    let number: Int32

    static let all = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS].map(FaultSignal.init)

    var testDescription: String { ForkPoolError.signalName(number) }
}

/// How the fault signal reaches the task.
enum SignalDelivery: String, Codable, CaseIterable, Sendable {
    /// `raise(signal)` in the task, which then returns normally.
    case raised
    /// `pthread_kill(pthread_self(), signal)` in the task, which then returns normally.
    case pthreadKill
    /// `kill` from the test process while the task waits for it.
    case sentFromAnotherProcess
    /// The real fault (CFaultInjection): a bad pointer, ud2, int3, division by zero, abort()...
    case realFault
}

/// A task for ``receiveFaultSignal(_:)``: a fault signal to receive, or none (a plain task).
struct SignalTask: Codable, Sendable {
    var signal: Int32?
    var delivery = SignalDelivery.raised
    var reportFD: Int32 = -1
    var value: Int
}

/// Receives the task's signal, then returns twice its value: a task that returns was not
/// ended by its signal. A sent signal is waited for up to 10 s (`Int.min` if none came).
@Sendable func receiveFaultSignal(_ task: SignalTask) throws -> Int {
    guard let signal = task.signal else { return task.value * 2 }
    switch task.delivery {
    case .raised:
        raise(signal)
    case .pthreadKill:
        pthread_kill(pthread_self(), signal)
    case .sentFromAnotherProcess:
        var pid = getpid()
        _ = write(task.reportFD, &pid, MemoryLayout<pid_t>.size)
        // Returns early only if a handler ran and returned: the signal was swallowed.
        if poll(nil, 0, 10_000) == 0 { return Int.min }
    case .realFault:
        let provoke = switch signal {
        case SIGSEGV: fault_segv
        case SIGBUS: fault_bus
        case SIGILL: fault_ill
        case SIGFPE: fault_fpe
        case SIGABRT: fault_abrt
        case SIGTRAP: fault_trap
        case SIGSYS: fault_sys
        default: preconditionFailure("no real fault for signal \(signal)")
        }
        if provoke() != 0 { throw TestFailure(description: "could not set up the fault: errno \(errno)") }
    }
    return task.value * 2
}

/// The process group of `pid`, or nil if it is gone.
func processGroup(of pid: pid_t) -> pid_t? {
    statFields(of: pid).flatMap { $0.count > 2 ? pid_t($0[2]) : nil }
}

/// Live (not zombie) `swift-backtrace` processes in process group `group`. A worker's
/// backtracer stays in the worker's group even once orphaned; counting only that group keeps
/// other test runs on the machine out of the count.
func swiftBacktraceProcesses(inProcessGroup group: pid_t) -> [pid_t] {
    directoryEntries("/proc").compactMap { name -> pid_t? in
        guard let pid = pid_t(name), readFile("/proc/\(pid)/comm") == "swift-backtrace\n",
              let fields = statFields(of: pid), fields.count > 2 else { return nil }
        return fields[0] != "Z" && pid_t(fields[2]) == group ? pid : nil
    }
}

/// A temporary file that stands in for this process's standard output and error while a pool
/// is created: its fork server and workers, and so their backtracers, keep it as theirs. (Swift's
/// backtracer writes to standard output.) A backtracer orphaned by a bug then holds this file,
/// not the pipe `swift test` reads to its end, which would hang the run.
final class OutputCapture {
    private let fd: Int32

    init() throws {
        var template = Array("/tmp/forkpool-output-XXXXXX".utf8CString)
        fd = mkstemp(&template)
        guard fd >= 0 else { throw TestFailure(description: "mkstemp: errno \(errno)") }
        unlink(&template)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    deinit { close(fd) }

    /// Runs `body` with standard output and error going to the file.
    func redirecting<T>(_ body: () throws -> T) rethrows -> T {
        fflush(nil)
        // Close-on-exec: the workers fork with these, but swift-backtrace (exec'd) must not hold them.
        let (savedOutput, savedError) = (fcntl(1, F_DUPFD_CLOEXEC, 0), fcntl(2, F_DUPFD_CLOEXEC, 0))
        _ = (dup2(fd, 1), dup2(fd, 2))
        defer {
            fflush(nil)
            _ = (dup2(savedOutput, 1), dup2(savedError, 2))
            _ = (close(savedOutput), close(savedError))
        }
        return try body()
    }

    /// Everything written to the file so far (read through a descriptor of its own: the
    /// offset of `fd` is shared with the workers).
    var text: String { readFile("/proc/self/fd/\(fd)") ?? "" }

    /// How many backtraces the file holds.
    var backtraceCount: Int { text.split(separator: "\n").count { $0.contains("Program crashed") } }
}

extension ForkPoolTests {
    @Suite struct FaultSignalTests {
        @Test(.disabled(if: sanitizer != nil,
                        "Swift's crash backtracer inside a sanitized, forked worker trips the sanitizer's own checks"),
              arguments: FaultSignal.all, SignalDelivery.allCases)
        func withBacktraces(signal: FaultSignal, delivery: SignalDelivery) throws {
            try expectSignalEndsOnlyItsTask(signal.number, delivery, backtraces: true)
        }

        @Test(arguments: FaultSignal.all, SignalDelivery.allCases)
        func withoutBacktraces(signal: FaultSignal, delivery: SignalDelivery) throws {
            try expectSignalEndsOnlyItsTask(signal.number, delivery, backtraces: false)
        }

        /// The task that receives `signal` fails with workerDied naming the signal, its task and
        /// its worker; no backtracer is left running; a second task on the pool succeeds.
        func expectSignalEndsOnlyItsTask(_ signal: Int32, _ delivery: SignalDelivery, backtraces: Bool) throws {
            let pids = PIDPipe()
            let output = try OutputCapture()
            let configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = backtraces }
            let pool = try output.redirecting { try ProcessPool(workers: 1, configuration: configuration, work: receiveFaultSignal) }
            defer { pool.shutdown() }
            let worker = pool.workerProcessIDs[0]
            let group = try #require(processGroup(of: worker))
            let backtracersBefore = swiftBacktraceProcesses(inProcessGroup: group).count

            let task = try pool.submit(SignalTask(signal: signal, delivery: delivery, reportFD: pids.writeEnd, value: 1))
            if delivery == .sentFromAnotherProcess {
                let pid = try #require(pids.nextPID(within: 30), "the task never started")
                #expect(pid == worker)
                #expect(kill(pid, signal) == 0)
            }
            do {
                let value = try task.get(timeout: .seconds(30))
                Issue.record("the signal did not end the task: \(value.map { "it returned \($0)" } ?? "still running after 30 s")")
            } catch {
                #expect(error.code == .workerDied)
                #expect(error.signal == signal)
                #expect(error.taskID == task.taskID)
                #expect(error.processID != nil)
                #expect(error.processID == worker)
            }

            if backtraces {
                #expect(waitUntil { swiftBacktraceProcesses(inProcessGroup: group).count <= backtracersBefore },
                        "a swift-backtrace outlived its worker")
                // Printed once (none for a signal the backtracer leaves alone: SIGSYS).
                let expected = hasSignalHandler(signal) ? 1 : 0
                #expect(output.backtraceCount == expected, "\(output.text)")
            } else {
                #expect(output.backtraceCount == 0, "\(output.text)")
            }
            #expect(try pool.submit(SignalTask(value: 21)).get(timeout: .seconds(30)) == 42)
        }

        /// A server's request handlers, each awaiting `submit(_:).value`: the request whose task
        /// raises SIGSEGV gets the error, the others their answers, and the next request is served.
        @Test(.disabled(if: sanitizer != nil,
                        "Swift's crash backtracer inside a sanitized, forked worker trips the sanitizer's own checks"))
        func anAsyncRequestWhoseTaskRaisesSIGSEGVGetsTheErrorAndTheNextIsServed() async throws {
            let output = try OutputCapture()
            let pool = try output.redirecting { try ProcessPool(workers: 2, work: receiveFaultSignal) }  // backtraces on
            defer { pool.shutdown() }
            let group = try #require(processGroup(of: pool.workerProcessIDs[0]))
            let workers = Set(pool.workerProcessIDs)

            /// One request: 200 and the answer, or 500 and the error.
            @Sendable func handle(_ request: SignalTask) async -> (taskID: UInt64?, response: Result<Int, ForkPoolError>) {
                var taskID: UInt64?
                do {
                    let future = try pool.submit(request)
                    taskID = future.taskID
                    return (taskID, .success(try await future.value))
                } catch {  // typed: ForkPoolError
                    return (taskID, .failure(error))
                }
            }
            let requests = (0..<6).map { SignalTask(signal: $0 == 2 ? SIGSEGV : nil, delivery: .raised, value: $0) }
            let responses = await withTaskGroup(of: (Int, UInt64?, Result<Int, ForkPoolError>).self) { handlers in
                for (index, request) in requests.enumerated() {
                    handlers.addTask {
                        let (taskID, response) = await handle(request)
                        return (index, taskID, response)
                    }
                }
                var responses = [(taskID: UInt64?, response: Result<Int, ForkPoolError>)?](repeating: nil, count: requests.count)
                for await (index, taskID, response) in handlers { responses[index] = (taskID, response) }
                return responses.compactMap { $0 }
            }
            try #require(responses.count == requests.count)
            for (index, (taskID, response)) in responses.enumerated() where index != 2 {
                #expect(try response.get() == index * 2)
                #expect(taskID != nil)
            }
            switch responses[2].response {
            case .success(let value):
                Issue.record("the SIGSEGV request was answered \(value)")
            case .failure(let error):
                #expect(error.code == .workerDied)
                #expect(error.signal == SIGSEGV)
                #expect(error.taskID == responses[2].taskID)
                #expect(error.processID.map(workers.contains) == true)
            }

            // The next request is served.
            #expect(try await handle(SignalTask(value: 21)).response.get() == 42)
            #expect(waitUntil { swiftBacktraceProcesses(inProcessGroup: group).isEmpty }, "a swift-backtrace outlived its worker")
            #expect(output.backtraceCount == 1, "\(output.text)")
        }
    }
}
