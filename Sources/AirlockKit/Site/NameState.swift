import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// What the site keeps per release name beside the `current` pointer: the activation stack,
/// the pins and when each release was installed (`<name>/.state.json`, replaced atomically).
///
/// `current` is the truth about what is active. Every switch is journaled: the new stack is
/// saved as `pending` before the pointer moves and becomes `stack` after it, so whichever of
/// the two has `current` on top is the right one after a crash at any instant.
package struct NameState {
    var stack: [String] = []
    /// The stack a switch in progress will leave (see `Activation.transition`).
    var pending: [String]?
    /// A health check running against `current` (release, process group), so that the next
    /// command can stop it and switch back if the process running it was killed.
    /// `back` is the stack to return to if the check fails (the one before the activation).
    var checking: (release: String, processGroup: Int32, back: [String]?)?
    /// The highest sequence ever installed for the name: removing a release does not open the
    /// door to a downgrade.
    var highestSequence: UInt64 = 0
    var pinned: Set<String> = []
    var installedAt: [String: String] = [:]
    /// The health check each release declares (copied from its manifest at install).
    var health: [String: HealthCheck] = [:]
    /// What the activation policy knows of each release (`PolicyRecord`, a governance type),
    /// stored in the same file.
    var policy: [String: PolicyRecord] = [:]

    package static func load(_ site: Site, _ name: String) throws -> NameState {
        let path = site.path(name, SiteLayout.state)
        guard FileIO.exists(path) else { return NameState() }
        let bytes = try FileIO.read(path, limit: 16 << 20, what: "release state", siteFile: true)
        guard let o = (try? JSONParser.parse(bytes))?.objectValue else {
            throw AirlockError(
                .io, .stateCorrupt,
                "\(path) is damaged (not valid JSON); restore it from a backup, or remove it: the activation stack is then rebuilt from current")
        }
        var s = NameState()
        s.stack = o["stack"]?.arrayValue?.compactMap(\.stringValue) ?? []
        s.pending = o["pending"]?.arrayValue?.compactMap(\.stringValue)
        if let c = o["checking"]?.objectValue, let r = c["release"]?.stringValue, let g = c["process_group"]?.unsignedInteger(max: UInt64(Int32.max)) {
            s.checking = (r, Int32(g), c["back"]?.arrayValue?.compactMap(\.stringValue))
        }
        s.highestSequence = o["highest_sequence"]?.unsignedInteger() ?? 0
        s.pinned = Set(o["pinned"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        for (k, v) in o["installed_at"]?.objectValue ?? [:] { if let t = v.stringValue { s.installedAt[k] = t } }
        for (k, v) in o["health"]?.objectValue ?? [:] {
            if let c = v.objectValue?["command"]?.stringValue {
                s.health[k] = HealthCheck(command: c, timeoutSeconds: Double(v.objectValue?["timeout_seconds"]?.unsignedInteger(max: 86400) ?? 30))
            }
        }
        s.policy = PolicyRecord.records(from: o)
        return s
    }

    func save(_ site: Site, _ name: String) throws {
        var fields: [String: JSONValue] = [
            "stack": .array(stack.map { .string($0) }),
            "highest_sequence": .integer(highestSequence),
            "pinned": .array(pinned.sorted().map { .string($0) }),
            "installed_at": .object(installedAt.mapValues { .string($0) }),
            "health": .object(health.mapValues { .object(["command": .string($0.command), "timeout_seconds": .integer(Int($0.timeoutSeconds))]) }),
        ]
        fields.merge(PolicyRecord.fields(policy)) { a, _ in a }
        if let pending { fields["pending"] = .array(pending.map { .string($0) }) }
        if let checking {
            var c: [String: JSONValue] = ["release": .string(checking.release), "process_group": .integer(checking.processGroup)]
            if let back = checking.back { c["back"] = .array(back.map { .string($0) }) }
            fields["checking"] = .object(c)
        }
        let o: JSONValue = .object(fields)
        try FileIO.writeAtomically(site.path(name, SiteLayout.state), CanonicalJSON.encode(o) + [0x0A], mode: 0o644)
    }

    /// The stack made consistent with what is installed and with `current`.
    func reconciled(installed: [String], current: String?) -> NameState {
        var s = self
        if let p = s.pending {
            if p.last == current { s.stack = p }
            s.pending = nil
        }
        let present = Set(installed)
        s.stack = s.stack.filter { present.contains($0) }
        s.pinned = s.pinned.filter { present.contains($0) }
        s.installedAt = s.installedAt.filter { present.contains($0.key) }
        s.health = s.health.filter { present.contains($0.key) }
        s.policy = s.policy.filter { present.contains($0.key) }
        if let current {
            if let i = s.stack.lastIndex(of: current) {
                s.stack.removeSubrange((i + 1)...)
            } else {
                s.stack.append(current)
            }
        } else {
            s.stack = []
        }
        return s
    }

    /// The release a rollback would activate.
    var rollbackTarget: String? { stack.count >= 2 ? stack[stack.count - 2] : nil }
}
