// KernelBaseline: the figures bench/limits (C) measured in this same run — what the kernel
// itself costs for a socketpair round trip, a condvar hand-off, a bulk echo and a fork — so
// every ForkPool overhead figure is printed as a ratio to it (Figures.swift).
import Foundation

struct KernelBaseline: Codable {
    struct Latency: Codable {
        var p50_us: Double
        var p99_us: Double
    }

    struct Bulk: Codable {
        var bytes: Int
        var median_seconds: Double
        var bandwidth_MiB_s: Double
    }

    struct Pipelined: Codable {
        var workers: Int
        var window: Int
        var tasks: Int
        var tasks_per_second: Double
    }

    struct SharedMemoryCallers: Codable {
        var workers: Int
        var callers: Int
        var tasks: Int
        var tasks_per_second: Double
    }

    var socketpair_round_trip: Latency
    /// Two processes handing one shared cache line back and forth, both spinning.
    var shm_round_trip: Latency?
    /// 8 blocking callers over shared-memory slots served by forked workers, futex sleeps.
    var shm_ring_callers: SharedMemoryCallers?
    /// Both ends busy-polling with MSG_DONTWAIT: the socket's floor without a wake-up.
    var busy_poll_round_trip: Latency?
    /// N forked echo workers, a window of requests in flight each, one write and one read per task.
    var pipelined_echo: Pipelined?
    var condvar_ping_pong: Latency
    var spin_ping_pong: Latency
    var fork_exit_wait: Latency
    var bulk_echo_64MiB: Bulk

    static func load(_ path: String) -> KernelBaseline? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(KernelBaseline.self, from: data)
    }
}
