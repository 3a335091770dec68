// swift-tools-version:6.2
// The HTTP benchmark of `make bench`: a Hummingbird server doing a small CPU job per request
// through a ForkPool pool (processes, then threads), driven by a load generator on loopback.
// A package of its own, so that ForkPool's own build and tests never fetch or build SwiftNIO.
import PackageDescription

let package = Package(
    name: "HTTPBench",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "ForkPool", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "HTTPBench",
            dependencies: [
                .product(name: "ForkPool", package: "ForkPool"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
