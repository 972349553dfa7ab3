/// Every name and limit the bundle format fixes, in one place (bundle-format.md).
public enum BundleLayout {
    /// The manifest's `format` string for version 1; readers of this version refuse any other.
    public static let format = "airlock.bundle/v1"
    /// Format v2: v1 plus the optional `serve` section (docs/format.md, "Format versions",
    /// ADR 0009). A manifest says the lowest version that describes it: v2 only when it has a
    /// `serve` section, so every bundle without one stays v1, readable by every Airlock.
    public static let formatV2 = "airlock.bundle/v2"
    /// The formats this Airlock reads, oldest first.
    public static let readableFormats = [format, formatV2]
    /// The version of Airlock itself (`airlock --version`).
    public static let toolVersion = "0.2.0"
    /// The first entry of every bundle: the exact manifest bytes that are signed.
    public static let manifestEntry = "airlock/manifest.json"
    /// The folder of the signature entries, `airlock/signatures/<keyid>.sig`.
    public static let signaturesPrefix = "airlock/signatures/"
    /// The ending of a signature entry's name, after the key id.
    public static let signatureSuffix = ".sig"
    /// The SHA256SUMS entry: one `<sha256 hex>  <path>` line per payload file, in manifest order.
    public static let sumsEntry = "airlock/SHA256SUMS"
    /// The unsigned entry only a delta bundle carries: its base and the paths it omits (`DeltaInfo`).
    public static let deltaEntry = "airlock/delta.json"
    /// The manifest of a delta bundle in format `airlock.delta/v2`, as a zstd patch against its
    /// base release's manifest (`ManifestPatch`).
    public static let manifestPatchEntry = "airlock/manifest.patch"
    /// The folder of the payload entries; manifest paths are relative to it.
    public static let payloadPrefix = "payload/"
    /// The file of a release directory that describes the release to `airlock pack` (docs/release.md).
    public static let releaseSpecFile = "airlock.yaml"
    /// The extension of a bundle's file name, `<name>-<version>.airlock`.
    public static let fileExtension = "airlock"

    /// The five components, in the order Airlock lists them.
    public static let components = ["code", "model", "prompts", "tools", "index"]

    /// Largest manifest.json a reader accepts.
    public static let maxManifestBytes = 64 << 20
    /// Largest signature entry (Ed25519 is 64 bytes, a DER ECDSA P-256 signature at most 72).
    public static let maxSignatureBytes = 1024
    /// Most signature entries a reader accepts.
    public static let maxSignatures = 64
    /// Zero padding allowed after the tar end-of-archive marker.
    public static let maxTrailingZeros = 1 << 20
    /// Longest path segment (one file or folder name) in a bundle, in bytes: Linux NAME_MAX.
    public static let maxPathSegmentBytes = 255
    /// Longest path in a bundle (a manifest path, without `payload/`), in bytes. Install ends a
    /// release at `<root>/<name>/releases/<version>-<id12>/payload/<path>`: root + 161 + path,
    /// with a name and a version of at most 64 bytes each (its staging path,
    /// `<root>/.staging/<at most 32 hex>/release/payload/<path>`, is shorter). Linux PATH_MAX is
    /// 4096 with the NUL, so 4095 bytes: 1024 (site root) + 161 + 2048 = 3233 fits with room to
    /// spare, and every path that verifies installs under any site root of up to 1886 bytes.
    public static let maxBundlePathBytes = 2048
    /// Longest host path a permission declaration may name, in bytes (PATH_MAX). Bundle paths
    /// have the tighter `maxBundlePathBytes`.
    public static let maxPathBytes = 4096
    /// Largest integer the manifest may hold (sizes, counts, sequence): 2^53.
    public static let maxInteger: UInt64 = 1 << 53

    /// Modes files and directories are normalised to in a bundle.
    public static let regularMode: UInt32 = 0o644
    /// `0755`, for a file whose source has any execute bit set.
    public static let executableMode: UInt32 = 0o755
    /// `0755`, for a directory.
    public static let directoryMode: UInt32 = 0o755

    /// zstd level Airlock packs with unless told otherwise; pinned for reproducibility. Level 1
    /// keeps up with reading and hashing at a few MiB a worker; level 3 needs 70+ MiB a worker.
    public static let defaultZstdLevel = 1
    /// zstd workers unless told otherwise: output does not depend on it, memory does (3 to 7
    /// MiB a worker at level 1). Two: on a release of many text files one worker is the slowest
    /// stage of a one-pass pack (docs/benchmarks.md).
    public static let defaultZstdThreads = 2
}
