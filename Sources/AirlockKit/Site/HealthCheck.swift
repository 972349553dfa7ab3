import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A command run against the new `current` after a switch; failing it switches back.
public struct HealthCheck: Sendable, Equatable {
    /// The command line, run with `/bin/sh -c` in the release folder.
    public var command: String
    /// How long the check may run before it counts as failed and is killed.
    public var timeoutSeconds: Double

    /// A check that runs `command` and fails after `timeoutSeconds` (default 30).
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
        let fd = Sys.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw AirlockError.io(.writeFailed, "cannot create the health check's output file in \(site.path(SiteLayout.staging))", errno: errno)
        }
        _ = Sys.unlink(path)
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
