// OutcomeWriter: a worker host's writing duty — every job's outcome (result, failure, retry,
// cancellation, release), written in batches: one that ends while a write is under way goes
// into the next one, so a busy host makes one round trip for many outcomes. Under load (the
// last batch was not small) it lingers a millisecond to gather more; a lone job never waits.
// Each outcome still names its claim (id, lease token): one whose claim was lost matches no
// row; one an earlier, timed-out call already wrote is recognised by its token and state.
// While the database is away it tries again (backing off to 2 s), the outcomes kept in order;
// an outcome the database refuses for what it is (bad data, a limit) three times is recorded
// as the job's failure, saying so, and given up if even that is refused.
//
//   job ended ─ record(claim, settlement, done) ─▶ pending ─▶ the writer task: a batch ─▶
//   QueueSQL.recordOutcomes ─▶ done(.written / .writtenEarlier / .lost) for each, or
//   done(nil): given up (the host stopped, or the database refused it every way)
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO
import Synchronization

final class OutcomeWriter: Sendable {
    typealias Done = @Sendable (RecordedOutcome?) -> Void

    private struct Pending {
        let claim: JobClaim
        var settlement: Settlement
        let done: Done
        /// Written on its own (a batch with it was refused by the server).
        var alone = false
        var refusals = 0
        /// Its settlement already became the failure "the database refused it".
        var refusalRecorded = false
        var bytes: Int {
            if case .succeeded(let output) = settlement { return output.count }
            return 256
        }
    }

    private struct State {
        var pending: [Pending] = []
        var writing = false
        var stopped = false
        var lastBatchSize = 0
    }

    private let client: PostgresClient
    private let queue: String
    private let callTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())

    init(client: PostgresClient, queue: String, callTimeout: Duration, logger: Logger) {
        self.client = client
        self.queue = queue
        self.callTimeout = callTimeout
        self.logger = logger
    }

    /// Records how `claim` ended; `done` gets what became of it (on the writer's task).
    func record(_ claim: JobClaim, as settlement: Settlement, done: @escaping Done) {
        let start = state.withLock { state -> Bool? in
            guard !state.stopped else { return nil }
            state.pending.append(Pending(claim: claim, settlement: settlement, done: done))
            defer { state.writing = true }
            return !state.writing
        }
        switch start {
        case nil: done(nil)
        case true?: Task { await self.writeWhilePending() }
        case false?: break
        }
    }

    /// Records how `claim` ended and returns what became of it.
    /// - Throws: ``ForkPoolError/Code/poolShutDown`` when the writer stopped before it was written.
    func write(_ claim: JobClaim, as settlement: Settlement) async throws -> RecordedOutcome {
        let outcome = await withCheckedContinuation { continuation in
            record(claim, as: settlement) { continuation.resume(returning: $0) }
        }
        guard let outcome else { throw ForkPoolError(.poolShutDown, "job \(claim.id)'s outcome was not written: the host stopped") }
        return outcome
    }

    /// Gives up every outcome not yet written, and any recorded from now on.
    func stop() {
        let abandoned = state.withLock { state -> [Pending] in
            state.stopped = true
            defer { state.pending = [] }
            return state.pending
        }
        for entry in abandoned { entry.done(nil) }
    }

    /// The most result bytes one batch carries (PostgreSQL takes at most 1 GiB a message).
    static var maximumBatchBytes: Int { 64 << 20 }
    /// The most outcomes one batch carries.
    static var maximumBatchCount: Int { 2000 }

    private func writeWhilePending() async {
        var failures = FailureStreak()
        while true {
            if state.withLock({ $0.lastBatchSize >= 8 && $0.pending.count < Self.maximumBatchCount / 2 }) {
                try? await Task.sleep(for: .milliseconds(1))  // under load: gather more
            }
            let batch = state.withLock { state -> [Pending] in
                guard !state.pending.isEmpty, !state.stopped else {
                    state.writing = false  // the next record() starts a writer
                    return []
                }
                var bytes = 0
                let count = state.pending[0].alone ? 1 : state.pending.prefix(Self.maximumBatchCount).prefix { entry in
                    defer { bytes += entry.bytes }
                    return !entry.alone && (bytes == 0 || bytes + entry.bytes <= Self.maximumBatchBytes)
                }.count
                defer { state.pending.removeFirst(count) }
                state.lastBatchSize = count
                return Array(state.pending.prefix(count))
            }
            guard !batch.isEmpty else { return }
            do {
                let written = try await write(batch)
                failures.succeeded()
                for entry in batch { entry.done(written[entry.claim.token] ?? .lost) }
            } catch {
                failures.failed(batch.count == 1 ? "record job \(batch[0].claim.id)'s outcome"
                                : "record \(batch.count) jobs' outcomes (\(batch.prefix(5).map { String($0.claim.id) }.joined(separator: ", "))…)",
                                error, logger: logger)
                let (retry, abandoned) = handleFailure(of: batch, error)
                let stopped = state.withLock { state -> Bool in
                    if !state.stopped { state.pending.insert(contentsOf: retry, at: 0) }
                    return state.stopped
                }
                for entry in abandoned + (stopped ? retry : []) { entry.done(nil) }
                try? await Task.sleep(for: .milliseconds(min(100 * failures.count, 2000)))
            }
        }
    }

    /// What to try again after `error`, and what to give up.
    private func handleFailure(of batch: [Pending], _ error: any Error) -> (retry: [Pending], abandoned: [Pending]) {
        // Away, restarting, a deadlock: the same batch again.
        guard let refused = error as? PSQLError, refused.code == .server, refused.isPermanentRefusal else { return (batch, []) }
        // The server refused the batch for what it holds: one outcome may be the cause. Each on
        // its own next, so the others are not held back by it.
        guard batch.count == 1 else { return (batch.map { var entry = $0; entry.alone = true; return entry }, []) }
        var entry = batch[0]
        entry.refusals += 1
        guard entry.refusals >= 3 else { return ([entry], []) }
        // The same write cannot succeed: record the refusal as the job's failure; if even that
        // is refused, give up (the lease lapses and the job runs again elsewhere).
        guard !entry.refusalRecorded else { return ([], [entry]) }
        let reason = refused.serverInfo?[.message] ?? "\(refused.code)"
        entry.settlement = .failed(ForkPoolError(.workFailed, "the host could not record the job's outcome: the database refused it: \(reason)"))
        entry.refusalRecorded = true
        entry.refusals = 0
        return ([entry], [])
    }

    /// Writes `batch` with a time limit that grows with its size (a large result on a slow
    /// link takes longer than the call time-out).
    private func write(_ batch: [Pending]) async throws -> [Int64: RecordedOutcome] {
        let bytes = batch.reduce(0) { $0 + $1.bytes }
        let limit = callTimeout + .seconds(Double(bytes) / 10_000_000)
        let query = QueueSQL.recordOutcomes(batch.map { ($0.claim, $0.settlement) }, queue: queue)
        return try await withDeadline(limit, "recording \(batch.count) outcomes") { [client, logger] in
            var written: [Int64: RecordedOutcome] = [:]
            for try await (token, now) in try await client.query(query, logger: logger).decode((Int64, Bool).self) where token >= 0 {
                written[token] = now ? .written : .writtenEarlier
            }
            return written
        }
    }
}

extension PSQLError {
    /// An error the same statement would meet again: SQLSTATE class 22 (data exception) or 54
    /// (program limit exceeded). Deadlocks, shutdowns, failovers and lost connections pass.
    var isPermanentRefusal: Bool {
        guard let state = serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("54")
    }
}
