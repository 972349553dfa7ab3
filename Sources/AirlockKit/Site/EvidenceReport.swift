import AirlockFormat
import Foundation

/// The report an auditor files for one release name (`airlock evidence NAME`): what is installed
/// and current, who signed each release, its eval result, approvals and egress allowances, and
/// whether the site's history chain verifies.
public struct EvidenceReport: Sendable {
    /// One installed release, as the auditor sees it.
    public struct Release: Sendable {
        /// The release folder (`<version>-<id12>`).
        public var directory: String
        /// The bundle id: the SHA-256 of the installed manifest.
        public var bundleID: SHA256Digest
        /// The version its manifest gives.
        public var version: String
        /// The sequence its manifest gives.
        public var sequence: UInt64
        /// When it was installed, from the name's state (nil: not recorded).
        public var installedAt: String?
        /// Whether `current` points at it.
        public var current: Bool
        /// Whether it is pinned (kept through `gc`).
        public var pinned: Bool
        /// Each signature kept with the release, checked against today's trust store.
        public var signers: [(keyID: String, status: String)]
        /// The eval attestation its manifest carries (nil: none).
        public var eval: EvalAttestation?
        /// Approver key ids whose approval of the bundle id verifies.
        public var approvals: [String]
        /// Endpoints outside the perimeter the admin allowed at install.
        public var allowances: [(who: String, endpoint: String, at: String)]
        /// Activations recorded with the permissions they widened.
        public var widenings: [(at: String, widens: [String], approvedBy: [String])]
    }

    /// A release installed once and since removed (from the history): what it was and when it
    /// went.
    public struct Removed: Sendable {
        /// The release folder it had.
        public var directory: String
        /// The bundle id its install line records (nil: none recorded).
        public var bundleID: String?
        /// The version its install line records (nil: none recorded).
        public var version: String?
        /// When it was last installed before its removal.
        public var installedAt: String
        /// When it was removed.
        public var removedAt: String
        /// The history action that removed it: `remove` or `gc-remove`.
        public var how: String
    }

    /// The release name reported on.
    public var name: String
    /// The release folder `current` points at (nil: none).
    public var current: String?
    /// Every installed release of the name, by sequence.
    public var releases: [Release]
    /// Releases the history shows installed and later removed, and not installed now.
    public var removed: [Removed] = []
    /// Nil when the history chain verifies, else where and why it breaks.
    public var historyProblem: (line: Int, reason: String)?
    /// The number of lines in the history (see `HistoryCheck.lines`).
    public var historyEntries: Int
    /// The hash of the history's last line (`History.check`): with `historyEntries`, what an
    /// auditor records elsewhere to detect later that the tail of the history was cut.
    public var historyHead: String = History.genesis
    /// When the report was made.
    public var generatedAt: String
    /// The site's policy the releases are held to now (nil: no trust store).
    public var trust: SiteTrust?

    /// Gathers the report for `name` from the site: its state, each release's manifest and
    /// signatures, the approvals, the history and its chain. A broken chain does not throw: it
    /// is `historyProblem`. Throws `name-unknown`; `state-corrupt`; for a damaged release,
    /// `eval-attestation-invalid` and what `Manifest.parse` throws; and read errors of the state,
    /// a manifest or the history (`site-unsafe`, `file-not-found`, `permission-denied`,
    /// `read-failed`, `file-too-large`, ...).
    public static func build(site: Site, name: String) throws -> EvidenceReport {
        try site.requireInstalled(name)
        let trust = try? SiteTrust.load(directory: site.trustDirectory)
        let now = Timestamp.now()
        let state = try NameState.load(site, name).reconciled(installed: site.releases(name), current: site.current(name))
        let history = (try? History.read(site)) ?? []
        let current = site.current(name)
        var releases: [Release] = []
        for dir in site.releases(name) {
            let rdir = site.releaseDirectory(name, dir)
            let bytes = try site.manifestBytes(name, dir)
            let m = try Manifest.parse(bytes)
            let id = SHA256Digest.of(bytes)
            var signers: [(String, String)] = []
            let sigDir = rdir + "/" + SiteLayout.releaseSignatures
            for n in (FileIO.entries(ofDirectory: sigDir) ?? []).sorted() where n.hasSuffix(BundleLayout.signatureSuffix) {
                let keyID = String(n.dropLast(BundleLayout.signatureSuffix.count))
                let sig = (try? FileIO.read(sigDir + "/" + n, limit: BundleLayout.maxSignatureBytes, what: "signature", siteFile: true)) ?? []
                var status = SignerStatus.untrusted
                if let store = trust?.store, let key = store.keys[keyID] {
                    status = store.unusableReason(keyID, now: now) ?? (key.verify(signature: sig, over: bytes) ? .verified : .invalid)
                }
                signers.append((keyID, status.rawValue))
            }
            let eval = try m.attestations?["eval"].map { try EvalAttestation(json: $0, source: "\(dir): attestations.eval") }
            let approvals = trust.map { ApprovalStore.verified(site: site, bundleID: id, trust: $0.store, now: now) } ?? []
            // The history of this install of the release: from its latest install line on (a
            // folder name can come back after gc with the same bundle).
            let mine = history.filter { $0.name == name }
            let start = mine.lastIndex { $0.action == "install" && $0.fields["bundle_id"]?.stringValue == id.prefixed } ?? 0
            let lines = mine[start...].filter { $0.fields["release"]?.stringValue == dir || $0.fields["bundle_id"]?.stringValue == id.prefixed }
            // Allowances in force are the state's; the history says who and when.
            var allowances: [(String, String, String)] = []
            for endpoint in state.policy[dir]?.allowances ?? [] {
                var who = "?", at = state.installedAt[dir] ?? "?"
                for e in lines {
                    if e.action == "allowance", e.fields["endpoint"]?.stringValue == endpoint {
                        who = e.fields["who"]?.stringValue ?? who
                        at = e.at
                    } else if let list = e.fields["allowed_egress"]?.arrayValue?.compactMap(\.stringValue),
                        let hit = list.first(where: { $0.hasSuffix(" -> " + endpoint) })
                    {
                        who = String(hit.dropLast(endpoint.count + 4))
                        at = e.at
                    }
                }
                allowances.append((who, endpoint, at))
            }
            var widenings: [(String, [String], [String])] = []
            for e in lines where (e.action == "activate" || e.action == "rollback") && e.fields["release"]?.stringValue == dir {
                if let w = e.fields["widens"]?.arrayValue {
                    widenings.append((e.at, w.compactMap(\.stringValue), e.fields["approved_by"]?.arrayValue?.compactMap(\.stringValue) ?? []))
                }
            }
            releases.append(
                Release(
                    directory: dir, bundleID: id, version: m.version, sequence: m.sequence, installedAt: state.installedAt[dir], current: dir == current,
                    pinned: state.pinned.contains(dir), signers: signers, eval: eval, approvals: approvals, allowances: allowances, widenings: widenings))
        }
        releases.sort { $0.sequence < $1.sequence }
        // Releases the history shows installed, then removed, and not installed now.
        var removed: [Removed] = []
        var lastInstall: [String: HistoryEntry] = [:]
        for e in history where e.name == name {
            guard let dir = e.fields["release"]?.stringValue else { continue }
            if e.action == "install" { lastInstall[dir] = e }
            if e.action == "remove" || e.action == "gc-remove", let i = lastInstall[dir] {
                removed.append(
                    Removed(
                        directory: dir, bundleID: i.fields["bundle_id"]?.stringValue, version: i.fields["version"]?.stringValue, installedAt: i.at,
                        removedAt: e.at, how: e.action))
                lastInstall[dir] = nil
            }
        }
        let check = try History.check(site)
        return EvidenceReport(
            name: name, current: current, releases: releases, removed: removed, historyProblem: check.problem, historyEntries: check.lines,
            historyHead: check.head, generatedAt: Timestamp.format(now), trust: trust)
    }

    /// The site's policy the releases are held to now (null: no trust store).
    var policyJSON: JSONValue {
        guard let trust else { return .null }
        var fields = trust.policy.fields
        fields["signature_threshold"] = .integer(trust.store.policy.threshold)
        return .object(fields)
    }

    /// The `--json` form of `airlock evidence` (docs/cli.md).
    public var json: JSONValue {
        .object([
            "name": .string(name),
            "generated_at": .string(generatedAt),
            "current": current.map { .string($0) } ?? .null,
            "policy": policyJSON,
            "history": .object([
                "entries": .integer(historyEntries), "head": .string(historyHead), "chain_verified": .bool(historyProblem == nil),
                "problem": historyProblem.map { .object(["line": .integer($0.line), "reason": .string($0.reason)]) } ?? .null,
            ]),
            "removed": .array(
                removed.map { r in
                    .object([
                        "release": .string(r.directory), "bundle_id": r.bundleID.map { .string($0) } ?? .null,
                        "version": r.version.map { .string($0) } ?? .null,
                        "installed_at": .string(r.installedAt), "removed_at": .string(r.removedAt), "how": .string(r.how),
                    ])
                }),
            "releases": .array(
                releases.map { r in
                    .object([
                        "release": .string(r.directory), "bundle_id": .string(r.bundleID.prefixed), "version": .string(r.version),
                        "sequence": .integer(r.sequence), "installed_at": r.installedAt.map { .string($0) } ?? .null,
                        "current": .bool(r.current), "pinned": .bool(r.pinned),
                        "signers": .array(r.signers.map { .object(["key_id": .string($0.keyID), "status": .string($0.status)]) }),
                        "eval": r.eval.map(\.json) ?? .null,
                        "approvals": .array(r.approvals.map { .string($0) }),
                        "allowances": .array(r.allowances.map { .object(["who": .string($0.who), "endpoint": .string($0.endpoint), "at": .string($0.at)]) }),
                        "widened_at_activation": .array(
                            r.widenings.map {
                                .object([
                                    "at": .string($0.at), "widens": .array($0.widens.map { .string($0) }),
                                    "approved_by": .array($0.approvedBy.map { .string($0) }),
                                ])
                            }),
                    ])
                }),
        ])
    }
}
