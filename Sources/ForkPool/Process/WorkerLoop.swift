// WorkerLoop: the whole life of a worker process after fork.
//
//   initializer ─▶ `ready` frame (or `initializerFailed` + _exit(78))
//   read frame ─▶ task?  ─▶ decode input ─▶ work ─▶ encode output ─▶ write result frame ─┐
//        ▲        shutdown / end of stream / socket error ─▶ flush stdio ─▶ _exit         │
//        └────────────────────────────────────────────────────────────────────────────────┘
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
    static let spinLimit: UInt64 = 25_000

    /// A worker that runs several async jobs at once: its jobs, and what starts one from a task
    /// frame (false: the frame is not an async job's, and runs here as any task).
    struct Concurrency {
        var jobs: ConcurrentJobs
        var start: (FrameHeader, UnsafeRawBufferPointer) -> Bool
    }

    /// Replies go out from the job thread too when jobs run at once: one frame at a time.
    private static let sendLock = ConditionLock()
    nonisolated(unsafe) private static var sendsFromManyThreads = false

    /// Sends one whole reply frame (from a job's Task, or the loop), under the send lock when
    /// jobs run at once; a dead socket ends the worker.
    static func sendReply(_ frame: [UInt8], tail: [UInt8] = []) {
        let sent = sendsFromManyThreads ? sendLock.withLock { (try? sendAll(socketInThisWorker, frame, tail: tail)) != nil }
            : (try? sendAll(socketInThisWorker, frame, tail: tail)) != nil
        if !sent { leave(0) }
    }

    static func run(socket fd: CInt, maximumFrameBytes: Int, initializer: (@Sendable () throws -> Void)?,
                    handler: TaskHandler, concurrency: Concurrency? = nil) -> Never {
        socketInThisWorker = fd
        sendsFromManyThreads = concurrency != nil
        forkpool_set_thread_name(pthread_self(), "forkpool-worker")  // for ps, top and perf
        var reader = FrameReader(maximumPayloadBytes: maximumFrameBytes)
        var reply: [UInt8] = []
        var replyTail: [UInt8] = []
        // After answering a task sent by lane (a caller spinning for the reply, likely to send
        // the next task at once) the worker spins before it sleeps in recv: no wake-up on
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
        do { try sendAll(fd, greeting) } catch { leave(0) }
        if let startStatus { leave(startStatus) }
        while true {
            let frame: (FrameHeader, Bool)?
            do {
                frame = try reader.nextFrame { header, payload, tail in
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
                switch try? reader.fill(from: fd, wait: !spinning) {
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

    static func appendFailure(_ reason: FailureReason, _ message: String, to reply: inout [UInt8]) {
        reply.append(reason.rawValue)
        reply.append(contentsOf: message.utf8)
    }

    static func leave(_ status: Int32) -> Never {
        fflush(nil)
        _exit(status)
    }
}
