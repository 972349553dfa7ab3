/// What a bundle says about itself, read from its head (manifest and signature entries) without
/// verifying anything. `inspect` and `diff` use it; nothing here may be trusted.
public struct BundleSummary: Sendable {
    /// The bundle's path as given.
    public var path: String
    /// The bundle id: the SHA-256 of the exact manifest bytes.
    public var bundleID: SHA256Digest
    /// The exact bytes of `airlock/manifest.json`.
    public var manifestBytes: [UInt8]
    /// The manifest, parsed strictly (its signatures unchecked).
    public var manifest: Manifest
    /// Key ids named by the signature entries (not checked).
    public var signerKeyIDs: [String]
    /// The compression detected from the data: zstd, gzip or none.
    public var compression: Compression?
    /// Set for a delta bundle.
    public var delta: DeltaInfo?

    /// Reads the head of the bundle at `path` and parses its manifest strictly. Throws what
    /// `BundleReader.init(path:readTimeout:)`, `BundleReader.readManifest`,
    /// `BundleReader.readSignatures`, `Manifest.parse` and `BundleReader.readSums(for:)` throw.
    /// `baseManifest` finds a delta's base manifest (`BundleReader.baseManifest`).
    public static func read(path: String, baseManifest: BaseManifestLookup? = nil) throws -> BundleSummary {
        let reader = try BundleReader(path: path)
        reader.baseManifest = baseManifest
        let bytes = try reader.readManifest()
        let sigs = try reader.readSignatures()
        let manifest = try Manifest.parse(bytes)
        try reader.readSums(for: manifest)
        return BundleSummary(
            path: path, bundleID: SHA256Digest.of(bytes), manifestBytes: bytes, manifest: manifest,
            signerKeyIDs: sigs.map(\.keyID), compression: reader.compression, delta: reader.delta)
    }

    /// Bytes of the files a delta omits.
    public var deltaOmittedBytes: UInt64 {
        guard let d = delta else { return 0 }
        let set = Set(d.omitted)
        return manifest.files.reduce(0) { $0 + (set.contains($1.path) ? $1.size : 0) }
    }

    /// The `--json` form of `airlock inspect` (docs/cli.md).
    public var json: JSONValue {
        let m = manifest
        var comps: [String: JSONValue] = [:]
        for (name, c) in m.components {
            var o: [String: JSONValue] = ["digest": .string(c.digest.prefixed), "files": .integer(c.files), "bytes": .integer(c.bytes)]
            if !c.metadata.isEmpty { o["metadata"] = .object(c.metadata.mapValues { .string($0) }) }
            comps[name] = .object(o)
        }
        return .object([
            "verified": .bool(false),
            "bundle": .string(path),
            "bundle_id": .string(bundleID.prefixed),
            "format": .string(m.format),
            "serve": m.serve?.json ?? .null,
            "name": .string(m.name),
            "version": .string(m.version),
            "sequence": .integer(m.sequence),
            "created": .string(m.created),
            "expires": m.expires.map { .string($0) } ?? .null,
            "compression": compression.map { .string($0.rawValue) } ?? .null,
            "components": .object(comps),
            "files": .integer(m.files.count),
            "bytes": .integer(m.totalBytes),
            "signers": .array(signerKeyIDs.map { .string($0) }),
            "attestations": m.attestations.map { .object($0) } ?? .null,
            "health": m.health.map { .object($0) } ?? .null,
            "delta": delta.map { d in
                .object([
                    "base": .string(d.base.prefixed), "omitted_files": .integer(d.omitted.count),
                    "omitted_bytes": .integer(deltaOmittedBytes),
                ])
            } ?? .null,
        ])
    }
}
