// JobRunner: a worker host's running duty — claims from their turn at a worker to their
// recorded outcome, without a task of their own: a job's end (its future's completion, on the
// pool's dispatcher thread) hands the freed worker the next claim at once and passes the
// outcome to the OutcomeWriter, so a busy host spends no thread hop between one job and the
// next.
//
//   claimed ─▶ ClaimBook ─ pump: takeTurns ─ run ─▶ pool.submit(EncodedJob, timeout) ─▶ Future
//            └ cancelled already ─▶ recorded cancelled   ─ lost ─▶ nothing runs, nothing is written
//                                                        ─ released ─▶ given back, or recorded cancelled
//   Future completes ─▶ jobEnded ─▶ pump (the next claim) ─▶ Settlement ─▶ OutcomeWriter.record
//   ─▶ written / recognised as written before / lost / given up ─▶ counted, removed from the book
@_spi(Integration) import ForkPool
import Logging

struct JobRunner: Sendable {
    let host: HostContext

    /// The claimer's new claims (already in the book).
    func claimed(_ claims: [JobClaim]) {
        for claim in claims where claim.cancelRequested {  // cancelled while another host ran it, or before its retry
            record(claim, .cancelled)
        }
        pump()
    }

    /// Starts every claim whose turn has come, and settles those that must not run.
    func pump() {
        while true {
            let (run, resolved, stale) = host.book.takeTurns()
            if stale { host.book.staleLeaseSeen.wake() }
            for (claim, turn) in resolved {
                if turn == .lost {
                    record(claim, nil)
                } else {
                    record(claim, host.book.entry(claim.token)?.cancelRequested == true ? .cancelled : .released)
                }
            }
            guard !run.isEmpty else { return }
            for claim in run { start(claim) }
        }
    }

    private func start(_ claim: JobClaim) {
        let future: Future<[UInt8]>
        do {
            future = try host.pool.submit(EncodedJob(jobName: claim.jobName, payload: claim.payload), timeout: host.configuration.jobTimeout)
        } catch {
            host.book.jobEnded(claim.token)  // pump's loop gives the slot to the next
            record(claim, settlement(for: error, of: claim))
            return
        }
        if host.book.started(claim.token, future: future) { future.cancel() }
        future.onCompletion { result in
            host.book.jobEnded(claim.token)
            pump()
            switch result {
            case .success(let output): record(claim, .succeeded(output))
            case .failure(let error): record(claim, settlement(for: error, of: claim))
            }
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

    /// Writes the outcome (nil: the claim was lost before its job ran: nothing to write), then
    /// lets the claim go.
    private func record(_ claim: JobClaim, _ settlement: Settlement?) {
        guard let settlement else {
            host.tallies.withLock { $0.dropped += 1 }
            host.logger.notice("job \(claim.id)'s claim was lost before it ran (its lease lapsed; another host may run it): not run")
            release(claim)
            return
        }
        host.outcomes.record(claim, as: settlement) { outcome in
            host.tallies.withLock { counters in
                switch (outcome, settlement) {
                case (nil, _): break
                case (.lost?, _): counters.dropped += 1
                case (_, .retry): counters.retried += 1
                case (_, .released): counters.released += 1
                case (_, _): counters.settled += 1
                }
            }
            switch outcome {
            case .written?: break
            case .writtenEarlier?:
                host.logger.info("job \(claim.id)'s outcome had been written by an earlier call whose answer never came")
            case .lost?:
                host.logger.notice("job \(claim.id)'s claim was lost (its lease lapsed and another host claimed it): outcome dropped")
            case nil:
                host.logger.warning("job \(claim.id)'s outcome was not written (the host stopped, or the database refused it): its lease lapses and it runs again")
            }
            release(claim)
        }
    }

    private func release(_ claim: JobClaim) {
        if host.book.remove(claim.token) { host.claimWake.wake() }
    }
}
