import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// The site's approvals (`Approval`), kept in `<root>/.approvals/<bundle hex>/<approver key
/// id>.sig`, keyed by bundle id, so a bundle can be approved before or after it is installed.
public enum ApprovalStore {
    static func directory(_ site: Site, _ bundleID: SHA256Digest) -> String {
        site.path(SiteLayout.approvals, bundleID.hex)
    }

    /// The approver key ids whose approvals of `bundleID` verify now (trusted approver keys,
    /// not revoked, not expired in the trust policy).
    public static func verified(site: Site, bundleID: SHA256Digest, trust: TrustStore, now: Int64 = Timestamp.now()) -> [String] {
        let dir = directory(site, bundleID)
        var out: [String] = []
        for n in (FileIO.entries(ofDirectory: dir) ?? []).sorted() where n.hasSuffix(BundleLayout.signatureSuffix) {
            let id = String(n.dropLast(BundleLayout.signatureSuffix.count))
            guard trust.approvers[id] != nil,
                let sig = try? FileIO.read(dir + "/" + n, limit: BundleLayout.maxSignatureBytes, what: "approval", siteFile: true),
                Approval.verify(sig, keyID: id, bundleID: bundleID, trust: trust, now: now)
            else { continue }
            out.append(id)
        }
        return out
    }

    /// Signs and records an approval of `bundleID` with an approver's private key, under the
    /// site lock, and writes it to the history. Returns the approver's key id. Throws
    /// `approver-unknown` (not one of the site's approvers), `approver-unusable` (revoked or
    /// expired), `site-busy`, `site-unsafe` and write errors.
    public static func approve(site: Site, bundleID: SHA256Digest, name: String?, key: PrivateKey, trust: TrustStore, lockTimeout: Double = 30) throws -> String
    {
        guard trust.approvers[key.id] != nil else {
            throw AirlockError(
                .key, .approverUnknown,
                "key \(key.id.prefix(16))... is not one of the site's approvers; add its public key to \(trust.directory)/\(TrustStore.approversFolder)/ (airlock trust add --approver KEY.pub)"
            )
        }
        if let reason = trust.unusableReason(key.id, now: Timestamp.now()) {
            throw AirlockError(.key, .approverUnusable, "approver key \(key.id.prefix(16))... is \(reason.rawValue) in the trust policy")
        }
        let lock = try site.lockForWriting(command: "approve", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let sig = try key.sign(Approval.message(bundleID))
        for d in [site.path(SiteLayout.approvals), directory(site, bundleID)] {
            try site.ensureDirectory(d, what: "a folder of its approvals")
        }
        try FileIO.writeAtomically(directory(site, bundleID) + "/" + key.id + BundleLayout.signatureSuffix, sig, mode: 0o444)
        try History.append(site, action: "approve", name: name, ["bundle_id": .string(bundleID.prefixed), "approver": .string(key.id)])
        return key.id
    }
}

/// What an approver approves: a bundle file, or a release installed on the site.
public enum ApprovalTarget: Sendable {
    /// A bundle file: verified in full against the site's trust store before it is approved.
    case bundle(String)
    /// An installed release of a name (a folder name, a version or a bundle id prefix).
    case installed(name: String, release: String)
}

/// What `airlock approve` did.
public struct ApprovalResult: Sendable, JSONRepresentable {
    /// The release name the approval is for.
    public var name: String
    /// `NAME VERSION` for a bundle, `NAME FOLDER` for an installed release.
    public var label: String
    /// The bundle id approved: approvals are kept by bundle id.
    public var bundleID: SHA256Digest
    /// The approver's key id.
    public var approver: String
    /// What the release grants beyond what the site last had active for the name, in words.
    public var widens: [String]

    /// The `--json` form of `airlock approve` (docs/cli.md).
    public var json: JSONValue {
        .object(["name": .string(name), "bundle_id": .string(bundleID.prefixed), "approver": .string(approver), "widens": .array(widens.map { .string($0) })])
    }
}

extension ApprovalStore {
    /// The whole approval, in one call: loads the site's trust store and the approver's key
    /// (`keyFile`), verifies a bundle file in full (or resolves an installed release), works
    /// out what it widens, then signs and records the approval (`approve(site:bundleID:...)`).
    /// Throws what verification throws for a bundle that does not verify, `release-unknown`,
    /// `approver-unknown`, `approver-unusable`, key errors and write errors.
    public static func approve(_ target: ApprovalTarget, site: Site, keyFile: String, lockTimeout: Double = 30) throws -> ApprovalResult {
        let trust = try SiteTrust.load(directory: site.trustDirectory).store
        let key = try PrivateKey.load(path: keyFile)
        let bundleID: SHA256Digest, name: String, label: String, widens: [String]
        switch target {
        case .installed(let n, let ref):
            let dir = try Activation.resolve(site: site, name: n, ref)
            (bundleID, widens) = try ReleaseGrants.widening(site: site, name: n, release: dir)
            name = n
            label = "\(n) \(dir)"
        case .bundle(let path):
            let report = Verifier.verify(bundle: path, trust: trust)
            if let e = report.error { throw e }
            let summary = try BundleSummary.read(path: path)
            bundleID = summary.bundleID
            name = summary.manifest.name
            label = "\(name) \(summary.manifest.version)"
            widens = try ReleaseGrants.widening(site: site, bundle: summary)
        }
        let id = try approve(site: site, bundleID: bundleID, name: name, key: key, trust: trust, lockTimeout: lockTimeout)
        return ApprovalResult(name: name, label: label, bundleID: bundleID, approver: id, widens: widens)
    }
}
