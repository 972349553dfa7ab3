import AirlockFormat
import Foundation

/// How to pack a release.
public struct PackOptions: Sendable {
    /// The keys that sign the manifest, at least one; a key given twice signs once.
    public var keys: [PrivateKey]
    /// Where to write the bundle; nil: `<name>-<version>.airlock` in the current directory.
    public var output: String?
    /// How the bundle is compressed: zstd (the default), gzip or none.
    public var compression: Compression = .zstd
    /// Compression level; nil: zstd `BundleLayout.defaultZstdLevel` (1, ADR 0002), gzip 6. Part of
    /// what makes output reproducible.
    public var level: Int?
    /// `SOURCE_DATE_EPOCH`: the `created` time and every entry's mtime. nil: now.
    public var sourceDateEpoch: Int64?
    /// Store the content of a symlink whose target is a regular file inside the release
    /// directory as a regular file. Otherwise symlinks are refused.
    public var followInternalSymlinks = false
    /// Hashing threads; nil: one per core.
    public var threads: Int?
    /// Write a delta bundle against this base: the payload carries only the files whose content
    /// (and executable bit) the base does not have.
    public var base: DeltaBase?
    /// For a delta: carry the manifest whole (`airlock.delta/v1`), so that any site holding the
    /// content can install it, instead of as a patch against the base's manifest
    /// (`airlock.delta/v2`, the default), which needs the base release's manifest at the site.
    public var fullManifestDelta = false
    /// zstd worker threads (at least 1). The output is the same for any value; memory grows
    /// with it (a one-pass pack: a 2 MiB frame buffer and a compressor each, 3 to 7 MiB a
    /// worker at level 1).
    public var compressionThreads = BundleLayout.defaultZstdThreads
    /// Told before each eval run (a line for the user).
    public var evalProgress: (@Sendable (String) -> Void)?

    /// Options that sign with `keys` and leave everything else at its default.
    public init(keys: [PrivateKey]) { self.keys = keys }
}

/// What `Packer.pack` wrote.
public struct PackResult: Sendable, JSONRepresentable {
    /// The bundle id: the SHA-256 of the manifest.
    public var bundleID: SHA256Digest
    /// Where the bundle was written.
    public var path: String
    /// The manifest the bundle carries, as signed.
    public var manifest: Manifest
    /// The size of the bundle file, in bytes.
    public var bundleBytes: UInt64
    /// For a delta bundle: what it omits.
    public var delta: DeltaInfo?
    /// The key ids that signed it.
    public var signers: [String] = []
    /// How the bundle is compressed.
    public var compression: Compression = .zstd
    /// The eval gate's attestation, when the release has one.
    public var eval: EvalAttestation?

    /// The `--json` form of `airlock pack` (docs/cli.md).
    public var json: JSONValue {
        .object([
            "bundle_id": .string(bundleID.prefixed), "bundle": .string(path), "name": .string(manifest.name),
            "version": .string(manifest.version), "sequence": .integer(manifest.sequence), "files": .integer(manifest.files.count),
            "bytes": .integer(manifest.totalBytes), "bundle_bytes": .integer(bundleBytes),
            "signers": .array(signers.map { .string($0) }), "compression": .string(compression.rawValue),
            "delta": delta.map { .object(["base": .string($0.base.prefixed), "omitted_files": .integer($0.omitted.count)]) } ?? .null,
            "eval": eval?.json ?? .null,
        ])
    }
}

/// What a delta bundle is made against.
public enum DeltaBase: Sendable {
    /// An earlier bundle (its manifest is read from its head).
    case bundle(String)
    /// The manifest.json of an installed release (`<root>/<name>/releases/<dir>/manifest.json`).
    case manifest(String)

    /// Finds this base's manifest for a delta bundle made against it (`BundleReader.baseManifest`);
    /// throws `delta-base-mismatch` when the delta was made against another release, and what
    /// reading the base throws.
    public var lookup: BaseManifestLookup {
        { id, _ in
            let (baseID, bytes): (SHA256Digest, [UInt8])
            switch self {
            case .bundle(let path):
                let s = try BundleSummary.read(path: path)
                (baseID, bytes) = (s.bundleID, s.manifestBytes)
            case .manifest(let path):
                let read = try FileIO.read(path, limit: BundleLayout.maxManifestBytes, what: "base manifest")
                (baseID, bytes) = (SHA256Digest.of(read), read)
            }
            guard baseID == id else {
                throw AirlockError(
                    .usage, .deltaBaseMismatch, "the base given is release \(baseID.prefixed); this delta bundle was made against \(id.prefixed): give that one"
                )
            }
            return bytes
        }
    }

    /// The base's bundle id, manifest and exact manifest bytes.
    func load() throws -> (SHA256Digest, Manifest, [UInt8]) {
        switch self {
        case .bundle(let path):
            let s = try BundleSummary.read(path: path)
            return (s.bundleID, s.manifest, s.manifestBytes)
        case .manifest(let path):
            let bytes = try FileIO.read(path, limit: BundleLayout.maxManifestBytes, what: "base manifest")
            return (SHA256Digest.of(bytes), try Manifest.parse(bytes), bytes)
        }
    }
}
