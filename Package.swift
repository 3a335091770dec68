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
        // The Demo's command line; the ForkPool library depends on nothing but Glibc.
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
        .target(
            name: "ForkPool",
            dependencies: ["CForkShim"]
        ),
        // The pools as `Service`s: graceful shutdown on SIGTERM inside a ServiceGroup.
        .target(
            name: "ForkPoolServiceLifecycle",
            dependencies: [
                "ForkPool",
                "CForkShim",
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
                "Workloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .testTarget(
            name: "ForkPoolTests",
            dependencies: ["ForkPool", "CForkShim"]
        ),
        .testTarget(
            name: "ForkPoolServiceLifecycleTests",
            dependencies: [
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
            dependencies: ["Demo", "Workloads"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
