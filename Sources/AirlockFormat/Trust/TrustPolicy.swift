/// The trust policy of a trust store: `policy.json` beside the keys (docs/trust.md). The
/// signing part (threshold, revoked and expiring keys) is read here; the rest of the file is the
/// site's policy, kept in `siteFields`.
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
    /// Per key: the name its `label` gives, shown in reports.
    public var labels: [String: String] = [:]
    /// The fields of the same file that belong to the site's own policy (the perimeter, the
    /// eval requirement, approvals), kept as read: the format does not interpret them, the
    /// site's policy (`SitePolicy` in AirlockKit) does.
    public var siteFields: [String: JSONValue] = [:]

    /// The names of those fields (docs/trust.md).
    public static let siteFieldNames: Set<String> = [
        "perimeter", "require_eval", "min_eval_score", "approvals", "rollout", "tools", "require_replay", "replay_threshold",
    ]

    /// The default policy: threshold 1, no key revoked or expiring, no site fields.
    public init() {}

    /// The policy's file name in a trust store.
    public static let fileName = "policy.json"

    package static func invalid(_ path: String, _ what: String) -> AirlockError {
        AirlockError(.key, .policyInvalid, "the trust policy \(path) is invalid: \(what); fix it (see docs/trust.md)")
    }

    /// Parses `policy.json` strictly: unknown fields, duplicate keys and malformed values are
    /// errors; `path` names the file in them. Throws `policy-invalid`.
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
            case _ where siteFieldNames.contains(key):
                p.siteFields[key] = value
            default:
                throw invalid(path, "unknown field \"\(key)\"")
            }
        }
        return p
    }

    /// The policy as `policy.json` holds it: the signing fields, then the site's fields as read.
    public var json: JSONValue {
        var keys: [String: JSONValue] = [:]
        for id in Set(expires.keys).union(labels.keys) {
            var o: [String: JSONValue] = [:]
            if let e = expires[id] { o["expires"] = .string(Timestamp.format(e)) }
            if let l = labels[id] { o["label"] = .string(l) }
            keys[id] = .object(o)
        }
        var top: [String: JSONValue] = siteFields
        top["threshold"] = .integer(threshold)
        top["revoked"] = .array(revoked.sorted().map { .string($0) })
        top["keys"] = .object(keys)
        return .object(top)
    }
}
