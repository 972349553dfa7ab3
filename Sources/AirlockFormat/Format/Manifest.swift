/// A file of a release, as the manifest lists it.
public struct ManifestFile: Equatable, Sendable {
    /// Relative to `payload/`; its first segment is the component.
    public var path: String
    /// The size in bytes, at most 2^53.
    public var size: UInt64
    /// The SHA-256 of the file's content.
    public var sha256: SHA256Digest
    /// True for mode `0755`, false for `0644`.
    public var executable: Bool

    /// A file entry from its parts, as given; nothing is checked (`Manifest.parse` checks what a
    /// bundle lists).
    public init(path: String, size: UInt64, sha256: SHA256Digest, executable: Bool) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.executable = executable
    }

    /// `"0644"` or `"0755"`.
    public var modeString: String { executable ? "0755" : "0644" }
    /// The numeric mode, `0o755` or `0o644`.
    public var mode: UInt32 { executable ? BundleLayout.executableMode : BundleLayout.regularMode }

    /// The component the file belongs to: the first segment of its path.
    public var component: String {
        guard let slash = path.utf8.firstIndex(of: UInt8(ascii: "/")) else { return path }
        // From the bytes: a String index from the UTF-8 view would be rounded down to a
        // Character boundary ("x\u{600}/" is one Character with its slash).
        return String(decoding: path.utf8[..<slash], as: UTF8.self)
    }
}

/// A file's content as a store keeps it: its SHA-256 and whether it is executable (the same
/// bytes with another mode are other content).
public struct ContentID: Hashable, Sendable {
    /// The SHA-256 of the content.
    public var sha256: SHA256Digest
    /// True for mode `0755`, false for `0644`.
    public var executable: Bool
}

extension ManifestFile {
    /// The file's content identity.
    public var content: ContentID { ContentID(sha256: sha256, executable: executable) }
}

/// One component's summary in the manifest.
public struct ComponentSummary: Equatable, Sendable {
    /// The component digest: SHA-256 over the `<sha256 hex> <mode> <path>\n` lines of its files, in
    /// manifest order.
    public var digest: SHA256Digest
    /// How many files the component holds.
    public var files: UInt64
    /// The total size of the component's files, in bytes.
    public var bytes: UInt64
    /// Extra metadata, e.g. the model's `name` and `snapshot`.
    public var metadata: [String: String]
}

/// The signed description of a release: `airlock/manifest.json` (bundle-format.md).
public struct Manifest: Equatable, Sendable {
    /// The release name, `^[a-z0-9][a-z0-9._-]{0,63}$`.
    public var name: String
    /// The human version label, `^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`.
    public var version: String
    /// The release number: 1 to 2^53, strictly increasing across the releases of one name.
    public var sequence: UInt64
    /// When the release was packed, `YYYY-MM-DDTHH:MM:SSZ`; informative, never checked against the clock.
    public var created: String
    /// The instant from which the bundle no longer verifies, in the same form; nil when it never expires.
    public var expires: String?
    /// Each declared component's summary, by component name.
    public var components: [String: ComponentSummary]
    /// The SHA-256 of the `airlock/SHA256SUMS` bytes.
    public var sums: SHA256Digest
    /// Every payload file, sorted strictly by the UTF-8 bytes of its path.
    public var files: [ManifestFile]
    /// Signed-in evidence, such as the `eval` result; the only place a number may be a decimal.
    public var attestations: [String: JSONValue]?
    /// The release's health check: a `command` and an optional `timeout_seconds`.
    public var health: [String: JSONValue]?
    /// How the release runs as a service (format v2 only).
    public var serve: ServeSpec?

    /// The format string the manifest carries: the lowest version that describes it.
    public var format: String { serve == nil ? BundleLayout.format : BundleLayout.formatV2 }

    /// JSON values a manifest may hold: about five per file for 800,000 files. Bounds the
    /// memory and time a hostile manifest can cost before it is refused.
    package static let maxJSONValues = 4_000_000

    package static let topLevelKeys: Set<String> = [
        "format", "name", "version", "sequence", "created", "expires", "components", "sums", "files",
        "attestations", "health", "serve",
    ]

    /// Builds a manifest from files already sorted and checked; computes components and sums.
    public init(
        name: String, version: String, sequence: UInt64, created: String, expires: String?,
        componentMetadata: [String: [String: String]], files: [ManifestFile],
        attestations: [String: JSONValue]? = nil, health: [String: JSONValue]? = nil, serve: ServeSpec? = nil
    ) {
        self.serve = serve
        self.name = name
        self.version = version
        self.sequence = sequence
        self.created = created
        self.expires = expires
        self.files = files
        self.attestations = attestations
        self.health = health
        self.sums = Manifest.sumsDigest(files)
        self.components = Manifest.summarize(files, metadata: componentMetadata)
    }

    /// The bytes of `airlock/SHA256SUMS` for `files`: `<hex>  <path>\n` in manifest order.
    public static func sumsBytes(_ files: [ManifestFile]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(files.count * 100)
        for f in files {
            out.append(contentsOf: f.sha256.hex.utf8)
            out.append(contentsOf: "  ".utf8)
            out.append(contentsOf: f.path.utf8)
            out.append(0x0A)
        }
        return out
    }

    /// The bytes of `airlock/SHA256SUMS` for this manifest's files.
    public var sumsBytes: [UInt8] { Manifest.sumsBytes(files) }

    /// Appends `f`'s SHA256SUMS line to `out`.
    package static func appendSumsLine(_ f: ManifestFile, to out: inout [UInt8]) {
        f.sha256.appendHex(to: &out)
        out.append(0x20)
        out.append(0x20)
        out.append(contentsOf: f.path.utf8)
        out.append(0x0A)
    }

    /// The SHA-256 of the SHA256SUMS bytes, 64 KiB at a time (the whole text is never held).
    package static func sumsDigest(_ files: [ManifestFile]) -> SHA256Digest {
        let h = SHA256Hasher()
        var chunk: [UInt8] = []
        chunk.reserveCapacity(68 << 10)
        for f in files {
            appendSumsLine(f, to: &chunk)
            if chunk.count >= 64 << 10 {
                h.update(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        h.update(chunk)
        return h.finish()
    }

    /// The length of the SHA256SUMS text.
    package var sumsLength: UInt64 { files.reduce(0) { $0 + 64 + 2 + UInt64($1.path.utf8.count) + 1 } }

    /// Component digests: SHA-256 over `<sha256 hex> <mode> <path>\n` of the component's files.
    package static func summarize(_ files: [ManifestFile], metadata: [String: [String: String]]) -> [String: ComponentSummary] {
        final class Sum {
            let hasher = SHA256Hasher()
            var files: UInt64 = 0
            var bytes: UInt64 = 0
            var pending: [UInt8] = []
            func flush() {
                hasher.update(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        var sums: [String: Sum] = [:]
        for name in metadata.keys { sums[name] = Sum() }
        // The files of a component are next to each other in a manifest: the component's name
        // is looked up only when it changes, and its lines are hashed 64 KiB at a time.
        var currentName = ""
        var current: Sum?
        for f in files {
            let u = f.path.utf8
            let name = u[..<(u.firstIndex(of: UInt8(ascii: "/")) ?? u.endIndex)]
            if current == nil || !name.elementsEqual(currentName.utf8) {
                current?.flush()
                currentName = String(decoding: name, as: UTF8.self)
                if sums[currentName] == nil { sums[currentName] = Sum() }
                current = sums[currentName]
            }
            let sum = current!
            f.sha256.appendHex(to: &sum.pending)
            sum.pending.append(0x20)
            sum.pending.append(contentsOf: f.executable ? "0755".utf8 : "0644".utf8)
            sum.pending.append(0x20)
            sum.pending.append(contentsOf: u)
            sum.pending.append(0x0A)
            sum.files += 1
            sum.bytes += f.size
            if sum.pending.count >= 64 << 10 { sum.flush() }
        }
        var out: [String: ComponentSummary] = [:]
        for (name, sum) in sums {
            sum.flush()
            out[name] = ComponentSummary(digest: sum.hasher.finish(), files: sum.files, bytes: sum.bytes, metadata: metadata[name] ?? [:])
        }
        return out
    }

    /// The total size of the payload files, in bytes.
    public var totalBytes: UInt64 { files.reduce(0) { $0 + $1.size } }

    // MARK: Encoding

    /// The manifest as a JSON value: `CanonicalJSON.encode(json)` gives the bytes of `encoded()`.
    public var json: JSONValue { json(includingFiles: true) }

    package func json(includingFiles: Bool) -> JSONValue {
        var top: [String: JSONValue] = [
            "format": .string(format),
            "name": .string(name),
            "version": .string(version),
            "sequence": .integer(sequence),
            "created": .string(created),
            "sums": .string(sums.prefixed),
        ]
        if let expires { top["expires"] = .string(expires) }
        var comps: [String: JSONValue] = [:]
        for (name, c) in components {
            var o: [String: JSONValue] = [
                "digest": .string(c.digest.prefixed), "files": .integer(c.files), "bytes": .integer(c.bytes),
            ]
            for (k, v) in c.metadata { o[k] = .string(v) }
            comps[name] = .object(o)
        }
        top["components"] = .object(comps)
        top["files"] = .array(
            !includingFiles
                ? []
                : files.map {
                    .object([
                        "path": .string($0.path), "size": .integer($0.size), "sha256": .string($0.sha256.hex),
                        "mode": .string($0.modeString),
                    ])
                })
        if let attestations { top["attestations"] = .object(attestations) }
        if let health { top["health"] = .object(health) }
        if let serve { top["serve"] = serve.json }
        return .object(top)
    }

    /// The exact bytes Airlock writes as manifest.json: compact, keys sorted; the same bytes
    /// as `CanonicalJSON.encode(json)`, written directly so that a manifest of many files does
    /// not first become a tree of dictionaries.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        // Each file takes 112 bytes beside its path and size digits (more only when its path
        // needs escapes): reserving that exactly avoids a doubling copy of a large manifest.
        out.reserveCapacity(4096 + files.reduce(0) { $0 + 112 + $1.path.utf8.count + String($1.size).utf8.count })
        encode { out.append(contentsOf: $0) }
        return out
    }

    /// The same bytes as `encoded()`, handed over in chunks of about `chunkBytes`, so that a
    /// manifest can be written again without holding it whole. Throws only what `emit` throws.
    public func encode(chunkBytes: Int = 1 << 16, _ emit: ([UInt8]) throws -> Void) rethrows {
        var out: [UInt8] = []
        out.reserveCapacity(chunkBytes + 8192)
        let top = json(includingFiles: false).objectValue!
        // Every top-level key but "files" is small: write them canonically, splicing the file
        // list in at its sorted place.
        let keys = CanonicalJSON.sortedKeys(top)
        out.append(UInt8(ascii: "{"))
        for (k, key) in keys.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            CanonicalJSON.writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            if key != "files" {
                CanonicalJSON.write(top[key]!, into: &out)
                continue
            }
            out.append(UInt8(ascii: "["))
            for (i, f) in files.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"mode":""#.utf8)
                out.append(contentsOf: f.modeString.utf8)
                out.append(contentsOf: #"","path":"#.utf8)
                CanonicalJSON.writeString(f.path, into: &out)
                out.append(contentsOf: #","sha256":""#.utf8)
                f.sha256.appendHex(to: &out)
                out.append(contentsOf: #"","size":"#.utf8)
                CanonicalJSON.appendDecimal(f.size, to: &out)
                out.append(UInt8(ascii: "}"))
                if out.count >= chunkBytes {
                    try emit(out)
                    out.removeAll(keepingCapacity: true)
                }
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        try emit(out)
    }

    // MARK: Strict parsing

    package static func invalid(_ what: String) -> AirlockError {
        .verification(.manifestInvalid, "the manifest is invalid: \(what); the bundle was not made by a correct packer or was altered")
    }

    /// Parses manifest.json strictly: every rule of the format, and every summary recomputed. Throws
    /// `manifest-invalid` (not strict JSON included), `format-unsupported`, `path-invalid`,
    /// `path-conflict`, `component-summary-mismatch` and `sums-mismatch`.
    public static func parse(_ bytes: [UInt8]) throws -> Manifest {
        // `files` is checked element by element as it is parsed, straight into ManifestFiles:
        // a manifest of 100,000 files never becomes 100,000 dictionaries.
        let collector = FileCollector()
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, maxValues: maxJSONValues, streaming: "files", members: { collector.add($0) })
        } catch {
            if let e = collector.error { throw e }
            throw invalid("not strict JSON: \(error)")
        }
        guard case .object(let top) = root else { throw invalid("not a JSON object") }
        for key in top.keys where !topLevelKeys.contains(key) { throw invalid("unknown field \"\(key)\"") }
        guard let format = top["format"] else { throw invalid("missing field \"format\"") }
        guard let formatString = format.stringValue, BundleLayout.readableFormats.contains(formatString) else {
            throw AirlockError.verification(
                .formatUnsupported,
                "the bundle format is \(CanonicalJSON.string(format)); this Airlock (\(BundleLayout.toolVersion)) reads \(BundleLayout.readableFormats.map { "\"\($0)\"" }.joined(separator: " and ")): upgrade Airlock to install it"
            )
        }
        func string(_ key: String) throws -> String {
            guard let v = top[key] else { throw invalid("missing field \"\(key)\"") }
            guard let s = v.stringValue else { throw invalid("\"\(key)\" must be a string") }
            return s
        }
        let name = try string("name")
        guard ReleaseNames.isValidName(name) else { throw invalid("name \"\(name)\" breaks the rule ^[a-z0-9][a-z0-9._-]{0,63}$") }
        let version = try string("version")
        guard ReleaseNames.isValidVersion(version) else {
            throw invalid("version \"\(version)\" breaks the rule ^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
        }
        guard let seqValue = top["sequence"] else { throw invalid("missing field \"sequence\"") }
        guard let sequence = seqValue.unsignedInteger(), sequence >= 1 else {
            throw invalid("\"sequence\" must be an integer from 1 to 2^53")
        }
        let created = try string("created")
        guard Timestamp.parse(created) != nil else { throw invalid("\"created\" is not an RFC 3339 UTC time like 2026-11-26T00:00:00Z") }
        var expires: String?
        if top["expires"] != nil {
            let e = try string("expires")
            guard Timestamp.parse(e) != nil else { throw invalid("\"expires\" is not an RFC 3339 UTC time like 2027-06-01T00:00:00Z") }
            expires = e
        }
        guard let sums = SHA256Digest(prefixed: try string("sums")) else { throw invalid("\"sums\" must be sha256:<64 lowercase hex>") }

        guard let filesValue = top["files"] else { throw invalid("missing field \"files\"") }
        guard case .array = filesValue else { throw invalid("\"files\" must be an array") }
        let files = collector.files
        guard !files.isEmpty else { throw invalid("\"files\" is empty; a release holds at least one file") }
        if let (path, reason) = PathRules.setProblem(with: files.map(\.path)) {
            throw AirlockError.verification(.pathConflict, "the manifest lists \"\(path)\", which \(reason)")
        }

        guard let compsValue = top["components"] else { throw invalid("missing field \"components\"") }
        guard case .object(let compObjects) = compsValue, !compObjects.isEmpty else {
            throw invalid("\"components\" must be an object naming at least one component")
        }
        var metadata: [String: [String: String]] = [:]
        var declared: [String: (SHA256Digest, UInt64, UInt64)] = [:]
        for (cname, cv) in compObjects {
            guard BundleLayout.components.contains(cname) else {
                throw invalid("unknown component \"\(cname)\" (components are \(BundleLayout.components.joined(separator: ", ")))")
            }
            guard case .object(let o) = cv else { throw invalid("component \"\(cname)\" must be an object") }
            guard let d = o["digest"]?.stringValue.flatMap(SHA256Digest.init(prefixed:)),
                let n = o["files"]?.unsignedInteger(), let b = o["bytes"]?.unsignedInteger()
            else { throw invalid("component \"\(cname)\" needs digest (sha256:<hex>), files and bytes (integers)") }
            declared[cname] = (d, n, b)
            var meta: [String: String] = [:]
            for (k, v) in o where !["digest", "files", "bytes"].contains(k) {
                guard ReleaseNames.isValidMetadataKey(k), let s = v.stringValue else {
                    throw invalid("component \"\(cname)\" metadata \"\(k)\" must be a lowercase key with a string value")
                }
                meta[k] = s
            }
            metadata[cname] = meta
        }
        for f in files where compObjects[f.component] == nil {
            throw invalid("\"\(f.path)\" belongs to no declared component")
        }
        var attestations: [String: JSONValue]?
        if let a = top["attestations"] {
            guard case .object(let o) = a else { throw invalid("\"attestations\" must be an object") }
            attestations = o
        }
        var health: [String: JSONValue]?
        if let h = top["health"] {
            guard case .object(let o) = h, o["command"]?.stringValue != nil,
                o.keys.allSatisfy({ $0 == "command" || $0 == "timeout_seconds" }),
                o["timeout_seconds"].map({ $0.unsignedInteger(max: 86400) != nil }) ?? true
            else { throw invalid("\"health\" must be {\"command\": string, \"timeout_seconds\": integer}") }
            health = o
        }
        var serve: ServeSpec?
        if let s = top["serve"] {
            // A v1 reader knows every v1 field: `serve` exists from v2 on.
            guard formatString == BundleLayout.formatV2 else {
                throw invalid("unknown field \"serve\" in a \(formatString) manifest (it needs \(BundleLayout.formatV2))")
            }
            serve = try ServeSpec.parse(s)
        } else if formatString != BundleLayout.format {
            // The lowest version that describes the manifest: without `serve` it is v1.
            throw invalid("a \(formatString) manifest without \"serve\" must say \(BundleLayout.format)")
        }
        try checkIntegersOnly(top, allowDecimalsUnder: "attestations")

        let manifest = Manifest(
            name: name, version: version, sequence: sequence, created: created, expires: expires,
            componentMetadata: metadata, files: files, attestations: attestations, health: health, serve: serve)
        for (cname, (d, n, b)) in declared {
            let c = manifest.components[cname]!
            guard c.digest == d, c.files == n, c.bytes == b else {
                throw AirlockError.verification(
                    .componentSummaryMismatch,
                    "component \"\(cname)\" declares digest \(d), \(n) files, \(b) bytes, but its files give \(c.digest), \(c.files) files, \(c.bytes) bytes")
            }
        }
        guard manifest.sums == sums else {
            throw AirlockError.verification(
                .sumsMismatch, "the manifest's \"sums\" (\(sums)) does not match the SHA256SUMS its files give (\(manifest.sums))")
        }
        return manifest
    }

    /// Checks each element of `files` as the parser hands it over.
    private final class FileCollector {
        var files: [ManifestFile] = []
        var error: AirlockError?
        private var total: UInt64 = 0

        func add(_ element: JSONParser.StreamedElement) -> Bool {
            do {
                try append(element)
                return true
            } catch let e as AirlockError {
                error = e
                return false
            } catch {
                return false
            }
        }

        private func append(_ element: JSONParser.StreamedElement) throws {
            let k = files.count
            guard case .members(let members) = element else { throw invalid("files[\(k)] must be an object") }
            // The parser refused duplicate keys: each field is set at most once.
            var pathValue: JSONValue?, sizeValue: JSONValue?, shaValue: JSONValue?, modeValue: JSONValue?
            for (key, value) in members {
                switch key {
                case "path": pathValue = value
                case "size": sizeValue = value
                case "sha256": shaValue = value
                case "mode": modeValue = value
                default: throw invalid("files[\(k)] has unknown field \"\(key)\"")
                }
            }
            guard let path = pathValue?.stringValue else { throw invalid("files[\(k)].path must be a string") }
            if let reason = PathRules.problem(with: path) {
                throw AirlockError.verification(.pathInvalid, "the manifest lists an unsafe path \"\(path)\": \(reason)")
            }
            guard path.utf8.contains(UInt8(ascii: "/")) else { throw invalid("files[\(k)].path \"\(path)\" must be <component>/<name>") }
            guard let size = sizeValue?.unsignedInteger() else { throw invalid("files[\(k)].size must be an integer from 0 to 2^53") }
            total += size  // at most 2^53 each, and the running total is checked: no overflow
            guard total <= BundleLayout.maxInteger else { throw invalid("the files add up to more than 2^53 bytes") }
            guard let hex = shaValue?.stringValue, let digest = SHA256Digest(hex: hex) else {
                throw invalid("files[\(k)].sha256 must be 64 lowercase hex digits")
            }
            let executable: Bool
            switch modeValue?.stringValue {
            case "0644": executable = false
            case "0755": executable = true
            default: throw invalid("files[\(k)].mode must be \"0644\" or \"0755\" (no setuid, setgid, sticky or other modes)")
            }
            if let last = files.last, !PathRules.precedes(last.path, path) {
                throw invalid("files are not sorted by path bytes without duplicates at \"\(path)\"")
            }
            files.append(ManifestFile(path: path, size: size, sha256: digest, executable: executable))
        }
    }

    /// Numbers with a fraction or exponent are allowed only under `attestations`.
    private static func checkIntegersOnly(_ top: [String: JSONValue], allowDecimalsUnder: String) throws {
        func walk(_ v: JSONValue, _ location: String) throws {
            switch v {
            case .number(let n):
                if n.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") || $0 == UInt8(ascii: "-") }) {
                    throw invalid("\(location) holds \(n); only \"\(allowDecimalsUnder)\" may hold decimals or negative numbers")
                }
                if v.unsignedInteger() == nil { throw invalid("\(location) holds \(n), larger than 2^53") }
            case .array(let a): for (k, x) in a.enumerated() { try walk(x, "\(location)[\(k)]") }
            case .object(let o): for (k, x) in o { try walk(x, "\(location).\(k)") }
            default: break
            }
        }
        for (k, v) in top where k != allowDecimalsUnder { try walk(v, k) }
    }
}
