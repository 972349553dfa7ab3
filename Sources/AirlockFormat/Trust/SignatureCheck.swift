/// How one signature fared against the trust store; only `verified` counts.
public enum SignerStatus: String, Sendable {
    /// Verified over the manifest by a trusted key that is neither revoked nor expired.
    case verified
    /// Made by a key the trust store does not hold.
    case untrusted
    /// Made by a key the trust policy revokes.
    case revoked
    /// Made by a key whose `expires` in the trust policy has passed.
    case keyExpired = "key-expired"
    /// The bytes are not a valid signature of the manifest by that key.
    case invalid
}

/// What became of one signature.
public struct SignerResult: Sendable, Equatable {
    /// The key the signature is by (embedded: from its entry name; detached: the key that
    /// verified it, or nil when none did).
    public var keyID: String?
    /// Where the signature came from: its entry name (`airlock/signatures/<keyid>.sig`) or the path
    /// of the detached signature.
    public var source: String
    /// What became of it.
    public var status: SignerStatus

    /// The `--json` form: `key_id`, `source` and `status`.
    public var json: JSONValue {
        .object(["key_id": keyID.map { .string($0) } ?? .null, "source": .string(source), "status": .string(status.rawValue)])
    }
}

/// A detached signature given beside a bundle (`airlock sign` writes one).
public struct DetachedSignature: Sendable {
    /// The path the signature was read from, as given.
    public var source: String
    /// The raw signature bytes.
    public var bytes: [UInt8]

    /// A detached signature from `source`, holding `bytes` as given.
    public init(source: String, bytes: [UInt8]) {
        self.source = source
        self.bytes = bytes
    }

    /// Reads the signature file at `path` (at most `BundleLayout.maxSignatureBytes`).
    /// Throws `file-not-found`, `permission-denied`, `is-a-directory`, `open-failed`, `read-failed`
    /// and `file-too-large`.
    public static func load(path: String) throws -> DetachedSignature {
        DetachedSignature(source: path, bytes: try FileIO.read(path, limit: BundleLayout.maxSignatureBytes, what: "signature"))
    }
}

/// Checks signatures over the exact manifest bytes against a trust store: distinct trusted,
/// unrevoked, unexpired keys count once each, whatever the signature bytes.
public struct SignatureCheck: Sendable {
    /// One result per signature: the embedded ones in bundle order, then the detached ones.
    public var results: [SignerResult]
    /// The distinct trusted keys whose signatures verified, each once, in the order they verified.
    public var verifiedKeys: [String]
    /// How many distinct keys must verify: the trust policy's `threshold`.
    public var threshold: Int

    /// True when at least `threshold` distinct trusted keys verified.
    public var satisfied: Bool { verifiedKeys.count >= threshold }

    /// Checks the `embedded` and `detached` signatures over the exact `manifest` bytes against
    /// `trust`, judging key expiry at `now` (seconds since the epoch).
    public init(manifest: [UInt8], embedded: [EmbeddedSignature], detached: [DetachedSignature], trust: TrustStore, now: Int64) {
        threshold = trust.policy.threshold
        var results: [SignerResult] = []
        var verified: [String] = []
        func count(_ id: String) { if !verified.contains(id) { verified.append(id) } }
        for sig in embedded {
            let source = BundleLayout.signaturesPrefix + sig.keyID + BundleLayout.signatureSuffix
            guard let key = trust.keys[sig.keyID] else {
                results.append(SignerResult(keyID: sig.keyID, source: source, status: .untrusted))
                continue
            }
            if let reason = trust.unusableReason(sig.keyID, now: now) {
                results.append(SignerResult(keyID: sig.keyID, source: source, status: reason))
                continue
            }
            let ok = key.verify(signature: sig.bytes, over: manifest)
            results.append(SignerResult(keyID: sig.keyID, source: source, status: ok ? .verified : .invalid))
            if ok { count(sig.keyID) }
        }
        for sig in detached {
            var result = SignerResult(keyID: nil, source: sig.source, status: .invalid)
            for id in trust.keys.keys.sorted() where trust.keys[id]!.verify(signature: sig.bytes, over: manifest) {
                result.keyID = id
                result.status = trust.unusableReason(id, now: now) ?? .verified
                if result.status == .verified { count(id) }
                break
            }
            results.append(result)
        }
        self.results = results
        self.verifiedKeys = verified
    }

    /// The error to give when the threshold is not met: the most telling reason.
    public var failure: AirlockError? {
        if satisfied { return nil }
        let detail = results.map { "\($0.keyID.map { String($0.prefix(16)) } ?? "?") \($0.status.rawValue)" }.joined(separator: ", ")
        let summary =
            "\(verifiedKeys.count) of the \(threshold) required trusted signatures verified"
            + (detail.isEmpty ? "" : " (\(detail))")
        if !verifiedKeys.isEmpty || results.isEmpty {
            if results.isEmpty {
                return .verification(
                    .signatureMissing,
                    "the bundle carries no signature entry after its manifest (airlock/signatures/<keyid>.sig must directly follow airlock/manifest.json) and no detached signature was given"
                )
            }
            return .verification(.thresholdNotMet, "\(summary); the bundle needs signatures from more distinct trusted keys")
        }
        let first = results.first { $0.status != .verified }!
        switch first.status {
        case .untrusted:
            return .verification(.signerUntrusted, "\(summary): the signer is not in the trust store; add the vendor's public key to it if you trust it")
        case .revoked:
            return .verification(.signerRevoked, "\(summary): the signing key is revoked by the trust policy")
        case .keyExpired:
            return .verification(.signerExpired, "\(summary): the signing key has expired in the trust policy; ask the vendor to re-sign with a current key")
        default:
            return .verification(.signatureInvalid, "\(summary): a signature does not match the manifest; the bundle was altered or the signature is damaged")
        }
    }
}
