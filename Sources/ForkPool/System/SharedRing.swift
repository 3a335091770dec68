// SharedRing: the shared-memory transport between the pool and one worker — a submission ring
// (pool → worker) and a completion ring (worker → pool) of fixed-size slots in a memfd both
// map, beside the worker's socket, which stays the control and fallback path.
//
//   producer: slot free? (the consumer's count) ─▶ frame bytes, length ─▶ sequence number
//             (release) ─▶ the consumer asleep? ─▶ one `doorbell` frame on the socket
//   consumer: sequence number == the next expected? (acquire) ─▶ length checked ─▶ bytes
//             copied out ─▶ its count (release); nothing there: spin briefly, then raise its
//             `asleep` flag, look once more, and sleep in poll on the socket
//
// A frame that does not fit a slot (or has a raw `[UInt8]` tail) leaves a marker slot
// (`onSocket`) and goes on the socket after it, so frames keep their order. Each side is one
// producer and one consumer at a time (the pool's side is handed between the dispatcher and a
// lane's caller under the dispatcher's lock). The pool never trusts the region: every
// sequence number, length and count read from it is checked before use, and one that is not
// what the protocol allows is a fault (`.malformedFrame`: the worker is killed). The region is
// sealed against shrinking, so no access can fault. The worker also records the id of the task
// it is about to run (`taken`), which the pool reads when it dies.
import CForkShim
import ForkPoolWire
import Glibc

final class SharedRing: @unchecked Sendable {
    /// Which end of the region this is.
    enum Side { case pool, worker }

    static let slotCount = UInt64(FORKPOOL_RING_SLOT_COUNT)
    static let slotBytes = Int(FORKPOOL_RING_SLOT_BYTES)
    static let slotHeaderBytes = Int(FORKPOOL_RING_SLOT_HEADER_BYTES)
    /// The largest frame (header and payload) that travels in a slot.
    static let slotFrameBytes = slotBytes - slotHeaderBytes
    static let regionBytes = Int(FORKPOOL_RING_REGION_BYTES)
    /// The length of a marker slot: the next frame comes on the socket.
    static let onSocket = UInt32.max

    /// One ring's place in the region: its slots, its consumer's count and `asleep` flag.
    struct Ring {
        var slots: Int
        var consumed: Int
        var asleep: Int

        static let toWorker = Ring(slots: Int(FORKPOOL_RING_CONTROL_BYTES), consumed: 64, asleep: 128)
        static let toPool = Ring(slots: Int(FORKPOOL_RING_CONTROL_BYTES) + Int(FORKPOOL_RING_SLOT_COUNT) * slotBytes,
                                 consumed: 192, asleep: 256)
    }

    /// The control word where the worker writes the id of the task it takes, before running it.
    static let takenOffset = 320

    let region: UnsafeMutableRawPointer
    private let unmapsRegion: Bool
    private let outgoing: Ring
    private let incoming: Ring
    /// Frames this side published (the next one's sequence number).
    private(set) var sent: UInt64 = 0
    /// Frames this side took from the other's ring.
    private(set) var received: UInt64 = 0
    /// The other side's count of our frames, as last checked.
    private var peerConsumed: UInt64 = 0

    init(region: UnsafeMutableRawPointer, side: Side, unmapsRegion: Bool) {
        self.region = region
        self.unmapsRegion = unmapsRegion
        (outgoing, incoming) = side == .pool ? (.toWorker, .toPool) : (.toPool, .toWorker)
    }

    /// The pool's side, mapped from the memfd the fork server passed (closed here either way).
    static func mapping(memfd: CInt) throws(ForkPoolError) -> SharedRing {
        let region = forkpool_ring_map(memfd)
        let number = errno
        PoolDescriptors.close(memfd)
        guard let region else { throw ForkPoolError(.systemCallFailed, "cannot map a worker's shared rings", errno: number) }
        return SharedRing(region: region, side: .pool, unmapsRegion: true)
    }

    /// This worker's side, if it was forked with rings.
    static func inThisWorker() -> SharedRing? {
        forkpool_worker_ring_region().map { SharedRing(region: $0, side: .worker, unmapsRegion: false) }
    }

    deinit {
        if unmapsRegion { forkpool_ring_unmap(region) }
    }

    private func slot(_ ring: Ring, _ sequence: UInt64) -> UnsafeMutableRawPointer {
        region + ring.slots + Int(sequence % Self.slotCount) * Self.slotBytes
    }

    // MARK: Producing

    enum Publish: Equatable {
        /// The frame is in its slot.
        case published
        /// A marker is in the slot: send the frame on the socket now, before any other.
        case onSocket
        /// No slot is free: try again once the consumer moved on.
        case full
    }

    /// Publishes one frame (`frame.count` bytes, a whole frame), or a marker for it when it does
    /// not fit a slot or `socketOnly`. Throws when the consumer's count is impossible.
    func publish(_ frame: UnsafeRawBufferPointer, socketOnly: Bool = false) throws(ForkPoolError) -> Publish {
        if sent - peerConsumed >= Self.slotCount {
            let consumed = forkpool_ring_load_acquire(region + outgoing.consumed)
            guard consumed >= peerConsumed, consumed <= sent else {
                throw ForkPoolError(.malformedFrame, "the shared ring's consumer count \(consumed) is outside \(peerConsumed)...\(sent)")
            }
            peerConsumed = consumed
            if sent - peerConsumed >= Self.slotCount { return .full }
        }
        let slot = slot(outgoing, sent)
        let fits = !socketOnly && frame.count <= Self.slotFrameBytes
        if fits {
            (slot + Self.slotHeaderBytes).copyMemory(from: frame.baseAddress!, byteCount: frame.count)
            slot.storeBytes(of: UInt32(frame.count), toByteOffset: 8, as: UInt32.self)
        } else {
            slot.storeBytes(of: Self.onSocket, toByteOffset: 8, as: UInt32.self)
        }
        sent += 1
        forkpool_ring_store_release(slot, sent)
        return fits ? .published : .onSocket
    }

    /// After publishing: whether the consumer had gone to sleep (its flag is cleared here), so
    /// a `doorbell` frame must wake it.
    func consumerNeedsWaking() -> Bool {
        forkpool_ring_fence()
        let flag = region + outgoing.asleep
        return forkpool_ring_load_flag(flag) != 0 && forkpool_ring_exchange_flag(flag, 0) != 0
    }

    /// After publishing: rings a consumer gone to sleep with one `doorbell` frame on `socket`,
    /// sent without blocking (16 bytes go in one piece or not at all, and a socket too full for
    /// them already holds bytes that wake the consumer). False only if the socket is dead.
    @discardableResult
    func wakeConsumer(through socket: CInt) -> Bool {
        guard consumerNeedsWaking() else { return true }
        let sent = FrameHeader.doorbell.withUnsafeBytes { forkpool_send(socket, $0.baseAddress, $0.count, 1) }
        return sent >= 0 || errno == EAGAIN || errno == EWOULDBLOCK
    }

    // MARK: Consuming

    enum Incoming {
        /// Nothing published yet.
        case empty
        /// The next frame comes on the socket.
        case onSocket
        /// A frame was handed to the body (its bytes valid only there).
        case frame
    }

    /// Hands the next published frame's bytes to `body` (which must copy what it keeps), then
    /// frees its slot. Throws `.malformedFrame` for a sequence number or length the protocol
    /// does not allow.
    func receive(_ body: (UnsafeRawBufferPointer) throws(ForkPoolError) -> Void) throws(ForkPoolError) -> Incoming {
        let slot = slot(incoming, received)
        let sequence = forkpool_ring_load_acquire(slot)
        let unpublished = received >= Self.slotCount ? received + 1 - Self.slotCount : 0
        if sequence == unpublished { return .empty }
        guard sequence == received + 1 else {
            throw ForkPoolError(.malformedFrame, "shared ring slot \(received % Self.slotCount) holds sequence number \(sequence), "
                                + "expected \(received + 1) or \(unpublished)")
        }
        let length = forkpool_ring_load_u32(slot + 8)  // read once, atomically: the worker may write it still
        if length == Self.onSocket {
            consume()
            return .onSocket
        }
        guard Int(length) >= FrameHeader.size, Int(length) <= Self.slotFrameBytes else {
            throw ForkPoolError(.malformedFrame, "shared ring slot \(received % Self.slotCount) holds a frame of \(length) bytes")
        }
        try body(UnsafeRawBufferPointer(start: slot + Self.slotHeaderBytes, count: Int(length)))
        consume()
        return .frame
    }

    private func consume() {
        received += 1
        forkpool_ring_store_release(region + incoming.consumed, received)
    }

    /// Whether a frame (or a marker) waits in the incoming ring. Never throws: a bad sequence
    /// number counts as waiting, so the reader finds the fault.
    var hasIncoming: Bool {
        let sequence = forkpool_ring_load_acquire(slot(incoming, received))
        return sequence != (received >= Self.slotCount ? received + 1 - Self.slotCount : 0)
    }

    /// Before sleeping: raises this side's `asleep` flag and looks once more. False (flag
    /// lowered) if something arrived meanwhile: do not sleep.
    func prepareToSleep() -> Bool {
        forkpool_ring_store_flag(region + incoming.asleep, 1)
        forkpool_ring_fence()
        guard !hasIncoming else {
            forkpool_ring_store_flag(region + incoming.asleep, 0)
            return false
        }
        return true
    }

    /// After sleeping: lowers the flag, so producers stop ringing.
    func wokeUp() {
        forkpool_ring_store_flag(region + incoming.asleep, 0)
    }

    // MARK: The task a worker took

    /// Worker: the task it is about to run.
    func recordTaken(_ taskID: UInt64) {
        forkpool_ring_store_release(region + Self.takenOffset, taskID)
    }

    /// Pool: the id the worker last recorded (any value: compared, never used as an index).
    var takenTaskID: UInt64 { forkpool_ring_load_acquire(region + Self.takenOffset) }
}

extension FrameHeader {
    /// The frame that wakes a side sleeping in poll on its socket: a header with no payload.
    static let doorbell: [UInt8] = {
        var frame = FrameHeader.emptyFrame()
        FrameHeader(kind: .doorbell, length: 0, taskID: 0).write(into: &frame)
        return frame
    }()
}
