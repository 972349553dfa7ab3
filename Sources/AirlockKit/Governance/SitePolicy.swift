import AirlockFormat

/// The site's own policy, stored in the trust store's `policy.json` beside the signing policy
/// (docs/trust.md): the perimeter its releases may reach, whether an activation needs a passing
/// eval, and how many approvals an activation that widens permissions needs.
///
/// ```json
/// {"perimeter": {"hosts": ["kb.internal:443", "*.corp.internal"], "networks": ["10.0.0.0/8"]},
///  "require_eval": true, "min_eval_score": 0.9,
///  "approvals": {"threshold": 1, "first_activation": false}}
/// ```
public struct SitePolicy: Equatable, Sendable {
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
    /// Canary, breaker and alert settings (docs/rollout.md, "Settings").
    public var rollout = RolloutPolicy()
    /// Where the tool gateway of `airlock serve` sends each declared tool's calls
    /// (docs/replay.md, "The tool gateway").
    public var tools = ToolEndpoints()
    /// Replays: the default threshold of `airlock replay`, and whether `canary start` needs a
    /// passing replay of the candidate first (docs/replay.md).
    public var replay = ReplayPolicy()

    /// The defaults: an empty perimeter, no eval required, one approval for an activation that
    /// widens permissions and none for a first activation.
    public init() {}

    /// Parses the site's fields of a trust policy (`TrustPolicy.siteFields`). Throws
    /// `policy-invalid`, naming `path`, for a field of the wrong shape.
    public static func parse(_ fields: [String: JSONValue], path: String) throws -> SitePolicy {
        var p = SitePolicy()
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "rollout", "tools":
                continue  // after the perimeter, which their URLs must be inside
            case "perimeter":
                guard case .object(let o) = value else {
                    throw TrustPolicy.invalid(path, "\"perimeter\" must be an object with \"hosts\" and \"networks\" lists")
                }
                for (k, x) in o {
                    guard let items = x.arrayValue, let list = Optional(items.compactMap(\.stringValue)), list.count == items.count else {
                        throw TrustPolicy.invalid(path, "perimeter.\(k) must be a list of strings")
                    }
                    switch k {
                    case "hosts":
                        for h in list {
                            if let why = Perimeter.hostRuleProblem(h) { throw TrustPolicy.invalid(path, "perimeter.hosts has \"\(h)\", which \(why)") }
                        }
                        p.perimeter.hosts = list
                    case "networks":
                        for n in list {
                            if let why = Perimeter.networkProblem(n) { throw TrustPolicy.invalid(path, "perimeter.networks has \"\(n)\", which \(why)") }
                        }
                        p.perimeter.networks = list
                    default: throw TrustPolicy.invalid(path, "perimeter has unknown field \"\(k)\" (hosts, networks)")
                    }
                }
            case "min_eval_score":
                if case .null = value { continue }
                guard case .number(let t) = value, let x = Double(t), x.isFinite, (0...1).contains(x) else {
                    throw TrustPolicy.invalid(path, "\"min_eval_score\" must be a number from 0 to 1")
                }
                p.minEvalScore = x
            case "require_eval":
                guard case .bool(let b) = value else { throw TrustPolicy.invalid(path, "\"require_eval\" must be true or false") }
                p.requireEval = b
            case "require_replay":
                guard case .bool(let b) = value else { throw TrustPolicy.invalid(path, "\"require_replay\" must be true or false") }
                p.replay.required = b
            case "replay_threshold":
                guard case .number(let t) = value, let x = Double(t), x.isFinite, (0...1).contains(x) else {
                    throw TrustPolicy.invalid(path, "\"replay_threshold\" must be a number from 0 to 1 (a share of tasks)")
                }
                p.replay.threshold = x
            case "approvals":
                guard case .object(let o) = value else { throw TrustPolicy.invalid(path, "\"approvals\" must be an object") }
                for (k, x) in o {
                    switch k {
                    case "threshold":
                        guard let t = x.unsignedInteger(max: 64), t >= 1 else {
                            throw TrustPolicy.invalid(path, "approvals.threshold must be an integer from 1 to 64")
                        }
                        p.approvalThreshold = Int(t)
                    case "first_activation":
                        guard case .bool(let b) = x else { throw TrustPolicy.invalid(path, "approvals.first_activation must be true or false") }
                        p.approveFirstActivation = b
                    default: throw TrustPolicy.invalid(path, "approvals has unknown field \"\(k)\" (threshold, first_activation)")
                    }
                }
            default:
                throw TrustPolicy.invalid(path, "unknown field \"\(key)\"")
            }
        }
        if let rollout = fields["rollout"] {
            p.rollout = try RolloutPolicy.parse(rollout, perimeter: p.perimeter, path: path)
        }
        if let tools = fields["tools"] {
            p.tools = try ToolEndpoints.parse(tools, perimeter: p.perimeter, path: path)
        }
        if p.minEvalScore != nil && !p.requireEval {
            throw TrustPolicy.invalid(path, "\"min_eval_score\" needs \"require_eval\": true (without it no eval is checked)")
        }
        return p
    }

    /// The fields as `policy.json` holds them (every field, defaults included).
    public var fields: [String: JSONValue] {
        [
            "perimeter": .object(["hosts": .array(perimeter.hosts.map { .string($0) }), "networks": .array(perimeter.networks.map { .string($0) })]),
            "require_eval": .bool(requireEval),
            "min_eval_score": minEvalScore.map { .number(EvalAttestation.decimal($0)) } ?? .null,
            "approvals": .object(["threshold": .integer(approvalThreshold), "first_activation": .bool(approveFirstActivation)]),
            "rollout": rollout.fields,
            "tools": tools.fields,
            "require_replay": .bool(replay.required),
            "replay_threshold": .number(EvalAttestation.decimal(replay.threshold)),
        ]
    }
}

/// The `--json` form of `airlock trust list` (docs/cli.md): the signing keys, the approver
/// keys and the whole policy.
public struct TrustListing: Sendable, JSONRepresentable {
    /// The site trust listed.
    public var trust: SiteTrust

    /// The listing of `trust`.
    public init(_ trust: SiteTrust) { self.trust = trust }

    /// The listing as JSON: `{"keys": [{"key_id", "algorithm"}], "approvers": [...], "policy":
    /// {...}}`, each list of keys sorted by key id.
    public var json: JSONValue {
        func keys(_ k: [String: PublicKey]) -> JSONValue {
            .array(k.values.sorted { $0.id < $1.id }.map { .object(["key_id": .string($0.id), "algorithm": .string($0.algorithm.rawValue)]) })
        }
        return .object(["keys": keys(trust.store.keys), "approvers": keys(trust.store.approvers), "policy": trust.policyJSON])
    }
}

/// A site's trust: its trust store (signing keys, approver keys, signing policy) and its own
/// policy, read together from `<root>/.trust` once per command.
public struct SiteTrust: Sendable {
    /// The trust store: the signing keys, the approver keys and the signing policy.
    public var store: TrustStore
    /// The site's own policy, from the same `policy.json`.
    public var policy: SitePolicy

    /// A site trust of `store` and `policy` (by default the default policy).
    public init(store: TrustStore, policy: SitePolicy = SitePolicy()) {
        self.store = store
        self.policy = policy
    }

    /// Loads the trust store at `directory` and parses its site policy. Throws what
    /// `TrustStore.load` throws, and `policy-invalid`.
    public static func load(directory: String) throws -> SiteTrust {
        let store = try TrustStore.load(directory: directory)
        let policy = try SitePolicy.parse(store.policy.siteFields, path: directory + "/" + TrustPolicy.fileName)
        return SiteTrust(store: store, policy: policy)
    }

    /// The whole `policy.json`: the signing policy and the site's fields, defaults included.
    public var policyJSON: JSONValue {
        var p = store.policy
        p.siteFields = policy.fields
        return p.json
    }
}

/// The site's replay policy: `replay_threshold` (the share of tasks a candidate may diverge on
/// beyond the noise floor, default 0) and `require_replay` (`canary start` refuses a candidate
/// without a passing replay report against the current release, default false).
public struct ReplayPolicy: Sendable, Equatable {
    /// Whether `canary start` needs a passing replay.
    public var required = false
    /// The threshold of `airlock replay` when none is given, and of the check.
    public var threshold = 0.0

    /// No replay required; threshold 0.
    public init() {}
}
