// OutcomeWriter: a worker host's writing duty — every job's outcome (result, failure, retry,
// cancellation, release), written in batches: one that ends while a write is under way goes
// into the next one, so a busy host makes one round trip for many outcomes. Under load (the
// last batch was not small) it lingers a millisecond to gather more; a lone job never waits.
// Each outcome still names its claim (id, lease token): one whose claim was lost matches no
// row; one an earlier, timed-out call already wrote is recognised by its token and state.
//
//   job ended ─ write(claim, settlement) ─▶ pending ─┬─ no write under way: this caller writes
//                                                    │  every pending outcome (QueueSQL.recordOutcomes)
//                                                    └─ else: waits for the writer's next batch
//   ◀── .written / .writtenEarlier / .lost, or the batch's error (the caller tries again)
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO
import Synchronization

final class OutcomeWriter: Sendable {
    private struct Pending {
        let claim: JobClaim
        let settlement: Settlement
        let continuation: CheckedContinuation<RecordedOutcome, any Error>
        var bytes: Int {
            if case .succeeded(let output) = settlement { return output.count }
            return 256
        }
    }

    private struct State {
        var pending: [Pending] = []
        var writing = false
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

    /// Records how `claim` ended.
    func write(_ claim: JobClaim, as settlement: Settlement) async throws -> RecordedOutcome {
        try await withCheckedThrowingContinuation { continuation in
            let writes = state.withLock { state -> Bool in
                state.pending.append(Pending(claim: claim, settlement: settlement, continuation: continuation))
                defer { state.writing = true }
                return !state.writing
            }
            if writes { Task { await self.writeWhilePending() } }
        }
    }

    /// The most result bytes one batch carries (PostgreSQL takes at most 1 GiB a message).
    static var maximumBatchBytes: Int { 64 << 20 }
    /// The most outcomes one batch carries.
    static var maximumBatchCount: Int { 2000 }

    private func writeWhilePending() async {
        while true {
            if state.withLock({ $0.lastBatchSize >= 8 && $0.pending.count < Self.maximumBatchCount / 2 }) {
                try? await Task.sleep(for: .milliseconds(1))  // under load: gather more
            }
            let batch = state.withLock { state -> [Pending] in
                guard !state.pending.isEmpty else {
                    state.writing = false  // the next write() starts a writer
                    return []
                }
                var bytes = 0
                let count = state.pending.prefix(Self.maximumBatchCount).prefix { entry in
                    defer { bytes += entry.bytes }
                    return bytes == 0 || bytes + entry.bytes <= Self.maximumBatchBytes
                }.count
                defer { state.pending.removeFirst(count) }
                state.lastBatchSize = count
                return Array(state.pending.prefix(count))
            }
            guard !batch.isEmpty else { return }
            do {
                let written = try await write(batch)
                for entry in batch { entry.continuation.resume(returning: written[entry.claim.id] ?? .lost) }
            } catch {
                guard batch.count > 1, (error as? PSQLError)?.code == .server else {
                    for entry in batch { entry.continuation.resume(throwing: error) }
                    continue
                }
                // The server refused the batch: one outcome may be the cause. Each on its own,
                // so the others are not held back by it.
                for entry in batch {
                    do {
                        entry.continuation.resume(returning: try await write([entry])[entry.claim.id] ?? .lost)
                    } catch {
                        entry.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }

    /// Writes `batch` with a time limit that grows with its size (a large result on a slow
    /// link takes longer than the call time-out).
    private func write(_ batch: [Pending]) async throws -> [Int64: RecordedOutcome] {
        let bytes = batch.reduce(0) { $0 + $1.bytes }
        let limit = callTimeout + .seconds(Double(bytes) / 10_000_000)
        let query = QueueSQL.recordOutcomes(batch.map { ($0.claim, $0.settlement) }, queue: queue)
        return try await withDeadline(limit, "recording \(batch.count) outcomes") { [client, logger] in
            var written: [Int64: RecordedOutcome] = [:]
            for try await (id, now) in try await client.query(query, logger: logger).decode((Int64, Bool).self) where id >= 0 {
                written[id] = now ? .written : .writtenEarlier
            }
            return written
        }
    }
}
