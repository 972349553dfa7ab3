/// What a bundle says about itself, read from its head (manifest and signature entries) without
/// verifying anything. `inspect` and `diff` use it; nothing here may be trusted.
public struct BundleSummary: Sendable {
    public var path: String
    public var bundleID: SHA256Digest
    public var manifestBytes: [UInt8]
    public var manifest: Manifest
    /// Key ids named by the signature entries (not checked).
    public var signerKeyIDs: [String]
    public var compression: Compression?
    /// Set for a delta bundle.
    public var delta: DeltaInfo?

    /// Reads the head of the bundle at `path` and parses its manifest strictly.
    public static func read(path: String) throws -> BundleSummary {
        let reader = try BundleReader(path: path)
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
            "format": .string(BundleLayout.format),
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

/// The difference between two releases, by component digest and by file.
public struct ReleaseDiff: Sendable {
    public struct ComponentChange: Sendable {
        public var name: String
        public var before: SHA256Digest?
        public var after: SHA256Digest?
        public var status: String { before == nil ? "added" : after == nil ? "removed" : before == after ? "unchanged" : "changed" }
    }

    public struct FileChange: Sendable {
        public var path: String
        public var before: ManifestFile?
        public var after: ManifestFile?
    }

    public var a: BundleSummary
    public var b: BundleSummary
    public var components: [ComponentChange]
    public var added: [ManifestFile] = []
    public var removed: [ManifestFile] = []
    public var changed: [FileChange] = []

    public var changedComponents: [String] { components.filter { $0.status != "unchanged" }.map(\.name) }

    public init(_ a: BundleSummary, _ b: BundleSummary) {
        self.a = a
        self.b = b
        components = BundleLayout.components.compactMap { name in
            let x = a.manifest.components[name]?.digest, y = b.manifest.components[name]?.digest
            if x == nil && y == nil { return nil }
            return ComponentChange(name: name, before: x, after: y)
        }
        // Both file lists are sorted by path bytes: one merge pass.
        let fa = a.manifest.files, fb = b.manifest.files
        var i = 0, j = 0
        while i < fa.count || j < fb.count {
            if j >= fb.count || (i < fa.count && PathRules.precedes(fa[i].path, fb[j].path)) {
                removed.append(fa[i])
                i += 1
            } else if i >= fa.count || PathRules.precedes(fb[j].path, fa[i].path) {
                added.append(fb[j])
                j += 1
            } else {
                if fa[i] != fb[j] { changed.append(FileChange(path: fa[i].path, before: fa[i], after: fb[j])) }
                i += 1
                j += 1
            }
        }
    }

    /// The `--json` form of `airlock diff` (docs/cli.md).
    public var json: JSONValue {
        func side(_ s: BundleSummary) -> JSONValue {
            .object([
                "bundle": .string(s.path), "bundle_id": .string(s.bundleID.prefixed), "name": .string(s.manifest.name),
                "version": .string(s.manifest.version), "sequence": .integer(s.manifest.sequence),
                "delta_of": s.delta.map { .string($0.base.prefixed) } ?? .null,
            ])
        }
        func file(_ f: ManifestFile) -> JSONValue {
            .object(["path": .string(f.path), "size": .integer(f.size), "sha256": .string(f.sha256.hex), "mode": .string(f.modeString)])
        }
        var comps: [String: JSONValue] = [:]
        for c in components {
            comps[c.name] = .object([
                "status": .string(c.status), "a": c.before.map { .string($0.prefixed) } ?? .null,
                "b": c.after.map { .string($0.prefixed) } ?? .null,
            ])
        }
        return .object([
            "verified": .bool(false),
            "a": side(a), "b": side(b),
            "changed": .array(changedComponents.map { .string($0) }),
            "components": .object(comps),
            "files": .object([
                "added": .array(added.map(file)),
                "removed": .array(removed.map(file)),
                "changed": .array(
                    changed.map {
                        .object([
                            "path": .string($0.path), "a": file($0.before!), "b": file($0.after!),
                        ])
                    }),
            ]),
        ])
    }
}

extension BundleSummary {
    /// The bundle's grants: its `tools/tools.json` (read from the payload and checked against
    /// the manifest's hash) and its model endpoint. Nil when a delta omits the tool manifest.
    public func grants() throws -> Grants? {
        guard let entry = manifest.files.first(where: { $0.path == ToolManifest.path }) else { return try Grants(tools: nil, manifest: manifest) }
        let reader = try BundleReader(path: path)
        _ = try reader.readManifest()
        _ = try reader.readSignatures()
        try reader.readSums(for: manifest)
        for f in manifest.files {
            if reader.isOmitted(f) {
                if f.path == entry.path { return nil }
                reader.skipOmitted(f)
                continue
            }
            if f.path != entry.path {
                try reader.readPayload(f)
                continue
            }
            guard f.size <= UInt64(ToolManifest.maxBytes) else {
                throw AirlockError(.invalidRelease, "tools-invalid", "\(path): tools/tools.json is larger than \(ToolManifest.maxBytes >> 20) MiB")
            }
            var bytes: [UInt8] = []
            try reader.readPayload(f) { bytes.append(contentsOf: $0) }
            return try Grants(tools: try ToolManifest.parse(bytes, source: "\(path): tools/tools.json", hostile: true), manifest: manifest)
        }
        return nil
    }
}

/// What two releases grant differently, in words (see `Grants.escalations`).
public struct PermissionDiff: Sendable {
    public var widened: [String]
    public var narrowed: [String]
    /// Set when a side's tool manifest could not be read (a delta that omits it).
    public var unknown: String?

    /// Reads the tool manifests only when their hash or the model endpoint differ.
    public init(_ a: BundleSummary, _ b: BundleSummary) throws {
        let ta = a.manifest.files.first { $0.path == ToolManifest.path }, tb = b.manifest.files.first { $0.path == ToolManifest.path }
        let ea = a.manifest.components["model"]?.metadata["endpoint"], eb = b.manifest.components["model"]?.metadata["endpoint"]
        widened = []
        narrowed = []
        if ta?.sha256 == tb?.sha256 && ta?.executable == tb?.executable && ea == eb { return }
        guard let ga = try a.grants(), let gb = try b.grants() else {
            unknown = "a delta bundle omits tools/tools.json; diff the full bundles to see the permission change"
            return
        }
        widened = Grants.escalations(from: ga, to: gb)
        narrowed = Grants.reductions(from: ga, to: gb)
    }

    public var json: JSONValue {
        .object([
            "widened": .array(widened.map { .string($0) }), "narrowed": .array(narrowed.map { .string($0) }),
            "unknown": unknown.map { .string($0) } ?? .null,
        ])
    }
}

/// Detached signatures for a second signer.
public enum Signer {
    /// Signs the exact manifest bytes of the bundle at `bundle` with `key`. The manifest is parsed
    /// strictly first, so nobody signs bytes that are not a valid manifest.
    public static func sign(bundle: String, key: PrivateKey) throws -> (signature: [UInt8], summary: BundleSummary) {
        let summary = try BundleSummary.read(path: bundle)
        return (try key.sign(summary.manifestBytes), summary)
    }

    /// Signs as `sign` does and writes the raw signature to `output` atomically.
    public static func writeDetached(bundle: String, key: PrivateKey, to output: String) throws -> BundleSummary {
        let (sig, summary) = try sign(bundle: bundle, key: key)
        try FileIO.writeAtomically(output, sig, mode: 0o644)
        return summary
    }
}
