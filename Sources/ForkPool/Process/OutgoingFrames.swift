// OutgoingFrames: the bytes being sent to one worker — a task's frame and those sent behind
// it, then a large input's own bytes after them with no copy — and how much of it is out.
//
//   WorkerProcess.assign / pipeline ─▶ start / append ─▶ flush: sendSome until EAGAIN ─▶ done
//
// Owned by its WorkerProcess, on the dispatcher thread.
import CForkShim
import ForkPoolWire
import Glibc

/// The frames being sent to a worker: a head (a task's frame, and frames sent behind it) and a
/// large input's bytes sent after it with no copy, and how much of the two is out.
struct OutgoingFrames {
    private(set) var head: [UInt8] = []
    private(set) var tail: [UInt8] = []
    private(set) var offset = 0
    /// How many bytes belong to the running task's frame, while it is being sent.
    private var taskFrameBytes = 0

    var hasPending: Bool { offset < head.count + tail.count }

    /// Starts sending a task's frame (the worker has nothing else coming).
    mutating func start(_ frame: [UInt8], tail: [UInt8]) {
        head = frame
        self.tail = tail
        offset = 0
        taskFrameBytes = frame.count + tail.count
    }

    /// Adds a frame to send after whatever is not out yet (the caller checked there is no tail).
    mutating func append(_ frame: [UInt8]) {
        if !hasPending {
            head.removeAll(keepingCapacity: true)
            offset = 0
        }
        head.append(contentsOf: frame)
    }

    /// Sends as much as `socket` takes now; true once everything is out.
    mutating func send(on socket: CInt) throws(ForkPoolError) -> Bool {
        while hasPending {
            let sent = sendSome(socket, head: head, tail: tail, from: offset, nonblocking: true)
            if sent >= 0 {
                offset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return false
            } else {
                throw ForkPoolError.systemCall("send")  // EINTR is retried by the shim
            }
        }
        self = OutgoingFrames()
        return true
    }

    /// Drops what is not out yet; true if that cut the running task's frame short.
    mutating func discard() -> Bool {
        let cutShort = offset < taskFrameBytes
        self = OutgoingFrames()
        return cutShort
    }
}
