// FailureStreak: how a loop that talks to the database counts the calls that failed in a row
// and says so — a warning at the first failure and every `every`-th after it, not one per try
// while the database is away — and learns that the streak ended.
import Logging

struct FailureStreak {
    /// Failures in a row; 0 once a call succeeded.
    private(set) var count = 0
    /// A warning every this many failures (and at the first).
    var every = 30

    var isFailing: Bool { count > 0 }

    mutating func succeeded() { count = 0 }

    /// Counts a failure; warns "could not \(what); trying again" at the first and every `every`-th.
    mutating func failed(_ what: @autoclosure () -> String, _ error: any Error, logger: Logger) {
        count += 1
        if count == 1 || count % every == 0 {
            logger.warning("could not \(what()); trying again", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
