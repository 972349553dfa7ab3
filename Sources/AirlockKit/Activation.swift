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

    /// Runs `/bin/sh -c command` in the release folder `current` points at, with
    /// AIRLOCK_ROOT, AIRLOCK_NAME, AIRLOCK_RELEASE and AIRLOCK_CURRENT set. Returns nil on
    /// success, else why it failed.
    func run(site: Site, name: String, release: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.currentDirectoryURL = URL(fileURLWithPath: site.currentLink(name))
        var env = ProcessInfo.processInfo.environment
        env["AIRLOCK_ROOT"] = site.root
        env["AIRLOCK_NAME"] = name
        env["AIRLOCK_RELEASE"] = release
        env["AIRLOCK_CURRENT"] = site.currentLink(name)
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return "cannot start /bin/sh: \(error)" }
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        let data = LockedData()
        let reader = Thread {
            data.set(out.fileHandleForReading.readDataToEndOfFile())
        }
        reader.start()
        if done.wait(timeout: .now() + timeoutSeconds) == .timedOut {
            kill(-p.processIdentifier, SIGKILL)
            p.terminate()
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            return "the health check did not finish within \(Int(timeoutSeconds)) s"
        }
        guard p.terminationStatus == 0 else {
            usleep(50_000)
            let tail = String(decoding: data.get().suffix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return "the health check exited with status \(p.terminationStatus)" + (tail.isEmpty ? "" : ": \(tail)")
        }
        return nil
    }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

/// Switching `current`: activate (push), rollback (pop), with health checks.
public enum Activation {
    /// Resolves RELEASE: a release folder name, a version, or a unique bundle id prefix.
    public static func resolve(site: Site, name: String, _ ref: String) throws -> String {
        guard ReleaseNames.isValidName(name), FileIO.isDirectory(site.releasesDirectory(name)) else {
            throw AirlockError(.usage, "name-unknown", "no release named \(name) is installed at \(site.root); `airlock status` lists them")
        }
        let all = site.releases(name)
        if all.contains(ref) { return ref }
        let byVersion = all.filter { $0.hasPrefix(ref + "-") && $0.count == ref.count + 13 }
        if byVersion.count == 1 { return byVersion[0] }
        var prefix = ref.hasPrefix("sha256:") ? String(ref.dropFirst(7)) : ref
        prefix = prefix.lowercased()
        if !prefix.isEmpty, prefix.allSatisfy({ $0.isHexDigit }) {
            let byID = all.filter { dir in
                guard let bytes = try? FileIO.read(site.releaseDirectory(name, dir) + "/" + SiteLayout.releaseManifest, limit: BundleLayout.maxManifestBytes, what: "manifest")
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

    public static func activate(site: Site, name: String, release ref: String, check: HealthCheck? = nil, lockTimeout: Double = 30) throws -> String {
        let lock = try SiteLock(site: site, command: "activate", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let dir = try resolve(site: site, name: name, ref)
        try activateLocked(site: site, name: name, release: dir, check: check)
        return dir
    }

    /// Pops the activation stack (or, with `to`, activates that release) and switches back.
    public static func rollback(site: Site, name: String, to ref: String? = nil, lockTimeout: Double = 30) throws -> (from: String?, to: String) {
        let lock = try SiteLock(site: site, command: "rollback", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        if let ref {
            let dir = try resolve(site: site, name: name, ref)
            let from = site.current(name)
            try activateLocked(site: site, name: name, release: dir, check: nil, action: "rollback")
            return (from, dir)
        }
        guard FileIO.isDirectory(site.releasesDirectory(name)) else {
            throw AirlockError(.usage, "name-unknown", "no release named \(name) is installed at \(site.root)")
        }
        var state = try loadState(site, name)
        guard let target = state.rollbackTarget, let from = state.stack.last else {
            throw AirlockError(.usage, "nothing-to-roll-back", "\(name) has no earlier activation to roll back to; use `airlock activate \(name) RELEASE` to choose one")
        }
        state.stack.removeLast()
        try state.save(site, name)
        Sys.step("rollback.state")
        try switchPointer(site: site, name: name, to: target)
        Sys.step("rollback.switched")
        try History.append(site, action: "rollback", name: name, ["from": .string(from), "release": .string(target)])
        return (from, target)
    }

    static func loadState(_ site: Site, _ name: String) throws -> NameState {
        try NameState.load(site, name).reconciled(installed: site.releases(name), current: site.current(name))
    }

    /// Pushes `dir`, switches `current` to it, runs the health check; on failure switches back.
    static func activateLocked(site: Site, name: String, release dir: String, check: HealthCheck?, action: String = "activate") throws {
        var state = try loadState(site, name)
        let previous = state.stack.last
        if previous != dir { state.stack.append(dir) }
        try state.save(site, name)
        Sys.step("activate.state")
        try switchPointer(site: site, name: name, to: dir)
        Sys.step("activate.switched")
        var fields: [String: JSONValue] = ["release": .string(dir)]
        if let previous { fields["from"] = .string(previous) }
        try History.append(site, action: action, name: name, fields)

        // The release's own check was recorded at install: a switch never parses a manifest,
        // so it costs the same for 10 files or 100,000.
        guard let check = check ?? state.health[dir], let failure = check.run(site: site, name: name, release: dir) else { return }

        // The release contains itself: switch back at once.
        if previous != dir { state.stack.removeLast() }
        try state.save(site, name)
        if let previous, previous != dir {
            try switchPointer(site: site, name: name, to: previous)
        } else if previous == nil {
            unlink(site.currentLink(name))
            try FileIO.fsyncPath(site.nameDirectory(name))
        }
        try History.append(site, action: "health-rollback", name: name, [
            "release": .string(dir), "to": previous.map { .string($0) } ?? .null, "reason": .string(failure),
        ])
        throw AirlockError(
            .healthCheck, "health-check-failed",
            "\(name) \(dir): \(failure); switched back to \(previous ?? "nothing (no release was active)")")
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
