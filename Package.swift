// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ForkPool",
    products: [
        .library(name: "ForkPool", targets: ["ForkPool"]),
        // Optional: ProcessPool and ThreadPool as swift-service-lifecycle Services.
        .library(name: "ForkPoolServiceLifecycle", targets: ["ForkPoolServiceLifecycle"]),
        .executable(name: "Demo", targets: ["Demo"]),
    ],
    dependencies: [
        // The library's only dependencies: the logging and metrics APIs (no backend; both are
        // silent unless the application bootstraps one).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // The Demo's command line.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The benchmark's latency percentiles; also the Demo's only.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // `make docs`: the DocC catalog through `swift package generate-documentation`; no target uses it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // ForkPoolServiceLifecycle's only; the core ForkPool target does not depend on it.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "CForkShim",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // The wire format: frame header, payload codec, the binary Codable coder. Pure: no
        // system calls, no I/O, no Glibc.
        .target(
            name: "ForkPoolWire"
        ),
        .target(
            name: "ForkPool",
            dependencies: [
                "ForkPoolWire",
                "CForkShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // The pools as `Service`s: graceful shutdown on SIGTERM inside a ServiceGroup.
        .target(
            name: "ForkPoolServiceLifecycle",
            dependencies: [
                "ForkPool",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The article's three workloads (tagger, io, fib), shared by the Demo and its tests.
        .target(
            name: "Workloads"
        ),
        .executableTarget(
            name: "Demo",
            dependencies: [
                "ForkPool",
                "ForkPoolWire",
                "Workloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // Real faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS) for ForkPoolTests.
        .target(
            name: "CFaultInjection",
            path: "Tests/CFaultInjection",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // What every test target shares: waiting, processes and their liveness, signal handlers,
        // gates. A plain target (test targets cannot depend on each other), in no product.
        .target(
            name: "ForkPoolTestSupport",
            path: "Tests/ForkPoolTestSupport"
        ),
        .testTarget(
            name: "ForkPoolTests",
            dependencies: [
                "ForkPoolTestSupport",
                "ForkPool",
                "ForkPoolWire",
                "Workloads",
                "CForkShim",
                "CFaultInjection",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "ForkPoolServiceLifecycleTests",
            dependencies: [
                "ForkPoolTestSupport",
                "ForkPool",
                "ForkPoolServiceLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "WorkloadsTests",
            dependencies: ["Workloads"]
        ),
        .testTarget(
            name: "DemoTests",
            dependencies: ["ForkPoolTestSupport", "Demo", "Workloads"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
