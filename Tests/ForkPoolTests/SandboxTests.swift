// Jailed workers (`ProcessPoolConfiguration.sandbox`), provoked for real: a strict worker tries
// what the sandbox forbids — a TCP connection to a listener this test runs, an IPv6 socket,
// running /bin/true, reading and writing outside its paths, allocating past its memory limit,
// opening past its file limit — and the kernel's answer comes back; with `.killOnViolation` the
// worker dies and the error names the call. Each time the pool goes on serving, the other worker
// is untouched, and an unrestricted pool beside it can still do the same things.
import CFaultInjection
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

/// A TCP listener on 127.0.0.1 (an ephemeral port), non-blocking.
final class LocalListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        try #require(fd >= 0 && bound)
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Accepts whatever connection is pending: true if one was.
    func acceptedOne() -> Bool {
        let client = accept(fd, nil, nil)
        if client >= 0 { close(client) }
        return client >= 0
    }

    deinit { close(fd) }
}

extension ForkPoolTests {
    @Suite struct SandboxTests {
        /// A pool that answers probes, with `sandbox` (the backtracer off: crashes are expected).
        func pool(_ sandbox: WorkerSandbox, workers: Int = 2) throws(ForkPoolError) -> ProcessPool<SandboxProbe, String> {
            try ProcessPool(workers: workers, configuration: .with {
                $0.sandbox = sandbox
                $0.workerCrashBacktraces = false
            }) { (probe: SandboxProbe) in probe.run() }
        }

        /// A fresh directory under /tmp with a file `inside.txt` in it.
        func directory(_ name: String) throws -> String {
            var template = Array("/tmp/forkpool-sandbox-\(name)-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            try #require(made != nil)
            let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fd = open("\(path)/inside.txt", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            try #require(fd >= 0 && write(fd, "inside", 6) == 6)
            close(fd)
            return path
        }

        func remove(_ directory: String) {
            for entry in directoryEntries(directory) { unlink("\(directory)/\(entry)") }
            rmdir(directory)
        }

        @Test func aStrictWorkerCannotConnectAnywhereButTheUnrestrictedOneCan() throws {
            let listener = try LocalListener()
            let jailed = try pool(.strict())
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.connectTCP(port: listener.port)).get() == failed(EPERM))
            #expect(try jailed.submit(.socketIPv6).get() == failed(EPERM))
            #expect(!listener.acceptedOne(), "the listener saw a connection from a jailed worker")
            // Beside it, the same work unrestricted.
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.connectTCP(port: listener.port)).get() == "ok")
            #expect(waitUntil { listener.acceptedOne() })
            #expect(try open.submit(.socketIPv6).get() == "ok")
            // The jailed pool goes on serving.
            #expect(try jailed.submit(.pid).get().hasPrefix("ok"))
        }

        @Test func aStrictWorkerReachesNoUnixSocketSendsToNoAddressAndTypesIntoNoTerminal() throws {
            let path = "/tmp/forkpool-sandbox-\(getpid()).sock"
            let abstract = "forkpool-sandbox-\(getpid())"
            unlink(path)
            let named = fault_listen_unix(path, nil), hidden = fault_listen_unix(nil, abstract)
            defer { close(named); close(hidden); unlink(path) }
            try #require(named >= 0 && hidden >= 0)
            func acceptedOne(_ fd: Int32) -> Bool {
                let client = accept(fd, nil, nil)
                if client >= 0 { close(client) }
                return client >= 0
            }
            let jailed = try pool(.strict())
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.connectUnix(path: path, abstractName: nil)).get() == failed(EPERM))
            #expect(try jailed.submit(.connectUnix(path: nil, abstractName: abstract)).get() == failed(EPERM))
            #expect(!acceptedOne(named) && !acceptedOne(hidden))
            #expect(try jailed.submit(.sendToAddress).get() == failed(EPERM))
            #expect(try jailed.submit(.typeIntoTerminal).get() == failed(EPERM))
            #expect(try jailed.submit(.newUserNamespace).get() == failed(EPERM))
            #expect(try jailed.submit(.cloneIntoNewUserNamespace).get() == failed(EPERM))
            #expect(try jailed.submit(.session).get() == "leader")
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.connectUnix(path: path, abstractName: nil)).get() == "ok")
            #expect(try open.submit(.connectUnix(path: nil, abstractName: abstract)).get() == "ok")
            #expect(waitUntil { acceptedOne(named) } && waitUntil { acceptedOne(hidden) })
            #expect(try open.submit(.sendToAddress).get() != failed(EPERM))  // the kernel's own refusal
            #expect(try open.submit(.typeIntoTerminal).get() != failed(EPERM))  // standard input is no terminal
            #expect(try open.submit(.cloneIntoNewUserNamespace).get() == "ok")
            #expect(try open.submit(.newUserNamespace).get() == "ok")
            #expect(try open.submit(.session).get() == "member")
        }

        @Test func killOnViolationLeavesWhatIsAllowedWorkingAndAProgramWithManyDescriptorsCanStartStrictWorkers() throws {
            // Exec allowed, network denied, kill on violation: a program still starts (its
            // child resets its signals, SIGSYS among them), and a forbidden call still kills.
            var sandbox = WorkerSandbox(network: .denied)
            sandbox.onViolation = .killOnViolation
            let jailed = try pool(sandbox)
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.spawnTrue).get() == "ok")
            let error = try #require(throws: ForkPoolError.self) { try jailed.submit(.socketIPv6).get() }
            #expect(error.message.contains("system call socket"), "\(error)")
            // A busy program: more descriptors open than a strict worker may have.
            let held = (0..<300).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
            defer { held.forEach { close($0) } }
            #expect(held.allSatisfy { $0 >= 0 })
            let strict = try pool(.strict())
            defer { strict.shutdown() }
            #expect(try strict.submit(.openFiles(count: 300)).get().hasPrefix(failed(EMFILE)))
        }

        @Test func aRulePathSwappedForASymlinkIsRefusedWhenTheForkServerStartsAgain() throws {
            // A readable directory is replaced by a symlink to a secret one, then the fork server
            // dies: the new server must not grant the secret in the directory's place.
            let base = try directory("swap")
            let secret = try directory("secret")
            defer { unlink("\(base)/models"); rmdir("\(base)/models"); [base, secret].forEach(remove) }
            try #require(mkdir("\(base)/models", 0o755) == 0)
            let jailed = try pool(.strict(readable: ["\(base)/models"]))
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.read(path: "\(secret)/inside.txt")).get() == failed(EACCES))
            let server = try #require(jailed.forkServerProcessID)
            let before = Set(jailed.workerProcessIDs)
            try #require(rmdir("\(base)/models") == 0 && symlink(secret, "\(base)/models") == 0)
            kill(server, SIGKILL)
            // Until a worker of a new fork server answers, or the pool refuses work.
            var replaced = false
            #expect(waitUntil {
                do {
                    let answer = try jailed.submit(.pid).get(timeout: .seconds(10)) ?? ""
                    replaced = !before.contains(Int32(answer.dropFirst(3)) ?? 0)
                    return replaced
                } catch {
                    return true
                }
            })
            let answer = Result { try jailed.submit(.read(path: "\(base)/models/inside.txt")).get(timeout: .seconds(10)) }
            #expect((try? answer.get()) != "ok inside", "a new fork server granted the symlink's target (replaced: \(replaced))")
        }

        @Test func aStrictWorkerCannotRunAProgram() throws {
            let jailed = try pool(.strict())
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.execveTrue).get() == failed(EPERM))
            #expect(try jailed.submit(.spawnTrue).get() == failed(EPERM))
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.spawnTrue).get() == "ok")
        }

        @Test func aStrictWorkerReadsAndWritesOnlyWhereItWasAllowed() throws {
            let readable = try directory("readable")
            let writable = try directory("writable")
            let outside = try directory("outside")
            defer { [readable, writable, outside].forEach(remove) }
            let jailed = try pool(.strict(readable: [readable], writable: [writable]))
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.read(path: "\(readable)/inside.txt")).get() == "ok inside")
            #expect(try jailed.submit(.read(path: "\(writable)/inside.txt")).get() == "ok inside")
            #expect(try jailed.submit(.read(path: "\(outside)/inside.txt")).get() == failed(EACCES))
            #expect(try jailed.submit(.read(path: "/etc/shadow")).get() == failed(EACCES))
            #expect(try jailed.submit(.write(path: "\(writable)/new.txt", text: "written")).get() == "ok")
            #expect(readFile("\(writable)/new.txt") == "written")
            #expect(try jailed.submit(.write(path: "\(outside)/new.txt", text: "x")).get() == failed(EACCES))
            #expect(try jailed.submit(.write(path: "\(readable)/new.txt", text: "x")).get() == failed(EACCES))
            #expect(access("\(outside)/new.txt", F_OK) != 0 && access("\(readable)/new.txt", F_OK) != 0)
            // The parent's own files stay out of reach: its environment through /proc.
            #expect(try jailed.submit(.read(path: "/proc/\(getpid())/environ")).get().hasPrefix("errno="))
            // Unrestricted, the same paths are open (and /etc/shadow to root).
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.read(path: "\(outside)/inside.txt")).get() == "ok inside")
            #expect(try open.submit(.write(path: "\(outside)/new.txt", text: "y")).get() == "ok")
            if geteuid() == 0 { #expect(try open.submit(.read(path: "/etc/shadow")).get().hasPrefix("ok")) }
        }

        @Test func aWorkerOverItsMemoryLimitFailsItsTaskAsACrashNamingTheLimitAndIsReplaced() throws {
            var sandbox = WorkerSandbox()
            let used = try #require(RuntimePaths.dataBytesOfThisProcess())
            sandbox.limits.memoryBytes = used + (256 << 20)
            let jailed = try pool(sandbox)
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.allocate(megabytes: 64)).get().hasPrefix("ok"))
            let before = Set(jailed.workerProcessIDs)
            let error = try #require(throws: ForkPoolError.self) { try jailed.submit(.allocate(megabytes: 1024)).get() }
            #expect(error.code == .workerDied)
            #expect(error.message.contains("ran out of memory at its sandbox's limit of \(used + (256 << 20)) bytes"), "\(error)")
            #expect(try jailed.submit(.allocate(megabytes: 64)).get().hasPrefix("ok"))
            #expect(waitUntil { Set(jailed.workerProcessIDs).intersection(before).count == 1 && jailed.workerProcessIDs.count == 2 })
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.allocate(megabytes: 1024)).get().hasPrefix("ok"))
        }

        @Test func aWorkerPastItsOpenFileLimitGetsEMFILE() throws {
            var sandbox = WorkerSandbox()
            sandbox.limits.openFiles = 32
            let jailed = try pool(sandbox)
            defer { jailed.shutdown() }
            let answer = try jailed.submit(.openFiles(count: 100)).get()
            #expect(answer.hasPrefix(failed(EMFILE) + " after "), "\(answer)")
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.openFiles(count: 100)).get() == "ok opened 100")
        }

        /// The worker dies of its sandbox before the caller that sent it the task by lane has
        /// booked the send: the caller still reads what the worker wrote before it went, so
        /// the error names the call (it once described the death before reading the note).
        @Test func aViolationReportedBeforeTheLaneSendIsBookedIsStillNamed() throws {
            var sandbox = WorkerSandbox.strict()
            sandbox.onViolation = .killOnViolation
            let jailed = try pool(sandbox, workers: 1)
            defer { jailed.shutdown() }
            #expect(waitUntil { jailed.openLaneCount == 1 })
            let pid = jailed.workerProcessIDs[0]
            Dispatcher.testPauseAfterLaneSend = {
                Dispatcher.testPauseAfterLaneSend = nil
                _ = waitUntil { !jailed.workerProcessIDs.contains(pid) }  // its exit is in: the lane is detached
            }
            defer { Dispatcher.testPauseAfterLaneSend = nil }
            let error = try #require(throws: ForkPoolError.self) { try jailed.submit(.connectTCP(port: 9)).get() }
            #expect(error.code == .workerDied && error.signal == SIGSYS)
            #expect(error.message.contains("system call socket, which the sandbox forbids"), "\(error)")
        }

        @Test func killOnViolationKillsTheWorkerAtTheCallAndTheErrorNamesIt() throws {
            var sandbox = WorkerSandbox.strict()
            sandbox.onViolation = .killOnViolation
            let jailed = try pool(sandbox)
            defer { jailed.shutdown() }
            let before = jailed.workerProcessIDs
            let error = try #require(throws: ForkPoolError.self) { try jailed.submit(.connectTCP(port: 9)).get() }
            #expect(error.code == .workerDied && error.signal == SIGSYS)
            #expect(error.message.contains("system call socket, which the sandbox forbids"), "\(error)")
            let exec = try #require(throws: ForkPoolError.self) { try jailed.submit(.execveTrue).get() }
            #expect(exec.message.contains("system call execve"), "\(exec)")
            // It goes on serving, with replacements as jailed as the first workers.
            #expect(try jailed.submit(.pid).get().hasPrefix("ok"))
            #expect(waitUntil { jailed.workerProcessIDs.count == 2 && Set(jailed.workerProcessIDs) != Set(before) })
            let confinement = try jailed.submit(.confinement).get()
            #expect(confinement.contains("Seccomp: 2"), "\(confinement)")
        }

        @Test func theOtherWorkerIsUntouchedByAJailedWorkersDeath() throws {
            var sandbox = WorkerSandbox.strict()
            sandbox.onViolation = .killOnViolation
            let jailed = try pool(sandbox)
            defer { jailed.shutdown() }
            let pids = jailed.workerProcessIDs
            #expect(pids.count == 2)
            let error = try #require(throws: ForkPoolError.self) { try jailed.submit(.socketIPv6).get() }
            #expect(error.signal == SIGSYS)
            #expect(waitUntil { Set(jailed.workerProcessIDs).count == 2 && Set(jailed.workerProcessIDs) != Set(pids) })
            let survivors = Set(jailed.workerProcessIDs).intersection(pids)
            #expect(survivors.count == 1)
            #expect(survivors.allSatisfy { kill($0, 0) == 0 })
        }

        @Test func aJailedWorkerHoldsNothingOfTheProgramAndNoPrivilegeAndCannotSignalIt() throws {
            // A descriptor this process holds when the pool starts (a database connection, say).
            let held = open("/dev/null", O_RDONLY)
            defer { close(held) }
            let jailed = try pool(.strict())
            defer { jailed.shutdown() }
            #expect(try jailed.submit(.descriptor(held)).get() == failed(EBADF))
            #expect(try jailed.submit(.signal(pid: getpid())).get() == failed(EPERM))
            let confinement = try jailed.submit(.confinement).get()
            #expect(confinement.contains("NoNewPrivs: 1") && confinement.contains("Seccomp: 2")
                    && confinement.contains("CapEff: 0000000000000000"), "\(confinement)")
            let open = try pool(WorkerSandbox())
            defer { open.shutdown() }
            #expect(try open.submit(.descriptor(held)).get() == "ok")
            #expect(try open.submit(.signal(pid: getpid())).get() == "ok")
        }

        @Test func aFreshJobPoolJailsItsWorkersAndEveryReplacement() throws {
            let readable = try directory("fresh")
            let outside = try directory("fresh-outside")
            defer { [readable, outside].forEach(remove) }
            let listener = try LocalListener()
            let jailed = try ProcessJobPool(workers: 2, startMethod: .fresh, configuration: .with {
                $0.sandbox = .strict(readable: [readable])
                $0.workerCrashBacktraces = false
            }, jobs: [SandboxProbeJob.self])
            defer { jailed.shutdown() }
            for round in 0..<2 {
                #expect(try jailed.submit(SandboxProbeJob(probe: .connectTCP(port: listener.port))).get() == failed(EPERM))
                #expect(try jailed.submit(SandboxProbeJob(probe: .read(path: "\(readable)/inside.txt"))).get() == "ok inside")
                #expect(try jailed.submit(SandboxProbeJob(probe: .read(path: "\(outside)/inside.txt"))).get() == failed(EACCES))
                #expect(try jailed.submit(SandboxProbeJob(probe: .spawnTrue)).get() == failed(EPERM))
                if round == 0 {
                    // Kill both workers: their replacements must be as jailed.
                    let pids = jailed.workerProcessIDs
                    pids.forEach { kill($0, SIGKILL) }
                    #expect(waitUntil { jailed.workerProcessIDs.count == 2 && Set(jailed.workerProcessIDs).isDisjoint(with: pids) })
                }
            }
            #expect(!listener.acceptedOne())
        }

        @Test func badPathsAndLimitsAreRefusedAtCreationWithClearErrors() throws {
            let cases: [(WorkerSandbox, String)] = [
                (.strict(readable: [""]), "a readable path is empty"),
                (.strict(readable: ["relative/dir"]), "the readable path \"relative/dir\" is not absolute"),
                (.strict(writable: ["/no/such/forkpool/dir"]), "the writable path /no/such/forkpool/dir cannot be used: No such file"),
                (.strict(readable: ["/tmp\nx"]), "contains a NUL or a line break"),
                (WorkerSandbox(limits: .init(memoryBytes: -1)), "limits.memoryBytes must be at least"),
                (WorkerSandbox(limits: .init(memoryBytes: 1 << 20)), "limits.memoryBytes must be at least"),
                (WorkerSandbox(limits: .init(memoryBytes: 100 << 20)), "leaves a worker no room"),
                (WorkerSandbox(limits: .init(openFiles: 0)), "limits.openFiles must be at least 16, not 0"),
                (WorkerSandbox(limits: .init(openFiles: -5)), "limits.openFiles must be at least 16, not -5"),
                (WorkerSandbox(limits: .init(fileSizeBytes: -1)), "limits.fileSizeBytes must not be negative"),
                (WorkerSandbox(limits: .init(openFiles: 1 << 40)), "limits.openFiles 1099511627776 is above"),
                (.strict(readable: Array(repeating: "/tmp", count: 80)), "a sandbox takes at most"),
            ]
            for (sandbox, message) in cases {
                let error = try #require(throws: ForkPoolError.self) { try pool(sandbox) }
                #expect(error.code == .invalidArgument, "\(error)")
                #expect(error.message.contains(message), "\(error)")
            }
            #expect(waitUntil { childProcessIDs().isEmpty }, "a refused sandbox left processes behind: \(childProcessIDs())")
        }

        @Test func fuzzedPathsAndLimitsGetAClearErrorOrAWorkingPool() throws {
            // Paths built from the pieces that trip parsers (separators, dots, line breaks, NUL,
            // spaces, long runs) and limits around every boundary: each either makes a pool that
            // answers, or is refused with `.invalidArgument` and a message naming the setting.
            var generator = SystemRandomNumberGenerator()
            let pieces = ["/", "//", ".", "..", "tmp", "etc", " ", "\n", "\0", "é", "-", String(repeating: "a", count: 300), ""]
            let limits = [Int.min, -1, 0, 1, 15, 16, 1 << 20, 63 << 20, 1 << 40, Int.max]
            var accepted = 0
            for round in 0..<120 {
                var sandbox = WorkerSandbox()
                if round % 2 == 0 {
                    let path = (0..<Int.random(in: 0...4, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
                    sandbox.fileSystem = round % 4 == 0 ? .restricted(readable: [path], writable: []) : .restricted(readable: [], writable: [path])
                } else {
                    sandbox.limits = .init(memoryBytes: limits.randomElement(using: &generator),
                                           openFiles: limits.randomElement(using: &generator),
                                           fileSizeBytes: limits.randomElement(using: &generator))
                }
                do {
                    let jailed = try pool(sandbox, workers: 1)
                    #expect(try jailed.submit(.pid).get().hasPrefix("ok"))
                    jailed.shutdown()
                    accepted += 1
                } catch {
                    #expect(error.code == .invalidArgument, "\(sandbox): \(error)")
                    #expect(error.message.hasPrefix("sandbox: "), "\(error)")
                }
            }
            #expect(accepted < 120)
        }

        @Test func aKernelWithoutLandlockOrSeccompMakesCreationThrowInsteadOfRunningOpen() throws {
            let refusals: [(Int, WorkerSandbox, String)] = [
                (fault_syscall_landlock_create_ruleset(), .strict(), "this kernel has no Landlock"),
                (fault_syscall_seccomp(), WorkerSandbox(network: .denied), "this kernel cannot filter system calls"),
            ]
            for (number, sandbox, message) in refusals {
                let outcome = Outcome()
                try runWithout(number) {
                    outcome.result = Result { () throws(ForkPoolError) in try pool(sandbox).shutdown() }
                }
                let error = try #require(throws: ForkPoolError.self) { try outcome.result?.get() }
                #expect(error.code == .poolBroken && error.message.contains(message), "\(error)")
            }
        }

        @Test func aWorkerThatCannotEnterItsSandboxNeverStartsAndCreationSaysWhy() throws {
            // The pool's own check passes (it never restricts itself); each worker's
            // landlock_restrict_self then fails, as on a kernel that refuses it.
            let outcome = Outcome()
            try runWithout(fault_syscall_landlock_restrict_self()) {
                outcome.result = Result { () throws(ForkPoolError) in try pool(.strict()).shutdown() }
            }
            let error = try #require(throws: ForkPoolError.self) { try outcome.result?.get() }
            #expect(error.code == .poolBroken, "\(error)")
            #expect(error.message.contains("its sandbox could not be applied: landlock_restrict_self failed: EPERM"), "\(error)")
        }

        final class Outcome: @unchecked Sendable {
            var result: Result<Void, ForkPoolError>?
        }

        /// Runs `body` on a thread whose kernel answers system call `number` with EPERM.
        func runWithout(_ number: Int, _ body: @escaping () -> Void) throws {
            final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
            let box = Unmanaged.passRetained(Box(body))
            defer { box.release() }
            let rc = fault_run_without_syscall(number, number == fault_syscall_landlock_restrict_self() ? EPERM : ENOSYS, { context in
                Unmanaged<Box>.fromOpaque(context!).takeUnretainedValue().body()
            }, box.toOpaque())
            try #require(rc == 0)
        }
    }
}
