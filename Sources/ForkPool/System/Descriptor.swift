// Descriptor: one pool descriptor (registered in PoolDescriptors) owned by one place at a
// time. It closes itself — unregistering first — when its owner lets it go, so an error path
// cannot leak it; `take()` hands the bare number on to an owner that closes it explicitly.

/// A registered descriptor that closes itself when dropped.
struct Descriptor: ~Copyable {
    /// The descriptor's number, for system calls; it stays owned here.
    let raw: CInt

    /// Takes ownership of `raw`, already registered with PoolDescriptors.
    init(registered raw: CInt) {
        self.raw = raw
    }

    /// Hands the number on without closing it: the caller owns it from now on.
    consuming func take() -> CInt {
        let raw = self.raw
        discard self
        return raw
    }

    /// Closes it now (dropping it does the same).
    consuming func close() {
        PoolDescriptors.close(raw)
        discard self
    }

    deinit {
        PoolDescriptors.close(raw)
    }
}

/// The two ends of a socketpair, each owned.
struct SocketPair: ~Copyable {
    var parent: Descriptor
    var child: Descriptor
}
