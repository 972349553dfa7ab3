import AirlockFormat

/// A site approval: a site approver key's signature over a bundle id, which lets an activation
/// that widens a release's permissions go ahead (docs/site.md, "Permissions and approvals").
///
/// An approval signs the bytes `airlock-approval/v1\n<bundle id>\n` (the id as `sha256:<hex>`):
/// never the manifest, so an approval can not pass for a vendor's signature or the other way
/// round. The site keeps them in `.approvals/` (`ApprovalStore`).
public enum Approval {
    /// The exact bytes an approver signs for `bundleID`.
    public static func message(_ bundleID: SHA256Digest) -> [UInt8] {
        Array("airlock-approval/v1\n\(bundleID.prefixed)\n".utf8)
    }

    /// Whether `signature` is an approval of `bundleID` by the approver key `keyID`: the key is
    /// one of the trust store's approvers, usable at `now`, and the signature verifies.
    public static func verify(_ signature: [UInt8], keyID: String, bundleID: SHA256Digest, trust: TrustStore, now: Int64) -> Bool {
        guard let key = trust.approvers[keyID], trust.unusableReason(keyID, now: now) == nil else { return false }
        return key.verify(signature: signature, over: message(bundleID))
    }
}
