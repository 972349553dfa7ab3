#if canImport(Glibc)
import Glibc
#endif
import AirlockFormat

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
    public static func approve(site: Site, bundleID: SHA256Digest, name: String?, key: PrivateKey, trust: TrustStore, lockTimeout: Double = 30) throws -> String {
        guard trust.approvers[key.id] != nil else {
            throw AirlockError(
                .key, "approver-unknown",
                "key \(key.id.prefix(16))... is not one of the site's approvers; add its public key to \(trust.directory)/\(TrustStore.approversFolder)/ (airlock trust add --approver KEY.pub)")
        }
        if let reason = trust.unusableReason(key.id, now: Timestamp.now()) {
            throw AirlockError(.key, "approver-unusable", "approver key \(key.id.prefix(16))... is \(reason.rawValue) in the trust policy")
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
