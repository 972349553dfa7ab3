import AirlockFormat
import AirlockKit
import ArgumentParser
import Foundation

struct PackCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Pack a release directory into a signed bundle.",
        discussion: "Reproducible: with the same inputs and SOURCE_DATE_EPOCH the bundle id is the same, and Ed25519-signed bundles are byte-identical.")

    @Argument(help: "The release directory (holds airlock.yaml).")
    var releaseDir: String

    @Option(name: .long, help: "A private key to sign with (repeatable).")
    var key: [String] = []

    @Option(name: .long, help: "Bundle to write (default: <name>-<version>.airlock here).")
    var out: String?

    @Option(name: .long, help: "zstd (default), gzip or none.")
    var compression: Compression = .zstd

    @Option(name: .long, help: "Compression level (zstd default 1, gzip default 6).")
    var level: Int?

    @Option(name: .long, help: "zstd worker threads (default 2). The bundle is the same for any value; memory grows with it.")
    var threads: Int = BundleLayout.defaultZstdThreads

    @Flag(
        name: .long,
        help: "Store the content of a symlink whose target is a regular file inside the release as a regular file (otherwise symlinks are refused).")
    var followInternalSymlinks = false

    @Option(name: .long, help: "Write a delta bundle against this earlier bundle: only content it lacks is carried.")
    var base: String?

    @Option(name: .long, help: "Write a delta bundle against an installed release's manifest.json.")
    var baseManifest: String?

    @Flag(
        name: .long,
        help:
            "For a delta: carry the manifest whole (larger), so that a site holding the content in any release can install it, not only one with the base installed."
    )
    var fullManifest = false

    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if key.isEmpty { throw ValidationError("pack needs --key KEY (make one with `airlock key generate --out vendor`)") }
        if let level, compression == .zstd && !(1...19).contains(level) || compression == .gzip && !(1...9).contains(level) {
            throw ValidationError("--level \(level) is out of range (zstd 1-19, gzip 1-9)")
        }
        if !(1...64).contains(threads) { throw ValidationError("--threads must be from 1 to 64") }
        if base != nil && baseManifest != nil { throw ValidationError("give --base or --base-manifest, not both") }
        if fullManifest && base == nil && baseManifest == nil { throw ValidationError("--full-manifest is for a delta: give --base or --base-manifest too") }
    }

    func run() throws {
        var options = PackOptions(keys: try key.map { try PrivateKey.load(path: $0) })
        options.output = out
        options.compression = compression
        options.level = level
        options.compressionThreads = threads
        options.base = base.map(DeltaBase.bundle) ?? baseManifest.map(DeltaBase.manifest)
        options.fullManifestDelta = fullManifest
        options.followInternalSymlinks = followInternalSymlinks
        if let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"] {
            guard let v = Int64(epoch), v >= 0 else {
                throw AirlockError(.usage, .sourceDateEpochInvalid, "SOURCE_DATE_EPOCH=\(epoch) is not a number of seconds since 1970; fix or unset it")
            }
            options.sourceDateEpoch = v
        }
        options.evalProgress = { Output.stderr($0) }
        let r = try Packer.pack(directory: releaseDir, options: options, progress: ProgressReporter.forTerminal(label: "packing"))
        let m = r.manifest
        if output.json {
            Output.json(r)
            return
        }
        print(
            "packed \(m.name) \(m.version) (sequence \(m.sequence)): \(m.files.count) files, \(ByteCount.format(m.totalBytes)), signed by \(options.keys.count) key\(options.keys.count == 1 ? "" : "s")"
        )
        print("  bundle id  \(r.bundleID.prefixed)")
        print("  bundle     \(r.path) (\(ByteCount.format(r.bundleBytes)), \(compression.rawValue))")
        if let e = r.eval {
            print(
                "  eval       score \(EvalAttestation.decimal(e.score)) >= threshold \(EvalAttestation.decimal(e.threshold)) (lowest of \(e.runs) run\(e.runs == 1 ? "" : "s"); \(e.passed)/\(e.total) cases passed), suite \(e.suite.prefixed.prefix(19))..."
            )
        }
        if let d = r.delta {
            print("  delta of   \(d.base.prefixed): carries \(m.files.count - d.omitted.count) files, omits \(d.omitted.count) the base has")
        }
    }
}
