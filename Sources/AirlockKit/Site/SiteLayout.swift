import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// Every name of the installed layout (site-layout.md), in one place.
public enum SiteLayout {
    /// The site root when neither `--root` nor `$AIRLOCK_ROOT` gives one.
    public static let defaultRoot = "/var/lib/airlock"
    /// The environment variable that names the site root when `--root` is not given.
    public static let rootEnvironment = "AIRLOCK_ROOT"
    /// The lock file every writing command holds a flock on (the holder's pid inside).
    public static let lock = ".lock"
    /// The append-only, hash-chained history of the site.
    public static let history = ".history.jsonl"
    /// The site's alerts (canary and breaker decisions, crash loops), one canonical JSON object
    /// a line, appended by `AlertLog` (mode 0640); unlike the history it is not hash-chained.
    public static let alerts = ".alerts.jsonl"
    /// The content store: one read-only file per distinct content, hardlinked into releases.
    public static let objects = ".objects"
    /// The store's folder for the hash its objects are named by (`.objects/sha256/`).
    public static let objectsAlgorithm = "sha256"
    /// Installs in progress, each in a folder of its own.
    public static let staging = ".staging"
    /// The site's trust store: keys, approvers and policy.
    public static let trust = ".trust"
    /// In the trust store: the approver keys' folder and the policy file.
    public static let approvers = TrustStore.approversFolder
    /// The site's policy file in the trust store (`policy.json`).
    public static let policy = TrustPolicy.fileName
    /// The bearer token `airlock serve`'s control endpoints require (0600, 64 hex digits).
    public static let serveToken = ".serve-token"
    /// Approvals of bundle ids: `.approvals/<bundle hex>/<approver key id>.sig`.
    public static let approvals = ".approvals"
    /// Per name: the folder of installed releases.
    public static let releases = "releases"
    /// Per name: the pointer, a relative symlink to `releases/<folder>`.
    public static let current = "current"
    /// Per name: the activation stack, pins and install times (`<name>/.state.json`).
    public static let state = ".state.json"
    /// Per name: the rollout state of `airlock serve` and `airlock canary` (`<name>/.serve/`).
    public static let serveState = ".serve"
    /// In `.serve/`: the name's canary (`Canary`), replaced atomically under the site lock.
    public static let canaryFile = "canary.json"
    /// In `.serve/`: the breakers' states (`BreakerStore`), replaced atomically under the site lock.
    public static let breakersFile = "breakers.json"
    /// In `.serve/`: the append-only journal of task assignments and outcomes (`TaskJournal`).
    public static let taskJournal = "tasks.log"
    /// In `.serve/`: the file `airlock serve` holds a flock on while it serves the name.
    public static let serveLock = "serve.lock"
    /// In a release: the exact signed manifest bytes.
    public static let releaseManifest = "manifest.json"
    /// In a release: the signatures it was installed with (`<keyid>.sig`).
    public static let releaseSignatures = "signatures"
    /// In a release: the files, one folder per component.
    public static let releasePayload = "payload"
    /// Suffix of an executable object in the store (`.objects/sha256/<2 hex>/<64 hex>.x`).
    public static let executableSuffix = ".x"
    /// Prefix of the new pointer a switch creates beside `current` before renaming it over.
    public static let pointerTemporaryPrefix = ".current" + FileIO.temporaryMarker
    /// Marks a temporary name: `.<name>.tmp-<pid>-<random>` beside a file written atomically
    /// (`.state.json`, a trust store file) or `current`, and `.tmp-<random>` in a store shard. What
    /// a killed command left beside `current` or a name's state is removed by the next writing
    /// command (`SiteRecovery`).
    public static let temporaryMarker = FileIO.temporaryMarker

    /// Installed modes: read-only, as in the Nix store.
    public static let fileMode: mode_t = 0o444
    /// The mode of an installed executable file: read-only, executable.
    public static let executableFileMode: mode_t = 0o555
    /// The mode of a release folder and the folders in it.
    public static let directoryMode: mode_t = 0o755

    /// `<version>-<first 12 hex digits of the bundle id>`.
    public static func releaseDirectory(version: String, bundleID: SHA256Digest) -> String {
        "\(version)-\(bundleID.hex.prefix(12))"
    }
}
