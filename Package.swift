// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Airlock",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "AirlockKit", targets: ["AirlockKit"]),
        .executable(name: "airlock", targets: ["airlock"]),
        .executable(name: "airlock-bench", targets: ["airlock-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"]), .brew(["libarchive"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .target(
            name: "AirlockKit",
            dependencies: ["CArchive", "COpenSSL", .product(name: "Yams", package: "Yams")]
        ),
        .executableTarget(
            name: "airlock",
            dependencies: ["AirlockKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The benchmark: datasets, statistics, verdicts and the report (it drives the `airlock`
        // binary, so it does not link AirlockKit), and its runner.
        .target(name: "AirlockBench"),
        .executableTarget(
            name: "airlock-bench",
            dependencies: ["AirlockBench", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "AirlockKitTests", dependencies: ["AirlockKit"]),
        .testTarget(name: "AirlockBenchTests", dependencies: ["AirlockBench"]),
        .testTarget(name: "airlockTests", dependencies: ["AirlockKit"]),
    ]
)
