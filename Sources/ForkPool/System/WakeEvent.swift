// WakeEvent: the eventfd that wakes a poll loop from other threads — made, signalled, drained
// and closed here, so the loop's code says what it means instead of writing 8 bytes.
import CForkShim
import Glibc

struct WakeEvent {
    /// The descriptor to poll for POLLIN.
    let descriptor: CInt

    /// A new close-on-exec, non-blocking eventfd, registered with the pool descriptors.
    static func make() throws(ForkPoolError) -> WakeEvent {
        WakeEvent(descriptor: try PoolDescriptors.register(forkpool_eventfd, name: "eventfd"))
    }

    /// Makes the descriptor readable (the counter grows; one drain takes every signal).
    func signal() {
        let one: UInt64 = 1
        _ = withUnsafeBytes(of: one) { SystemCall.write(descriptor, $0) }
    }

    /// Takes every pending signal, so the descriptor polls quiet again.
    func drain() {
        var counter: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &counter) { SystemCall.read(descriptor, into: $0) }
    }

    /// Closes it (and unregisters it).
    func close() { PoolDescriptors.close(descriptor) }

    /// Unregisters it without closing: someone else closed it, and the number may be another
    /// file's by now.
    func forget() { PoolDescriptors.forget(descriptor) }
}
