import AirlockFormat
import Foundation

/// The site's perimeter (`perimeter` in the trust policy): the hosts and networks its releases
/// may reach. Empty, the default, allows nothing: no call leaves the site unless listed.
public struct Perimeter: Equatable, Sendable {
    /// `kb.internal`, `*.corp.internal` (any name under it), either with `:port` or not.
    public var hosts: [String] = []
    /// CIDR blocks, `10.0.0.0/8` or `fd00::/8`, matched against endpoints given as addresses.
    public var networks: [String] = []

    /// A perimeter of the given host rules and CIDR blocks, taken as they are (`SitePolicy.parse`
    /// checks them).
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
            .policy, .egressOutsidePerimeter,
            "\(context)\(what): outside the site's perimeter (\(trustDirectory)/\(TrustPolicy.fileName), \"perimeter\") and not allowed for this release; if the site allows it, add it with `airlock trust allow \(endpoints.map(Perimeter.suggestion).joined(separator: " "))`, or allow it for this release only with \(endpoints.map { "--allow-egress \($0)" }.joined(separator: " ")) (recorded in the history)"
        )
    }

    /// What to add to the perimeter for `e`: the endpoint itself for a name, a one-address
    /// CIDR block for an address (blocks match addresses on every port).
    static func suggestion(_ e: Endpoint) -> String {
        guard let a = e.address else { return e.description }
        return "\(e.host)/\(a.bytes.count * 8)"
    }

    static func networkProblem(_ s: String) -> String? { CIDR(s) == nil ? "must be a CIDR block such as 10.0.0.0/8 or fd00::/8" : nil }

    /// Whether the perimeter holds `e`: a host rule matches its host (and its port, when the rule
    /// has one), or a network holds its address. A `*.suffix` rule never matches an address.
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
