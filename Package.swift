// swift-tools-version:6.0
import PackageDescription

// Airlock builds on Linux only (it relies on Linux system calls: renameat2, syncfs,
// posix_spawn's closefrom, /proc), so no Apple platform is declared.
let package = Package(
    name: "Airlock",
    products: [
        .library(name: "AirlockFormat", targets: ["AirlockFormat"]),
        .library(name: "AirlockKit", targets: ["AirlockKit"]),
        .library(name: "AirlockRollout", targets: ["AirlockRollout"]),
        .library(name: "AirlockRegistry", targets: ["AirlockRegistry"]),
        .executable(name: "airlock", targets: ["airlock"]),
        .executable(name: "airlock-bench", targets: ["airlock-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // gzip: a gzip bundle's stream, and the recordings of `airlock serve` (docs/replay.md).
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // zstd itself: a bundle's stream (with the window limit of docs/format.md) and the
        // manifest patch of a delta bundle (`zstd --patch-from`).
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // The Linux calls Swift's Glibc module does not declare (syncfs, renameat2, ...).
        .target(name: "CAirlockSystem"),
        // What a bundle is and how it is verified: the format, keys, the trust store and the
        // verifier. No site, no governance, no YAML: a verify-only user links only this.
        .target(name: "AirlockFormat", dependencies: ["CArchive", "COpenSSL", "CZstd", "CZlib", "CAirlockSystem"]),
        // Packing, the site (install, activation, history, rollout state) and governance
        // (permissions, approvals, eval, evidence).
        .target(
            name: "AirlockKit",
            dependencies: ["AirlockFormat", "AirlockRollout", "CAirlockSystem", "CZlib", .product(name: "Yams", package: "Yams")]
        ),
        // The rollout's decisions (task-sticky assignment, the canary's sequential tests, circuit
        // breakers): pure Swift on top of the format's digests, no SwiftNIO.
        .target(name: "AirlockRollout", dependencies: ["AirlockFormat"]),
        // `airlock serve`: the site daemon (Hummingbird 2, async-http-client). The only target
        // that links SwiftNIO; the format, the verifier and the site library do not.
        .target(
            name: "AirlockServe",
            dependencies: [
                "AirlockKit", "AirlockFormat", "AirlockRollout", "CAirlockSystem",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Bundles through a site's OCI registry: `push`, `pull`, `install oci://` (async-http-client;
        // the format and the verifier it feeds do not link it).
        .target(
            name: "AirlockRegistry",
            dependencies: [
                "AirlockFormat", "CAirlockSystem",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "airlock",
            dependencies: [
                "AirlockKit", "AirlockFormat", "AirlockRollout", "AirlockServe", "AirlockRegistry", "CAirlockSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The benchmark: datasets, statistics, verdicts and the report (it drives the `airlock`
        // binary, so it does not link AirlockKit), and its runner.
        .target(name: "AirlockBench"),
        .executableTarget(
            name: "airlock-bench",
            dependencies: ["AirlockBench", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The fuzz targets (docs/fuzzing.md): one check per parser of outside input, and the
        // command libFuzzer drives (`make fuzz` builds it with -sanitize=fuzzer,address in
        // .build-fuzz; a plain build replays saved inputs).
        .target(name: "AirlockFuzzTargets", dependencies: ["AirlockFormat", "AirlockKit", "AirlockRollout", "CAirlockSystem"]),
        .executableTarget(name: "airlock-fuzz", dependencies: ["AirlockFuzzTargets", "CAirlockSystem"]),
        .testTarget(name: "AirlockKitTests", dependencies: ["AirlockKit", "AirlockFormat", "AirlockRollout", "AirlockFuzzTargets", "CZstd"]),
        .testTarget(name: "AirlockBenchTests", dependencies: ["AirlockBench"]),
        .testTarget(name: "AirlockRolloutTests", dependencies: ["AirlockRollout"]),
        .testTarget(name: "AirlockRegistryTests", dependencies: ["AirlockRegistry", "AirlockFormat"]),
        .testTarget(name: "airlockTests", dependencies: ["AirlockKit", "AirlockFormat", .product(name: "Yams", package: "Yams")]),
    ]
)
