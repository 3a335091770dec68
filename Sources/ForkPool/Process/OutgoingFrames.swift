// OutgoingFrames: the bytes being sent to one worker — a task's frame and those sent behind
// it, then a large input's own bytes after them with no copy — and how much of it is out.
//
//   WorkerProcess.assign / pipeline ─▶ start / append ─▶ flush: sendSome until EAGAIN ─▶ done
//   with a shared ring: each frame that fits a slot is published there (until the ring is
//   full); one that does not leaves a marker and goes on the socket, the frames after it
//   waiting until it is out; a sleeping worker is rung once the published frames are in.
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
    /// With a ring: where the frame going on the socket ends (its marker is published).
    private var socketFrameEnd: Int?
    /// With a ring: the last flush stopped at a full ring (retried on the dispatcher's next turn).
    private(set) var waitsForRing = false
    /// Whether the socket must take more bytes before anything else can go (poll for POLLOUT).
    var waitsForSocket: Bool { hasPending && !waitsForRing }

    /// Starts sending a task's frame (the worker has nothing else coming).
    mutating func start(_ frame: [UInt8], tail: [UInt8]) {
        self = OutgoingFrames()
        head = frame
        self.tail = tail
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

    /// Sends as much as `socket` (and `ring`) take now; true once everything is out.
    mutating func send(on socket: CInt, ring: SharedRing?) throws(ForkPoolError) -> Bool {
        guard let ring else {
            guard try sendOnSocket(socket, upTo: head.count + tail.count) else { return false }
            self = OutgoingFrames()
            return true
        }
        var published = false
        defer { if published && socketFrameEnd == nil { ring.wakeConsumer(through: socket) } }
        waitsForRing = false
        while hasPending {
            if let end = socketFrameEnd {
                guard try sendOnSocket(socket, upTo: end) else { return false }
                socketFrameEnd = nil
                continue
            }
            // `offset` is at a frame's start: its header is in `head` (a tail only ever follows
            // the last frame's header and prefix).
            let length = head.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))) }
            let end = offset + FrameHeader.size + length
            let start = offset
            let result = head.withUnsafeBytes { raw in
                Result { () throws(ForkPoolError) in
                    end <= raw.count ? try ring.publish(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                        : try ring.publish(UnsafeRawBufferPointer(start: nil, count: 0), socketOnly: true)
                }
            }
            switch try result.get() {
            case .published:
                published = true
                offset = end
            case .onSocket:
                socketFrameEnd = end
            case .full:
                waitsForRing = true
                return false
            }
        }
        self = OutgoingFrames()
        return true
    }

    /// Sends `head` + `tail` from `offset` up to `end` as far as the socket takes it now.
    private mutating func sendOnSocket(_ socket: CInt, upTo end: Int) throws(ForkPoolError) -> Bool {
        while offset < end {
            let sent = end <= head.count
                ? head.withUnsafeBytes { raw in
                    let rest = UnsafeRawBufferPointer(rebasing: raw[offset..<end])
                    return forkpool_send(socket, rest.baseAddress, rest.count, 1)
                }
                : sendSome(socket, head: head, tail: tail, from: offset, nonblocking: true)
            if sent >= 0 {
                offset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return false
            } else {
                throw ForkPoolError.systemCall("send")  // EINTR is retried by the shim
            }
        }
        return true
    }

    /// Drops what is not out yet; true if that cut the running task's frame short.
    mutating func discard() -> Bool {
        let cutShort = offset < taskFrameBytes
        self = OutgoingFrames()
        return cutShort
    }
}
