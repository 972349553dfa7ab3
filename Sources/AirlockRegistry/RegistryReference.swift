import AirlockFormat

/// Where a bundle is in an OCI registry: `[oci://]HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`
/// (docs/registry.md). The host is always named: there is no default registry, so nothing is
/// fetched from outside the perimeter by accident.
public struct RegistryReference: Sendable, Equatable, CustomStringConvertible {
    /// The prefix `install` and `verify` recognise.
    public static let scheme = "oci://"

    /// The registry's host and optional port, as written (`registry.site:5000`, `[::1]:5000`).
    public var host: String
    /// The repository, e.g. `agents/example-agent`.
    public var repository: String
    /// The tag, when one was given.
    public var tag: String?
    /// The manifest's digest, when one was given: then it is what is fetched, and the manifest's
    /// bytes must hash to it.
    public var digest: SHA256Digest?

    /// A reference to `repository` on `host` at `tag` or `digest`.
    public init(host: String, repository: String, tag: String? = nil, digest: SHA256Digest? = nil) {
        self.host = host
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Whether `text` names a registry rather than a file (it starts with `oci://`).
    public static func isRegistry(_ text: String) -> Bool { text.hasPrefix(scheme) }

    /// Parses a reference, with or without `oci://`. Throws `registry-reference-invalid` naming
    /// what is wrong.
    public static func parse(_ text: String) throws -> RegistryReference {
        func bad(_ why: String) -> AirlockError {
            AirlockError(
                .usage, .registryReferenceInvalid,
                "\(text) is not a registry reference: \(why); write oci://HOST[:PORT]/REPOSITORY[:TAG] or oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST")
        }
        var rest = Substring(text)
        if rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        guard let slash = rest.firstIndex(of: "/") else { throw bad("it names no repository") }
        let host = String(rest[..<slash])
        guard isValidHost(host) else { throw bad("\"\(host)\" is not a HOST or HOST:PORT") }
        var path = String(rest[rest.index(after: slash)...])
        var digest: SHA256Digest?
        if let at = path.firstIndex(of: "@") {
            let d = String(path[path.index(after: at)...])
            guard let parsed = SHA256Digest(prefixed: d), d == parsed.prefixed else { throw bad("the digest must be sha256: and 64 lowercase hex digits") }
            digest = parsed
            path = String(path[..<at])
        }
        var tag: String?
        if let colon = path.lastIndex(of: ":"), !path[colon...].contains("/") {
            tag = String(path[path.index(after: colon)...])
            path = String(path[..<colon])
            guard isValidTag(tag!) else { throw bad("\"\(tag!)\" is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)") }
        }
        guard isValidRepository(path) else {
            throw bad("\"\(path)\" is not a repository (lowercase letters and digits, separated by . _ __ - or /, at most 255 characters)")
        }
        return RegistryReference(host: host, repository: path, tag: tag, digest: digest)
    }

    /// What the registry's manifest endpoint is asked for: the digest when there is one, else the tag.
    public var reference: String? { digest?.prefixed ?? tag }

    /// `oci://HOST/REPOSITORY[:TAG][@DIGEST]`.
    public var description: String {
        Self.scheme + host + "/" + repository + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.prefixed } ?? "")
    }

    /// The host without its port (an IPv6 address without its brackets).
    public var hostName: String { Self.hostName(of: host) }

    /// Whether the host is this machine's loopback (`localhost`, 127.0.0.0/8, `::1`): the only
    /// hosts `--insecure` (plain HTTP) is allowed for.
    public var isLoopback: Bool { Self.isLoopback(hostName) }

    static func hostName(of host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") { return String(host[host.index(after: host.startIndex)..<close]) }
        if let colon = host.lastIndex(of: ":") { return String(host[..<colon]) }
        return host
    }

    static func isLoopback(_ name: String) -> Bool {
        if name == "localhost" || name == "::1" { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { p in UInt8(p) != nil }
    }

    /// A tag made from a release version: characters a tag cannot hold become `_`.
    public static func tag(forVersion version: String) -> String {
        var out = String(version.map { c -> Character in c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "." || c == "-") ? c : "_" })
        if let first = out.first, first == "." || first == "-" { out = "_" + out.dropFirst() }
        return String(out.prefix(128))
    }

    static func isValidTag(_ t: String) -> Bool {
        let u = Array(t.utf8)
        guard !u.isEmpty, u.count <= 128 else { return false }
        func word(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
        return word(u[0]) && u.dropFirst().allSatisfy { word($0) || $0 == 0x2E || $0 == 0x2D }
    }

    /// The distribution spec's grammar: components of `[a-z0-9]+` joined by `.`, `_`, `__` or
    /// runs of `-`, separated by `/`.
    static func isValidRepository(_ r: String) -> Bool {
        guard !r.isEmpty, r.utf8.count <= 255 else { return false }
        for component in r.split(separator: "/", omittingEmptySubsequences: false) {
            let u = Array(component.utf8)
            func alnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) }
            guard let first = u.first, let last = u.last, alnum(first), alnum(last) else { return false }
            var i = 0
            while i < u.count {
                if alnum(u[i]) {
                    i += 1
                    continue
                }
                // A separator: ".", "_", "__" or a run of "-".
                var j = i
                if u[i] == 0x2E {
                    j += 1
                } else if u[i] == 0x5F {
                    j += 1
                    if j < u.count && u[j] == 0x5F { j += 1 }
                } else if u[i] == 0x2D {
                    while j < u.count && u[j] == 0x2D { j += 1 }
                } else {
                    return false
                }
                guard j < u.count, alnum(u[j]) else { return false }
                i = j
            }
        }
        return true
    }

    static func isValidHost(_ host: String) -> Bool {
        var name = Substring(host)
        var port: Substring?
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            let inside = name[name.index(after: name.startIndex)..<close]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return false }
            let after = name[name.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return false }
                port = after.dropFirst()
            }
            name = inside
        } else {
            if let colon = name.lastIndex(of: ":") {
                port = name[name.index(after: colon)...]
                name = name[..<colon]
            }
            guard !name.isEmpty, name.utf8.count <= 253,
                name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }),
                !name.hasPrefix("-"), !name.hasPrefix(".")
            else { return false }
        }
        if let port {
            guard let p = UInt16(port), p > 0, port.first != "0" else { return false }
        }
        return true
    }
}
