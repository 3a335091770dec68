// ResultWriter: a worker host's successful results, written in batches — a job that finishes
// while a write is under way goes into the next one, so a busy host makes one round trip for
// many results instead of one each. Each result still names its claim (id, lease token): a
// result whose claim was lost matches no row and is reported dropped.
//
//   job done ─ write(claim, output) ─▶ pending ─┬─ no write under way: this caller writes
//                                               │  every pending result in one UPDATE … FROM unnest
//                                               └─ else: waits for the writer's next batch
//   ◀── written (true) / dropped (false) / the batch's error (the caller tries again)
import Logging
import PostgresNIO
import Synchronization

final class ResultWriter: Sendable {
    private struct Pending {
        let claim: JobClaim
        let output: [UInt8]
        let continuation: CheckedContinuation<Bool, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var writing = false
    }

    private let client: PostgresClient
    private let callTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())

    init(client: PostgresClient, callTimeout: Duration, logger: Logger) {
        self.client = client
        self.callTimeout = callTimeout
        self.logger = logger
    }

    /// Records `output` as the result of `claim`; false when the claim was no longer this
    /// host's (nothing written).
    func write(_ claim: JobClaim, output: [UInt8]) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            let writes = state.withLock { state -> Bool in
                state.pending.append(Pending(claim: claim, output: output, continuation: continuation))
                defer { state.writing = true }
                return !state.writing
            }
            if writes { Task { await self.writeWhilePending() } }
        }
    }

    /// The most result bytes one batch carries (PostgreSQL takes at most 1 GiB a message).
    static var maximumBatchBytes: Int { 64 << 20 }

    private func writeWhilePending() async {
        while true {
            let batch = state.withLock { state -> [Pending] in
                // The pending results in order, up to maximumBatchBytes (at least one).
                var bytes = 0
                let count = state.pending.prefix { entry in
                    defer { bytes += entry.output.count }
                    return bytes == 0 || bytes + entry.output.count <= Self.maximumBatchBytes
                }.count
                defer { state.pending.removeFirst(count) }
                if state.pending.isEmpty { state.writing = false }
                return Array(state.pending.prefix(count))
            }
            guard !batch.isEmpty else { return }
            do {
                let written = try await write(batch)
                for entry in batch { entry.continuation.resume(returning: written.contains(entry.claim.id)) }
            } catch {
                guard batch.count > 1, (error as? PSQLError)?.code == .server else {
                    for entry in batch { entry.continuation.resume(throwing: error) }
                    continue
                }
                // The server refused the batch: one result may be the cause. Each on its own,
                // so the others are not held back by it.
                for entry in batch {
                    do {
                        entry.continuation.resume(returning: try await write([entry]).contains(entry.claim.id))
                    } catch {
                        entry.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }

    /// Writes `batch` with a time limit that grows with its size (a large result on a slow
    /// link takes longer than the call time-out).
    private func write(_ batch: [Pending]) async throws -> Set<Int64> {
        let bytes = batch.reduce(0) { $0 + $1.output.count }
        let limit = callTimeout + .seconds(Double(bytes) / 10_000_000)
        return try await withDeadline(limit, "recording \(batch.count) results") { [self] in
            try await JobLeaseSQL.recordResults(batch.map { ($0.claim, $0.output) }, client: client, logger: logger)
        }
    }
}
