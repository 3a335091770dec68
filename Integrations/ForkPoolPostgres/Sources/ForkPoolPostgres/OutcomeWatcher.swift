// OutcomeWatcher: the submitting side's wait for results — every `JobHandle.value` awaited
// through one queue registers here; one loop looks them up whenever a worker host's NOTIFY
// says which jobs finished, and all of them at least every poll interval (a notification is
// lost while the listening connection is down: polling is the fallback).
//
//   value ─ register(id) ─▶ loop (started with the first waiter, ends a poll interval after the last):
//       listener: LISTEN forkpool_done ─ NOTIFY (payload: job ids, comma-separated) ─▶ hinted ids, wake
//       wake ─▶ SELECT … WHERE id = ANY(hinted or newly awaited ∩ waiting; every poll
//               interval: all waiting) AND state is final ─▶ resume those waiters
//
// The database may go away meanwhile: the loop keeps trying, and the waiters keep waiting.
import Logging
import PostgresNIO
import Synchronization

final class OutcomeWatcher: Sendable {
    /// A finished job, as its row records it.
    enum Outcome: Sendable {
        case succeeded([UInt8])
        case failed(code: String?, message: String?)
        case cancelled(message: String?)
        /// No such row: deleted (retention, purge) or never written.
        case missing
    }

    private struct State {
        var waiters: [Int64: [UInt64: CheckedContinuation<Outcome?, Never>]] = [:]
        var nextToken: UInt64 = 0
        /// Waits given a token but not registered yet; a cancellation in between takes the
        /// token out, and the wait then ends at once instead of registering.
        var unregistered: Set<UInt64> = []
        var looping = false
        /// Jobs a notification named, or awaited since the last look-up: looked up next.
        var toLookUp: Set<Int64> = []
    }

    private let client: PostgresClient
    private let pollInterval: Duration
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeSignal = WakeSignal()

    init(client: PostgresClient, pollInterval: Duration, logger: Logger) {
        self.client = client
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Waits until job `id` is finished and returns how; nil if the calling task was
    /// cancelled first (the job itself is left alone).
    func outcome(of id: Int64) async -> Outcome? {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            state.unregistered.insert(state.nextToken)
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome?, Never>) in
                let startLoop = state.withLock { state -> Bool? in
                    guard state.unregistered.remove(token) != nil else { return nil }
                    state.waiters[id, default: [:]][token] = continuation
                    state.toLookUp.insert(id)
                    defer { state.looping = true }
                    return !state.looping
                }
                switch startLoop {
                case nil: continuation.resume(returning: nil)  // the waiting task is cancelled
                case true?: Task { await self.loop() }
                case false?: wakeSignal.wake()
                }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> CheckedContinuation<Outcome?, Never>? in
                guard let waiter = state.waiters[id]?.removeValue(forKey: token) else {
                    state.unregistered.remove(token)  // not registered yet: now it will not be
                    return nil
                }
                if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
                return waiter
            }
            cancelled?.resume(returning: nil)
        }
    }

    /// Looks the waiting jobs up until none is left.
    private func loop() async {
        let listener = Task { await listen() }
        defer { listener.cancel() }
        var failures = FailureStreak()
        var lastFullLookUp = ContinuousClock.now
        var idleSince: ContinuousClock.Instant?
        while true {
            let now = ContinuousClock.now
            let everyone = now - lastFullLookUp >= pollInterval || failures.isFailing
            let ids = state.withLock { state -> [Int64]? in
                if state.waiters.isEmpty {
                    // Kept listening for a poll interval: a caller awaiting jobs one after
                    // another does not set LISTEN up again for each.
                    if let idleSince, now - idleSince >= pollInterval {
                        state.looping = false
                        state.toLookUp = []
                        return nil
                    }
                    if idleSince == nil { idleSince = now }
                    return []
                }
                idleSince = nil
                defer { state.toLookUp = [] }
                return everyone ? Array(state.waiters.keys) : state.toLookUp.filter { state.waiters[$0] != nil }
            }
            guard let ids else { return }
            if everyone { lastFullLookUp = ContinuousClock.now }
            if !ids.isEmpty {
                do {
                    try await resolve(ids)
                    failures.succeeded()
                } catch {
                    failures.failed("look up job outcomes", error, logger: logger)
                }
            }
            await wakeSignal.sleep(timeout: pollInterval)
        }
    }

    /// Looks `ids` up and resumes the waiters of those that finished.
    private func resolve(_ ids: [Int64]) async throws {
        let finished = try await withDeadline(.seconds(10), "looking up job outcomes") { [client, logger] in
            try await Self.lookUp(ids, client: client, logger: logger)
        }
        for (id, outcome) in finished {
            let waiters = state.withLock { $0.waiters.removeValue(forKey: id) } ?? [:]
            for waiter in waiters.values { waiter.resume(returning: outcome) }
        }
    }

    private static func lookUp(_ ids: [Int64], client: PostgresClient, logger: Logger) async throws -> [(Int64, Outcome)] {
        var finished: [(Int64, Outcome)] = []
        var found: Set<Int64> = []
        for try await (id, state, result, code, message) in try await client.query(QueueSQL.lookUp(ids: ids), logger: logger)
            .decode((Int64, String, ByteBuffer?, String?, String?).self) {
            found.insert(id)
            switch JobState(rawValue: state) {
            case .succeeded: finished.append((id, .succeeded(result.map { Array($0.readableBytesView) } ?? [])))
            case .cancelled: finished.append((id, .cancelled(message: message)))
            case .failed: finished.append((id, .failed(code: code, message: message)))
            case .scheduled, .queued, .running, nil: break
            }
        }
        for id in ids where !found.contains(id) { finished.append((id, .missing)) }
        return finished
    }

    /// Makes the next look-up cover every waiting job.
    private func lookUpEveryoneNext() {
        state.withLock { state in state.toLookUp.formUnion(state.waiters.keys) }
        wakeSignal.wake()
    }

    /// LISTEN forkpool_done while the loop runs, waking it at each notification (which names
    /// the finished job); once listening (again), every waiting job is looked up.
    private func listen() async {
        await listenContinually(on: "forkpool_done", client: client, logger: logger,
                                onListening: { self.lookUpEveryoneNext() },
                                onNotification: { payload in
                                    let ids = payload.split(separator: ",").compactMap { Int64($0) }
                                    self.state.withLock { $0.toLookUp.formUnion(ids) }
                                    self.wakeSignal.wake()
                                })
    }
}
