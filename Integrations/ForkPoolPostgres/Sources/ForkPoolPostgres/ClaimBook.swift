// ClaimBook: a worker host's claims — every claim it holds (waiting for a worker, running,
// or being written), how long each lease is known to last, and whose turn it is. The duties
// share it: the claimer adds claims, the lease keeper confirms or loses them, the runner takes
// turns and ends them.
//
//   add(claims, confirmed at send time) ─▶ held, waiting ─ takeTurns(): FIFO, one per pool
//   worker, and only while the lease has more than half its length left by the last
//   confirmation ─▶ run (a stale lease blocks the queue and asks the lease keeper to re-check
//   the claims by token first: after a stall, a claim another host may have taken is never
//   started) ─▶ jobEnded (the worker is free) ─▶ written ─▶ remove
@_spi(Integration) import ForkPool
import Synchronization

final class ClaimBook: Sendable {
    /// What a claim waiting for a worker gets.
    enum Turn: Sendable {
        /// Run it now.
        case run
        /// The claim was lost (or superseded): do not run it, write nothing.
        case lost
        /// The host stops, or the job was cancelled: do not run it (give it back, or record
        /// it cancelled).
        case released
    }

    struct Entry {
        let claim: JobClaim
        /// Until when the lease surely lasts: the send time of the statement that last set it,
        /// plus the lease (the database set it to its own `now()` + lease, later than that).
        var validUntil: ContinuousClock.Instant
        var future: Future<[UInt8]>?
        var lost = false
        var cancelRequested = false
        var released = false
        var started = false
    }

    private struct State {
        /// By lease token (a job this host claims again after its own lease lapsed is a second
        /// claim, not the first one's).
        var entries: [Int64: Entry] = [:]
        /// The token of each held job's newest claim.
        var tokenOfJob: [Int64: Int64] = [:]
        /// Tokens of claims waiting for a worker, in claim order from `waitingHead` on.
        var waiting: [Int64] = []
        var waitingHead = 0
        /// Waiting claims may have been lost or released: look through all of them.
        var needsSweep = false
        /// Claims handed to the pool and not ended.
        var running = 0
        /// Jobs ended since the host started (the claim sizer's rate).
        var ended = 0
        var stopping = false
        /// The claimer claims again once no more than this many claims are held.
        var claimAtOrBelow = Int.max
        /// Why the host stopped on its own: its pool shut down or broke.
        var poolFailure: ForkPoolError?
    }

    private let state = Mutex(State())
    /// Claims run at once: the pool's workers (none waits inside the pool, where a stall could
    /// not stop it).
    let slots: Int
    private let lease: Duration

    init(slots: Int, lease: Duration) {
        self.slots = max(slots, 1)
        self.lease = lease
    }

    var count: Int { state.withLock { $0.entries.count } }
    var endedCount: Int { state.withLock { $0.ended } }
    var heldJobIDs: [Int64] { state.withLock { $0.entries.values.map(\.claim.id).sorted() } }
    var isStopping: Bool { state.withLock { $0.stopping } }
    var poolFailure: ForkPoolError? { state.withLock { $0.poolFailure } }

    func stop(poolFailure: ForkPoolError? = nil) {
        state.withLock { state in
            state.stopping = true
            state.needsSweep = true
            if state.poolFailure == nil { state.poolFailure = poolFailure }
        }
    }

    /// Holds `claims`, their leases confirmed by a statement sent at `sent`; returns the
    /// futures of this host's earlier claims of the same jobs (lapsed, claimed again): stop them.
    func add(_ claims: [JobClaim], confirmedAt sent: ContinuousClock.Instant) -> [Future<[UInt8]>] {
        state.withLock { state in
            var superseded: [Future<[UInt8]>] = []
            for claim in claims {
                if let earlier = state.tokenOfJob[claim.id], let entry = state.entries[earlier] {
                    state.entries[earlier]?.lost = true
                    state.needsSweep = true
                    if let future = entry.future { superseded.append(future) }
                }
                state.entries[claim.token] = Entry(claim: claim, validUntil: sent + lease)
                state.tokenOfJob[claim.id] = claim.token
                if !claim.cancelRequested { state.waiting.append(claim.token) }
            }
            return superseded
        }
    }

    /// Woken when a stale lease blocks the turns: the lease keeper re-checks the claims.
    let staleLeaseSeen = WakeSignal()

    /// The pool has the claim's job: its future (to stop it). True when it must be stopped now.
    func started(_ token: Int64, future: Future<[UInt8]>) -> Bool {
        state.withLock { state in
            state.entries[token]?.future = future
            return state.entries[token].map { $0.lost || $0.cancelRequested || $0.released } ?? false
        }
    }

    /// The claim's job ended (its worker is free): the next claim may run (`takeTurns`).
    func jobEnded(_ token: Int64) {
        state.withLock { state in
            state.ended += 1
            if state.entries[token]?.started == true {
                state.entries[token]?.started = false
                state.running -= 1
            }
        }
    }

    /// The claim's outcome is written (or given up): the host no longer holds it. True when
    /// the claimer should claim again now.
    func remove(_ token: Int64) -> Bool {
        state.withLock { state in
            if let entry = state.entries.removeValue(forKey: token), state.tokenOfJob[entry.claim.id] == token {
                state.tokenOfJob[entry.claim.id] = nil
            }
            return state.entries.count <= state.claimAtOrBelow || state.stopping
        }
    }

    /// The claimer's next claim waits until no more than `count` claims are held (a wake per
    /// ended job would cost the busiest host a loop turn each).
    func claimAgain(atOrBelow count: Int) {
        state.withLock { $0.claimAtOrBelow = count }
    }

    func entry(_ token: Int64) -> Entry? { state.withLock { $0.entries[token] } }

    /// Every held claim, for a renewal.
    func held() -> [(id: Int64, token: Int64)] {
        state.withLock { $0.entries.values.map { (id: $0.claim.id, token: $0.claim.token) } }
    }

    /// A renewal sent at `sent` for `asked` answered `renewed` (token → cancel requested):
    /// the claims it names last another lease, the others asked about are lost. The futures to
    /// stop (lost or cancelled while running).
    func confirm(asked: [(id: Int64, token: Int64)], renewed: [Int64: Bool], sentAt sent: ContinuousClock.Instant)
        -> [Future<[UInt8]>] {
        let toStop = state.withLock { state -> [Future<[UInt8]>] in
            var futures: [Future<[UInt8]>] = []
            for claim in asked {
                guard var entry = state.entries[claim.token] else { continue }
                if let cancelRequested = renewed[claim.token] {
                    entry.validUntil = max(entry.validUntil, sent + lease)
                    if cancelRequested { entry.cancelRequested = true }
                } else {
                    entry.lost = true
                }
                if entry.lost || entry.cancelRequested { state.needsSweep = true }
                state.entries[claim.token] = entry
                // At every renewal until it ends.
                if entry.cancelRequested || entry.lost, let future = entry.future { futures.append(future) }
            }
            return futures
        }
        return toStop
    }

    /// Shutdown past its grace period: every held claim is given back; the futures to stop.
    func releaseAll() -> [Future<[UInt8]>] {
        let futures = state.withLock { state -> [Future<[UInt8]>] in
            state.stopping = true
            state.needsSweep = true
            var futures: [Future<[UInt8]>] = []
            for token in state.entries.keys {
                state.entries[token]?.released = true
                if let future = state.entries[token]?.future { futures.append(future) }
            }
            return futures
        }
        return futures
    }

    /// Takes the claims whose turn at a worker has come (marked started), and the waiting
    /// claims that were lost or must not run (cancelled, released); says whether a stale lease
    /// blocks the next turn (then wake the lease keeper).
    func takeTurns() -> (run: [JobClaim], resolved: [(JobClaim, Turn)], staleLease: Bool) {
        state.withLock { state in
            var run: [JobClaim] = [], resolved: [(JobClaim, Turn)] = []
            let stopping = state.stopping  // graceful shutdown: running jobs finish, waiting ones go back
            func resolution(_ entry: Entry?) -> Turn? {
                guard let entry, !entry.lost else { return .lost }
                return entry.released || entry.cancelRequested || stopping ? .released : nil
            }
            if state.needsSweep {
                state.needsSweep = false
                var kept: [Int64] = []
                for token in state.waiting[state.waitingHead...] {
                    let entry = state.entries[token]
                    if let turn = resolution(entry) {
                        if let entry { resolved.append((entry.claim, turn)) }
                    } else {
                        kept.append(token)
                    }
                }
                state.waiting = kept
                state.waitingHead = 0
            }
            let now = ContinuousClock.now
            var stale = false
            while state.running < slots && state.waitingHead < state.waiting.count {
                let token = state.waiting[state.waitingHead]
                let entry = state.entries[token]
                if let turn = resolution(entry) {
                    state.waitingHead += 1
                    if let entry { resolved.append((entry.claim, turn)) }
                    continue
                }
                // Half the lease must be left: a host that stalled re-checks its claims first.
                guard now + lease / 2 < entry!.validUntil else {
                    stale = true
                    break
                }
                state.waitingHead += 1
                state.entries[token]?.started = true
                state.running += 1
                run.append(entry!.claim)
            }
            if state.waitingHead > 64 && state.waitingHead * 2 > state.waiting.count {
                state.waiting.removeFirst(state.waitingHead)
                state.waitingHead = 0
            }
            return (run, resolved, stale)
        }
    }
}
