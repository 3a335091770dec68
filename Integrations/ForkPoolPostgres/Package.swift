// swift-tools-version:6.1
// ForkPoolPostgres: job pools on many hosts through PostgreSQL. A package of its own, so that a
// program using only the ForkPool product never fetches or builds postgres-nio or SwiftNIO.
import PackageDescription

let package = Package(
    name: "ForkPoolPostgres",
    products: [
        .library(name: "ForkPoolPostgres", targets: ["ForkPoolPostgres"]),
        // A worker host as a program (and `PostgresJobHost bench`): the tests' and the benchmark's.
        .executable(name: "PostgresJobHost", targets: ["PostgresJobHost"]),
    ],
    dependencies: [
        .package(name: "ForkPool", path: "../.."),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "ForkPoolPostgres",
            dependencies: [
                .product(name: "ForkPool", package: "ForkPool"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The jobs the host program, the tests and the benchmark share.
        .target(
            name: "ClusterJobs",
            dependencies: [.product(name: "ForkPool", package: "ForkPool")]
        ),
        .executableTarget(
            name: "PostgresJobHost",
            dependencies: [
                "ForkPoolPostgres",
                "ClusterJobs",
                .product(name: "ForkPool", package: "ForkPool"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ForkPoolPostgresTests",
            dependencies: [
                "ForkPoolPostgres",
                "ClusterJobs",
                "PostgresJobHost",
                .product(name: "ForkPool", package: "ForkPool"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
