// ForkServer: the single-threaded "zygote" that forks every worker of one pool, and the
// messages the pool and it exchange.
//
//   dispatcher ── spawn ──────────────▶ fork server (one thread, forked once at pool creation)
//              ◀─ spawned(pid) + [socket, pidfd] via SCM_RIGHTS ─┘   │ fork
//              ◀─ exited(pid, wait status) ── SIGCHLD/waitpid ◀───── worker
//
// After creation the parent is multi-threaded (dispatcher, callers, the application's own
// threads); a fork from it can leave the child holding a lock some other thread held at that
// instant. The fork server is forked once, early, and stays single-threaded, so every worker —
// the first ones and every replacement — is forked from a process where no other thread can
// hold a lock. Workers are the server's children: it reaps them and reports each wait status.
// Its own parent-death signal fires when the pool's dispatcher thread (hence the pool's
// process) dies; the workers' fires when the server dies: no orphans either way.
//
// The server's loop is C (`forkpool_start_fork_server` in CForkShim): the server is a fork of
// a multi-threaded program, and Swift code there could block forever on a runtime lock some
// other thread held at the instant of fork. Swift runs again only in a worker, after its own
// fork, from `PoolDescriptors.startForkServer`. This file is the pool's side: the message.
import CForkShim
import Glibc

/// One control message: 16 bytes, little-endian on the wire (same machine, but explicit).
struct ForkServerMessage: Equatable {
    enum Operation: UInt32 {
        /// Dispatcher → server: fork one worker.
        case spawn = 1
        /// Server → dispatcher: a worker was forked; its socket and pidfd are attached.
        case spawned = 2
        /// Server → dispatcher: a fork failed; `value` is the errno.
        case spawnFailed = 3
        /// Server → dispatcher: worker `pid` ended; `value` is its wait status.
        case exited = 4
    }

    static let size = 16
    var operation: Operation
    var pid: pid_t = 0
    var value: Int64 = 0

    var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: operation.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: pid.littleEndian, toByteOffset: 4, as: Int32.self)
            raw.storeBytes(of: value.littleEndian, toByteOffset: 8, as: Int64.self)
        }
        return bytes
    }

    init(_ operation: Operation, pid: pid_t = 0, value: Int64 = 0) {
        self.operation = operation
        self.pid = pid
        self.value = value
    }

    init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count == Self.size,
              let operation = Operation(rawValue: UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self))) else { return nil }
        self.operation = operation
        pid = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: Int32.self))
        value = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: Int64.self))
    }
}
