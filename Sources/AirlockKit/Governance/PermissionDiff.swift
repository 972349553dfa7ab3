import AirlockFormat

/// `airlock diff`: what changed between two bundles, by component and file, and what they
/// grant differently.
public struct BundleDiff: Sendable, JSONRepresentable {
    /// What changed between the two releases, by component and file.
    public var release: ReleaseDiff
    /// What the two releases grant differently.
    public var permissions: PermissionDiff

    /// Reads both bundles' heads (nothing is verified) and compares them. Throws what
    /// `BundleSummary.read(path:)` and `PermissionDiff.init` throw.
    public init(_ a: String, _ b: String) throws {
        release = ReleaseDiff(try BundleSummary.read(path: a), try BundleSummary.read(path: b))
        permissions = try PermissionDiff(release.a, release.b)
    }

    /// The `--json` form of `airlock diff` (docs/cli.md).
    public var json: JSONValue {
        guard case .object(var o) = release.json else { return release.json }
        o["permissions"] = permissions.json
        return .object(o)
    }
}

/// What two releases grant differently, in words (see `Grants.escalations`).
public struct PermissionDiff: Sendable {
    /// What the second release grants beyond the first, one line each (`Grants.escalations`).
    public var widened: [String]
    /// What the first release grants that the second no longer does (`Grants.reductions`).
    public var narrowed: [String]
    /// Set when a side's tool manifest could not be read (a delta that omits it).
    public var unknown: String?

    /// Reads the tool manifests only when their hash or the model endpoint differ. Throws what
    /// `BundleSummary.grants()` throws: what `BundleReader` throws reading a bundle again up to its
    /// tool manifest (`init(path:readTimeout:)`, `readManifest`, `readSignatures`, `readSums(for:)` and
    /// `readPayload`), `tools-invalid` and `model-endpoint-invalid`.
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

    /// The `permissions` object of `airlock diff --json`: `widened`, `narrowed` and `unknown`.
    public var json: JSONValue {
        .object([
            "widened": .array(widened.map { .string($0) }), "narrowed": .array(narrowed.map { .string($0) }),
            "unknown": unknown.map { .string($0) } ?? .null,
        ])
    }
}
