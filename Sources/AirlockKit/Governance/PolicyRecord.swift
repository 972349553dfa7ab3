import AirlockFormat

/// What the activation policy needs to know of an installed release, recorded when it is
/// installed so that a switch never parses a manifest (it costs the same for 10 files or
/// 100,000). The site keeps these in `<name>/.state.json` beside the activation state
/// (`NameState.policy`), in the fields `model_endpoint`, `allowances` and `eval_score`.
public struct PolicyRecord: Equatable, Sendable {
    /// The model endpoint the release declares ("" for none). Nil: not recorded (a release
    /// installed by an Airlock before governance checks); its manifest says.
    public var modelEndpoint: String?
    /// Endpoints outside the perimeter the admin allowed for the release (at install, repair or
    /// activation), as `host:port`.
    public var allowances: [String] = []
    /// Its passing eval score as a decimal, "failed" for an attestation below its threshold,
    /// "" for none. Nil: not recorded; its manifest says.
    public var evalScore: String?

    /// A record of the given fields; by default nothing is recorded and nothing allowed.
    public init(modelEndpoint: String? = nil, allowances: [String] = [], evalScore: String? = nil) {
        self.modelEndpoint = modelEndpoint
        self.allowances = allowances
        self.evalScore = evalScore
    }

    /// The eval as the policy reads it: the passing score (nil for "" and "failed") and
    /// whether the release carries an attestation at all. Nil when not recorded.
    public var eval: (score: Double?, attested: Bool)? {
        guard let evalScore else { return nil }
        return (Double(evalScore), !evalScore.isEmpty)
    }

    /// The records of a name's releases from the fields of its state file.
    static func records(from o: [String: JSONValue]) -> [String: PolicyRecord] {
        var out: [String: PolicyRecord] = [:]
        for (k, v) in o["model_endpoint"]?.objectValue ?? [:] { if let e = v.stringValue { out[k, default: PolicyRecord()].modelEndpoint = e } }
        for (k, v) in o["allowances"]?.objectValue ?? [:] { out[k, default: PolicyRecord()].allowances = v.arrayValue?.compactMap(\.stringValue) ?? [] }
        for (k, v) in o["eval_score"]?.objectValue ?? [:] { if let e = v.stringValue { out[k, default: PolicyRecord()].evalScore = e } }
        return out
    }

    /// The fields of the state file that hold `records`.
    static func fields(_ records: [String: PolicyRecord]) -> [String: JSONValue] {
        var endpoints: [String: JSONValue] = [:], allowances: [String: JSONValue] = [:], scores: [String: JSONValue] = [:]
        for (release, r) in records {
            if let e = r.modelEndpoint { endpoints[release] = .string(e) }
            allowances[release] = .array(r.allowances.map { .string($0) })
            if let s = r.evalScore { scores[release] = .string(s) }
        }
        return ["model_endpoint": .object(endpoints), "allowances": .object(allowances), "eval_score": .object(scores)]
    }
}
