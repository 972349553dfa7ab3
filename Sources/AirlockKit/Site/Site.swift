import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A site root: where releases are installed and `current` pointers live.
public struct Site: Sendable {
    /// The site root, absolute and without a trailing slash.
    public let root: String
    /// The trust store: always `<root>/.trust`. The site's keys and policy (perimeter,
    /// approvers, eval requirement) come from the site, never from a command line.
    public let trustDirectory: String

    /// A relative root is taken from the current directory, once: everything after (health
    /// checks included) sees absolute paths.
    public init(root: String) {
        var r = Site.absolute(root)
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
        self.trustDirectory = r + "/" + SiteLayout.trust
    }

    /// Checks the site before a command reads it (see `SiteSafety`); writing commands check
    /// again, as the owner, under the lock. Throws `site-unreadable` and `site-unsafe`.
    public func checkSafety() throws { try SiteSafety.check(self, writing: false) }

    static func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        return FileManager.default.currentDirectoryPath + "/" + p
    }

    /// `--root`, else `$AIRLOCK_ROOT`, else `/var/lib/airlock`.
    public static func resolveRoot(_ option: String?) -> String {
        if let option { return option }
        if let env = ProcessInfo.processInfo.environment[SiteLayout.rootEnvironment], !env.isEmpty { return env }
        return SiteLayout.defaultRoot
    }

    /// `parts` joined under the root: `<root>/<part>/...`.
    public func path(_ parts: String...) -> String { ([root] + parts).joined(separator: "/") }
    /// The folder of a release name: `<root>/<name>`.
    public func nameDirectory(_ name: String) -> String { path(name) }
    /// The folder of a name's installed releases: `<root>/<name>/releases`.
    public func releasesDirectory(_ name: String) -> String { path(name, SiteLayout.releases) }
    /// One installed release's folder: `<root>/<name>/releases/<dir>`.
    public func releaseDirectory(_ name: String, _ dir: String) -> String { path(name, SiteLayout.releases, dir) }
    /// The pointer a runtime reads its release through: `<root>/<name>/current`.
    public func currentLink(_ name: String) -> String { path(name, SiteLayout.current) }

    /// Creates the root and its own folders (0755; the trust store 0755) when missing. (mkdir
    /// never follows a symlink planted at one of these names: `SiteSafety` then refuses it.)
    func prepare() throws {
        for dir in [root, path(SiteLayout.objects), path(SiteLayout.objects, SiteLayout.objectsAlgorithm), path(SiteLayout.staging), trustDirectory] {
            if Sys.mkdir(dir, 0o755) != 0 && errno != EEXIST {
                let err = errno
                if err == EROFS {
                    throw AirlockError.io(
                        .readOnly, "the site root \(root) is on a read-only file system; remount it read-write or choose another --root", errno: err)
                }
                throw AirlockError.io(.createFailed, "cannot create \(dir); check that \(root) is writable (run as the site's admin)", errno: err)
            }
        }
    }

    /// Release names installed on the site (folders whose name is a valid release name).
    /// (Real folders only: a symlink in the site root is never taken for a name.)
    public func names() -> [String] {
        (FileIO.entries(ofDirectory: root) ?? []).filter(isInstalledName).sorted()
    }

    /// `<root>/<name>/` and its `releases/` are real folders (lstat: no link followed).
    func isInstalledName(_ name: String) -> Bool {
        ReleaseNames.isValidName(name) && FileIO.isDirectory(nameDirectory(name)) && FileIO.isDirectory(releasesDirectory(name))
    }

    /// Fails, saying how to find the right one, unless `name` has releases installed here.
    public func requireInstalled(_ name: String) throws {
        guard isInstalledName(name) else {
            throw AirlockError(.usage, .nameUnknown, "no release named \(name) is installed at \(root); `airlock status` lists them")
        }
    }

    /// The exact signed manifest an installed release was installed with (read without
    /// following a link).
    public func manifestBytes(_ name: String, _ dir: String) throws -> [UInt8] {
        try FileIO.read(
            releaseDirectory(name, dir) + "/" + SiteLayout.releaseManifest, limit: BundleLayout.maxManifestBytes, what: "installed manifest", siteFile: true)
    }

    /// The exact manifest of the installed release of `name` whose bundle id is `id`, nil when
    /// none is installed (a delta bundle's manifest is a patch against its base's). `name` comes
    /// from an unsigned hint: it is used only when it obeys the name rule, and what is returned
    /// hashes to `id`.
    public func installedManifest(_ id: SHA256Digest, name: String) -> [UInt8]? {
        guard ReleaseNames.isValidName(name) else { return nil }
        let suffix = "-" + String(id.hex.prefix(12))
        for dir in releases(name) where dir.hasSuffix(suffix) {
            if let bytes = try? manifestBytes(name, dir), SHA256Digest.of(bytes) == id { return bytes }
        }
        return nil
    }

    /// The signed manifest of an installed release, parsed.
    func manifest(_ name: String, _ dir: String) throws -> Manifest {
        try Manifest.parse(manifestBytes(name, dir))
    }

    /// The release a rollback of `name` would switch to (the one active before `current`: the
    /// last-good release), nil when there is none. Throws what reading the name's state throws.
    public func rollbackTarget(_ name: String) throws -> String? {
        try NameState.load(self, name).reconciled(installed: releases(name), current: current(name)).rollbackTarget
    }

    /// How the installed release `dir` of `name` runs as a service (its manifest's `serve`), nil
    /// when it declares none. Throws what reading and parsing its manifest throw.
    public func serveSpec(_ name: String, _ dir: String) throws -> ServeSpec? {
        try manifest(name, dir).serve
    }

    /// Creates a folder of the site's own when it is missing (its parent is flushed, so the
    /// new folder survives a power loss) and checks that it is a real folder of the site's
    /// owner (`what` names it in the refusal).
    func ensureDirectory(_ dir: String, what: String) throws {
        if Sys.mkdir(dir, 0o755) == 0 {
            try FileIO.fsyncPath(String(dir[..<dir.lastIndex(of: "/")!]))
        } else if errno != EEXIST {
            throw AirlockError.io(errno == ENOSPC ? .diskFull : .writeFailed, "cannot create \(dir)", errno: errno)
        }
        try SiteSafety.expect(dir, S_IFDIR, owner: geteuid(), what: what)
    }

    /// The release folder names installed for `name` (real folders only).
    public func releases(_ name: String) -> [String] {
        guard isInstalledName(name) else { return [] }
        let dir = releasesDirectory(name)
        return (FileIO.entries(ofDirectory: dir) ?? []).filter { !$0.hasPrefix(".") && FileIO.isDirectory(dir + "/" + $0) }.sorted()
    }

    /// The release folder `current` points at, if any: `releases/<folder>`, one level, nothing else.
    public func current(_ name: String) -> String? {
        guard let target = FileIO.readLink(currentLink(name)) else { return nil }
        let prefix = SiteLayout.releases + "/"
        guard target.hasPrefix(prefix) else { return nil }
        let dir = String(target.dropFirst(prefix.count))
        guard !dir.isEmpty, !dir.contains("/"), dir != ".", dir != ".." else { return nil }
        return dir
    }
}
