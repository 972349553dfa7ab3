import AirlockFormat

/// What changed between two installed releases of one name: the part of an alert that says
/// which of the five components changed (their digests, and the files added, removed and changed
/// in each) and what the permissions gain or lose.
///
/// Everything comes from what the site installed: each release's signed manifest (its exact
/// bytes give the bundle id) and its grants (`ReleaseGrants.installed`: the tool manifest and
/// the model endpoint recorded at install). No bundle is read; nothing is verified again.
///
/// Its JSON form (`json`), snake_case:
///
/// ```
/// {"name": "support-agent",
///  "from": {"release": "2.3.0-1a2b3c4d5e6f", "version": "2.3.0", "bundle_id": "sha256:<hex>"},
///  "to":   {"release": "2.4.0-...", "version": "2.4.0", "bundle_id": "sha256:<hex>"},
///  "changed": ["prompts"],
///  "components": {"prompts": {"status": "changed", "from": "sha256:<hex>", "to": "sha256:<hex>",
///                             "files": {"added": [], "added_count": 0, "removed": [], "removed_count": 0,
///                                       "changed": ["prompts/system.md"], "changed_count": 1}},
///                 "code": {"status": "unchanged", ...}},
///  "permissions": {"widened": ["new tool search_kb: network kb.internal:443"], "narrowed": []}}
/// ```
///
/// `changed` names the components added, removed or changed, in `BundleLayout.components`
/// order; `components` holds every component either release has, with `status` one of `added`,
/// `removed`, `changed`, `unchanged` and `from` / `to` its digest on each side (null where it is
/// absent). Each `files` list holds at most `maxListedPaths` paths (relative to `payload/`, sorted
/// by their bytes); its `_count` is the full number. A file is under the component its path
/// starts with. `permissions` are `Grants.escalations` and `Grants.reductions` from `from` to `to`.
public struct ReleaseChange: Sendable, JSONRepresentable {
    /// Most paths a list of files names (the count is always the full number).
    public static let maxListedPaths = 20

    /// One side of the change: an installed release.
    public struct Side: Sendable, Equatable {
        /// The release folder, `<version>-<id12>`.
        public var release: String
        /// Its manifest's version.
        public var version: String
        /// Its bundle id: the SHA-256 of its signed manifest's bytes.
        public var bundleID: SHA256Digest
    }

    /// A list of paths cut to `maxListedPaths`, with the full count.
    public struct Paths: Sendable, Equatable {
        /// The first paths (at most `maxListedPaths`), sorted by their bytes.
        public var paths: [String] = []
        /// How many paths there are in all.
        public var count = 0

        mutating func add(_ path: String) {
            if paths.count < ReleaseChange.maxListedPaths { paths.append(path) }
            count += 1
        }
    }

    /// One component's change.
    public struct Component: Sendable, Equatable {
        /// The component name (`BundleLayout.components`).
        public var name: String
        /// Its digest in `from`; nil when `from` lacks the component.
        public var from: SHA256Digest?
        /// Its digest in `to`; nil when `to` lacks the component.
        public var to: SHA256Digest?
        /// The files under the component only `to` has.
        public var added = Paths()
        /// The files under the component only `from` has.
        public var removed = Paths()
        /// The files under the component both have, whose size, content or mode differs.
        public var changed = Paths()

        /// `added`, `removed`, `changed` or `unchanged`.
        public var status: String { from == nil ? "added" : to == nil ? "removed" : from == to ? "unchanged" : "changed" }
    }

    /// The release name.
    public var name: String
    /// The release changed from.
    public var from: Side
    /// The release changed to.
    public var to: Side
    /// Every component either release has, in `BundleLayout.components` order.
    public var components: [Component]
    /// What `to` grants beyond `from`, one line each (`Grants.escalations`).
    public var widened: [String]
    /// What `from` grants that `to` no longer does (`Grants.reductions`).
    public var narrowed: [String]

    /// The names of the components added, removed or changed.
    public var changed: [String] { components.filter { $0.status != "unchanged" }.map(\.name) }

    /// Compares the installed releases `from` and `to` (release folders) of `name`. Throws
    /// `name-unknown` and `release-unknown` when one is not installed, what reading and parsing
    /// an installed manifest throw (`site-unsafe` for a manifest that is not a regular file,
    /// `manifest-invalid`, ...), and what reading the name's state and the releases' grants throw
    /// (`state-corrupt`, `tools-invalid`, `tools-missing`, `model-endpoint-invalid`).
    public init(site: Site, name: String, from: String, to: String) throws {
        try site.requireInstalled(name)
        let installed = site.releases(name)
        for release in [from, to] where !installed.contains(release) {
            throw AirlockError(
                .usage, .releaseUnknown, "\(name) has no installed release \(release); installed: \(installed.joined(separator: ", "))")
        }
        let bytesA = try site.manifestBytes(name, from), bytesB = try site.manifestBytes(name, to)
        let a = try Manifest.parse(bytesA), b = try Manifest.parse(bytesB)
        self.name = name
        self.from = Side(release: from, version: a.version, bundleID: SHA256Digest.of(bytesA))
        self.to = Side(release: to, version: b.version, bundleID: SHA256Digest.of(bytesB))

        let diff = ReleaseDiff.compare(a, b)
        var byName: [String: Component] = [:]
        for c in diff.components { byName[c.name] = Component(name: c.name, from: c.before, to: c.after) }
        // A manifest path's first segment is its component (`ManifestFile.component`), and
        // `Manifest.parse` refuses a file outside the components it declares.
        for f in diff.added { byName[f.component]?.added.add(f.path) }
        for f in diff.removed { byName[f.component]?.removed.add(f.path) }
        for f in diff.changed { byName[f.before!.component]?.changed.add(f.path) }
        components = diff.components.map { byName[$0.name]! }

        let state = try NameState.load(site, name)
        let grantsA = try ReleaseGrants.installed(site: site, name: name, release: from, state: state)
        let grantsB = try ReleaseGrants.installed(site: site, name: name, release: to, state: state)
        widened = Grants.escalations(from: grantsA, to: grantsB)
        narrowed = Grants.reductions(from: grantsA, to: grantsB)
    }

    /// The JSON form described above (`name`, `from`, `to`, `changed`, `components`,
    /// `permissions`).
    public var json: JSONValue {
        func side(_ s: Side) -> JSONValue {
            .object(["release": .string(s.release), "version": .string(s.version), "bundle_id": .string(s.bundleID.prefixed)])
        }
        func digest(_ d: SHA256Digest?) -> JSONValue { d.map { .string($0.prefixed) } ?? .null }
        var comps: [String: JSONValue] = [:]
        for c in components {
            var files: [String: JSONValue] = [:]
            for (key, list) in [("added", c.added), ("removed", c.removed), ("changed", c.changed)] {
                files[key] = .array(list.paths.map { .string($0) })
                files[key + "_count"] = .integer(list.count)
            }
            comps[c.name] = .object(["status": .string(c.status), "from": digest(c.from), "to": digest(c.to), "files": .object(files)])
        }
        return .object([
            "name": .string(name), "from": side(from), "to": side(to),
            "changed": .array(changed.map { .string($0) }),
            "components": .object(comps),
            "permissions": .object(["widened": .array(widened.map { .string($0) }), "narrowed": .array(narrowed.map { .string($0) })]),
        ])
    }

    /// A few plain-text lines for a terminal or a chat message, e.g.
    ///
    /// ```
    /// support-agent: 2.3.0-1a2b3c4d5e6f -> 2.4.0-6f5e4d3c2b1a
    /// prompts changed (sha256:ab12cd34ef56.. -> sha256:0f1e2d3c4b5a..): 1 changed: prompts/system.md
    /// unchanged: code, model, tools
    /// permissions: unchanged
    /// ```
    ///
    /// One line per component that changed, naming at most `summaryPaths` paths of each list;
    /// then the unchanged components; then `permissions: unchanged`, or one `permissions
    /// widened: ...` / `permissions narrowed: ...` line per change. (Paths in a signed manifest
    /// hold no control character: `PathRules`.)
    public func summary() -> String {
        func short(_ d: SHA256Digest?) -> String { d.map { "sha256:" + $0.hex.prefix(12) + ".." } ?? "none" }
        func listed(_ what: String, _ list: Paths) -> String? {
            guard list.count > 0 else { return nil }
            let shown = list.paths.prefix(Self.summaryPaths)
            let more = list.count - shown.count
            return "\(list.count) \(what): " + shown.joined(separator: ", ") + (more > 0 ? " and \(more) more" : "")
        }
        var lines = ["\(name): \(from.release) -> \(to.release)"]
        for c in components where c.status != "unchanged" {
            let digests: String
            switch c.status {
            case "added": digests = "(\(short(c.to)))"
            case "removed": digests = "(was \(short(c.from)))"
            default: digests = "(\(short(c.from)) -> \(short(c.to)))"
            }
            let files = [listed("added", c.added), listed("removed", c.removed), listed("changed", c.changed)].compactMap { $0 }
            lines.append("\(c.name) \(c.status) \(digests)" + (files.isEmpty ? "" : ": " + files.joined(separator: "; ")))
        }
        let unchanged = components.filter { $0.status == "unchanged" }.map(\.name)
        if changed.isEmpty {
            lines.append("no component changed")
        } else if !unchanged.isEmpty {
            lines.append("unchanged: " + unchanged.joined(separator: ", "))
        }
        if widened.isEmpty && narrowed.isEmpty {
            lines.append("permissions: unchanged")
        } else {
            lines += widened.map { "permissions widened: " + $0 }
            lines += narrowed.map { "permissions narrowed: " + $0 }
        }
        return lines.joined(separator: "\n")
    }

    /// Most paths `summary` names per list of files.
    public static let summaryPaths = 3
}
