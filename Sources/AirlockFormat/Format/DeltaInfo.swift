/// `airlock/delta.json`: the unsigned hint a delta bundle carries (bundle-format.md). A delta
/// has the same manifest, hence the same bundle id and signatures, as the full bundle of its
/// release; it omits the payload files whose content its base already has. Nothing in it is
/// trusted: every omitted file is checked against the manifest hash when the installer takes it
/// from the site's store.
public struct DeltaInfo: Equatable, Sendable {
    /// The `format` string of delta.json for this version.
    public static let format = "airlock.delta/v1"
    /// Largest delta.json a reader accepts.
    package static let maxBytes = 64 << 20

    /// The bundle id of the release the delta was made against.
    public var base: SHA256Digest
    /// Paths (relative to `payload/`) the bundle does not carry, sorted by UTF-8 bytes.
    public var omitted: [String]

    /// A delta hint from its parts, as given; nothing is checked until a reader parses it against the
    /// manifest.
    public init(base: SHA256Digest, omitted: [String]) {
        self.base = base
        self.omitted = omitted
    }

    /// The delta.json object: `format`, `base` and `omitted`.
    public var json: JSONValue {
        .object(["format": .string(Self.format), "base": .string(base.prefixed), "omitted": .array(omitted.map { .string($0) })])
    }

    /// The bytes Airlock writes as delta.json: canonical JSON, compact with keys sorted.
    public func encoded() -> [UInt8] { CanonicalJSON.encode(json) }

    package static func invalid(_ what: String) -> AirlockError {
        .verification(.deltaInvalid, "the bundle's \(BundleLayout.deltaEntry) is invalid: \(what); ask the vendor for the full bundle")
    }

    /// Parses delta.json strictly and checks it against the manifest: every omitted path is a
    /// file of the manifest, sorted, once.
    package static func parse(_ bytes: [UInt8], manifest: Manifest) throws -> DeltaInfo {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes, maxValues: manifest.files.count + 16) } catch { throw invalid("not strict JSON: \(error)") }
        guard case .object(let o) = v else { throw invalid("not a JSON object") }
        for k in o.keys where !["format", "base", "omitted"].contains(k) { throw invalid("unknown field \"\(k)\"") }
        guard o["format"]?.stringValue == format else { throw invalid("\"format\" must be \"\(format)\"") }
        guard let base = o["base"]?.stringValue.flatMap(SHA256Digest.init(prefixed:)) else { throw invalid("\"base\" must be sha256:<hex>") }
        guard let list = o["omitted"]?.arrayValue else { throw invalid("\"omitted\" must be an array of paths") }
        let listed = Set(manifest.files.map(\.path))
        var omitted: [String] = []
        omitted.reserveCapacity(list.count)
        for item in list {
            guard let p = item.stringValue else { throw invalid("\"omitted\" holds something that is not a path") }
            guard listed.contains(p) else { throw invalid("it omits \"\(p)\", which the manifest does not list") }
            if let last = omitted.last, !PathRules.precedes(last, p) { throw invalid("\"omitted\" is not sorted by path bytes without duplicates") }
            omitted.append(p)
        }
        return DeltaInfo(base: base, omitted: omitted)
    }
}
