import AirlockFormat
import AirlockRollout

/// The site's rollout settings for one name, from the `rollout` object of the site's
/// `policy.json` (docs/rollout.md, "Settings"): built-in defaults, then `rollout.defaults`, then
/// `rollout.names.<name>`, each naming only what it changes.
///
/// ```json
/// {"rollout": {
///    "defaults": {"steps": [1, 5, 25, 100], "outcome_deadline_seconds": 600,
///                 "decision": {"horizon": 2000, "success": {"non_inferiority_margin": 0.03}},
///                 "breaker": {"error_rate": 0.5, "window_seconds": 600}},
///    "names": {"support-agent": {"decision": {"horizon": 500}}},
///    "alerts": {"webhook": "http://alerts.corp.internal:9000/airlock", "command": ["/usr/local/bin/page-oncall"]}}}
/// ```
public struct RolloutSettings: Sendable, Equatable {
    /// The canary's weights in percent, ascending, each from 0.01 to 100; reaching 100 (or
    /// passing the last step) promotes. Default 1, 5, 25, 100.
    public var steps: [Double] = [1, 5, 25, 100]
    /// Seconds after a task's first request by which its outcome must be reported; a task
    /// without one by then counts as a failure. Default 600.
    public var outcomeDeadlineSeconds: Double = 600
    /// The canary's decision (margins, error rates, minimum sample, horizon).
    public var decision = DecisionSettings()
    /// The breakers' limits.
    public var breaker = BreakerThresholds()
    /// The breakers' rolling window.
    public var window = BreakerWindow()
    /// Breakers record and report but never trip.
    public var breakerMetricsOnly = false

    /// The built-in defaults.
    public init() {}

    /// The keys a settings object may hold.
    static let keys = ["steps", "outcome_deadline_seconds", "decision", "breaker"]

    /// Applies the keys of a settings object (`what` names it in errors, such as
    /// `rollout.names.agent`). Throws `policy-invalid` naming `path`.
    mutating func apply(_ o: [String: JSONValue], what: String, path: String) throws {
        func number(_ v: JSONValue, _ key: String, nullable: Bool = false) throws -> Double? {
            if nullable, case .null = v { return nil }
            guard case .number(let t) = v, let x = Double(t), x.isFinite, x >= 0 else {
                throw TrustPolicy.invalid(path, "\(what).\(key) must be a number of 0 or more\(nullable ? " or null (not checked)" : "")")
            }
            return x
        }
        func integer(_ v: JSONValue, _ key: String, max: UInt64 = 100_000_000) throws -> Int {
            guard let x = v.unsignedInteger(max: max) else { throw TrustPolicy.invalid(path, "\(what).\(key) must be an integer from 0 to \(max)") }
            return Int(x)
        }
        for (key, value) in o.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "steps":
                guard let items = value.arrayValue, !items.isEmpty else {
                    throw TrustPolicy.invalid(path, "\(what).steps must be a list of percentages such as [1, 5, 25, 100]")
                }
                var list: [Double] = []
                for item in items {
                    guard let x = try number(item, "steps"), x >= 0.01, x <= 100, list.last.map({ x > $0 }) ?? true else {
                        throw TrustPolicy.invalid(path, "\(what).steps must rise from 0.01 to at most 100, such as [1, 5, 25, 100]")
                    }
                    list.append(x)
                }
                steps = list
            case "outcome_deadline_seconds":
                guard let x = try number(value, key), x >= 1, x <= 7 * 86400 else {
                    throw TrustPolicy.invalid(path, "\(what).outcome_deadline_seconds must be from 1 to 604800 (a week)")
                }
                outcomeDeadlineSeconds = x
            case "decision":
                guard let d = value.objectValue else { throw TrustPolicy.invalid(path, "\(what).decision must be an object") }
                for (k, v) in d.sorted(by: { $0.key < $1.key }) {
                    switch k {
                    case "alpha": decision.alpha = try number(v, "decision.alpha")!
                    case "beta": decision.beta = try number(v, "decision.beta")!
                    case "minimum_candidate_tasks": decision.minimumCandidateTasks = try integer(v, "decision.minimum_candidate_tasks")
                    case "horizon": decision.horizon = try integer(v, "decision.horizon")
                    case "success", "cost", "intervention":
                        guard let m = v.objectValue else { throw TrustPolicy.invalid(path, "\(what).decision.\(k) must be an object") }
                        var s = decision[CanaryMetric(rawValue: k)!]
                        for (mk, mv) in m {
                            let x = try number(mv, "decision.\(k).\(mk)")!
                            switch mk {
                            case "abort_margin": s.abortMargin = x
                            case "smallest_harm": s.smallestHarm = x
                            case "non_inferiority_margin": s.nonInferiorityMargin = x
                            default:
                                throw TrustPolicy.invalid(
                                    path, "\(what).decision.\(k) has unknown field \"\(mk)\" (abort_margin, smallest_harm, non_inferiority_margin)")
                            }
                        }
                        switch k {
                        case "success": decision.success = s
                        case "cost": decision.cost = s
                        default: decision.intervention = s
                        }
                    default:
                        throw TrustPolicy.invalid(
                            path,
                            "\(what).decision has unknown field \"\(k)\" (alpha, beta, minimum_candidate_tasks, horizon, success, cost, intervention)")
                    }
                }
            case "breaker":
                guard let b = value.objectValue else { throw TrustPolicy.invalid(path, "\(what).breaker must be an object") }
                for (k, v) in b.sorted(by: { $0.key < $1.key }) {
                    switch k {
                    case "minimum_tasks": breaker.minimumTasks = try integer(v, "breaker.minimum_tasks")
                    case "error_rate": breaker.errorRate = try number(v, "breaker.error_rate", nullable: true)
                    case "intervention_rate": breaker.interventionRate = try number(v, "breaker.intervention_rate", nullable: true)
                    case "cost_per_task": breaker.costPerTask = try number(v, "breaker.cost_per_task", nullable: true)
                    case "cost_multiple": breaker.costMultiple = try number(v, "breaker.cost_multiple", nullable: true)
                    case "spend_per_hour": breaker.spendPerHour = try number(v, "breaker.spend_per_hour", nullable: true)
                    case "window_seconds":
                        guard let x = try number(v, "breaker.window_seconds"), x >= 10, x <= 86400 else {
                            throw TrustPolicy.invalid(path, "\(what).breaker.window_seconds must be from 10 to 86400")
                        }
                        window = BreakerWindow(bucketSeconds: x / 10, bucketCount: 10)
                    case "metrics_only":
                        guard let x = v.boolValue else { throw TrustPolicy.invalid(path, "\(what).breaker.metrics_only must be true or false") }
                        breakerMetricsOnly = x
                    default:
                        throw TrustPolicy.invalid(
                            path,
                            "\(what).breaker has unknown field \"\(k)\" (minimum_tasks, error_rate, intervention_rate, cost_per_task, cost_multiple, spend_per_hour, window_seconds, metrics_only)"
                        )
                    }
                }
            default:
                throw TrustPolicy.invalid(path, "\(what) has unknown field \"\(key)\" (\(Self.keys.joined(separator: ", ")))")
            }
        }
        if let problem = decision.problems.first { throw TrustPolicy.invalid(path, "\(what).decision: \(problem)") }
    }

    /// The settings as JSON, every field (for `canary status --json` and the docs).
    public var json: JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { .number(EvalAttestation.decimal($0)) } ?? .null }
        func metric(_ m: MetricSettings) -> JSONValue {
            .object(["abort_margin": num(m.abortMargin), "smallest_harm": num(m.smallestHarm), "non_inferiority_margin": num(m.nonInferiorityMargin)])
        }
        return .object([
            "steps": .array(steps.map { num($0) }),
            "outcome_deadline_seconds": num(outcomeDeadlineSeconds),
            "decision": .object([
                "alpha": num(decision.alpha), "beta": num(decision.beta), "minimum_candidate_tasks": .integer(decision.minimumCandidateTasks),
                "horizon": .integer(decision.horizon), "success": metric(decision.success), "cost": metric(decision.cost),
                "intervention": metric(decision.intervention),
            ]),
            "breaker": .object([
                "minimum_tasks": .integer(breaker.minimumTasks), "error_rate": num(breaker.errorRate),
                "intervention_rate": num(breaker.interventionRate), "cost_per_task": num(breaker.costPerTask),
                "cost_multiple": num(breaker.costMultiple), "spend_per_hour": num(breaker.spendPerHour),
                "window_seconds": num(window.seconds), "metrics_only": .bool(breakerMetricsOnly),
            ]),
        ])
    }
}

/// Where the site's alerts go besides `<root>/.alerts.jsonl` (always written): a webhook inside
/// the perimeter and a command, from `rollout.alerts` in `policy.json`.
public struct AlertSettings: Sendable, Equatable {
    /// An `http://` URL whose host and port the site's perimeter allows; nil: none.
    public var webhook: String?
    /// A command (argv, absolute program path) handed each alert as JSON on stdin; nil: none.
    public var command: [String]?
    /// Seconds a webhook or command may take (default 10).
    public var timeoutSeconds: Double = 10

    /// No webhook, no command.
    public init() {}
}

/// The `rollout` object of the site's `policy.json`.
public struct RolloutPolicy: Sendable, Equatable {
    /// `rollout.defaults`, applied to every name.
    public var defaults: [String: JSONValue] = [:]
    /// `rollout.names.<name>`, applied after the defaults.
    public var names: [String: [String: JSONValue]] = [:]
    /// `rollout.alerts`.
    public var alerts = AlertSettings()

    /// Nothing set: the built-in defaults everywhere.
    public init() {}

    /// The settings of `name`. The objects were checked when the policy was parsed.
    public func settings(for name: String) -> RolloutSettings {
        var s = RolloutSettings()
        try? s.apply(defaults, what: "rollout.defaults", path: "")
        try? s.apply(names[name] ?? [:], what: "rollout.names.\(name)", path: "")
        return s
    }

    /// Parses `rollout`; `perimeter` checks the webhook. Throws `policy-invalid` naming `path`.
    static func parse(_ value: JSONValue, perimeter: Perimeter, path: String) throws -> RolloutPolicy {
        guard let o = value.objectValue else { throw TrustPolicy.invalid(path, "\"rollout\" must be an object (defaults, names, alerts)") }
        var p = RolloutPolicy()
        for (key, v) in o.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "defaults":
                guard let d = v.objectValue else { throw TrustPolicy.invalid(path, "rollout.defaults must be an object") }
                var s = RolloutSettings()
                try s.apply(d, what: "rollout.defaults", path: path)
                p.defaults = d
            case "names":
                guard let n = v.objectValue else { throw TrustPolicy.invalid(path, "rollout.names must be an object of release names") }
                for (name, x) in n {
                    guard ReleaseNames.isValidName(name), let d = x.objectValue else {
                        throw TrustPolicy.invalid(path, "rollout.names.\(name) must be a release name with an object of settings")
                    }
                    p.names[name] = d
                }
            case "alerts":
                guard let a = v.objectValue else { throw TrustPolicy.invalid(path, "rollout.alerts must be an object (webhook, command, timeout_seconds)") }
                for (k, x) in a {
                    switch k {
                    case "webhook":
                        if case .null = x { continue }
                        guard let url = x.stringValue, url.hasPrefix("http://"), let e = Endpoint.parse(url: url) else {
                            throw TrustPolicy.invalid(path, "rollout.alerts.webhook must be an http:// URL such as http://alerts.corp.internal:9000/airlock")
                        }
                        guard perimeter.allows(e) else {
                            throw TrustPolicy.invalid(
                                path,
                                "rollout.alerts.webhook \(url) is outside the site's perimeter (\(e)); alerts never leave it: add the host with `airlock trust allow` or use a webhook inside"
                            )
                        }
                        p.alerts.webhook = url
                    case "command":
                        if case .null = x { continue }
                        guard let items = x.arrayValue, let argv = Optional(items.compactMap(\.stringValue)), argv.count == items.count,
                            let first = argv.first, first.hasPrefix("/")
                        else {
                            throw TrustPolicy.invalid(path, "rollout.alerts.command must be a list of strings starting with an absolute program path")
                        }
                        p.alerts.command = argv
                    case "timeout_seconds":
                        guard case .number(let t) = x, let s = Double(t), s >= 1, s <= 300 else {
                            throw TrustPolicy.invalid(path, "rollout.alerts.timeout_seconds must be from 1 to 300")
                        }
                        p.alerts.timeoutSeconds = s
                    default: throw TrustPolicy.invalid(path, "rollout.alerts has unknown field \"\(k)\" (webhook, command, timeout_seconds)")
                    }
                }
            default: throw TrustPolicy.invalid(path, "rollout has unknown field \"\(key)\" (defaults, names, alerts)")
            }
        }
        for (name, d) in p.names {
            var s = RolloutSettings()
            try s.apply(p.defaults, what: "rollout.defaults", path: path)
            try s.apply(d, what: "rollout.names.\(name)", path: path)
        }
        return p
    }

    /// The object as `policy.json` holds it.
    var fields: JSONValue {
        var alerts: [String: JSONValue] = ["timeout_seconds": .number(EvalAttestation.decimal(self.alerts.timeoutSeconds))]
        alerts["webhook"] = self.alerts.webhook.map { .string($0) } ?? .null
        alerts["command"] = self.alerts.command.map { .array($0.map { .string($0) }) } ?? .null
        return .object(["defaults": .object(defaults), "names": .object(names.mapValues { .object($0) }), "alerts": .object(alerts)])
    }
}
