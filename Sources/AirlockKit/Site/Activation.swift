import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Switching `current`: activate (push), rollback (pop), with health checks.
public enum Activation {
    /// Resolves RELEASE: a release folder name, a version, or a unique bundle id prefix. Throws
    /// `name-unknown`, `release-ambiguous` and `release-unknown`.
    public static func resolve(site: Site, name: String, _ ref: String) throws -> String {
        try site.requireInstalled(name)
        let all = site.releases(name)
        if all.contains(ref) { return ref }
        let byVersion = all.filter { $0.hasPrefix(ref + "-") && $0.count == ref.count + 13 }
        if byVersion.count == 1 { return byVersion[0] }
        var prefix = ref.hasPrefix("sha256:") ? String(ref.dropFirst(7)) : ref
        prefix = prefix.lowercased()
        if !prefix.isEmpty, prefix.allSatisfy({ $0.isHexDigit }) {
            let byID = all.filter { dir in
                guard let bytes = try? site.manifestBytes(name, dir)
                else { return false }
                return SHA256Digest.of(bytes).hex.hasPrefix(prefix)
            }
            if byID.count == 1 { return byID[0] }
            if byID.count > 1 {
                throw AirlockError(
                    .usage, .releaseAmbiguous, "\(ref) matches \(byID.count) releases of \(name) (\(byID.joined(separator: ", "))); give more of the id")
            }
        }
        if byVersion.count > 1 {
            throw AirlockError(
                .usage, .releaseAmbiguous,
                "version \(ref) of \(name) is installed \(byVersion.count) times (\(byVersion.joined(separator: ", "))); give the folder name or the bundle id")
        }
        throw AirlockError(.usage, .releaseUnknown, "\(name) has no installed release \(ref); installed: \(all.joined(separator: ", "))")
    }

    /// Activates a release of `name` under the site lock and returns its folder name: `ref`
    /// is resolved (see `resolve`), pushed on the activation stack and `current` switched to
    /// it, once the site's policy as it is now allows it (perimeter, with `allowEgress` recorded
    /// for the release; eval; approvals of what widens). Then the health check runs (`check`,
    /// else the one the release declares); a failing check switches back. Throws what
    /// `Site.lockForWriting` throws (`site-busy`, `site-unsafe`, `site-owner`, ...);
    /// `name-unknown`, `release-unknown` and `release-ambiguous`; what `SiteTrust.load` throws
    /// (`trust-store-empty`, `key-unreadable`, `policy-invalid`, ...); `egress-outside-perimeter`,
    /// `eval-missing`, `eval-failed`, `eval-below-site-minimum` and `approval-required` (refused:
    /// `current` does not move); `health-check-failed` (switched back) and `wait-failed`;
    /// `state-corrupt`; for a release whose installed files are damaged, `tools-invalid`,
    /// `tools-missing`, `model-endpoint-invalid`, `eval-attestation-invalid` and what
    /// `Manifest.parse` throws; and write errors (`write-failed`, `create-failed`, `disk-full`,
    /// `sync-failed`, `history-failed`).
    public static func activate(
        site: Site, name: String, release ref: String, check: HealthCheck? = nil, allowEgress: [Endpoint] = [], lockTimeout: Double = 30
    ) throws -> String {
        let lock = try site.lockForWriting(command: "activate", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let dir = try resolve(site: site, name: name, ref)
        try activateLocked(site: site, name: name, release: dir, check: check, allowEgress: allowEgress)
        return dir
    }

    /// Pops the activation stack and switches back. With `to`: back to that release (the
    /// stack is cut down to it when it is in the stack, so the next rollback keeps walking back;
    /// otherwise it is pushed). A rollback runs no health check: it is the way out. Returns the
    /// release switched from (nil: none) and to. Throws what `Site.lockForWriting` throws
    /// (`site-busy`, `site-unsafe`, `site-owner`, ...); `name-unknown`; `nothing-to-roll-back`
    /// when the stack holds no earlier release; with `to`, `release-unknown` and
    /// `release-ambiguous`, and, for a release not on the stack, what `activate` throws for the
    /// site's trust and policy (`policy-invalid`, `egress-outside-perimeter`, `eval-*`,
    /// `approval-required`, ...); `state-corrupt`; and write errors (`write-failed`,
    /// `create-failed`, `disk-full`, `sync-failed`, `history-failed`).
    public static func rollback(
        site: Site, name: String, to ref: String? = nil, allowEgress: [Endpoint] = [], lockTimeout: Double = 30
    ) throws -> (from: String?, to: String) {
        let lock = try site.lockForWriting(command: "rollback", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        try site.requireInstalled(name)
        var state = try loadState(site, name)
        let from = state.stack.last
        var newStack = state.stack
        let target: String
        var gate = Gate()
        if let ref {
            target = try resolve(site: site, name: name, ref)
            if let i = newStack.lastIndex(of: target) {
                newStack.removeSubrange((i + 1)...)
            } else {
                // Not a way back to an earlier activation: checked like an activation.
                gate = try gated(site: site, name: name, release: target, current: from, state: &state, allowEgress: allowEgress)
                newStack.append(target)
            }
        } else {
            guard let t = state.rollbackTarget else {
                throw AirlockError(
                    .usage, .nothingToRollBack, "\(name) has no earlier activation to roll back to; use `airlock activate \(name) RELEASE` to choose one")
            }
            target = t
            newStack.removeLast()
        }
        try CurrentPointer.transition(site: site, name: name, state: &state, to: newStack, steps: ("rollback.state", "rollback.switched"))
        var fields: [String: JSONValue] = ["release": .string(target)]
        if let from { fields["from"] = .string(from) }
        gate.record(into: &fields)
        try History.append(site, action: "rollback", name: name, fields)
        return (from, target)
    }

    /// What an activation's policy check found: recorded in its history line.
    struct Gate {
        var decision = ActivationPolicy.Decision()

        func record(into fields: inout [String: JSONValue]) {
            if !decision.escalations.isEmpty {
                fields["widens"] = .array(decision.escalations.map { .string($0) })
                fields["approved_by"] = .array(decision.approvers.map { .string($0) })
            }
            if !decision.allowed.isEmpty { fields["allowed_egress"] = .array(decision.allowed.map { .string("\($0.who) -> \($0.endpoint)") }) }
        }
    }

    /// The site's trust and policy for a command that checks an activation: `<root>/.trust`
    /// when it exists (a damaged policy fails the command rather than fall back to the
    /// defaults), the defaults otherwise.
    static func loadPolicy(site: Site) throws -> (SiteTrust?, ActivationPolicy) {
        let trust = FileIO.isDirectory(site.trustDirectory) ? try SiteTrust.load(directory: site.trustDirectory) : nil
        return (trust, ActivationPolicy(trust: trust, trustDirectory: site.trustDirectory))
    }

    /// Runs the activation policy (`ActivationPolicy`) on the facts the site holds; a refusal
    /// is written to the history. Allowances given now are saved with the release (and
    /// logged) before the switch. `trust`: what the command loaded (nil: loaded here).
    static func gated(
        site: Site, name: String, release: String, current: String?, state: inout NameState, allowEgress: [Endpoint],
        trust given: (SiteTrust?, ActivationPolicy)? = nil
    ) throws -> Gate {
        do {
            let (trust, policy) = try given ?? loadPolicy(site: site)
            let snapshot = state
            let candidate = ActivationPolicy.Candidate(
                description: "\(name) \(release)", grants: try ReleaseGrants.installed(site: site, name: name, release: release, state: state),
                recordedAllowances: Set(state.policy[release]?.allowances ?? [])
            ) {
                if let recorded = snapshot.policy[release]?.eval { return recorded }
                let a = try site.manifest(name, release).attestations?["eval"].map { try EvalAttestation(json: $0, source: "\(release): attestations.eval") }
                return (a.flatMap { $0.isPassing ? $0.score : nil }, a != nil)
            }
            let baseline = ReleaseGrants.baseline(site: site, name: name, current: current, candidate: release, state: state)
            let decision = try policy.checkActivation(candidate, against: baseline, allowEgress: allowEgress) {
                guard let store = trust?.store else { return [] }
                return ApprovalStore.verified(site: site, bundleID: SHA256Digest.of(try site.manifestBytes(name, release)), trust: store)
            }
            if !decision.allowed.isEmpty {
                state.policy[release, default: PolicyRecord()].allowances.append(contentsOf: decision.allowed.map(\.endpoint.description))
                try state.save(site, name)
                for a in decision.allowed {
                    try History.append(
                        site, action: "allowance", name: name,
                        ["release": .string(release), "who": .string(a.who), "endpoint": .string(a.endpoint.description)])
                }
            }
            return Gate(decision: decision)
        } catch let e as AirlockError {
            try? History.append(site, action: "refuse", name: name, ["release": .string(release), "reason": .string(e.code), "message": .string(e.message)])
            throw e
        }
    }

    static func loadState(_ site: Site, _ name: String) throws -> NameState {
        try NameState.load(site, name).reconciled(installed: site.releases(name), current: site.current(name))
    }

    /// Pushes `dir`, switches `current` to it, runs the health check (given, or the one the
    /// release declares); on failure switches back.
    /// `trust`: the site's trust as read under the lock this command holds; nil: read now. (An
    /// install reads the trust store before the lock, to verify while the bundle streams; its
    /// activation reads it again under the lock, so that a policy changed meanwhile applies.)
    static func activateLocked(
        site: Site, name: String, release dir: String, check: HealthCheck?, allowEgress: [Endpoint] = [], trust: (SiteTrust?, ActivationPolicy)? = nil,
        state given: NameState? = nil
    ) throws {
        // The state the command already read under the lock (an install), else read now.
        var state = try given.map { $0.reconciled(installed: site.releases(name), current: site.current(name)) } ?? loadState(site, name)
        let before = state.stack
        let previous = before.last
        var newStack = before
        if previous != dir { newStack.append(dir) }
        // The site's policy as it is now: perimeter, eval, approval of what widens.
        let gate = try gated(site: site, name: name, release: dir, current: previous, state: &state, allowEgress: allowEgress, trust: trust)
        try CurrentPointer.transition(site: site, name: name, state: &state, to: newStack, steps: ("activate.state", "activate.switched"))
        var fields: [String: JSONValue] = ["release": .string(dir)]
        if let previous { fields["from"] = .string(previous) }
        gate.record(into: &fields)
        try History.append(site, action: "activate", name: name, fields)

        // The release's own check was recorded at install: a switch never parses a manifest,
        // so it costs the same for 10 files or 100,000.
        guard let check = check ?? state.health[dir] ?? declaredCheck(site: site, name: name, release: dir, state: state) else { return }
        let failure = try check.run(site: site, name: name, release: dir) { group in
            state.checking = (dir, group, before)
            try state.save(site, name)
        }
        state.checking = nil
        guard let failure else {
            try state.save(site, name)
            return
        }
        // The release contains itself: switch back at once.
        try switchBack(site: site, name: name, state: &state, to: before, release: dir, reason: failure)
        let back = previous == dir ? "nothing to switch back to: it was already current" : "switched back to \(previous ?? "nothing (no release was active)")"
        throw AirlockError(.healthCheck, .healthCheckFailed, "\(name) \(dir): \(failure); \(back)")
    }

    static func switchBack(site: Site, name: String, state: inout NameState, to stack: [String], release: String, reason: String) throws {
        if stack != state.stack {
            try CurrentPointer.transition(site: site, name: name, state: &state, to: stack, steps: ("health.state", "health.switched"))
        } else {
            try state.save(site, name)
        }
        try History.append(
            site, action: "health-rollback", name: name,
            [
                "release": .string(release), "to": stack.last.map { .string($0) } ?? .null, "reason": .string(reason),
            ])
    }

    /// The check a release declares, read from its manifest: only for a release whose install
    /// was cut short before its state was written (the state records it otherwise).
    private static func declaredCheck(site: Site, name: String, release dir: String, state: NameState) -> HealthCheck? {
        guard state.installedAt[dir] == nil else { return nil }
        return (try? site.manifestBytes(name, dir))
            .flatMap { try? Manifest.parse($0) }.flatMap(HealthCheck.init(manifest:))
    }

    /// After a command that was running a health check was killed: stop what the check left
    /// running and switch back, since its verdict never came. Called by the lock holder.
    static func recoverInterruptedChecks(site: Site) {
        for name in site.names() {
            guard var state = try? loadState(site, name), let (release, group, recorded) = state.checking else { continue }
            // Only a group whose leader is still the check Airlock started (process ids are
            // reused): its environment names the release.
            if Subprocess.carries(group, environment: ["AIRLOCK_RELEASE=\(release)"]) { kill(-group, SIGKILL) }
            state.checking = nil
            // Back to the stack before the activation; a re-activation of the current release
            // stays where it was (as when its check fails in the open).
            var back = state.stack
            if let recorded {
                back = recorded.filter { site.releases(name).contains($0) }
            } else if back.last == release {
                back.removeLast()
            }
            try? switchBack(
                site: site, name: name, state: &state, to: back, release: release, reason: "the command running the health check was killed before it finished")
        }
    }
}
