// LaneBooks: the dispatcher's books about its direct lanes (DirectLane) — which idle workers
// are lent to submitting threads, tasks sent by lane that nobody reads yet, callers still
// reading from a worker that exited, and the tasks such callers gave back.
//
//   takeWork: idle worker + empty queue + mayLend ─▶ lane opened ─▶ `open`
//   submit: pops an open lane ─▶ sends ─▶ `unreadTasks` +1 until a caller claims the reply
//   a lent worker exits while a caller reads ─▶ `detachedReaders` +1 ─▶ its task ─▶ `orphans`
//   every worker lent to a caller who reads ─▶ `lanesCarryTheQueue`: queued work wakes no dispatcher
//
// A lane's own states are DirectLane's; these counts are guarded by the dispatcher's lock.

struct LaneBooks {
    /// Idle workers lent to submitting threads, in state `.open`.
    var open: [DirectLane] = []
    /// Every lane whose worker is lent, in whatever state.
    private(set) var lent: [DirectLane] = []
    /// Whether submitting threads may take open lanes (while the queue is also empty): the
    /// pool runs, is not shutting down and has no crashed task waiting for a retry.
    var mayLend = false
    /// Callers still reading from a lane whose worker has exited.
    var detachedReaders = 0
    /// Lanes in `.sent`: tasks sent by lane whose replies nobody reads yet (`stats` has the
    /// dispatcher collect them, so they are counted).
    var unreadTasks = 0
    /// Tasks that readers of exited workers gave back without a reply (to fail, or retry).
    var orphans: [DirectLane.Orphan] = []

    /// Whether a lent worker, a reader or a given-back task still holds the pool open.
    var holdsWork: Bool { detachedReaders > 0 || !orphans.isEmpty }

    mutating func lend(_ lane: DirectLane) {
        if !lent.contains(where: { $0 === lane }) { lent.append(lane) }
    }

    mutating func giveBack(_ lane: DirectLane) {
        lent.removeAll { $0 === lane }
    }

    /// Whether every one of the pool's `workerCount` workers is lent and has a caller on its
    /// lane who, when done, takes the queue's next task or gives the lane back (waking the
    /// dispatcher): a task queued now needs no dispatcher wake-up.
    func lanesCarryTheQueue(workerCount: Int) -> Bool {
        mayLend && lent.count == workerCount && lent.allSatisfy(\.isDriven)
    }
}
