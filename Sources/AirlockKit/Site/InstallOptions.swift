import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How `Installer.install` installs a bundle: the options of `airlock install` (docs/cli.md).
public struct InstallOptions: Sendable {
    /// Switch `current` to the release once installed (also when it was already installed).
    public var activate = false
    /// Detached signatures given with `--signature`, checked with the bundle's own.
    public var detached: [DetachedSignature] = []
    /// Install a lower `sequence` than the highest installed for the name (logged).
    public var allowDowngrade = false
    /// The time (Unix seconds) at which expiry of the bundle and of keys is judged.
    public var now: Int64 = Timestamp.now()
    /// Seconds to wait for the site lock before failing with `site-busy`.
    public var lockTimeout: Double = 30
    /// A health check to run after activating (overrides the release's own).
    public var check: HealthCheck?
    /// For a release already installed: verify the whole bundle again and rewrite every file
    /// of the release (and its content objects) from it, healing what `audit` reported.
    public var repair = false
    /// Endpoints outside the site's perimeter that the admin allows for this release
    /// (`--allow-egress HOST:PORT`); each use is recorded in the history.
    public var allowEgress: [Endpoint] = []
    /// Seconds a read from a pipe or socket (`install -`) may wait for data; 0: no limit.
    public var readTimeout: Double = 60

    /// The defaults: install only, no downgrade, no repair, no allowance.
    public init() {}
}

/// What `Installer.install` did.
public struct InstallResult: Sendable, JSONRepresentable {
    /// The release name.
    public var name: String
    /// The release folder (`<version>-<id12>`).
    public var release: String
    /// The bundle id: the SHA-256 of the manifest.
    public var bundleID: SHA256Digest
    /// Whether the release was installed before (nothing was copied, unless repaired).
    public var alreadyInstalled: Bool
    /// Whether `current` now points at the release.
    public var activated: Bool
    /// The payload files staged (0 when the release was already installed and not repaired).
    public var files = 0
    /// Files whose content the site already held (hardlinked, not written).
    public var filesShared = 0
    /// Bytes of new content written to the site.
    public var bytesWritten: UInt64 = 0
    /// Endpoints outside the perimeter the release reaches by the admin's allowance.
    public var allowances: [(who: String, endpoint: Endpoint)] = []

    /// The `--json` form of `airlock install` (docs/cli.md).
    public var json: JSONValue {
        .object([
            "name": .string(name), "release": .string(release), "bundle_id": .string(bundleID.prefixed),
            "already_installed": .bool(alreadyInstalled), "activated": .bool(activated), "files": .integer(files),
            "files_shared": .integer(filesShared), "bytes_written": .integer(bytesWritten),
            "allowances": .array(allowances.map { .object(["who": .string($0.who), "endpoint": .string($0.endpoint.description)]) }),
        ])
    }
}

/// An activation that failed after a successful install (logged by the activation itself).
