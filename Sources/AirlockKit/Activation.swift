#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A command run against the new `current` after a switch; failing it switches back.
public struct HealthCheck: Sendable, Equatable {
    public var command: String
    public var timeoutSeconds: Double

    public init(command: String, timeoutSeconds: Double = 30) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }

    /// The check a manifest declares: `"health": {"command": "...", "timeout_seconds": 30}`.
    init?(manifest: Manifest) {
        guard let h = manifest.health, let c = h["command"]?.stringValue else { return nil }
        command = c
        timeoutSeconds = Double(h["timeout_seconds"]?.unsignedInteger(max: 86400) ?? 30)
    }

    /// The environment a check runs in: nothing of the admin's, only what it needs.
    static func environment(site: Site, name: String, release: String) -> [String] {
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "LANG=C.UTF-8",
            "AIRLOCK_ROOT=\(site.root)", "AIRLOCK_NAME=\(name)", "AIRLOCK_RELEASE=\(release)",
            "AIRLOCK_CURRENT=\(site.currentLink(name))",
        ]
    }

    /// An anonymous file for a check's output: created in the site's `.staging/` (only the
    /// owner can write there: `SiteSafety`) with O_EXCL|O_NOFOLLOW under 128 random bits, then
    /// unlinked.
    static func privateLog(site: Site) throws -> Int32 {
        let path = site.path(SiteLayout.staging, "health-\(Staging.randomName()).log")
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AirlockError.io("write-failed", "cannot create the health check's output file in \(site.path(SiteLayout.staging))", errno: errno) }
        unlink(path)
        return fd
    }

    /// Runs `/bin/sh -c command` in the release folder `current` points at, in a process group
    /// of its own, with a clean environment (AIRLOCK_ROOT, AIRLOCK_NAME, AIRLOCK_RELEASE,
    /// AIRLOCK_CURRENT, PATH, HOME, LANG) and, when Airlock runs as root, as `nobody` (the
    /// check comes from a bundle). `started` learns the process group before the wait. Returns
    /// nil on success, else why it failed. The whole group is killed when the check ends or
    /// times out.
    func run(site: Site, name: String, release: String, started: (Int32) throws -> Void = { _ in }) throws -> String? {
        // The check's output goes to a file Airlock creates itself, before the check drops to
        // `nobody`: exclusively, under an unpredictable name, without following a link, and
        // unlinked at once, so that nobody can point it elsewhere or read it.
        let log = try Self.privateLog(site: site)
        defer { close(log) }
        var argv = ["/bin/sh", "-c", "cd \"$0\" && exec /bin/sh -c \"$1\"", site.currentLink(name) + "/", command]
        if geteuid() == 0, FileIO.exists("/usr/bin/setpriv") {
            argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv
        }
        let outcome: Subprocess.Outcome
        do {
            outcome = try Subprocess.run(
                argv, environment: HealthCheck.environment(site: site, name: name, release: release), stdout: .descriptor(log), stderr: .descriptor(log),
                timeoutSeconds: timeoutSeconds, started: started)
        } catch let e as AirlockError where e.code == "spawn-failed" {
            return "cannot start the health check: \(e.message)"
        }
        if outcome == .timedOut { return "the health check did not finish within \(Int(timeoutSeconds)) s" }
        if outcome == .exited(0) { return nil }
        var output = [UInt8](repeating: 0, count: 200)
        let size = lseek(log, 0, SEEK_END)
        let n = size > 0 ? pread(log, &output, output.count, max(0, size - off_t(output.count))) : 0
        let tail = String(decoding: output.prefix(max(0, n)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var how = outcome.how
        if geteuid() == 0 && FileIO.exists("/usr/bin/setpriv") { how += " (it ran as nobody: the site root must be reachable by that user)" }
        return "the health check \(how)" + (tail.isEmpty ? "" : ": \(tail)")
    }
}

/// Switching `current`: activate (push), rollback (pop), with health checks.
public enum Activation {
    /// Resolves RELEASE: a release folder name, a version, or a unique bundle id prefix.
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
            if byID.count > 1 { throw AirlockError(.usage, "release-ambiguous", "\(ref) matches \(byID.count) releases of \(name) (\(byID.joined(separator: ", "))); give more of the id") }
        }
        if byVersion.count > 1 {
            throw AirlockError(.usage, "release-ambiguous", "version \(ref) of \(name) is installed \(byVersion.count) times (\(byVersion.joined(separator: ", "))); give the folder name or the bundle id")
        }
        throw AirlockError(.usage, "release-unknown", "\(name) has no installed release \(ref); installed: \(all.joined(separator: ", "))")
    }

    public static func activate(
        site: Site, name: String, release ref: String, check: HealthCheck? = nil, allowEgress: [Endpoint] = [], lockTimeout: Double = 30
    ) throws -> String {
        let lock = try SiteLock(site: site, command: "activate", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let dir = try resolve(site: site, name: name, ref)
        try activateLocked(site: site, name: name, release: dir, check: check, allowEgress: allowEgress)
        return dir
    }

    /// Pops the activation stack and switches back. With `to`: back to that release (the
    /// stack is cut down to it when it is in the stack, so the next rollback keeps walking back;
    /// otherwise it is pushed). A rollback runs no health check: it is the way out.
    public static func rollback(
        site: Site, name: String, to ref: String? = nil, allowEgress: [Endpoint] = [], lockTimeout: Double = 30
    ) throws -> (from: String?, to: String) {
        let lock = try SiteLock(site: site, command: "rollback", timeout: lockTimeout)
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
                throw AirlockError(.usage, "nothing-to-roll-back", "\(name) has no earlier activation to roll back to; use `airlock activate \(name) RELEASE` to choose one")
            }
            target = t
            newStack.removeLast()
        }
        try transition(site: site, name: name, state: &state, to: newStack, steps: ("rollback.state", "rollback.switched"))
        var fields: [String: JSONValue] = ["release": .string(target)]
        if let from { fields["from"] = .string(from) }
        gate.record(into: &fields)
        try History.append(site, action: "rollback", name: name, fields)
        return (from, target)
    }

    /// What an activation's policy check found: recorded in its history line.
    struct Gate {
        var escalations: [String] = []
        var approvers: [String] = []
        var allowed: [(who: String, endpoint: Endpoint)] = []

        func record(into fields: inout [String: JSONValue]) {
            if !escalations.isEmpty {
                fields["widens"] = .array(escalations.map { .string($0) })
                fields["approved_by"] = .array(approvers.map { .string($0) })
            }
            if !allowed.isEmpty { fields["allowed_egress"] = .array(allowed.map { .string("\($0.who) -> \($0.endpoint)") }) }
        }
    }

    /// Runs the activation checks; a refusal is written to the history. Allowances given now
    /// are saved with the release (and logged) before the switch.
    static func gated(site: Site, name: String, release: String, current: String?, state: inout NameState, allowEgress: [Endpoint]) throws -> Gate {
        do {
            let r = try Approvals.checkActivation(site: site, name: name, release: release, current: current, state: state, allowEgress: allowEgress)
            if !r.allowed.isEmpty {
                state.allowances[release, default: []].append(contentsOf: r.allowed.map(\.endpoint.description))
                try state.save(site, name)
                for a in r.allowed {
                    try History.append(site, action: "allowance", name: name, ["release": .string(release), "who": .string(a.who), "endpoint": .string(a.endpoint.description)])
                }
            }
            return Gate(escalations: r.escalations, approvers: r.approvers, allowed: r.allowed)
        } catch let e as AirlockError {
            try? History.append(site, action: "refuse", name: name, ["release": .string(release), "reason": .string(e.code), "message": .string(e.message)])
            throw e
        }
    }

    static func loadState(_ site: Site, _ name: String) throws -> NameState {
        try NameState.load(site, name).reconciled(installed: site.releases(name), current: site.current(name))
    }

    /// Moves `current` to the top of `newStack` (nothing when it is empty), journaled: the new
    /// stack is saved as pending before the pointer moves and as the stack after it.
    static func transition(site: Site, name: String, state: inout NameState, to newStack: [String], steps: (String, String)) throws {
        state.pending = newStack
        try state.save(site, name)
        Sys.step(steps.0)
        if let top = newStack.last {
            try switchPointer(site: site, name: name, to: top)
        } else {
            unlink(site.currentLink(name))
            try FileIO.fsyncPath(site.nameDirectory(name))
        }
        Sys.step(steps.1)
        state.stack = newStack
        state.pending = nil
        try state.save(site, name)
    }

    /// Pushes `dir`, switches `current` to it, runs the health check (given, or the one the
    /// release declares); on failure switches back.
    static func activateLocked(site: Site, name: String, release dir: String, check: HealthCheck?, allowEgress: [Endpoint] = []) throws {
        var state = try loadState(site, name)
        let before = state.stack
        let previous = before.last
        var newStack = before
        if previous != dir { newStack.append(dir) }
        // The site's policy as it is now: perimeter, eval, approval of what widens.
        let gate = try gated(site: site, name: name, release: dir, current: previous, state: &state, allowEgress: allowEgress)
        try transition(site: site, name: name, state: &state, to: newStack, steps: ("activate.state", "activate.switched"))
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
        throw AirlockError(.healthCheck, "health-check-failed", "\(name) \(dir): \(failure); \(back)")
    }

    static func switchBack(site: Site, name: String, state: inout NameState, to stack: [String], release: String, reason: String) throws {
        if stack != state.stack {
            try transition(site: site, name: name, state: &state, to: stack, steps: ("health.state", "health.switched"))
        } else {
            try state.save(site, name)
        }
        try History.append(site, action: "health-rollback", name: name, [
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
            if group > 1, let env = try? FileIO.read("/proc/\(group)/environ", limit: 1 << 20, what: "environment"),
                env.split(separator: 0).contains(where: { $0.elementsEqual("AIRLOCK_RELEASE=\(release)".utf8) })
            {
                kill(-group, SIGKILL)
            }
            state.checking = nil
            // Back to the stack before the activation; a re-activation of the current release
            // stays where it was (as when its check fails in the open).
            var back = state.stack
            if let recorded {
                back = recorded.filter { site.releases(name).contains($0) }
            } else if back.last == release {
                back.removeLast()
            }
            try? switchBack(site: site, name: name, state: &state, to: back, release: release, reason: "the command running the health check was killed before it finished")
        }
    }

    /// The pointer switch: a new relative symlink under a unique name, renamed over `current`,
    /// then the folder fsynced. Never copies, never deletes first.
    static func switchPointer(site: Site, name: String, to dir: String) throws {
        guard FileIO.isDirectory(site.releaseDirectory(name, dir)) else {
            throw AirlockError(.usage, "release-unknown", "\(name) has no installed release \(dir)")
        }
        let tmp = site.path(name, ".current.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard symlink(SiteLayout.releases + "/" + dir, tmp) == 0 else {
            throw AirlockError.io(errno == ENOSPC ? "disk-full" : "write-failed", "cannot create the new pointer \(tmp)", errno: errno)
        }
        guard rename(tmp, site.currentLink(name)) == 0 else {
            let err = errno
            unlink(tmp)
            throw AirlockError.io("write-failed", "cannot switch \(site.currentLink(name))", errno: err)
        }
        try FileIO.fsyncPath(site.nameDirectory(name))
    }
}
