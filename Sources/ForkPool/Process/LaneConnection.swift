// LaneConnection: a lent worker's transport as a caller uses it — a dup of the dispatcher's
// socket, the worker's frame reader (borrowed from the dispatcher) and an adaptive spin —
// sending one frame and reading one reply on the caller's own thread.
//
//   send(frame) ─▶ the worker's submission ring (a doorbell if it sleeps), or its socket for a
//                  frame over a slot ─▶ delivered? (a full ring or a closed end: not)
//   receiveReply ─▶ the completion ring, spinning with no system call ─▶ the socket (recv)
//                  ─▶ spin again, then flag "asleep" and poll ─▶ the reply completes the task's
//                  future here | the deadline | end of stream | a fault
//
// Its DirectLane's state says who may use it (a caller in .sending/.reading/.detached, the
// dispatcher otherwise), and that state changes under the dispatcher's lock, which orders their
// accesses. The socket is a dup, closed with the connection's last reference, so the dispatcher
// may close its own end (a fault, a kill) while a caller still reads.
import CForkShim
import ForkPoolWire
import Glibc

final class LaneConnection: @unchecked Sendable {
    let pid: pid_t
    /// A dup of the dispatcher's socket to the worker; nil when the dup failed (the lane is
    /// then never lent).
    let socket: CInt?
    /// The worker's frames, shared with the dispatcher: whoever the lane's state says reads them.
    let inbox: FrameInbox
    /// How long a caller spins on the socket before it sleeps in `poll`, at most: a worker's
    /// reply to a trivial task lands well within it, and waking a sleeping thread costs more
    /// than the round trip itself on these machines. It adapts to how long replies took on
    /// this lane before. Measured by `make bench` (round trip p50).
    var spin = AdaptiveSpin(limit: 100_000)

    /// How a caller's read ended.
    enum ReadOutcome {
        case replied
        case repliedThenFault(ForkPoolError)
        case stoppedWaiting
        case endOfStream
        case fault(ForkPoolError)
    }

    init(pid: pid_t, socket: CInt, inbox: FrameInbox) {
        self.pid = pid
        self.socket = try? PoolDescriptors.register({ fcntl(socket, F_DUPFD_CLOEXEC, 0) }, name: "dup")
        self.inbox = inbox
    }

    deinit {
        if let socket { PoolDescriptors.close(socket) }
    }

    /// Ends every send and read on the socket at once (the worker is leaving the pool): a
    /// blocked caller sees end of stream.
    func shutDown() {
        if let socket { _ = Glibc.shutdown(socket, CInt(SHUT_RDWR)) }
    }

    /// Caller side, in .sending: writes the task's whole frame. False if the worker's end is
    /// closed (or the socket failed): the frame did not get there.
    func send(_ frame: [UInt8]) -> Bool {
        guard let socket else { return false }
        guard let ring = inbox.reader.ring else { return (try? sendAll(socket, frame)) != nil }
        // Through the worker's ring (a lent worker has nothing else in it); a full ring or an
        // impossible count there means the worker is not reading: the frame did not get there.
        switch frame.withUnsafeBytes({ try? ring.publish($0) }) {
        case .published?:
            // In the ring, it got there (a worker that died since is judged by its exit).
            ring.wakeConsumer(through: socket)
            return true
        case .onSocket?:
            return (try? sendAll(socket, frame)) != nil
        case .full?, nil:
            return false
        }
    }

    /// Caller side, in .reading: receives `task`'s reply and completes its future on this
    /// thread (`recordOutcome` counts it first), or stops at `deadline`, end of stream or a fault.
    /// `spinsOnly`: a reply served for another caller, waited for by spinning up to `deadline`
    /// and never in `poll` (whose time-out counts whole milliseconds).
    func receiveReply(for task: PendingTask, until deadline: UInt64?, spinsOnly: Bool = false,
                      recordOutcome: (ForkPoolError.Code?) -> Void) -> ReadOutcome {
        guard let socket else { return .endOfStream }  // never lent
        let start = monotonicNanoseconds()
        let spinEnd = spinsOnly ? deadline ?? start : start + spin.budget
        defer { if !spinsOnly { spin.learn(waited: monotonicNanoseconds() - start) } }
        while true {
            let handled: ReadOutcome?
            do {
                handled = try inbox.reader.nextFrame { header, payload, tail -> ReadOutcome in
                    task.complete(from: header, payload: payload, tail: tail, worker: pid, recordOutcome: recordOutcome)
                        ? .replied : .fault(unexpectedFrame(header, worker: pid))
                }
            } catch {
                return .fault(error)
            }
            if let handled {
                guard case .replied = handled, inbox.reader.holdsMoreAfterReply else { return handled }
                return .repliedThenFault(ForkPoolError(.malformedFrame, "worker process \(pid) sent bytes after the reply to task \(task.id)",
                                                       processID: pid))
            }
            if inbox.reader.ring != nil && !inbox.reader.awaitsSocketFrame {
                // The reply comes through the ring: spin on it with no system call.
                let now = monotonicNanoseconds()
                if now < spinEnd && deadline.map({ now < $0 }) ?? true {
                    for _ in 0..<8 { forkpool_cpu_relax() }
                    continue
                }
            }
            let status: FrameReader.FillStatus
            do {
                status = try inbox.reader.fill(from: socket)
            } catch {
                return .fault(error)
            }
            switch status {
            case .received:
                continue
            case .endOfStream, .endOfStreamWithOursUnread:
                // What the worker published before it went is in its ring: read that first.
                if inbox.reader.ringHasFrame { continue }
                return .endOfStream
            case .wouldBlock:
                let now = monotonicNanoseconds()
                if let deadline, now >= deadline { return .stoppedWaiting }
                if now < spinEnd {
                    for _ in 0..<8 { forkpool_cpu_relax() }
                    continue
                }
                guard inbox.reader.prepareToSleep() else { continue }  // the ring has it now
                SystemCall.waitReadable(socket, until: deadline)
                inbox.reader.wokeUp()
            }
        }
    }
}
