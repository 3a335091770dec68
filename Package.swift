// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ForkPool",
    products: [
        .library(name: "ForkPool", targets: ["ForkPool"]),
        .executable(name: "Demo", targets: ["Demo"]),
    ],
    dependencies: [
        // The Demo's command line; the ForkPool library depends on nothing but Glibc.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The benchmark's latency percentiles; also the Demo's only.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // `make docs`: the DocC catalog through `swift package generate-documentation`; no target uses it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
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
