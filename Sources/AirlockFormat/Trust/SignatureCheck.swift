public enum SignerStatus: String, Sendable {
    case verified
    /// Made by a key the trust store does not hold.
    case untrusted
    case revoked
    case keyExpired = "key-expired"
    /// The bytes are not a valid signature of the manifest by that key.
    case invalid
}

public struct SignerResult: Sendable, Equatable {
    /// The key the signature is by (embedded: from its entry name; detached: the key that
    /// verified it, or nil when none did).
    public var keyID: String?
    public var source: String
    public var status: SignerStatus

    public var json: JSONValue {
        .object(["key_id": keyID.map { .string($0) } ?? .null, "source": .string(source), "status": .string(status.rawValue)])
    }
}

/// A detached signature given beside a bundle (`airlock sign` writes one).
public struct DetachedSignature: Sendable {
    public var source: String
    public var bytes: [UInt8]

    public init(source: String, bytes: [UInt8]) {
        self.source = source
        self.bytes = bytes
    }

    public static func load(path: String) throws -> DetachedSignature {
        DetachedSignature(source: path, bytes: try FileIO.read(path, limit: BundleLayout.maxSignatureBytes, what: "signature"))
    }
}

/// Checks signatures over the exact manifest bytes against a trust store: distinct trusted,
/// unrevoked, unexpired keys count once each, whatever the signature bytes.
public struct SignatureCheck: Sendable {
    public var results: [SignerResult]
    public var verifiedKeys: [String]
    public var threshold: Int

    public var satisfied: Bool { verifiedKeys.count >= threshold }

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
