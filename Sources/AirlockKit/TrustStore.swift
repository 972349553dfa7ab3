import Foundation

/// The trust policy of a trust store: `policy.json` beside the keys (docs/trust.md).
///
/// ```json
/// {"threshold": 2,
///  "revoked": ["<key id>"],
///  "keys": {"<key id>": {"expires": "2027-06-01T00:00:00Z", "label": "release-ci"}},
///  "perimeter": {"hosts": ["kb.internal:443", "*.corp.internal"], "networks": ["10.0.0.0/8"]},
///  "require_eval": true,
///  "approvals": {"threshold": 1, "first_activation": false}}
/// ```
public struct TrustPolicy: Equatable, Sendable {
    /// Distinct trusted keys whose signatures must verify.
    public var threshold: Int = 1
    /// Key ids whose signatures never count, even when their `.pub` file is still present.
    public var revoked: Set<String> = []
    /// Per key: the instant after which its signatures no longer count (seconds since the epoch).
    public var expires: [String: Int64] = [:]
    public var labels: [String: String] = [:]
    /// The hosts and networks releases may reach; empty allows none.
    public var perimeter = Perimeter()
    /// `install` and `activate` refuse a release without a passing eval attestation.
    public var requireEval = false
    /// With `requireEval`: the lowest attested score the site accepts, whatever threshold the
    /// vendor chose.
    public var minEvalScore: Double?
    /// Distinct approver keys whose approval an activation that widens permissions needs.
    public var approvalThreshold = 1
    /// Whether the first activation of a name (compared with nothing) needs approval too.
    public var approveFirstActivation = false

    public init() {}

    public static let fileName = "policy.json"

    static func invalid(_ path: String, _ what: String) -> AirlockError {
        AirlockError(.key, "policy-invalid", "the trust policy \(path) is invalid: \(what); fix it (see docs/trust.md)")
    }

    public static func parse(_ bytes: [UInt8], path: String) throws -> TrustPolicy {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw invalid(path, "not strict JSON: \(error)") }
        guard case .object(let top) = v else { throw invalid(path, "not a JSON object") }
        var p = TrustPolicy()
        for (key, value) in top {
            switch key {
            case "threshold":
                guard let t = value.unsignedInteger(max: 64), t >= 1 else { throw invalid(path, "\"threshold\" must be an integer from 1 to 64") }
                p.threshold = Int(t)
            case "revoked":
                guard let ids = value.arrayValue?.compactMap({ $0.stringValue.flatMap(SHA256Digest.init(hex:))?.hex }),
                    ids.count == value.arrayValue?.count
                else { throw invalid(path, "\"revoked\" must be a list of key ids (64 lowercase hex)") }
                p.revoked = Set(ids)
            case "keys":
                guard case .object(let keys) = value else { throw invalid(path, "\"keys\" must be an object keyed by key id") }
                for (id, kv) in keys {
                    guard SHA256Digest(hex: id) != nil else { throw invalid(path, "\"keys\" has \"\(id)\", which is not a key id (64 lowercase hex)") }
                    guard case .object(let o) = kv else { throw invalid(path, "keys.\(id) must be an object") }
                    for (k, x) in o {
                        switch k {
                        case "expires":
                            guard let s = x.stringValue, let t = Timestamp.parse(s) else {
                                throw invalid(path, "keys.\(id).expires must be an RFC 3339 UTC time like 2027-06-01T00:00:00Z")
                            }
                            p.expires[id] = t
                        case "label":
                            guard let s = x.stringValue else { throw invalid(path, "keys.\(id).label must be a string") }
                            p.labels[id] = s
                        default: throw invalid(path, "keys.\(id) has unknown field \"\(k)\"")
                        }
                    }
                }
            case "perimeter":
                guard case .object(let o) = value else { throw invalid(path, "\"perimeter\" must be an object with \"hosts\" and \"networks\" lists") }
                for (k, x) in o {
                    guard let items = x.arrayValue, let list = Optional(items.compactMap(\.stringValue)), list.count == items.count else {
                        throw invalid(path, "perimeter.\(k) must be a list of strings")
                    }
                    switch k {
                    case "hosts":
                        for h in list { if let why = Perimeter.hostRuleProblem(h) { throw invalid(path, "perimeter.hosts has \"\(h)\", which \(why)") } }
                        p.perimeter.hosts = list
                    case "networks":
                        for n in list { if let why = Perimeter.networkProblem(n) { throw invalid(path, "perimeter.networks has \"\(n)\", which \(why)") } }
                        p.perimeter.networks = list
                    default: throw invalid(path, "perimeter has unknown field \"\(k)\" (hosts, networks)")
                    }
                }
            case "min_eval_score":
                if case .null = value { continue }
                guard case .number(let t) = value, let x = Double(t), x.isFinite, (0...1).contains(x) else {
                    throw invalid(path, "\"min_eval_score\" must be a number from 0 to 1")
                }
                p.minEvalScore = x
            case "require_eval":
                guard case .bool(let b) = value else { throw invalid(path, "\"require_eval\" must be true or false") }
                p.requireEval = b
            case "approvals":
                guard case .object(let o) = value else { throw invalid(path, "\"approvals\" must be an object") }
                for (k, x) in o {
                    switch k {
                    case "threshold":
                        guard let t = x.unsignedInteger(max: 64), t >= 1 else { throw invalid(path, "approvals.threshold must be an integer from 1 to 64") }
                        p.approvalThreshold = Int(t)
                    case "first_activation":
                        guard case .bool(let b) = x else { throw invalid(path, "approvals.first_activation must be true or false") }
                        p.approveFirstActivation = b
                    default: throw invalid(path, "approvals has unknown field \"\(k)\" (threshold, first_activation)")
                    }
                }
            default:
                throw invalid(path, "unknown field \"\(key)\"")
            }
        }
        if p.minEvalScore != nil && !p.requireEval {
            throw invalid(path, "\"min_eval_score\" needs \"require_eval\": true (without it no eval is checked)")
        }
        return p
    }

    public var json: JSONValue {
        var keys: [String: JSONValue] = [:]
        for id in Set(expires.keys).union(labels.keys) {
            var o: [String: JSONValue] = [:]
            if let e = expires[id] { o["expires"] = .string(Timestamp.format(e)) }
            if let l = labels[id] { o["label"] = .string(l) }
            keys[id] = .object(o)
        }
        return .object([
            "threshold": .integer(threshold),
            "revoked": .array(revoked.sorted().map { .string($0) }),
            "keys": .object(keys),
            "perimeter": .object(["hosts": .array(perimeter.hosts.map { .string($0) }), "networks": .array(perimeter.networks.map { .string($0) })]),
            "require_eval": .bool(requireEval),
            "min_eval_score": minEvalScore.map { .number(EvalAttestation.decimal($0)) } ?? .null,
            "approvals": .object(["threshold": .integer(approvalThreshold), "first_activation": .bool(approveFirstActivation)]),
        ])
    }
}

/// A directory of trusted public keys (`*.pub`, SubjectPublicKeyInfo PEM) and an optional
/// `policy.json`. Keys are identified by their key id, never by file name.
public struct TrustStore: Sendable {
    public var directory: String
    public var keys: [String: PublicKey]
    public var policy: TrustPolicy
    /// The site's approver keys (`approvers/*.pub`): they approve activations that widen a
    /// release's permissions, and never count as signers of a bundle.
    public var approvers: [String: PublicKey] = [:]

    public static let approversFolder = "approvers"

    public init(keys: [PublicKey], policy: TrustPolicy = TrustPolicy(), directory: String = "(memory)", approvers: [PublicKey] = []) {
        self.directory = directory
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.policy = policy
        self.approvers = Dictionary(approvers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public static func load(directory: String) throws -> TrustStore {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw AirlockError(.key, "trust-store-missing", "trust store \(directory) is not a directory; give --trust DIR holding the trusted *.pub keys")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw AirlockError(.io, "read-failed", "cannot list trust store \(directory); check its permissions")
        }
        var keys: [PublicKey] = []
        for name in names where name.hasSuffix(".pub") {
            keys.append(try PublicKey.load(path: directory + "/" + name))
        }
        guard !keys.isEmpty else {
            throw AirlockError(.key, "trust-store-empty", "trust store \(directory) holds no *.pub key; copy the vendor's public key into it")
        }
        var policy = TrustPolicy()
        let policyPath = directory + "/" + TrustPolicy.fileName
        if FileIO.exists(policyPath) {
            policy = try TrustPolicy.parse(FileIO.read(policyPath, limit: 1 << 20, what: "trust policy"), path: policyPath)
        }
        var approvers: [PublicKey] = []
        let approverDir = directory + "/" + approversFolder
        if let names = try? FileManager.default.contentsOfDirectory(atPath: approverDir) {
            for name in names.sorted() where name.hasSuffix(".pub") { approvers.append(try PublicKey.load(path: approverDir + "/" + name)) }
        }
        // One key, one role, however the files got there: a vendor key that could approve
        // would approve its own releases.
        if let both = approvers.first(where: { a in keys.contains { $0.id == a.id } }) {
            throw AirlockError(
                .key, "key-role-conflict",
                "\(both.id) is both a signing key and an approver key in \(directory); remove it from one of them (an approver key must be another key)")
        }
        return TrustStore(keys: keys, policy: policy, directory: directory, approvers: approvers)
    }

    /// Why a trusted key's signatures do not count at `now`, or nil when they do.
    public func unusableReason(_ id: String, now: Int64) -> SignerStatus? {
        if policy.revoked.contains(id) { return .revoked }
        if let e = policy.expires[id], now >= e { return .keyExpired }
        return nil
    }
}

/// What became of one signature.
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
        let summary = "\(verifiedKeys.count) of the \(threshold) required trusted signatures verified"
            + (detail.isEmpty ? "" : " (\(detail))")
        if !verifiedKeys.isEmpty || results.isEmpty {
            if results.isEmpty {
                return .verification(
                    "signature-missing",
                    "the bundle carries no signature entry after its manifest (airlock/signatures/<keyid>.sig must directly follow airlock/manifest.json) and no detached signature was given")
            }
            return .verification("threshold-not-met", "\(summary); the bundle needs signatures from more distinct trusted keys")
        }
        let first = results.first { $0.status != .verified }!
        switch first.status {
        case .untrusted:
            return .verification("signer-untrusted", "\(summary): the signer is not in the trust store; add the vendor's public key to it if you trust it")
        case .revoked:
            return .verification("signer-revoked", "\(summary): the signing key is revoked by the trust policy")
        case .keyExpired:
            return .verification("signer-expired", "\(summary): the signing key has expired in the trust policy; ask the vendor to re-sign with a current key")
        default:
            return .verification("signature-invalid", "\(summary): a signature does not match the manifest; the bundle was altered or the signature is damaged")
        }
    }
}
