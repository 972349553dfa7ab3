import AirlockFormat

/// What the site's releases may reach, read from the site: the one place that computes the
/// grants of a release folder (installed, or staged by an install), and what an activation is
/// measured against.
public enum ReleaseGrants {
    /// The grants of a release: its tool manifest (`toolManifest`, the bytes of
    /// `payload/tools/tools.json`, nil when it has none; `source` names it in errors) and its
    /// model endpoint. The endpoint recorded at install (`recordedModelEndpoint`, "" for none)
    /// is used when there is one; otherwise the manifest says (`manifest`, asked only then). A
    /// release whose manifest lists a tools component without `tools/tools.json` is refused
    /// (`tools-missing`) whenever the manifest is at hand (`known`: the caller has it parsed,
    /// or it is read anyway for the endpoint). Throws `tools-invalid`, `endpoint-invalid` and
    /// what `manifest` throws.
    static func make(
        toolManifest: [UInt8]?, source: String, known: Manifest?, recordedModelEndpoint: String?, manifest: () throws -> Manifest
    ) throws -> Grants {
        var parsed = known
        func theManifest() throws -> Manifest {
            if let parsed { return parsed }
            let m = try manifest()
            parsed = m
            return m
        }
        var g = Grants()
        if let toolManifest {
            for t in try ToolManifest.parse(toolManifest, source: source, hostile: true).tools { g.tools[t.name] = t.permissions }
        } else if let m = try parsed ?? (recordedModelEndpoint == nil ? theManifest() : nil), m.components["tools"] != nil {
            throw AirlockError.verification(
                .toolsMissing, "the release has a tools component without tools/tools.json; the bundle was not made by a correct packer")
        }
        if let recorded = recordedModelEndpoint {
            g.modelEndpoint = try Grants.modelEndpoint(recorded.isEmpty ? nil : recorded)
        } else {
            g.modelEndpoint = try Grants.modelEndpoint(theManifest().components["model"]?.metadata["endpoint"])
        }
        return g
    }

    /// The grants of the installed release `release` of `name`.
    static func installed(site: Site, name: String, release: String, state: NameState) throws -> Grants {
        let path = site.releaseDirectory(name, release) + "/" + SiteLayout.releasePayload + "/" + ToolManifest.path
        let tools = FileIO.exists(path) ? try FileIO.read(path, limit: ToolManifest.maxBytes, what: "tool manifest", siteFile: true) : nil
        return try make(toolManifest: tools, source: path, known: nil, recordedModelEndpoint: state.policy[release]?.modelEndpoint) {
            try site.manifest(name, release)
        }
    }

    /// The tools the installed release `release` of `name` declares in its
    /// `payload/tools/tools.json` (none without one), read without following a link. Throws
    /// `tools-invalid` and what reading the file throws.
    public static func declaredTools(site: Site, name: String, release: String) throws -> Set<String> {
        let path = site.releaseDirectory(name, release) + "/" + SiteLayout.releasePayload + "/" + ToolManifest.path
        guard FileIO.exists(path) else { return [] }
        let bytes = try FileIO.read(path, limit: ToolManifest.maxBytes, what: "tool manifest", siteFile: true)
        return Set(try ToolManifest.parse(bytes, source: path, hostile: true).tools.map(\.name))
    }

    /// The release the site last had active for `name`: `current`, or when the pointer is
    /// gone, the target of the name's last switch in the history (activate, rollback, a health
    /// check's switch back): deleting `current` does not make the next activation a first one.
    /// Nil when it never had one or last switched to nothing.
    static func lastActive(site: Site, name: String, current: String?) -> String? {
        if let current { return current }
        guard let entries = try? History.read(site) else { return nil }
        for e in entries.reversed() where e.name == name {
            switch e.action {
            case "activate", "rollback": return e.fields["release"]?.stringValue
            case "health-rollback": return e.fields["to"]?.stringValue
            default: continue
            }
        }
        return nil
    }

    /// What an activation of `name` is measured against: the release the site last had active
    /// (see `lastActive`). A baseline no longer installed grants nothing known, so that
    /// everything the new release grants counts as widening.
    static func baseline(site: Site, name: String, current: String?, candidate: String?, state: NameState) -> ActivationPolicy.Baseline {
        guard let last = lastActive(site: site, name: name, current: current) else {
            return ActivationPolicy.Baseline(description: nil, isCandidate: false, grants: { Grants() })
        }
        let description = current != nil ? last : "\(last), which the site last had active (`current` is missing)"
        return ActivationPolicy.Baseline(description: description, isCandidate: last == candidate) {
            site.releases(name).contains(last) ? try installed(site: site, name: name, release: last, state: state) : Grants()
        }
    }

    /// What the installed release `release` of `name` grants beyond what the site last had
    /// active for the name (nothing: beyond nothing), with its bundle id.
    public static func widening(site: Site, name: String, release: String) throws -> (bundleID: SHA256Digest, widens: [String]) {
        let state = try NameState.load(site, name)
        let bundleID = try SHA256Digest.of(site.manifestBytes(name, release))
        let new = try installed(site: site, name: name, release: release, state: state)
        let old = try baseline(site: site, name: name, current: site.current(name), candidate: nil, state: state).grants()
        return (bundleID, Grants.escalations(from: old, to: new))
    }

    /// What the bundle `summary` describes grants beyond what the site last had active for its
    /// name.
    public static func widening(site: Site, bundle summary: BundleSummary) throws -> [String] {
        let name = summary.manifest.name
        guard let new = try summary.grants() else { return ["(unknown: the delta bundle omits tools/tools.json)"] }
        let state = try NameState.load(site, name)
        let old = try baseline(site: site, name: name, current: site.current(name), candidate: nil, state: state).grants()
        return Grants.escalations(from: old, to: new)
    }
}
