/// `airlock/delta.json`: the unsigned hint a delta bundle carries (docs/format.md, "Delta
/// bundles"). A delta has the same manifest, hence the same bundle id and signatures, as the full
/// bundle of its release; it omits the payload files whose content its base already has. Nothing
/// in it is trusted: every omitted file is checked against the manifest hash when the installer
/// takes it from the site's store.
///
/// Two versions: `airlock.delta/v1` follows SHA256SUMS and lists the omitted paths (the bundle
/// carries the manifest whole); `airlock.delta/v2` is the first entry, lists the carried paths,
/// and is followed by `airlock/manifest.patch` in place of the manifest (and no SHA256SUMS): the
/// manifest is rebuilt from the base release's (`ManifestPatch`) and must hash to `bundle`.
public struct DeltaInfo: Equatable, Sendable {
    /// The `format` string of a delta.json that follows SHA256SUMS (the manifest carried whole).
    public static let format = "airlock.delta/v1"
    /// The `format` string of a delta.json that comes first (the manifest carried as a patch).
    public static let formatV2 = "airlock.delta/v2"
    /// Largest delta.json a reader accepts.
    package static let maxBytes = 64 << 20

    /// The bundle id of the release the delta was made against.
    public var base: SHA256Digest
    /// Paths (relative to `payload/`) the bundle does not carry, sorted by UTF-8 bytes.
    public var omitted: [String]
    /// Set when the manifest is carried as a patch against the base's (format v2): the release's
    /// name and bundle id, as the hint gives them (checked against the rebuilt manifest).
    public var patched: (name: String, bundle: SHA256Digest)? {
        get { patchName.flatMap { n in patchBundle.map { (n, $0) } } }
        set {
            patchName = newValue?.name
            patchBundle = newValue?.bundle
        }
    }
    private var patchName: String?
    private var patchBundle: SHA256Digest?
    /// Format v2: the paths the bundle carries, sorted by UTF-8 bytes.
    public var carried: [String] = []

    /// A delta hint from its parts, as given; nothing is checked until a reader parses it against the
    /// manifest.
    public init(base: SHA256Digest, omitted: [String]) {
        self.base = base
        self.omitted = omitted
    }

    /// A format v2 hint: the manifest is a patch against `base`'s; `carried` are the paths the
    /// payload holds, `omitted` the others of the manifest.
    public init(base: SHA256Digest, name: String, bundle: SHA256Digest, carried: [String], omitted: [String]) {
        self.base = base
        self.omitted = omitted
        self.carried = carried
        self.patched = (name, bundle)
    }

    /// True for format v2: the manifest is carried as a patch.
    public var isPatched: Bool { patchName != nil }

    /// The delta.json object: `format`, `base` and `omitted`; for v2 `format`, `base`, `name`,
    /// `bundle` and `carried`.
    public var json: JSONValue {
        if let (name, bundle) = patched {
            return .object([
                "format": .string(Self.formatV2), "base": .string(base.prefixed), "name": .string(name), "bundle": .string(bundle.prefixed),
                "carried": .array(carried.map { .string($0) }),
            ])
        }
        return .object(["format": .string(Self.format), "base": .string(base.prefixed), "omitted": .array(omitted.map { .string($0) })])
    }

    /// The bytes Airlock writes as delta.json: canonical JSON, compact with keys sorted.
    public func encoded() -> [UInt8] { CanonicalJSON.encode(json) }

    package static func invalid(_ what: String) -> AirlockError {
        .verification(.deltaInvalid, "the bundle's \(BundleLayout.deltaEntry) is invalid: \(what); ask the vendor for the full bundle")
    }

    private static func object(
        _ bytes: [UInt8], maxValues: Int, fields: [String], format: String, streaming key: String? = nil, element: ((JSONValue) -> Bool)? = nil
    ) throws -> [String: JSONValue] {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes, maxValues: maxValues, streaming: key, element: element) } catch { throw invalid("not strict JSON: \(error)") }
        guard case .object(let o) = v else { throw invalid("not a JSON object") }
        guard o["format"]?.stringValue == format else {
            let other = format == Self.format ? formatV2 : Self.format
            if o["format"]?.stringValue == other {
                throw invalid("\"format\" \"\(other)\" is not allowed where it stands (a v2 hint comes first, a v1 hint after SHA256SUMS)")
            }
            throw invalid("\"format\" must be \"\(Self.format)\" or \"\(formatV2)\"")
        }
        for k in o.keys where !fields.contains(k) { throw invalid("unknown field \"\(k)\"") }
        return o
    }

    /// Checks `list` (the hint's `key`) against the manifest: every path is a file of the
    /// manifest, sorted, once.
    private static func paths(_ list: [JSONValue]?, key: String, in listed: Set<String>) throws -> [String] {
        guard let list else { throw invalid("\"\(key)\" must be an array of paths") }
        var out: [String] = []
        out.reserveCapacity(list.count)
        for item in list {
            guard let p = item.stringValue else { throw invalid("\"\(key)\" holds something that is not a path") }
            guard listed.contains(p) else { throw invalid("it lists \"\(p)\" in \"\(key)\", which the manifest does not list") }
            if let last = out.last, !PathRules.precedes(last, p) { throw invalid("\"\(key)\" is not sorted by path bytes without duplicates") }
            out.append(p)
        }
        return out
    }

    /// Parses a v1 delta.json strictly and checks it against the manifest: every omitted path is
    /// a file of the manifest, sorted, once.
    package static func parse(_ bytes: [UInt8], manifest: Manifest) throws -> DeltaInfo {
        let o = try object(bytes, maxValues: manifest.files.count + 16, fields: ["format", "base", "omitted"], format: format)
        guard let base = o["base"]?.stringValue.flatMap(SHA256Digest.init(prefixed:)) else { throw invalid("\"base\" must be sha256:<hex>") }
        return DeltaInfo(base: base, omitted: try paths(o["omitted"]?.arrayValue, key: "omitted", in: Set(manifest.files.map(\.path))))
    }

    /// A v2 delta.json as read before the manifest exists: strict JSON with exactly `format`,
    /// `base`, `name` (the name rule), `bundle` and `carried` (strings; checked against the
    /// manifest by `resolved(with:)`, once the manifest's signatures verified).
    package struct Head {
        package var base: SHA256Digest
        package var name: String
        package var bundle: SHA256Digest
        /// The hint's bytes, parsed in full only once the manifest's signatures verified.
        var bytes: [UInt8]
    }

    /// Parses a v2 delta.json (the first entry of a bundle), before any signature is checked:
    /// `carried` is streamed through, each element checked to be a string and none kept, so
    /// that hostile bytes cost no more memory than they take. Throws `delta-invalid`.
    package static func parseHead(_ bytes: [UInt8]) throws -> Head {
        var notAPath = false
        let o: [String: JSONValue]
        do {
            o = try object(bytes, maxValues: bytes.count + 16, fields: ["format", "base", "name", "bundle", "carried"], format: formatV2, streaming: "carried")
            {
                if $0.stringValue == nil { notAPath = true }
                return !notAPath
            }
        } catch  where notAPath {
            throw invalid("\"carried\" holds something that is not a path")
        }
        guard let base = o["base"]?.stringValue.flatMap(SHA256Digest.init(prefixed:)) else { throw invalid("\"base\" must be sha256:<hex>") }
        guard let bundle = o["bundle"]?.stringValue.flatMap(SHA256Digest.init(prefixed:)) else { throw invalid("\"bundle\" must be sha256:<hex>") }
        guard let name = o["name"]?.stringValue, ReleaseNames.isValidName(name) else {
            throw invalid("\"name\" must be a release name (^[a-z0-9][a-z0-9._-]{0,63}$)")
        }
        guard o["carried"]?.arrayValue != nil else { throw invalid("\"carried\" must be an array of paths") }
        return Head(base: base, name: name, bundle: bundle, bytes: bytes)
    }

    /// The hint, checked against the rebuilt (and verified) manifest: its name, and every carried
    /// path a file of the manifest, sorted, once (at most as many values as the manifest has files).
    package static func resolved(_ head: Head, manifest: Manifest) throws -> DeltaInfo {
        guard head.name == manifest.name else { throw invalid("it names the release \(head.name), the manifest \(manifest.name)") }
        let o = try object(head.bytes, maxValues: manifest.files.count + 16, fields: ["format", "base", "name", "bundle", "carried"], format: formatV2)
        let carried = try paths(o["carried"]?.arrayValue, key: "carried", in: Set(manifest.files.map(\.path)))
        let carriedSet = Set(carried)
        return DeltaInfo(
            base: head.base, name: head.name, bundle: head.bundle, carried: carried,
            omitted: manifest.files.lazy.map(\.path).filter { !carriedSet.contains($0) })
    }
}
