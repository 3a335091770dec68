// MonotonicClock: the pool's one clock (CLOCK_MONOTONIC, immune to wall-clock changes) and
// the conversions every deadline goes through.
import Glibc

/// Nanoseconds on the monotonic clock.
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// The `poll` timeout, in milliseconds, that wakes at `deadline` (monotonic ns) at the latest:
/// rounded up, so the wake is never early; at most a minute (a loop polls again); -1 (wait
/// without limit) when there is no deadline; 0 when it has passed.
func pollTimeout(until deadline: UInt64?, now: UInt64) -> Int32 {
    guard let deadline else { return -1 }
    return deadline > now ? Int32(min((deadline - now) / 1_000_000 + 1, 60_000)) : 0
}

extension Duration {
    /// The duration in seconds, for messages and metrics.
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) * 1e-18
    }

    /// The duration in whole nanoseconds, to add to a monotonic time: 0 when negative, and at
    /// most about 146 years (2^62 ns), so that `now + nanoseconds` cannot overflow.
    var nanoseconds: UInt64 {
        guard self > .zero else { return 0 }
        let (whole, fraction) = components
        let cap: UInt64 = 1 << 62
        guard UInt64(whole) < cap / 1_000_000_000 else { return cap }
        return min(cap, UInt64(whole) * 1_000_000_000 + UInt64(fraction / 1_000_000_000))
    }
}
