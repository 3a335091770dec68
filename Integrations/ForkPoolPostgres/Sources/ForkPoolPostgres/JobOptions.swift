// JobOptions and RetryBackoff: how one submitted job is to run (when, how urgently, once per
// key), and how a queue spaces the attempts of a job that crashed or timed out.
import Foundation
@_spi(Integration) import ForkPool

/// How a job submitted to a ``PostgresJobQueue`` is to run.
public struct JobOptions: Sendable, Hashable {
    /// Not before this time (the database's clock decides); nil: at once. Set this or ``delay``.
    public var notBefore: Date?
    /// Not before this long after the job is written (by the database's clock); nil: at once.
    public var delay: Duration?
    /// Claimed before every due job of a lower priority in its queue; within one priority, in
    /// the order written. -32768 … 32767; default 0.
    public var priority: Int
    /// At most one scheduled, queued or running job of the queue holds a key: a submit with the key of
    /// such a job writes nothing and returns that job's handle. Once the job has finished, the
    /// key is free again. Only for a single job (``PostgresJobQueue/submit(_:options:)``).
    public var uniqueKey: String?

    public init(notBefore: Date? = nil, delay: Duration? = nil, priority: Int = 0, uniqueKey: String? = nil) {
        self.notBefore = notBefore
        self.delay = delay
        self.priority = priority
        self.uniqueKey = uniqueKey
    }

    /// Checks the options; the reason they cannot be used, naming the option, or nil.
    func problem() -> String? {
        if notBefore != nil && delay != nil { return "set notBefore or delay, not both" }
        if let delay, delay < .zero { return "delay \(delay) is negative" }
        if !(-32768...32767).contains(priority) { return "priority \(priority) is outside -32768…32767" }
        if let uniqueKey, uniqueKey.isEmpty || uniqueKey.utf8.count > 1024 || uniqueKey.unicodeScalars.contains("\0") {
            return "a uniqueKey is 1 to 1024 bytes without NUL, not \"\(uniqueKey.prefix(40))\"(\(uniqueKey.utf8.count) bytes)"
        }
        return nil
    }
}

/// How long a job that crashed its worker or passed its deadline waits before
/// its next attempt: exponential, `initial × 2^(attempt − 1)` up to `maximum`, each delay moved
/// by a random ±`jitter` fraction so that jobs that failed together do not retry together.
public struct RetryBackoff: Sendable, Hashable {
    /// The delay after the first attempt. Default 1 s.
    public var initial: Duration
    /// The longest delay. Default 5 minutes.
    public var maximum: Duration
    /// The random spread, as a fraction of the delay: 0 (none) … 1. Default 0.2.
    public var jitter: Double

    public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(300), jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The delay before the attempt after attempt number `attempt` (1 for the first).
    public func delay(afterAttempt attempt: Int) -> Duration {
        let base = min(initial.seconds * pow(2, Double(max(attempt, 1) - 1)), maximum.seconds)
        let spread = jitter > 0 ? Double.random(in: -jitter...jitter) : 0
        // At most what an Int64 of milliseconds holds: a longer maximum (it passes `problem()`)
        // would trap the conversion, and with it the host that asks for a crashed job's delay.
        return .milliseconds(Int64(min(max(base * (1 + spread), 0) * 1000, 9.2e18)))
    }

    func problem() -> String? {
        if initial < .zero || maximum < initial { return "retryBackoff needs 0 ≤ initial ≤ maximum, not \(initial) and \(maximum)" }
        if !(0...1).contains(jitter) { return "retryBackoff.jitter \(jitter) is outside 0…1" }
        return nil
    }
}
