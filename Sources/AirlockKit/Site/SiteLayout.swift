import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

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
    /// In the trust store: the approver keys' folder and the policy file.
    public static let approvers = TrustStore.approversFolder
    public static let policy = TrustPolicy.fileName
    /// Approvals of bundle ids: `.approvals/<bundle hex>/<approver key id>.sig`.
    public static let approvals = ".approvals"
    public static let releases = "releases"
    public static let current = "current"
    /// Per name: the activation stack, pins and install times (`<name>/.state.json`).
    public static let state = ".state.json"
    public static let releaseManifest = "manifest.json"
    public static let releaseSignatures = "signatures"
    public static let releasePayload = "payload"
    /// Suffix of an executable object in the store (`.objects/sha256/<2 hex>/<64 hex>.x`).
    public static let executableSuffix = ".x"
    /// Prefix of the new pointer a switch creates beside `current` before renaming it over.
    public static let pointerTemporaryPrefix = ".current.tmp-"

    /// Installed modes: read-only, as in the Nix store.
    public static let fileMode: mode_t = 0o444
    public static let executableFileMode: mode_t = 0o555
    public static let directoryMode: mode_t = 0o755

    /// `<version>-<first 12 hex digits of the bundle id>`.
    public static func releaseDirectory(version: String, bundleID: SHA256Digest) -> String {
        "\(version)-\(bundleID.hex.prefix(12))"
    }
}
