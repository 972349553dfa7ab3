import Foundation

/// A network endpoint a release can reach: a host and a port.
public struct Endpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// A lowercase DNS name, a dotted IPv4 address, or an IPv6 address (without brackets).
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.host, a.port) < (b.host, b.port) }

    /// Parses `host:port` or `[ipv6]:port`. Hosts are DNS names (letters, digits, `-`, `.`;
    /// lowercase), IPv4 or IPv6 literals; ports 1 to 65535.
    public static func parse(_ s: String) -> Endpoint? {
        let host: Substring, portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
            // One spelling per address (lowercase, zeros compressed), so that comparisons and
            // allowances can not be dodged by writing it another way.
            guard host.contains(":"), let a = IPAddress(String(host)), a.text == host else { return nil }
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            guard isHostName(host) else { return nil }
        }
        guard let port = parsePort(portText) else { return nil }
        return Endpoint(host: String(host), port: port)
    }

    /// The endpoint of a URL (`https://host[:port]/...`); the port defaults by scheme (http 80,
    /// https 443, grpc 80, grpcs 443).
    public static func parse(url: String) -> Endpoint? {
        guard let sep = url.range(of: "://") else { return nil }
        let scheme = url[..<sep.lowerBound].lowercased()
        var rest = url[sep.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        guard !rest.contains("@") else { return nil }  // no credentials in a signed manifest
        let defaults = ["http": 80, "https": 443, "grpc": 80, "grpcs": 443, "ws": 80, "wss": 443]
        guard let port = defaults[scheme] else { return nil }
        let hasPort = rest.hasPrefix("[") ? rest.contains("]:") : rest.contains(":")
        if hasPort { return parse(String(rest)) }
        return parse("\(rest):\(port)")
    }

    static func parsePort(_ s: Substring) -> Int? {
        guard (1...5).contains(s.count), s.allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(s), (1...65535).contains(p) else { return nil }
        return p
    }

    /// A lowercase DNS name or a dotted IPv4 address in its one canonical form. A name whose
    /// last label is a number (`2130706433`, `0x7f000001`, `010.0.0.1`, `10.1`) is an address
    /// to a resolver; it is accepted only as a canonical dotted quad.
    static func isHostName(_ h: Substring) -> Bool {
        guard (1...253).contains(h.utf8.count) else { return false }
        if let last = h.split(separator: ".", omittingEmptySubsequences: false).last,
            last.allSatisfy({ $0.isASCII && $0.isNumber }) || last.hasPrefix("0x")
        {
            guard let a = IPAddress(String(h)), a.bytes.count == 4, a.text == h else { return false }
        }
        for label in h.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-" else { return false }
            guard label.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }) else { return false }
        }
        return true
    }

    var address: IPAddress? { IPAddress(host) }
}

/// An IPv4 or IPv6 address as bytes (4 or 16).
struct IPAddress: Equatable {
    var bytes: [UInt8]

    /// The canonical text (inet_ntop): dotted quad, or lowercase compressed IPv6.
    var text: String {
        var buf = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buf, socklen_t(buf.count)) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    init?(_ s: String) {
        if s.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, s, &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: a) { Array($0) }
        } else {
            var a = in_addr()
            guard s.split(separator: ".").count == 4, inet_pton(AF_INET, s, &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: a) { Array($0) }
        }
    }
}

/// What one tool may do: the network endpoints it reaches, the paths it reads, writes and runs.
public struct ToolPermissions: Equatable, Sendable {
    public var network: [Endpoint] = []
    public var read: [String] = []
    public var write: [String] = []
    public var exec: [String] = []

    public init() {}

    static let kinds = ["network"] + pathKinds
    static let pathKinds = ["read", "write", "exec"]

    /// The path list of a path kind (`pathKinds`).
    func paths(_ kind: String) -> [String] {
        switch kind {
        case "read": return read
        case "write": return write
        default: return exec
        }
    }
}

/// `tools/tools.json`: the tools an agent may call and what each may reach (docs/release.md).
///
/// ```json
/// {"tools": [{"name": "search_kb", "description": "...", "parameters": {...},
///             "permissions": {"network": ["kb.internal:443"], "read": ["index/"], "write": [], "exec": []}}]}
/// ```
public struct ToolManifest: Equatable, Sendable {
    public struct Tool: Equatable, Sendable {
        public var name: String
        public var description: String
        public var permissions: ToolPermissions
    }

    public var tools: [Tool]

    /// Where it lives in a release (relative to the payload).
    public static let path = "tools/tools.json"
    public static let maxBytes = 1 << 20
    static let maxTools = 1000

    static func invalid(_ source: String, _ what: String) -> AirlockError {
        AirlockError(.invalidRelease, "tools-invalid", "\(source) is invalid: \(what) (see docs/release.md, \"Tools\")")
    }

    /// Parses a tool manifest. `hostile`: it comes from a bundle (whose packer would have
    /// refused it), so a problem is a verification failure rather than a release to fix.
    public static func parse(_ bytes: [UInt8], source: String, hostile: Bool) throws -> ToolManifest {
        do {
            return try parse(bytes, source: source)
        } catch let e as AirlockError where hostile && e.code == "tools-invalid" {
            throw AirlockError.verification("tools-invalid", e.message + "; the bundle was not made by a correct packer")
        }
    }

    public static func parse(_ bytes: [UInt8], source: String) throws -> ToolManifest {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw invalid(source, "not strict JSON: \(error)") }
        guard case .object(let top) = v else { throw invalid(source, "the top level must be an object") }
        for key in top.keys where key != "tools" { throw invalid(source, "unknown field \"\(key)\"") }
        guard let list = top["tools"]?.arrayValue else { throw invalid(source, "\"tools\" must be a list ({\"tools\": []} declares none)") }
        guard list.count <= maxTools else { throw invalid(source, "more than \(maxTools) tools") }
        var tools: [Tool] = []
        for (k, tv) in list.enumerated() {
            guard case .object(let o) = tv else { throw invalid(source, "tools[\(k)] must be an object") }
            for key in o.keys where !["name", "description", "parameters", "permissions"].contains(key) {
                throw invalid(source, "tools[\(k)] has unknown field \"\(key)\"")
            }
            guard let name = o["name"]?.stringValue, isToolName(name) else {
                throw invalid(source, "tools[\(k)].name must match ^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
            }
            guard !tools.contains(where: { $0.name == name }) else { throw invalid(source, "tool \"\(name)\" is declared twice") }
            guard let description = o["description"]?.stringValue, !description.isEmpty, description.utf8.count <= 4096 else {
                throw invalid(source, "tool \"\(name)\": description must be a non-empty string of at most 4096 bytes")
            }
            if let p = o["parameters"], p.objectValue == nil { throw invalid(source, "tool \"\(name)\": parameters must be an object") }
            var perms = ToolPermissions()
            if let pv = o["permissions"] {
                guard case .object(let po) = pv else { throw invalid(source, "tool \"\(name)\": permissions must be an object") }
                for key in po.keys where !ToolPermissions.kinds.contains(key) {
                    throw invalid(source, "tool \"\(name)\": permissions has unknown field \"\(key)\" (network, read, write, exec)")
                }
                for kind in ToolPermissions.kinds {
                    guard let raw = po[kind] else { continue }
                    guard let items = raw.arrayValue, let strings = Optional(items.compactMap(\.stringValue)), strings.count == items.count else {
                        throw invalid(source, "tool \"\(name)\": permissions.\(kind) must be a list of strings")
                    }
                    guard Set(strings).count == strings.count else { throw invalid(source, "tool \"\(name)\": permissions.\(kind) lists an entry twice") }
                    if kind == "network" {
                        for s in strings {
                            guard let e = Endpoint.parse(s) else {
                                throw invalid(source, "tool \"\(name)\": network entry \"\(s)\" must be host:port (a lowercase DNS name, IPv4, or [IPv6], port 1-65535)")
                            }
                            perms.network.append(e)
                        }
                    } else {
                        for s in strings {
                            if let reason = pathProblem(s) { throw invalid(source, "tool \"\(name)\": \(kind) entry \"\(s)\": \(reason)") }
                        }
                        switch kind {
                        case "read": perms.read = strings
                        case "write": perms.write = strings
                        default: perms.exec = strings
                        }
                    }
                }
            }
            tools.append(Tool(name: name, description: description, permissions: perms))
        }
        return ToolManifest(tools: tools)
    }

    static func isToolName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...64).contains(u.count), (0x41...0x5A).contains(u[0]) || (0x61...0x7A).contains(u[0]) else { return false }
        return u.allSatisfy { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
    }

    /// A permission path: absolute (on the host) or relative (inside the release); a trailing
    /// `/` means the folder and everything under it.
    static func pathProblem(_ s: String) -> String? {
        if s.isEmpty { return "empty path" }
        if s.utf8.count > BundleLayout.maxPathBytes { return "longer than \(BundleLayout.maxPathBytes) bytes" }
        if s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return "control character" }
        if !PathRules.isNFC(s) { return "not in Unicode NFC form" }
        var body = Substring(s)
        if body.hasPrefix("/") { body = body.dropFirst() }
        if body.hasSuffix("/") { body = body.dropLast() }
        if body.isEmpty { return nil }  // "/": the whole host, which a reviewer sees as such
        for seg in body.split(separator: "/", omittingEmptySubsequences: false) where seg.isEmpty || seg == "." || seg == ".." {
            return "empty, '.' or '..' segment"
        }
        return nil
    }
}

/// Everything a release is allowed to reach: its tools' permissions and the model's endpoint.
public struct Grants: Equatable, Sendable {
    public var tools: [String: ToolPermissions] = [:]
    /// The remote model the release calls instead of shipping weights (`model.endpoint`).
    public var modelEndpoint: Endpoint?

    public init() {}

    public init(tools: ToolManifest?, manifest: Manifest) throws {
        for t in tools?.tools ?? [] { self.tools[t.name] = t.permissions }
        modelEndpoint = try Self.modelEndpoint(manifest.components["model"]?.metadata["endpoint"])
    }

    /// The model's endpoint from its metadata. One that does not parse is refused, never read
    /// as "no endpoint": a signed manifest is still hostile input.
    static func modelEndpoint(_ url: String?) throws -> Endpoint? {
        guard let url else { return nil }
        guard let e = Endpoint.parse(url: url) else {
            throw AirlockError.verification(
                "model-endpoint-invalid", "the manifest's model endpoint \"\(url)\" is not a URL Airlock can check against the perimeter; the bundle was not made by a correct packer")
        }
        return e
    }

    /// Every endpoint the release reaches, with who reaches it ("tool search_kb", "the model").
    public var egress: [(who: String, endpoint: Endpoint)] {
        var out: [(String, Endpoint)] = []
        if let m = modelEndpoint { out.append(("the model", m)) }
        for name in tools.keys.sorted() {
            for e in tools[name]!.network { out.append(("tool \(name)", e)) }
        }
        return out
    }

    /// What `new` grants beyond `old`, in words a reviewer can sign off, one line each: new
    /// tools, new endpoints, wider paths, a new model endpoint. Empty when nothing widens.
    public static func escalations(from old: Grants, to new: Grants) -> [String] {
        var out: [String] = []
        if let m = new.modelEndpoint, m != old.modelEndpoint {
            out.append("the model reaches \(m)" + (old.modelEndpoint.map { " (was \($0))" } ?? " (it reached no endpoint before)"))
        }
        for name in new.tools.keys.sorted() {
            let p = new.tools[name]!
            guard let q = old.tools[name] else {
                out.append("new tool \(name)" + (describe(p).isEmpty ? " (no permissions)" : ": " + describe(p)))
                continue
            }
            let net = p.network.filter { !q.network.contains($0) }
            if !net.isEmpty { out.append("tool \(name) gains network access to \(net.map(\.description).joined(separator: ", "))") }
            for kind in ToolPermissions.pathKinds {
                let wider = p.paths(kind).filter { path in !q.paths(kind).contains { covers($0, path) } }
                if !wider.isEmpty { out.append("tool \(name) may now \(verb(kind)) \(wider.joined(separator: ", "))") }
            }
        }
        return out
    }

    /// What `new` no longer grants of `old`, in words.
    public static func reductions(from old: Grants, to new: Grants) -> [String] {
        var out: [String] = []
        if let m = old.modelEndpoint, new.modelEndpoint != m { out.append("the model no longer reaches \(m)") }
        for name in old.tools.keys.sorted() where new.tools[name] == nil { out.append("tool \(name) is removed") }
        for name in old.tools.keys.sorted() {
            guard let p = new.tools[name], let q = old.tools[name] else { continue }
            let net = q.network.filter { !p.network.contains($0) }
            if !net.isEmpty { out.append("tool \(name) loses network access to \(net.map(\.description).joined(separator: ", "))") }
            for kind in ToolPermissions.pathKinds {
                let narrower = q.paths(kind).filter { path in !p.paths(kind).contains { covers($0, path) } }
                if !narrower.isEmpty { out.append("tool \(name) may no longer \(verb(kind)) \(narrower.joined(separator: ", "))") }
            }
        }
        return out
    }

    /// `a` covers `b`: the same path, or `a` is a folder (`.../`) that holds `b`. Bytes are
    /// compared, never Unicode equivalence: `é` and `e` + U+0301 are two folders on Linux.
    static func covers(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8) || (a.utf8.last == UInt8(ascii: "/") && b.utf8.starts(with: a.utf8))
    }

    static func verb(_ kind: String) -> String { kind == "exec" ? "run" : kind }

    static func describe(_ p: ToolPermissions) -> String {
        var parts: [String] = []
        if !p.network.isEmpty { parts.append("network \(p.network.map(\.description).joined(separator: ", "))") }
        for kind in ToolPermissions.pathKinds where !p.paths(kind).isEmpty {
            parts.append("\(verb(kind)) \(p.paths(kind).joined(separator: ", "))")
        }
        return parts.joined(separator: "; ")
    }

    /// The grants of an installed release: its `payload/tools/tools.json` and its manifest.
    static func installed(releaseDirectory dir: String, manifest: Manifest) throws -> Grants {
        let path = dir + "/" + SiteLayout.releasePayload + "/" + ToolManifest.path
        guard FileIO.exists(path) else {
            if manifest.components["tools"] != nil {
                throw AirlockError.verification("tools-missing", "the release has a tools component without tools/tools.json; the bundle was not made by a correct packer")
            }
            return try Grants(tools: nil, manifest: manifest)
        }
        let bytes = try FileIO.read(path, limit: ToolManifest.maxBytes, what: "tool manifest")
        return try Grants(tools: try ToolManifest.parse(bytes, source: path, hostile: true), manifest: manifest)
    }
}

/// The site's perimeter (`perimeter` in the trust policy): the hosts and networks its releases
/// may reach. Empty, the default, allows nothing: no call leaves the site unless listed.
public struct Perimeter: Equatable, Sendable {
    /// `kb.internal`, `*.corp.internal` (any name under it), either with `:port` or not.
    public var hosts: [String] = []
    /// CIDR blocks, `10.0.0.0/8` or `fd00::/8`, matched against endpoints given as addresses.
    public var networks: [String] = []

    public init(hosts: [String] = [], networks: [String] = []) {
        self.hosts = hosts
        self.networks = networks
    }

    /// Why `s` is not a valid host rule, or nil.
    static func hostRuleProblem(_ s: String) -> String? {
        var name = Substring(s), port: Substring?
        if let colon = s.lastIndex(of: ":"), !s.hasPrefix("[") {
            name = s[..<colon]
            port = s[s.index(after: colon)...]
        }
        if let port, Endpoint.parsePort(port) == nil { return "port must be 1-65535" }
        if name.hasPrefix("*.") { name = name.dropFirst(2) }
        return Endpoint.isHostName(name) ? nil : "must be a lowercase DNS name or IPv4 address, optionally *.suffix and :port"
    }

    /// Sorts a release's egress into what the perimeter or an allowance covers: `allowed` are
    /// the endpoints outside the perimeter that `allowEgress` lets through (to record);
    /// anything else outside throws `egress-outside-perimeter`, naming every tool and endpoint.
    /// `recorded` are endpoints allowed for the release before.
    func check(
        _ grants: Grants, allowEgress: [Endpoint], recorded: Set<String> = [], context: String, trustDirectory: String
    ) throws -> [(who: String, endpoint: Endpoint)] {
        var outside: [(who: String, endpoint: Endpoint)] = []
        var allowed: [(who: String, endpoint: Endpoint)] = []
        for (who, endpoint) in grants.egress where !allows(endpoint) && !recorded.contains(endpoint.description) {
            if allowEgress.contains(endpoint) { allowed.append((who, endpoint)) } else { outside.append((who, endpoint)) }
        }
        guard !outside.isEmpty else { return allowed }
        let what = outside.map { "\($0.who) reaches \($0.endpoint)" }.joined(separator: ", ")
        let endpoints = Array(Set(outside.map(\.endpoint))).sorted()
        throw AirlockError(
            .policy, "egress-outside-perimeter",
            "\(context)\(what): outside the site's perimeter (\(trustDirectory)/\(TrustPolicy.fileName), \"perimeter\") and not allowed for this release; if the site allows it, add it with `airlock trust allow \(endpoints.map(Perimeter.suggestion).joined(separator: " "))`, or allow it for this release only with \(endpoints.map { "--allow-egress \($0)" }.joined(separator: " ")) (recorded in the history)")
    }

    /// What to add to the perimeter for `e`: the endpoint itself for a name, a one-address
    /// CIDR block for an address (blocks match addresses on every port).
    static func suggestion(_ e: Endpoint) -> String {
        guard let a = e.address else { return e.description }
        return "\(e.host)/\(a.bytes.count * 8)"
    }

    static func networkProblem(_ s: String) -> String? { CIDR(s) == nil ? "must be a CIDR block such as 10.0.0.0/8 or fd00::/8" : nil }

    public func allows(_ e: Endpoint) -> Bool {
        for rule in hosts {
            var name = Substring(rule), port: Int?
            if let colon = rule.lastIndex(of: ":") {
                name = rule[..<colon]
                port = Endpoint.parsePort(rule[rule.index(after: colon)...])
            }
            if let port, port != e.port { continue }
            if name.hasPrefix("*.") {
                if e.host.hasSuffix(name.dropFirst(1)) && e.address == nil { return true }
            } else if e.host == name {
                return true
            }
        }
        if let a = e.address {
            for n in networks { if let c = CIDR(n), c.contains(a) { return true } }
        }
        return false
    }
}

/// A CIDR block.
struct CIDR {
    var base: IPAddress
    var bits: Int

    init?(_ s: String) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPAddress(String(parts[0])), let b = Int(parts[1]), parts[1].allSatisfy(\.isNumber),
            (0...a.bytes.count * 8).contains(b)
        else { return nil }
        base = a
        bits = b
    }

    func contains(_ a: IPAddress) -> Bool {
        guard a.bytes.count == base.bytes.count else { return false }
        var left = bits
        for k in 0..<a.bytes.count where left > 0 {
            let take = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if a.bytes[k] & mask != base.bytes[k] & mask { return false }
            left -= take
        }
        return true
    }
}
