/// The difference between two releases, by component digest and by file.
public struct ReleaseDiff: Sendable {
    /// One component's digest in each of the two releases.
    public struct ComponentChange: Sendable {
        /// The component name.
        public var name: String
        /// Its digest in `a`; nil when `a` lacks the component.
        public var before: SHA256Digest?
        /// Its digest in `b`; nil when `b` lacks the component.
        public var after: SHA256Digest?
        /// `added`, `removed`, `changed` or `unchanged`.
        public var status: String { before == nil ? "added" : after == nil ? "removed" : before == after ? "unchanged" : "changed" }
    }

    /// A path both releases list, whose size, content or mode differs.
    public struct FileChange: Sendable {
        /// The path, relative to `payload/`.
        public var path: String
        /// The file as `a` lists it.
        public var before: ManifestFile?
        /// The file as `b` lists it.
        public var after: ManifestFile?
    }

    /// The bundle compared from (A).
    public var a: BundleSummary
    /// The bundle compared with it (B).
    public var b: BundleSummary
    /// Every component either release declares, in `BundleLayout.components` order.
    public var components: [ComponentChange]
    /// The files only `b` lists, sorted by path bytes.
    public var added: [ManifestFile] = []
    /// The files only `a` lists, sorted by path bytes.
    public var removed: [ManifestFile] = []
    /// The paths both list whose size, content or mode differs, sorted by path bytes.
    public var changed: [FileChange] = []

    /// The names of the components added, removed or changed.
    public var changedComponents: [String] { components.filter { $0.status != "unchanged" }.map(\.name) }

    /// Compares the manifests of `a` and `b`; neither bundle is verified.
    public init(_ a: BundleSummary, _ b: BundleSummary) {
        self.a = a
        self.b = b
        (components, added, removed, changed) = Self.compare(a.manifest, b.manifest)
    }

    /// What differs between two manifests (of bundles, or of installed releases): every
    /// component either declares, in `BundleLayout.components` order, and the files only `b`
    /// lists, only `a` lists, and both list differently, each sorted by path bytes.
    package static func compare(
        _ a: Manifest, _ b: Manifest
    ) -> (components: [ComponentChange], added: [ManifestFile], removed: [ManifestFile], changed: [FileChange]) {
        let components: [ComponentChange] = BundleLayout.components.compactMap { name in
            let x = a.components[name]?.digest, y = b.components[name]?.digest
            if x == nil && y == nil { return nil }
            return ComponentChange(name: name, before: x, after: y)
        }
        var added: [ManifestFile] = [], removed: [ManifestFile] = [], changed: [FileChange] = []
        // Both file lists are sorted by path bytes: one merge pass.
        let fa = a.files, fb = b.files
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
        return (components, added, removed, changed)
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
