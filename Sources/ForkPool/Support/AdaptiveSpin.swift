// AdaptiveSpin: how long to spin before going to sleep, learned from the waits before.
//
// Waking a sleeping thread on these virtual machines costs more than a socket round trip, so
// a thread that expects an answer within microseconds spins for it first, as adaptive mutexes
// do. The budget is bounded and adapts: the full limit while answers keep coming within it,
// halved after each one that did not (down to no spin at all), so a thread whose answers come
// late stops burning its core, and starts spinning again after one quick answer.
struct AdaptiveSpin {
    /// The longest spin, in nanoseconds.
    let limit: UInt64
    /// How long to spin next time, in nanoseconds.
    private(set) var budget: UInt64

    init(limit: UInt64) {
        self.limit = limit
        budget = limit
    }

    /// Learns from a wait that lasted `waited` nanoseconds (spinning and sleeping together).
    mutating func learn(waited: UInt64) {
        budget = waited <= limit ? limit : budget / 2
    }
}
