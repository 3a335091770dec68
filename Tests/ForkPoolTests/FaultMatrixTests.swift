// The fault-injection matrix: every way a task can go wrong × every place it can happen,
// each provoked for real inside a worker, each asserting what the caller sees and that the
// pool still serves afterwards.
import ForkPoolTestSupport
import Glibc
import Testing
@_spi(Testing) @_spi(Tuning) @_spi(Integration) @testable import ForkPool

enum Fault: String, Codable, CaseIterable, Sendable {
    case throwError, exit, abort, segfault, killedFromOutside, hang
}

enum FaultPhase: String, Codable, CaseIterable, Sendable {
    case work, decodingInput, encodingOutput
}

struct InjectedFailure: Error, CustomStringConvertible {
    var description: String { "injected failure" }
}

/// Does the damage, in the worker only (the parent encodes inputs and decodes outputs too).
func inject(_ fault: Fault?, reportTo fd: Int32) throws {
    guard let fault, WorkerLoop.socketInThisWorker >= 0 else { return }
    switch fault {
    case .throwError:
        throw InjectedFailure()
    case .exit:
        exitLikeUserCode(7)
    case .abort:
        abort()
    case .segfault:
        UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = 1
    case .killedFromOutside:
        var pid = getpid()
        _ = write(fd, &pid, MemoryLayout<pid_t>.size)
        while true { pause() }
    case .hang:
        while true { pause() }
    }
}

/// The input: decoding it in the worker triggers the fault when the phase says so.
struct FaultPlan: Codable, Sendable {
    var fault: Fault?
    var phase: FaultPhase
    var reportFD: Int32
    var value: Int

    init(fault: Fault?, phase: FaultPhase = .work, reportFD: Int32 = -1, value: Int) {
        self.fault = fault
        self.phase = phase
        self.reportFD = reportFD
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        fault = try container.decodeIfPresent(Fault.self, forKey: .fault)
        phase = try container.decode(FaultPhase.self, forKey: .phase)
        reportFD = try container.decode(Int32.self, forKey: .reportFD)
        value = try container.decode(Int.self, forKey: .value)
        if phase == .decodingInput { try inject(fault, reportTo: reportFD) }
    }
}

/// The output: encoding it in the worker triggers the fault when the phase says so.
struct FaultyOutput: Codable, Sendable, Equatable {
    var value: Int
    var plan: FaultPhase
    var fault: Fault?
    var reportFD: Int32

    func encode(to encoder: any Encoder) throws {
        if plan == .encodingOutput { try inject(fault, reportTo: reportFD) }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(value, forKey: .value)
        try container.encode(plan, forKey: .plan)
        try container.encode(fault, forKey: .fault)
        try container.encode(reportFD, forKey: .reportFD)
    }
}

@Sendable func runPlan(_ plan: FaultPlan) throws -> FaultyOutput {
    if plan.phase == .work { try inject(plan.fault, reportTo: plan.reportFD) }
    return FaultyOutput(value: plan.value * 2, plan: plan.phase, fault: plan.fault, reportFD: plan.reportFD)
}

extension ForkPoolTests {
    @Suite struct FaultMatrixTests {
        @Test(arguments: Fault.allCases, FaultPhase.allCases)
        func faultFailsOnlyItsTaskAndThePoolServes(fault: Fault, phase: FaultPhase) throws {
            let pids = PIDPipe()
            let configuration = ProcessPoolConfiguration.with { $0.workerCrashBacktraces = false; $0.taskTimeout = .seconds(1) }
            let pool = try ProcessPool(workers: 2, configuration: configuration, work: runPlan)
            defer { pool.shutdown() }
            let bad = try pool.submit(FaultPlan(fault: fault, phase: phase, reportFD: pids.writeEnd, value: 1))
            let good = try (2...9).map { try pool.submit(FaultPlan(fault: nil, value: $0)) }
            if fault == .killedFromOutside {
                #expect(kill(pids.nextPID(), SIGKILL) == 0)
            }
            let error = expectForkPoolError { _ = try bad.get() }
            #expect(error?.taskID == bad.taskID)
            switch fault {
            case .throwError:
                let expected: ForkPoolError.Code = switch phase {
                case .work: .workFailed
                case .decodingInput: .decodingFailed
                case .encodingOutput: .encodingFailed
                }
                #expect(error?.code == expected)
                #expect(error?.message.contains("injected failure") == true)
            case .exit:
                #expect(error?.code == .workerDied)
                #expect(error?.exitStatus == 7)
            case .abort:
                #expect(error?.code == .workerDied)
                #expect(error?.signal == SIGABRT)
            case .segfault:
                #expect(error?.code == .workerDied)
                #expect(error?.signal == SIGSEGV)
            case .killedFromOutside:
                #expect(error?.code == .workerDied)
                #expect(error?.signal == SIGKILL)
            case .hang:
                #expect(error?.code == .timedOut)
            }
            #expect(error?.processID != nil)
            // Every other task, queued beside the bad one, succeeds.
            #expect(try good.map { try $0.get().value } == (2...9).map { $0 * 2 })
            // And the pool serves on, with its full strength of workers.
            #expect(try pool.map((1...6).map { FaultPlan(fault: nil, value: $0) }).map(\.value) == (1...6).map { $0 * 2 })
            #expect(waitUntil { pool.workerProcessIDs.count == 2 })
        }
    }
}
