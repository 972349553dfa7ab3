#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Every name of the installed layout (site-layout.md), in one place.
public enum SiteLayout {
    public static let defaultRoot = "/var/lib/airlock"
    public static let rootEnvironment = "AIRLOCK_ROOT"
    public static let lock = ".lock"
    public static let history = ".history.jsonl"
    public static let objects = ".objects"
    public static let objectsAlgorithm = "sha256"
    public static let staging = ".staging"
    public static let trust = ".trust"
    public static let releases = "releases"
    public static let current = "current"
    /// Per name: the activation stack, pins and install times (`<name>/.state.json`).
    public static let state = ".state.json"
    public static let releaseManifest = "manifest.json"
    public static let releaseSignatures = "signatures"
    public static let releasePayload = "payload"
    /// Suffix of an executable object.
    public static let executableSuffix = ".x"

    /// Installed modes: read-only, as in the Nix store.
    public static let fileMode: mode_t = 0o444
    public static let executableFileMode: mode_t = 0o555
    public static let directoryMode: mode_t = 0o755

    /// `<version>-<first 12 hex digits of the bundle id>`.
    public static func releaseDirectory(version: String, bundleID: SHA256Digest) -> String {
        "\(version)-\(bundleID.hex.prefix(12))"
    }
}

/// A site root: where releases are installed and `current` pointers live.
public struct Site: Sendable {
    public let root: String
    /// The trust store (default `<root>/.trust`).
    public let trustDirectory: String

    /// A relative root or trust store is taken from the current directory, once: everything
    /// after (health checks included) sees absolute paths.
    public init(root: String, trustDirectory: String? = nil) {
        var r = Site.absolute(root)
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
        self.trustDirectory = trustDirectory.map(Site.absolute) ?? r + "/" + SiteLayout.trust
    }

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

    public func path(_ parts: String...) -> String { ([root] + parts).joined(separator: "/") }
    public func nameDirectory(_ name: String) -> String { path(name) }
    public func releasesDirectory(_ name: String) -> String { path(name, SiteLayout.releases) }
    public func releaseDirectory(_ name: String, _ dir: String) -> String { path(name, SiteLayout.releases, dir) }
    public func currentLink(_ name: String) -> String { path(name, SiteLayout.current) }

    func objectPath(_ digest: SHA256Digest, executable: Bool) -> String {
        let hex = digest.hex
        return path(SiteLayout.objects, SiteLayout.objectsAlgorithm, String(hex.prefix(2)), hex + (executable ? SiteLayout.executableSuffix : ""))
    }

    /// Creates the root and its own folders (0755; the trust store 0755) when missing.
    func prepare() throws {
        for dir in [root, path(SiteLayout.objects), path(SiteLayout.objects, SiteLayout.objectsAlgorithm), path(SiteLayout.staging), trustDirectory] {
            if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                let err = errno
                if err == EROFS {
                    throw AirlockError.io("read-only", "the site root \(root) is on a read-only file system; remount it read-write or choose another --root", errno: err)
                }
                throw AirlockError.io("create-failed", "cannot create \(dir); check that \(root) is writable (run as the site's admin)", errno: err)
            }
        }
    }

    /// Release names installed on the site (folders whose name is a valid release name).
    public func names() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return entries.filter { ReleaseNames.isValidName($0) && FileIO.isDirectory(path($0, SiteLayout.releases)) }.sorted()
    }

    /// Fails, saying how to find the right one, unless `name` has releases installed here.
    public func requireInstalled(_ name: String) throws {
        guard ReleaseNames.isValidName(name), FileIO.isDirectory(releasesDirectory(name)) else {
            throw AirlockError(.usage, "name-unknown", "no release named \(name) is installed at \(root); `airlock status` lists them")
        }
    }

    /// The release folder names installed for `name`.
    public func releases(_ name: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: releasesDirectory(name))) ?? []
        return entries.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// The release folder `current` points at, if any.
    public func current(_ name: String) -> String? {
        guard let target = FileIO.readLink(currentLink(name)) else { return nil }
        let prefix = SiteLayout.releases + "/"
        guard target.hasPrefix(prefix) else { return nil }
        return String(target.dropFirst(prefix.count))
    }
}
