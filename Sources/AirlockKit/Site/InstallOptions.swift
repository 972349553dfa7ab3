import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

public struct InstallOptions: Sendable {
    public var activate = false
    public var detached: [DetachedSignature] = []
    public var allowDowngrade = false
    public var now: Int64 = Timestamp.now()
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

    public init() {}
}

/// What `Installer.install` did.
public struct InstallResult: Sendable, JSONRepresentable {
    public var name: String
    public var release: String
    public var bundleID: SHA256Digest
    public var alreadyInstalled: Bool
    public var activated: Bool
    public var files = 0
    /// Files whose content the site already held (hardlinked, not written).
    public var filesShared = 0
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
