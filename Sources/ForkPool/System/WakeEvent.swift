// WakeEvent: the eventfd that wakes a poll loop from other threads — made, signalled, drained
// and closed here, so the loop's code says what it means instead of writing 8 bytes. It also
// keeps whether a wake-up is pending (one write per turn is enough) and whether the descriptor
// is gone (closed by us, or by someone else: then never written again).
import CForkShim
import Glibc

/// The owner calls `signal`, `drained`, `close` and `markLost` under its one lock.
final class WakeEvent: @unchecked Sendable {
    /// The descriptor to poll for POLLIN.
    let descriptor: CInt
    private var isPending = false
    /// Closed, or lost: never written again.
    private(set) var isClosed = false
    /// Closed by someone else: the number may be another file's by now, so it is not closed.
    private var isLost = false

    private init(descriptor: CInt) {
        self.descriptor = descriptor
    }

    /// A new close-on-exec, non-blocking eventfd, registered with the pool descriptors.
    static func make() throws(ForkPoolError) -> WakeEvent {
        WakeEvent(descriptor: try PoolDescriptors.register(forkpool_eventfd, name: "eventfd"))
    }

    /// Makes the descriptor readable, unless a wake-up is already pending or it is gone.
    func signal() {
        guard !isClosed, !isPending else { return }
        isPending = true
        let one: UInt64 = 1
        _ = withUnsafeBytes(of: one) { SystemCall.write(descriptor, $0) }
    }

    /// Takes every pending signal, so the descriptor polls quiet again.
    func drain() {
        var counter: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &counter) { SystemCall.read(descriptor, into: $0) }
        isPending = false
    }

    /// Someone else closed the descriptor: it is never written or closed here again.
    func markLost() {
        isClosed = true
        isLost = true
    }

    /// Closes it (and unregisters it); a lost descriptor is only unregistered.
    func close() {
        if isLost {
            PoolDescriptors.forget(descriptor)
            isLost = false
        } else if !isClosed {
            PoolDescriptors.close(descriptor)
        }
        isClosed = true
    }
}
