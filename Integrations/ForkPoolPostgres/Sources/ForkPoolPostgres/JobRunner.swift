// JobRunner: a worker host's running duty — one claim from its turn at a worker to its written
// outcome.
//
//   ClaimBook.turn ─ .run ─▶ pool.submit(EncodedJob, timeout) ─▶ Future ─▶ completion
//                  ─ .lost ─▶ nothing runs, nothing is written (another host may hold the job)
//                  ─ .released ─▶ given back (shutdown) or recorded cancelled
//   ─▶ jobEnded (the next claim takes the worker) ─▶ Settlement ─▶ OutcomeWriter (tried again
//   while the database is away; an outcome it refuses three times becomes the job's failure)
//   ─▶ written / recognised as written before / lost ─▶ removed from the book
@_spi(Integration) import ForkPool
import Logging
import PostgresNIO

struct JobRunner {
    let host: HostContext

    func run(_ claim: JobClaim) async {
        var settlement: Settlement?
        if claim.cancelRequested {  // cancelled while another host ran it, or before its retry
            settlement = .cancelled
        } else {
            switch await host.book.turn(for: claim.token) {
            case .lost:
                settlement = nil
            case .released:
                settlement = host.book.entry(claim.token)?.cancelRequested == true ? .cancelled : .released
            case .run:
                settlement = await runOnPool(claim)
            }
            host.book.jobEnded(claim.token)
        }
        if let settlement {
            await record(claim, as: settlement)
        } else {
            host.tallies.withLock { $0.dropped += 1 }
            host.logger.notice("job \(claim.id)'s claim was lost before it ran (its lease lapsed; another host may run it): not run")
        }
        if host.book.remove(claim.token) { host.claimWake.wake() }
    }

    private func runOnPool(_ claim: JobClaim) async -> Settlement {
        let future: Future<[UInt8]>
        do {
            future = try host.pool.submit(EncodedJob(jobName: claim.jobName, payload: claim.payload), timeout: host.configuration.jobTimeout)
        } catch {
            return settlement(for: error, of: claim)
        }
        if host.book.started(claim.token, future: future) { future.cancel() }
        switch await future.completion {
        case .success(let output): return .succeeded(output)
        case .failure(let error): return settlement(for: error, of: claim)
        }
    }

    /// What a failed job's row should say.
    private func settlement(for error: ForkPoolError, of claim: JobClaim) -> Settlement {
        if error.code == .cancelled {  // stopped by this host: why?
            if host.book.entry(claim.token)?.cancelRequested == true { return .cancelled }
            return .released  // shutting down, or the claim was lost (then nothing is written)
        }
        switch error.code {
        case .workerDied, .timedOut:
            guard claim.attempt < claim.maximumAttempts else {
                return .failed(ForkPoolError(error.code, "failed on attempt \(claim.attempt) of \(claim.maximumAttempts): \(error.message)"))
            }
            return .retry(error, after: host.queue.configuration.retryBackoff.delay(afterAttempt: Int(claim.attempt)))
        case .poolShutDown, .poolBroken:
            // The pool takes no more jobs: give this one back, and stop the host.
            host.book.stop(poolFailure: error)
            host.claimWake.wake()
            return .released
        case .overloaded:
            return .released  // this host could not run it: another may
        default:
            return .failed(error)
        }
    }

    /// Writes the outcome, trying again while the database is away, until it is written or the
    /// claim turns out lost. An outcome the database itself refuses three times is recorded as
    /// the job's failure, saying so.
    private func record(_ claim: JobClaim, as first: Settlement) async {
        var settlement = first
        var failures = 0
        var refusals = 0
        var recordingRefusal = false
        while true {
            do {
                let outcome = try await host.outcomes.write(claim, as: settlement)
                count(outcome, settlement)
                switch outcome {
                case .written: break
                case .writtenEarlier:
                    host.logger.info("job \(claim.id)'s outcome had been written by an earlier call whose answer never came")
                case .lost:
                    host.logger.notice("job \(claim.id)'s claim was lost (its lease lapsed and another host claimed it): outcome dropped")
                }
                return
            } catch {
                failures += 1
                if failures == 1 || failures % 30 == 0 {
                    host.logger.warning("could not record job \(claim.id); trying again", metadata: ["error": "\(String(reflecting: error))"])
                }
                if Task.isCancelled { return }  // the lease lapses; the job runs again elsewhere
                // The server itself refuses the outcome for what it is (bad data, a limit; not a
                // lost connection, a deadlock or a restart): the same write cannot succeed.
                // After three refusals, record the refusal as the job's failure; if even that is
                // refused, give up (the lease lapses and the job runs again).
                if let refused = error as? PSQLError, refused.code == .server, refused.isPermanentRefusal {
                    refusals += 1
                    if refusals >= 3 {
                        guard !recordingRefusal else { return }
                        recordingRefusal = true
                        refusals = 0
                        let reason = refused.serverInfo?[.message] ?? "\(refused.code)"
                        settlement = .failed(ForkPoolError(.workFailed, "the host could not record the job's outcome: the database "
                                                           + "refused it: \(reason)"))
                    }
                }
                try? await Task.sleep(for: .milliseconds(min(100 * failures, 2000)))
            }
        }
    }

    private func count(_ outcome: RecordedOutcome, _ settlement: Settlement) {
        host.tallies.withLock { counters in
            switch (outcome, settlement) {
            case (.lost, _): counters.dropped += 1
            case (_, .retry): counters.retried += 1
            case (_, .released): counters.released += 1
            case (_, _): counters.settled += 1
            }
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
