// StoredError: how a job's failure is kept in its row and given back — a ForkPoolError's code
// as a stable name (error_code) and its message (error_message), and back again on the
// submitting host, naming the job.
import ForkPool

enum StoredError {
    /// The stable name stored for `code` (the case's name).
    static func name(of code: ForkPoolError.Code) -> String {
        switch code {
        case .workFailed: "workFailed"
        case .workerDied: "workerDied"
        case .poolShutDown: "poolShutDown"
        case .cancelled: "cancelled"
        case .encodingFailed: "encodingFailed"
        case .decodingFailed: "decodingFailed"
        case .frameTooLarge: "frameTooLarge"
        case .malformedFrame: "malformedFrame"
        case .systemCallFailed: "systemCallFailed"
        case .invalidArgument: "invalidArgument"
        case .poolBroken: "poolBroken"
        case .timedOut: "timedOut"
        case .overloaded: "overloaded"
        case .unknownJob: "unknownJob"
        }
    }

    private static let codes: [String: ForkPoolError.Code] = {
        let all: [ForkPoolError.Code] = [.workFailed, .workerDied, .poolShutDown, .cancelled, .encodingFailed, .decodingFailed,
                                         .frameTooLarge, .malformedFrame, .systemCallFailed, .invalidArgument, .poolBroken,
                                         .timedOut, .overloaded, .unknownJob]
        return Dictionary(uniqueKeysWithValues: all.map { (name(of: $0), $0) })
    }()

    /// The error a failed job's row records, naming the job (`workFailed` for a name this
    /// version does not know).
    static func error(code: String?, message: String?, jobName: String, jobID: Int64) -> ForkPoolError {
        var error = ForkPoolError(code.flatMap { codes[$0] } ?? .workFailed, "job \(jobID): \(message ?? "failed")")
        error.jobName = jobName
        return error
    }
}
