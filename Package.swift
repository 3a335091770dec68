// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ForkPool",
    products: [
        .library(name: "ForkPool", targets: ["ForkPool"]),
        .executable(name: "Demo", targets: ["Demo"]),
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
        .executableTarget(
            name: "Demo",
            dependencies: ["ForkPool"]
        ),
        .testTarget(
            name: "ForkPoolTests",
            dependencies: ["ForkPool", "CForkShim"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
