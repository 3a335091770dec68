// A worker host across a real network link: the host runs in a network namespace of its own,
// joined to this one by a veth pair with addresses of the test's own (10.213.N.1 here, .2
// there), so its database traffic crosses a network interface. Jobs run there; then the
// link is cut mid-job (the near end set down): the job's lease lapses and a host on this side
// runs it; once the link is back, the far host drops its stale outcome and serves again.
import ClusterJobs
@_spi(Integration) import ForkPool
import ForkPoolPostgres
@testable import PostgresJobHost
import Foundation
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A network namespace with one veth link to this one; deleted (with the link) on `remove()`.
struct LinkedNamespace {
    let name: String
    let nearEnd: String
    let nearAddress: String

    init() throws {
        // A subnet no other namespace on this machine uses (another run's, say).
        var number = Int.random(in: 20...250)
        while (try? shell("ip netns list | grep -q '^fpgtest\(number)\\b'")) != nil { number = Int.random(in: 20...250) }
        name = "fpgtest\(number)"
        nearEnd = "fpg\(number)a"
        nearAddress = "10.213.\(number).1"
        let farEnd = "fpg\(number)b", farAddress = "10.213.\(number).2"
        do {
            try shell("""
                ip netns add \(name) && ip link add \(nearEnd) type veth peer name \(farEnd) && \
                ip link set \(farEnd) netns \(name) && ip addr add \(nearAddress)/24 dev \(nearEnd) && ip link set \(nearEnd) up && \
                ip netns exec \(name) ip addr add \(farAddress)/24 dev \(farEnd) && \
                ip netns exec \(name) ip link set \(farEnd) up && ip netns exec \(name) ip link set lo up
                """)
        } catch {
            // Half made: take down what was made (the test fails with the error).
            try? shell("ip netns del \(name) 2>/dev/null; ip link del \(nearEnd) 2>/dev/null; true")
            throw error
        }
    }

    func setLink(up: Bool) throws { try shell("ip link set \(nearEnd) \(up ? "up" : "down")") }

    func remove() { try? shell("ip netns del \(name)") }
}

@Suite(.serialized, .timeLimit(.minutes(1)))
struct NetworkNamespaceTests {
    // Making namespaces and veth links (`ip netns add`, `ip link`) takes root (CAP_NET_ADMIN):
    // a developer's `make test` skips this test, saying so; as root it runs, and fails if the
    // namespace cannot be set up.
    @Test(.enabled(if: geteuid() == 0, "needs root for `ip netns` (network namespaces and veth links)"))
    func aHostAcrossANetworkLinkLosesItMidJobAndComesBack() async throws {
        let database = try await TestDatabase()
        let queue = try database.makeQueue()
        let port = try #require(ProcessInfo.processInfo.environment["FORKPOOL_PG_PORT"])
        let namespace = try LinkedNamespace()
        defer { namespace.remove() }
        let far = try HostProcess(name: "far", queue: database.queueName,
                                  url: "postgres://postgres@\(namespace.nearAddress):\(port)/forkpool_test",
                                  namespace: namespace.name, leaseMilliseconds: 1500)
        // Jobs cross the link.
        let first = try await queue.map((0..<4).map { SleepJob(milliseconds: 5, tag: $0) })
        #expect(first == (0..<4).map { HostAnswer(host: "far", value: $0) })

        let cut = try await queue.submit(SleepJob(milliseconds: 2000, tag: 9))
        try await database.waitUntil("the far host holds the job") { try await database.row(cut.id).leaseOwner == "far" }
        try namespace.setLink(up: false)
        let near = try HostProcess(name: "near", queue: database.queueName, url: database.url)
        #expect(try await cut.value == HostAnswer(host: "near", value: 9))
        #expect(try await database.row(cut.id).attempts == 2)
        #expect(near.terminate() == 0)

        try namespace.setLink(up: true)
        try await database.waitUntil("the far host drops its stale outcome", seconds: 40) { far.log.contains("outcome dropped") }
        let after = try await queue.map((0..<4).map { SleepJob(milliseconds: 5, tag: 10 + $0) })
        #expect(after == (0..<4).map { HostAnswer(host: "far", value: 10 + $0) })
        #expect(try await database.row(cut.id).state == "succeeded")
        #expect(far.terminate() == 0)
    }
}
