#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Site approvals: a site approver key's signature over a bundle id, which lets an activation
/// that widens a release's permissions go ahead (docs/site.md, "Permissions and approvals").
///
/// An approval signs the bytes `airlock-approval/v1\n<bundle id>\n` (the id as `sha256:<hex>`):
/// never the manifest, so an approval can not pass for a vendor's signature or the other way
/// round. Approvals live in `<root>/.approvals/<bundle hex>/<approver key id>.sig`, keyed by
/// bundle id, so a bundle can be approved before or after it is installed.
public enum Approvals {
    public static let folder = ".approvals"

    public static func message(_ bundleID: SHA256Digest) -> [UInt8] {
        Array("airlock-approval/v1\n\(bundleID.prefixed)\n".utf8)
    }

    static func directory(_ site: Site, _ bundleID: SHA256Digest) -> String {
        site.path(folder, bundleID.hex)
    }

    /// The approver key ids whose approvals of `bundleID` verify now (trusted approver keys,
    /// not revoked, not expired in the trust policy).
    public static func verified(site: Site, bundleID: SHA256Digest, trust: TrustStore, now: Int64 = Timestamp.now()) -> [String] {
        let dir = directory(site, bundleID)
        let names = FileIO.entries(ofDirectory: dir) ?? []
        var out: [String] = []
        for n in names.sorted() where n.hasSuffix(BundleLayout.signatureSuffix) {
            let id = String(n.dropLast(BundleLayout.signatureSuffix.count))
            guard let key = trust.approvers[id], trust.unusableReason(id, now: now) == nil,
                let sig = try? FileIO.read(dir + "/" + n, limit: BundleLayout.maxSignatureBytes, what: "approval", siteFile: true),
                key.verify(signature: sig, over: message(bundleID))
            else { continue }
            out.append(id)
        }
        return out
    }

    /// Signs and records an approval of `bundleID` with an approver's private key. The key must
    /// be one of the site's approvers. Returns the approver's key id.
    public static func approve(site: Site, bundleID: SHA256Digest, name: String?, key: PrivateKey, trust: TrustStore, lockTimeout: Double = 30) throws -> String {
        guard trust.approvers[key.id] != nil else {
            throw AirlockError(
                .key, "approver-unknown",
                "key \(key.id.prefix(16))... is not one of the site's approvers; add its public key to \(trust.directory)/\(TrustStore.approversFolder)/ (airlock trust add --approver KEY.pub)")
        }
        if let reason = trust.unusableReason(key.id, now: Timestamp.now()) {
            throw AirlockError(.key, "approver-unusable", "approver key \(key.id.prefix(16))... is \(reason.rawValue) in the trust policy")
        }
        let lock = try SiteLock(site: site, command: "approve", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let sig = try key.sign(message(bundleID))
        for d in [site.path(folder), directory(site, bundleID)] {
            if mkdir(d, 0o755) == 0 {
                try FileIO.fsyncPath(String(d[..<d.lastIndex(of: "/")!]))  // the new folder survives a power loss
            } else if errno != EEXIST {
                throw AirlockError.io(errno == ENOSPC ? "disk-full" : "write-failed", "cannot create \(d)", errno: errno)
            }
            try SiteSafety.expect(d, S_IFDIR, owner: geteuid(), what: "a folder of its approvals")
        }
        try FileIO.writeAtomically(directory(site, bundleID) + "/" + key.id + BundleLayout.signatureSuffix, sig, mode: 0o444)
        try History.append(site, action: "approve", name: name, ["bundle_id": .string(bundleID.prefixed), "approver": .string(key.id)])
        return key.id
    }

    /// The site's eval policy for a release whose passing score is `score` (nil: none passing;
    /// `attested`: it carries an attestation at all).
    static func checkEval(policy: TrustPolicy, score: Double?, attested: Bool, what: String) throws {
        guard policy.requireEval else { return }
        guard let score else {
            throw AirlockError(
                .policy, attested ? "eval-failed" : "eval-missing",
                attested
                    ? "the site's policy requires a passing eval and \(what)'s attestation records a score below its threshold"
                    : "the site's policy requires a passing eval attestation and \(what) carries none; ask the vendor for a bundle packed with an eval gate (airlock.yaml `eval:`)")
        }
        if let floor = policy.minEvalScore, score < floor {
            throw AirlockError(
                .policy, "eval-below-site-minimum",
                "\(what)'s attested eval score \(EvalAttestation.decimal(score)) is below the site's minimum \(EvalAttestation.decimal(floor)) (policy.json min_eval_score)")
        }
    }

    /// Checks an activation against the site's policy as it is now:
    /// - every endpoint the release reaches is inside the perimeter, or was allowed for it
    ///   (at install, or now with `allowEgress`, which is then recorded);
    /// - the eval policy;
    /// - when the release grants more than `current` (or than nothing, for a first activation
    ///   the policy wants approved), `approvals.threshold` verified approvals of its bundle id.
    /// Returns what widened and who approved it (both empty when nothing widened), and the
    /// endpoints newly allowed.
    static func checkActivation(
        site: Site, name: String, release: String, current: String?, state: NameState, allowEgress: [Endpoint] = []
    ) throws -> (escalations: [String], approvers: [String], allowed: [(who: String, endpoint: Endpoint)]) {
        // A damaged policy fails the switch rather than fall back to the defaults.
        let trust = FileIO.isDirectory(site.trustDirectory) ? try TrustStore.load(directory: site.trustDirectory) : nil
        let policy = trust?.policy ?? TrustPolicy()
        let new = try grants(site: site, name: name, release: release, state: state)

        let allowed = try policy.perimeter.check(
            new, allowEgress: allowEgress, recorded: Set(state.allowances[release] ?? []), context: "\(name) \(release): ",
            trustDirectory: site.trustDirectory)

        if policy.requireEval {
            let score: Double?, attested: Bool
            if let recordedScore = state.evalScore[release] {
                score = Double(recordedScore)  // nil for "" (none) and "failed"
                attested = !recordedScore.isEmpty
            } else {
                let a = try manifest(site: site, name: name, release: release).attestations?["eval"].map { try EvalAttestation(json: $0, source: "\(release): attestations.eval") }
                score = a.flatMap { $0.isPassing ? $0.score : nil }
                attested = a != nil
            }
            try checkEval(policy: policy, score: score, attested: attested, what: "\(name) \(release)")
        }

        // Measured against what the site last had active for the name: `current`, or when the
        // pointer is gone, what the history says it last pointed at (deleting `current` does
        // not make the next activation a first one).
        let baseline = current ?? lastActive(site: site, name: name)
        let escalations: [String]
        if let baseline, baseline != release {
            escalations = Grants.escalations(from: try baselineGrants(site: site, name: name, release: baseline, state: state), to: new)
        } else if baseline == nil && policy.approveFirstActivation {
            escalations = Grants.escalations(from: Grants(), to: new)
        } else {
            escalations = []
        }
        if escalations.isEmpty { return ([], [], allowed) }
        let bundleID = try SHA256Digest.of(
            site.manifestBytes(name, release))
        let approvers = trust.map { verified(site: site, bundleID: bundleID, trust: $0) } ?? []
        guard approvers.count >= policy.approvalThreshold else {
            throw AirlockError(
                .policy, "approval-required",
                "activating \(name) \(release) widens its permissions over \(describe(baseline, current: current)): \(escalations.joined(separator: "; ")). It needs \(policy.approvalThreshold) site approval(s) and has \(approvers.count): an approver runs `airlock approve \(name) \(release) --key APPROVER.key`, then activate again")
        }
        return (escalations, approvers, allowed)
    }

    /// The release the site last had active for `name` when `current` is missing: the target
    /// of the name's last switch in the history (activate, rollback, a health check's switch
    /// back), nil when it never had one or last switched to nothing.
    static func lastActive(site: Site, name: String) -> String? {
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

    /// What the baseline grants; a baseline no longer installed grants nothing known, so that
    /// everything the new release grants counts as widening.
    static func baselineGrants(site: Site, name: String, release: String, state: NameState) throws -> Grants {
        site.releases(name).contains(release) ? try grants(site: site, name: name, release: release, state: state) : Grants()
    }

    static func describe(_ baseline: String?, current: String?) -> String {
        guard let baseline else { return "nothing (first activation)" }
        if current != nil { return baseline }
        return "\(baseline), which the site last had active (`current` is missing)"
    }

    static func manifest(site: Site, name: String, release: String) throws -> Manifest {
        try Manifest.parse(
            site.manifestBytes(name, release))
    }

    /// A release's grants: its tool manifest and the model endpoint recorded at install.
    static func grants(site: Site, name: String, release: String, state: NameState) throws -> Grants {
        let dir = site.releaseDirectory(name, release)
        var g = Grants()
        let tools = dir + "/" + SiteLayout.releasePayload + "/" + ToolManifest.path
        if FileIO.exists(tools) {
            for t in try ToolManifest.parse(FileIO.read(tools, limit: ToolManifest.maxBytes, what: "tool manifest", siteFile: true), source: tools, hostile: true).tools {
                g.tools[t.name] = t.permissions
            }
        }
        if let recorded = state.modelEndpoint[release] {
            g.modelEndpoint = try Grants.modelEndpoint(recorded.isEmpty ? nil : recorded)
        } else {
            // Installed by an Airlock that did not record it: the manifest says.
            g.modelEndpoint = try Grants.modelEndpoint(manifest(site: site, name: name, release: release).components["model"]?.metadata["endpoint"])
        }
        return g
    }

    /// What an installed release grants beyond the current one of its name (empty current:
    /// beyond nothing), with its bundle id.
    public static func describeInstalled(site: Site, name: String, release: String) throws -> (SHA256Digest, [String]) {
        let state = try NameState.load(site, name)
        let bundleID = try SHA256Digest.of(
            site.manifestBytes(name, release))
        let new = try grants(site: site, name: name, release: release, state: state)
        let old = try (site.current(name) ?? lastActive(site: site, name: name)).map { try baselineGrants(site: site, name: name, release: $0, state: state) } ?? Grants()
        return (bundleID, Grants.escalations(from: old, to: new))
    }

    /// What a bundle grants beyond the current release of its name on the site.
    public static func describeBundle(site: Site, summary: BundleSummary) throws -> [String] {
        let name = summary.manifest.name
        guard let new = try summary.grants() else { return ["(unknown: the delta bundle omits tools/tools.json)"] }
        let state = try NameState.load(site, name)
        let old = try (site.current(name) ?? lastActive(site: site, name: name)).map { try baselineGrants(site: site, name: name, release: $0, state: state) } ?? Grants()
        return Grants.escalations(from: old, to: new)
    }
}
