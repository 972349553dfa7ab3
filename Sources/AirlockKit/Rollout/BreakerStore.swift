import AirlockFormat
import AirlockRollout

/// The breakers of a name's releases as persisted: each release's state and since when (unix
/// seconds), in `<root>/<name>/.serve/breakers.json`, replaced atomically under the site lock
/// when a breaker trips or a person resets or opens one. The windows are not stored: `serve`
/// rebuilds them from the task journal's outcomes after `since`.
public struct BreakerRecord: Sendable, Equatable, Codable {
    /// The state.
    public var state: BreakerState
    /// When it took this state (unix seconds).
    public var since: Double

    /// A record given as its parts.
    public init(state: BreakerState, since: Double) {
        self.state = state
        self.since = since
    }

    /// The state in a word: closed, tripped, forced-open, metrics-only.
    public var word: String {
        switch state {
        case .closed: return "closed"
        case .tripped: return "tripped"
        case .forcedOpen: return "forced-open"
        case .metricsOnly: return "metrics-only"
        }
    }

    /// The record as JSON (`breaker status --json`): `state`, `since`, and for a trip its
    /// `reason`, `observed`, `limit` and window totals; for a forced opening its `reason`.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["state": .string(word), "since": .string(Timestamp.format(Int64(since)))]
        switch state {
        case .tripped(let t):
            o["reason"] = .string(t.reason.rawValue)
            o["observed"] = .number(EvalAttestation.decimal(t.observed))
            o["limit"] = .number(EvalAttestation.decimal(t.limit))
            o["window"] = .object([
                "tasks": .integer(t.totals.tasks), "errors": .integer(t.totals.errors), "interventions": .integer(t.totals.interventions),
                "cost": .number(EvalAttestation.decimal(t.totals.cost)),
            ])
        case .forcedOpen(let reason, _): o["reason"] = .string(reason)
        case .closed, .metricsOnly: break
        }
        return .object(o)
    }
}

/// Reading and writing a name's `breakers.json`.
public enum BreakerStore {
    /// The persisted breakers of `name`, by release folder; empty when none was ever written.
    /// Throws `site-unsafe` and `state-corrupt`.
    public static func load(site: Site, name: String) throws -> [String: BreakerRecord] {
        let path = CanaryStore.directory(site: site, name: name) + "/" + SiteLayout.breakersFile
        guard FileIO.exists(path) else { return [:] }
        let bytes = try FileIO.read(path, limit: 1 << 20, what: "breaker state", siteFile: true)
        do {
            return try JSONCoding.decoder.decode([String: BreakerRecord].self, from: bytes)
        } catch {
            throw AirlockError(.io, .stateCorrupt, "\(path) is not a breaker state Airlock wrote (\(error)); move it aside (every breaker closes)")
        }
    }

    /// Changes the record of `release` under the site lock (`change` gets nil for a release
    /// never recorded) and writes a history line `action` with `fields`. Returns the record.
    @discardableResult
    public static func update(
        site: Site, name: String, release: String, action: String, fields: [String: JSONValue], lockTimeout: Double = 30,
        _ change: (BreakerRecord?) -> BreakerRecord
    ) throws -> BreakerRecord {
        let lock = try site.lockForWriting(command: action, timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        var all = try load(site: site, name: name)
        let record = change(all[release])
        all[release] = record
        let dir = CanaryStore.directory(site: site, name: name)
        try site.ensureDirectory(dir, what: "the rollout state folder of \(name)")
        try FileIO.writeAtomically(dir + "/" + SiteLayout.breakersFile, JSONCoding.encoder.encode(all), mode: 0o600)
        var f = fields
        f["release"] = .string(release)
        f["state"] = .string(record.word)
        try History.append(site, action: action, name: name, f)
        return record
    }
}
