import AirlockFormat
import AirlockRollout
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A canary of one name: which release is tried on a slice of the tasks, against which
/// incumbent, at which step, and how it ended. Kept in `<root>/<name>/.serve/canary.json`,
/// replaced atomically under the site lock by `airlock canary` and by `airlock serve`'s
/// decisions; every change is a line in the site's history.
public struct Canary: Sendable, Equatable, Codable {
    /// Where a canary stands.
    public enum Status: String, Sendable, Codable {
        /// Taking its share of the new tasks; the decision runs after every outcome.
        case running
        /// The horizon was reached without showing the candidate non-inferior: it keeps its
        /// share and can still abort; a person promotes or aborts.
        case held
        /// Stopped: no new tasks go to the candidate.
        case aborted
        /// The candidate became `current` (the incumbent is the last-good release).
        case promoted
    }

    /// A random id per canary (16 hex digits).
    public var id: String
    /// The rollout salt of the task assignment, 64 hex digits (`Assignment`).
    public var salt: String
    /// The release folder tried.
    public var candidate: String
    /// The release folder that was current when the canary started.
    public var incumbent: String
    /// The weights in percent (`RolloutSettings.steps`).
    public var steps: [Double]
    /// The index of the step in `steps`.
    public var step: Int
    /// Where it stands.
    public var status: Status
    /// Why it stopped or holds, with the numbers; nil while running.
    public var reason: String?
    /// When it started and when its current step started (RFC 3339 UTC).
    public var startedAt: String
    /// When the current step started.
    public var stepStartedAt: String
    /// Raised by every change, so that a reader can tell a new state from the one it has.
    public var generation: Int

    /// Whether the candidate still takes new tasks (running or held).
    public var isActive: Bool { status == .running || status == .held }

    /// The weight of the current step in basis points (1% = 100), 0 once it stopped.
    public var weight: UInt64 {
        guard isActive, steps.indices.contains(step) else { return 0 }
        return UInt64((steps[step] * 100).rounded())
    }

    /// The salt's bytes.
    public var saltBytes: [UInt8] { SHA256Digest(hex: salt)?.bytes ?? Array(salt.utf8) }

    /// The canary's JSON for `canary status --json` and `serve`'s `/status`.
    public var json: JSONValue {
        .object([
            "id": .string(id), "candidate": .string(candidate), "incumbent": .string(incumbent),
            "steps": .array(steps.map { .number(EvalAttestation.decimal($0)) }), "step": .integer(step),
            "weight_percent": .number(EvalAttestation.decimal(Double(weight) / 100)), "status": .string(status.rawValue),
            "reason": reason.map { .string($0) } ?? .null, "started_at": .string(startedAt), "step_started_at": .string(stepStartedAt),
            "generation": .integer(generation),
        ])
    }
}

/// Reading and changing a name's canary (`airlock canary`, and the decisions of `airlock serve`).
public enum CanaryStore {
    /// The folder of a name's rollout state, `<root>/<name>/.serve`.
    public static func directory(site: Site, name: String) -> String { site.path(name, SiteLayout.serveState) }

    /// The name's canary, nil when it never had one. Throws `site-unsafe` for a file that is not
    /// a regular file of the site's owner and `state-corrupt` for one that does not parse.
    public static func load(site: Site, name: String) throws -> Canary? {
        let path = directory(site: site, name: name) + "/" + SiteLayout.canaryFile
        guard FileIO.exists(path) else { return nil }
        let bytes = try FileIO.read(path, limit: 1 << 20, what: "canary state", siteFile: true)
        do {
            return try JSONCoding.decoder.decode(Canary.self, from: bytes)
        } catch {
            throw AirlockError(
                .io, .stateCorrupt,
                "\(path) is not a canary state Airlock wrote (\(error)); move it aside and start the canary again with `airlock canary start`")
        }
    }

    /// Writes `canary`; the caller holds the site lock.
    static func save(site: Site, name: String, _ canary: Canary) throws {
        let dir = directory(site: site, name: name)
        try site.ensureDirectory(dir, what: "the rollout state folder of \(name)")
        try FileIO.writeAtomically(dir + "/" + SiteLayout.canaryFile, JSONCoding.encoder.encode(canary), mode: 0o600)
    }

    /// Starts a canary of `release` (a folder, version or bundle id prefix) against `name`'s
    /// current release, under the site lock. Starting a canary is an activation for a slice:
    /// the site's policy as it is now must allow the candidate (perimeter, eval, approvals for
    /// what it widens), as `airlock activate` checks it. `steps` nil: the site's settings.
    /// Throws what `Activation.activate` throws for the policy and the lock; `name-unknown`,
    /// `release-unknown`, `release-ambiguous`; `canary-invalid` when there is no current
    /// release, the candidate is current, or a canary of the name is running or held.
    @discardableResult
    public static func start(
        site: Site, name: String, release ref: String, steps given: [Double]? = nil, allowEgress: [Endpoint] = [], lockTimeout: Double = 30
    ) throws -> Canary {
        let lock = try site.lockForWriting(command: "canary start", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let candidate = try Activation.resolve(site: site, name: name, ref)
        guard let incumbent = site.current(name) else {
            throw AirlockError(
                .usage, .canaryInvalid, "\(name) has no current release to compare a canary with; activate one first (`airlock activate \(name) RELEASE`)")
        }
        guard candidate != incumbent else {
            throw AirlockError(.usage, .canaryInvalid, "\(candidate) is already the current release of \(name); a canary tries another release")
        }
        if let old = try load(site: site, name: name), old.isActive {
            throw AirlockError(
                .usage, .canaryInvalid,
                "a canary of \(name) is \(old.status.rawValue) (\(old.candidate) at \(EvalAttestation.decimal(Double(old.weight) / 100))%); promote or abort it first (`airlock canary promote|abort \(name)`)"
            )
        }
        guard try site.serveSpec(name, candidate) != nil else {
            throw AirlockError(
                .usage, .canaryInvalid, "\(candidate) declares no serve section, so airlock serve cannot run it; a canary needs a release that runs")
        }
        let (trust, policy) = try Activation.loadPolicy(site: site)
        if let replay = trust?.policy.replay, replay.required,
            let why = try ReplayStore.refusal(site: site, name: name, candidate: candidate, incumbent: incumbent, threshold: replay.threshold)
        {
            throw AirlockError(.policy, .replayRequired, why)
        }
        let settings = (trust?.policy.rollout ?? RolloutPolicy()).settings(for: name)
        let steps = given ?? settings.steps
        guard !steps.isEmpty, steps.allSatisfy({ $0 >= 0.01 && $0 <= 100 }), zip(steps, steps.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw AirlockError(.usage, .canaryInvalid, "--steps must rise from 0.01 to at most 100 percent, such as 1,5,25,100")
        }
        var state = try Activation.loadState(site, name)
        let gate = try Activation.gated(
            site: site, name: name, release: candidate, current: incumbent, state: &state, allowEgress: allowEgress, trust: (trust, policy))
        var random = SystemRandomNumberGenerator()
        let salt = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let id = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let now = Timestamp.format(Timestamp.now())
        let canary = Canary(
            id: String(SHA256Digest(bytes: id).hex.prefix(16)), salt: SHA256Digest(bytes: salt).hex, candidate: candidate, incumbent: incumbent, steps: steps,
            step: 0, status: .running, reason: nil, startedAt: now, stepStartedAt: now, generation: 1)
        try save(site: site, name: name, canary)
        var fields: [String: JSONValue] = [
            "canary": .string(canary.id), "release": .string(candidate), "incumbent": .string(incumbent),
            "steps": .array(steps.map { .number(EvalAttestation.decimal($0)) }),
        ]
        gate.record(into: &fields)
        try History.append(site, action: "canary-start", name: name, fields)
        return canary
    }

    /// Changes the name's canary under the site lock: `change` is given the canary as it is on
    /// disk and returns the history fields of the change (nil: no change, nothing written).
    /// Throws `canary-invalid` when the name has no canary, and what `change` throws.
    @discardableResult
    public static func update(
        site: Site, name: String, command: String, lockTimeout: Double = 30, _ change: (inout Canary) throws -> (action: String, fields: [String: JSONValue])?
    ) throws -> Canary {
        let lock = try site.lockForWriting(command: command, timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        guard var canary = try load(site: site, name: name) else {
            throw AirlockError(.usage, .canaryInvalid, "\(name) has no canary; start one with `airlock canary start \(name) RELEASE`")
        }
        guard let (action, extra) = try change(&canary) else { return canary }
        canary.generation += 1
        try save(site: site, name: name, canary)
        var fields = extra
        fields["canary"] = .string(canary.id)
        fields["release"] = .string(canary.candidate)
        fields["incumbent"] = .string(canary.incumbent)
        try History.append(site, action: action, name: name, fields)
        return canary
    }

    /// Aborts the name's running or held canary: no new task goes to the candidate, and the
    /// tasks it had go to the current release. Throws `canary-invalid` when there is none.
    @discardableResult
    public static func abort(site: Site, name: String, reason: String, lockTimeout: Double = 30) throws -> Canary {
        try update(site: site, name: name, command: "canary abort", lockTimeout: lockTimeout) { c in
            guard c.isActive else {
                throw AirlockError(.usage, .canaryInvalid, "the canary of \(name) (\(c.candidate)) is already \(c.status.rawValue)")
            }
            c.status = .aborted
            c.reason = reason
            return ("canary-abort", ["reason": .string(reason), "step": .integer(c.step)])
        }
    }

    /// Promotes the name's running or held canary: activates the candidate (the policy checks
    /// and health check of `airlock activate`; the incumbent becomes the last-good release),
    /// then records the canary as promoted. Throws `canary-invalid` when there is none, and
    /// what `Activation.activate` throws (the canary stays as it was).
    @discardableResult
    public static func promote(site: Site, name: String, reason: String, lockTimeout: Double = 30) throws -> Canary {
        // One hold of the site lock for both steps: a `canary abort` cannot land between the
        // switch and the record of the promotion.
        let lock = try site.lockForWriting(command: "canary promote", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        guard var c = try load(site: site, name: name), c.isActive else {
            throw AirlockError(.usage, .canaryInvalid, "\(name) has no running or held canary to promote")
        }
        if site.current(name) != c.candidate {
            try Activation.activateLocked(site: site, name: name, release: c.candidate, check: nil)
        }
        c.status = .promoted
        c.reason = reason
        c.generation += 1
        try save(site: site, name: name, c)
        try History.append(
            site, action: "canary-promote", name: name,
            [
                "canary": .string(c.id), "release": .string(c.candidate), "incumbent": .string(c.incumbent), "reason": .string(reason),
                "step": .integer(c.step),
            ])
        return c
    }
}
