// HTTPBench: a real HTTP server (Hummingbird, on SwiftNIO) whose handler runs a small CPU job
// per request through a ForkPool pool, driven by a load generator on loopback: keep-alive
// connections, each one request in flight, for a fixed time. The same server through a
// ProcessPool and through a ThreadPool (2 workers each), rounds alternating, medians compared.
//
//   load threads ── GET /work ──▶ Hummingbird (event loops) ── await pool.submit(n).value ──▶ worker
//        ▲                                                                                      │
//        └──────────────────────────── 200, the job's result ◀──────────────────────────────────┘
//
// Output: a line per round on stderr, and one JSON object on stdout (make bench writes it to
// bench/results/http.json, which docs/BENCHMARKS.md shows).
import ForkPool
import Foundation
import Glibc
import Hummingbird
import Logging
import ServiceLifecycle

/// The CPU job: `steps` multiply-adds on `n`, the same in either pool. A request carries both
/// (`n` in its low 20 bits), so the load generator can check every answer.
@Sendable func job(_ request: Int) -> Int {
    let (n, steps) = (request & 0xF_FFFF, request >> 20)
    var accumulator = UInt64(truncatingIfNeeded: n)
    for step in 0..<UInt64(steps) { accumulator = accumulator &* 6_364_136_223_846_793_005 &+ step }
    return Int(truncatingIfNeeded: accumulator >> 1)
}

struct Settings {
    var seconds = 5.0
    var connections = 32
    var rounds = 3
    var workers = 2
    /// The job sizes measured, in multiply-adds: a tiny job (a few µs, the pool's own cost
    /// shows) and a small one (tens of µs).
    var jobSteps = [4_000, 50_000]

    init(_ arguments: [String]) {
        var index = 1
        while index + 1 < arguments.count {
            let value = arguments[index + 1]
            switch arguments[index] {
            case "--seconds": seconds = Double(value) ?? seconds
            case "--connections": connections = Int(value) ?? connections
            case "--rounds": rounds = Int(value) ?? rounds
            case "--workers": workers = Int(value) ?? workers
            case "--steps": jobSteps = value.split(separator: ",").compactMap { Int($0) }
            default: break
            }
            index += 2
        }
    }
}

/// One server: the pool behind a route, on a free port of 127.0.0.1.
func serve(through pool: any WorkerPool<Int, Int>, port: Int) -> Application<RouterResponder<BasicRequestContext>> {
    let router = Router()
    router.get("work") { request, _ -> String in
        let n = request.uri.queryParameters.get("n", as: Int.self) ?? 1
        return String(try await pool.submit(n).value)
    }
    return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                       logger: Logger(label: "http-bench"))
}

/// Keep-alive connections, one request in flight each, until `deadline`: responses counted and
/// each checked against the job's own result.
func load(port: Int, connections: Int, seconds: Double, steps: Int) throws -> Int {
    let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: connections)
    counts.initialize(repeating: 0)
    defer { counts.deallocate() }
    let failures = UnsafeMutableBufferPointer<Int>.allocate(capacity: connections)
    failures.initialize(repeating: 0)
    defer { failures.deallocate() }
    let start = Date()
    let deadline = start.addingTimeInterval(seconds)
    let group = DispatchGroup()
    nonisolated(unsafe) let (countsRef, failuresRef) = (counts, failures)
    for connection in 0..<connections {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            guard let socket = try? connect(port: port) else { failuresRef[connection] += 1; return }
            defer { close(socket) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var n = connection
            while Date() < deadline {
                n = (n + 1) % 1000
                let argument = steps << 20 | n
                let request = Array("GET /work?n=\(argument) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
                guard request.withUnsafeBytes({ send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count,
                      let body = readResponse(socket, &buffer), body == String(job(argument)) else {
                    failuresRef[connection] += 1
                    return
                }
                countsRef[connection] += 1
            }
        }
        thread.start()
    }
    group.wait()
    guard failures.reduce(0, +) == 0 else { throw BenchFailure(description: "\(failures.reduce(0, +)) connections failed") }
    return counts.reduce(0, +)
}

func connect(port: Int) throws -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw BenchFailure(description: "socket failed") }
    var one: Int32 = 1
    setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(socket)
        throw BenchFailure(description: "connect failed")
    }
    return socket
}

/// Reads one response (headers, then Content-Length bytes); its body, or nil.
func readResponse(_ socket: Int32, _ buffer: inout [UInt8]) -> String? {
    var received: [UInt8] = []
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        received.append(contentsOf: buffer[0..<count])
        guard let end = received.firstRange(of: Array("\r\n\r\n".utf8)) else { continue }
        let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 200"),
              let line = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
              let length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) else { return nil }
        while received.count - end.upperBound < length {
            let more = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard more > 0 else { return nil }
            received.append(contentsOf: buffer[0..<more])
        }
        return String(decoding: received[end.upperBound..<end.upperBound + length], as: UTF8.self)
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
}

/// A port nobody listens on now (bound, read, released).
func freePort() -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            _ = bind(socket, pointer, length)
            return getsockname(socket, pointer, &length)
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// One round: a server through `pool`, loaded for `seconds`; requests per second.
func round(_ pool: any WorkerPool<Int, Int>, settings: Settings, steps: Int) async throws -> Double {
    let port = freePort()
    let app = serve(through: pool, port: port)
    let group = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "http-bench")))
    let running = Task { try await group.run() }
    // Ready once it accepts a connection.
    var ready = false
    for _ in 0..<500 where !ready {
        if let socket = try? connect(port: port) { close(socket); ready = true } else { try await Task.sleep(for: .milliseconds(10)) }
    }
    guard ready else { throw BenchFailure(description: "the server never listened on port \(port)") }
    let seconds = settings.seconds, connections = settings.connections
    let requests = try await Task.detached { try load(port: port, connections: connections, seconds: seconds, steps: steps) }.value
    await group.triggerGracefulShutdown()
    try await running.value
    return Double(requests) / seconds
}

@main
struct HTTPBench {
    static func main() async throws {
        let settings = Settings(CommandLine.arguments)
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        var sizes: [[String: Any]] = []
        for steps in settings.jobSteps {
            var processes: [Double] = []
            var threads: [Double] = []
            for index in 0..<settings.rounds {
                let processPool = try ProcessPool(workers: settings.workers, work: job)
                processes.append(try await round(processPool, settings: settings, steps: steps))
                processPool.shutdown()
                let threadPool = try ThreadPool(workers: settings.workers, work: job)
                threads.append(try await round(threadPool, settings: settings, steps: steps))
                threadPool.shutdown()
                FileHandle.standardError.write(Data(("http, \(steps) steps, round \(index + 1): ProcessPool \(Int(processes.last!)) req/s, "
                                                     + "ThreadPool \(Int(threads.last!)) req/s\n").utf8))
            }
            sizes.append(["job_steps": steps, "process_pool_requests_per_second": processes, "thread_pool_requests_per_second": threads,
                          "process_pool_median": median(processes), "thread_pool_median": median(threads),
                          "ratio": median(processes) / median(threads)])
        }
        let result: [String: Any] = [
            "server": "Hummingbird 2, GET /work?n= → await pool.submit(n).value (a job of multiply-adds)",
            "connections": settings.connections, "seconds": settings.seconds, "workers": settings.workers, "rounds": settings.rounds,
            "jobs": sizes,
        ]
        let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
        FileHandle.standardOutput.write(json + Data("\n".utf8))
    }
}
