// StoredError: how a job's failure is kept in its row and given back — a ForkPoolError's code
// by its stable name (error_code) and its message (error_message), and back again on the
// submitting host.
import ForkPool

enum StoredError {
    /// The error a failed job's row records (`workFailed` for a code name this version does
    /// not know).
    static func error(code: String?, message: String?, jobID: Int64) -> ForkPoolError {
        ForkPoolError(code.flatMap(ForkPoolError.Code.init(name:)) ?? .workFailed, "job \(jobID): \(message ?? "failed")")
    }
}
