// AdaptiveSpin: how long to spin before going to sleep, learned from the waits before.
//
// Waking a sleeping thread on these virtual machines costs more than a socket round trip, so
// a thread that expects an answer within microseconds spins for it first, as adaptive mutexes
// do. The budget is bounded and adapts: the full limit while answers keep coming within it,
// halved after each one that did not (down to no spin at all), so a thread whose answers come
// late stops burning its core, and starts spinning again after one quick answer.
import Glibc
import Synchronization

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

/// The spin of threads waiting on a future, shared by the whole process: how many may spin at
/// once (one per two cores, at least one) and for how long (adaptive, as `AdaptiveSpin`, but
/// learned from every waiter's waits). Spinning pays only while the thread or worker it waits
/// for has a core of its own and answers within microseconds; with many callers waiting at
/// once (a server), waits are long and spinners would take the cores from the very threads
/// and workers they wait for: the budget falls to nothing and everyone sleeps at once.
enum SpinSlots {
    private static let inUse = Atomic<Int>(0)
    static let limit = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)) / 2)
    private static let spinBudget = Atomic<Int>(Int.max)
    private static let waitsWithoutSpin = Atomic<Int>(0)
    /// With no budget left, one wait in this many still spins, to notice when waits are short
    /// again.
    static let probeEvery = 32

    /// How many `pause`s the next waiter may spin, at most `maximum`.
    static func budget(maximum: Int) -> Int {
        let budget = min(spinBudget.load(ordering: .relaxed), maximum)
        if budget > 0 { return budget }
        return waitsWithoutSpin.wrappingAdd(1, ordering: .relaxed).newValue % probeEvery == 0 ? maximum : 0
    }

    /// Learns from a spin: one that saw the answer restores the full budget, one that ran out
    /// halves it (racy on purpose: it is a hint).
    static func learn(answeredWhileSpinning: Bool, maximum: Int) {
        let current = min(spinBudget.load(ordering: .relaxed), maximum)
        spinBudget.store(answeredWhileSpinning ? maximum : current / 2, ordering: .relaxed)
    }

    /// Takes a slot if one is free; a thread that got one must `release()` it.
    static func acquire() -> Bool {
        var current = inUse.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = inUse.compareExchange(expected: current, desired: current + 1, ordering: .acquiring)
            if exchanged { return true }
            current = original
        }
        return false
    }

    static func release() {
        inUse.subtract(1, ordering: .releasing)
    }
}
