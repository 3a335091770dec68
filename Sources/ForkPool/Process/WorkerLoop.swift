// WorkerLoop: the whole life of a worker process after fork.
//
//   initializer ─▶ `ready` frame (or `initializerFailed` + _exit(78))
//   read frame ─▶ task?  ─▶ decode input ─▶ work ─▶ encode output ─▶ write result frame ─┐
//        ▲        shutdown / end of stream / socket error ─▶ flush stdio ─▶ _exit         │
//        └────────────────────────────────────────────────────────────────────────────────┘
//
// With shared rings (SharedRing) frames come from the submission ring and replies go to the
// completion ring; the socket carries what does not fit a slot, notes and doorbells. Before
// running a task the worker records its id in the region (`taken`). With nothing to read it
// spins briefly (after a lane task), then raises its `asleep` flag and sleeps in poll (POLLIN:
// not woken when the pool reads what it sent, as a sleeping recv is).
//
// Plain synchronous code on the one thread fork left: Dispatch and Swift concurrency do not
// survive a fork of a process that already started their threads. The process leaves only
// through `_exit`, so the parent's atexit handlers never run here.
import CForkShim
import ForkPoolWire
import Glibc

/// Turns one task payload into a reply: appends the result (or a failure) payload after the
/// header space already in `reply`, and says which kind of frame it is. A large `[UInt8]`
/// input may arrive as its frame's raw tail (third argument, the payload then holding only
/// what precedes it); a large `[UInt8]` output may leave its bytes in the last argument, sent
/// after `reply` with no copy.
typealias TaskHandler = @Sendable (FrameKind, UnsafeRawBufferPointer, [UInt8]?, inout [UInt8], inout [UInt8]) -> FrameKind

enum WorkerLoop {
    /// Exit status of a worker that received a frame it cannot parse.
    static let protocolErrorStatus: Int32 = 76  // EX_PROTOCOL
    /// Exit status of a worker whose initializer threw.
    static let initializerFailedStatus: Int32 = 78  // EX_CONFIG

    /// This worker's socket; -1 outside a worker. Tests use it to forge frames from inside.
    nonisolated(unsafe) static var socketInThisWorker: CInt = -1

    /// The longest a worker spins for its next task after answering one sent by lane.
    static let spinLimit: UInt64 = 100_000

    /// A worker that runs several async jobs at once: its jobs, and what starts one from a task
    /// frame (false: the frame is not an async job's, and runs here as any task).
    struct Concurrency {
        var jobs: ConcurrentJobs
        var start: (FrameHeader, UnsafeRawBufferPointer) -> Bool
    }

    /// Replies go out from the job thread too when jobs run at once: one frame at a time.
    private static let sendLock = ConditionLock()
    nonisolated(unsafe) private static var sendsFromManyThreads = false
    /// This worker's shared rings, if it was forked with them.
    nonisolated(unsafe) static var ringInThisWorker: SharedRing?

    /// Sends one whole reply frame (from a job's Task, or the loop), under the send lock when
    /// jobs run at once; a dead socket ends the worker.
    static func sendReply(_ frame: [UInt8], tail: [UInt8] = []) {
        let sent = sendsFromManyThreads ? sendLock.withLock { send(frame, tail: tail) } : send(frame, tail: tail)
        if !sent { leave(0) }
    }

    /// One frame into the completion ring (a marker and the socket if it does not fit a slot),
    /// waiting while the ring is full, ringing the pool if it sleeps; or on the socket alone.
    private static func send(_ frame: [UInt8], tail: [UInt8]) -> Bool {
        guard let ring = ringInThisWorker else { return (try? sendAll(socketInThisWorker, frame, tail: tail)) != nil }
        while true {
            let published = frame.withUnsafeBytes { try? ring.publish($0, socketOnly: !tail.isEmpty) }
            switch published {
            case .published?:
                return ring.wakeConsumer(through: socketInThisWorker)
            case .onSocket?:
                return (try? sendAll(socketInThisWorker, frame, tail: tail)) != nil
            case .full?:
                // The pool reads replies as they come: a full ring means it is busy. Its end of
                // the socket closing (the pool gone) ends the wait.
                var socket = pollfd(fd: socketInThisWorker, events: 0, revents: 0)
                if poll(&socket, 1, 0) > 0 && socket.revents & Int16(POLLHUP | POLLERR) != 0 { return false }
                var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
                _ = nanosleep(&pause, nil)
            case nil:
                return false
            }
        }
    }

    static func run(socket fd: CInt, maximumFrameBytes: Int, initializer: (@Sendable () throws -> Void)?,
                    handler: TaskHandler, concurrency: Concurrency? = nil) -> Never {
        socketInThisWorker = fd
        sendsFromManyThreads = concurrency != nil
        ringInThisWorker = SharedRing.inThisWorker()
        forkpool_set_thread_name(pthread_self(), "forkpool-worker")  // for ps, top and perf
        var reader = FrameReader(maximumPayloadBytes: maximumFrameBytes, ring: ringInThisWorker)
        var reply: [UInt8] = []
        var replyTail: [UInt8] = []
        // After answering a task sent by lane (a caller spinning for the reply, likely to send
        // the next task at once) the worker spins before it sleeps in poll: no wake-up on
        // either side of a tight submit/get loop.
        var spin = AdaptiveSpin(limit: spinLimit)
        var answeredLaneTaskAt: UInt64?
        // The handshake: the parent hands this worker no task before `ready`.
        var greeting = FrameHeader.emptyFrame()
        var startStatus: Int32?
        do {
            try initializer?()
            FrameHeader(kind: .ready, length: 0, taskID: 0).write(into: &greeting)
        } catch {
            greeting.append(contentsOf: "\(error)".utf8.prefix(4096))
            FrameHeader(kind: .initializerFailed, length: greeting.count - FrameHeader.size, taskID: 0).write(into: &greeting)
            startStatus = initializerFailedStatus
        }
        fflush(nil)
        sendReply(greeting)
        if let startStatus { leave(startStatus) }
        while true {
            let frame: (FrameHeader, Bool)?
            do {
                frame = try reader.nextFrame { header, payload, tail in
                    if header.kind == .task || header.kind == .taskBatch { ringInThisWorker?.recordTaken(header.taskID) }
                    if let concurrency {
                        if header.kind == .cancel {
                            concurrency.jobs.cancel(header.taskID)
                            return (header, true)
                        }
                        if tail == nil && concurrency.start(header, payload) { return (header, true) }
                    }
                    guard header.kind == .task || header.kind == .taskBatch else { return (header, false) }
                    reply.removeAll(keepingCapacity: true)
                    reply.appendZeros(FrameHeader.size)
                    var kind = handler(header.kind, payload, tail, &reply, &replyTail)
                    let resultBytes = reply.count - FrameHeader.size + replyTail.count
                    if resultBytes > maximumFrameBytes {
                        reply.removeSubrange(FrameHeader.size...)
                        replyTail = []
                        appendFailure(.outputTooLarge,
                                      "result of \(resultBytes) bytes exceeds the frame limit of \(maximumFrameBytes) bytes",
                                      to: &reply)
                        kind = .failure
                    }
                    FrameHeader(kind: kind, length: reply.count - FrameHeader.size + replyTail.count, taskID: header.taskID,
                                split: replyTail.isEmpty ? 0 : reply.count - FrameHeader.size)
                        .write(into: &reply)
                    return (header, true)
                }
            } catch {
                leave(protocolErrorStatus)
            }
            guard let (header, handled) = frame else {
                let spinning = answeredLaneTaskAt.map { monotonicNanoseconds() < $0 + spin.budget } ?? false
                if spinning && reader.ring != nil && !reader.awaitsSocketFrame {
                    // The next task comes through the ring: look at it again, no system call.
                    for _ in 0..<8 { forkpool_cpu_relax() }
                    if reader.ringHasFrame, let answered = answeredLaneTaskAt {
                        spin.learn(waited: monotonicNanoseconds() - answered)
                        answeredLaneTaskAt = nil
                    }
                    continue
                }
                let sleeps = !spinning && reader.prepareToSleep()
                // Asleep in poll, not recv: the pool reading this worker's doorbell or reply
                // would wake a recv for nothing, once per frame.
                if sleeps { SystemCall.waitReadable(fd) }
                let filled = try? reader.fill(from: fd, wait: sleeps)
                if sleeps { reader.wokeUp() }
                switch filled {
                case .received:
                    if let answered = answeredLaneTaskAt {
                        spin.learn(waited: monotonicNanoseconds() - answered)
                        answeredLaneTaskAt = nil
                    }
                    continue
                case .wouldBlock:
                    forkpool_cpu_relax()
                    continue
                default:
                    leave(0)  // end of stream or a dead socket: the parent is gone
                }
            }
            guard handled else {
                leave(header.kind == .shutdown ? 0 : protocolErrorStatus)
            }
            // Started as a Task (it replies when it ends), or a cancellation: nothing to send.
            if header.kind == .cancel || reply.isEmpty { continue }
            // Output the work printed must reach the terminal before the result does.
            fflush(nil)
            sendReply(reply, tail: replyTail)
            reply.removeAll(keepingCapacity: true)
            replyTail = []
            answeredLaneTaskAt = header.sentByLane ? monotonicNanoseconds() : nil
        }
    }

    /// Tests: `bytes` into this worker's transport as if they were frames — each whole frame
    /// in a ring slot of its own and what is left over in one more (a marker and the socket
    /// for what does not fit a slot), or the socket without rings — so a test can forge what a
    /// broken worker would send.
    static func forgeFrames(_ bytes: [UInt8]) {
        guard let ring = ringInThisWorker else {
            _ = bytes.withUnsafeBytes { write(socketInThisWorker, $0.baseAddress, $0.count) }
            return
        }
        var start = 0
        while start < bytes.count {
            var end = bytes.count
            if bytes.count - start >= FrameHeader.size {
                let length = bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start + 4, as: UInt32.self))) }
                end = min(bytes.count, start + FrameHeader.size + length)
            }
            let piece = Array(bytes[start..<end])
            if (try? piece.withUnsafeBytes({ try ring.publish($0) })) == .onSocket {
                _ = piece.withUnsafeBytes { write(socketInThisWorker, $0.baseAddress, $0.count) }
            }
            start = end
        }
        ring.wakeConsumer(through: socketInThisWorker)
    }

    static func appendFailure(_ reason: FailureReason, _ message: String, to reply: inout [UInt8]) {
        reply.append(reason.rawValue)
        reply.append(contentsOf: message.utf8)
    }

    static func leave(_ status: Int32) -> Never {
        fflush(nil)
        _exit(status)
    }
}
