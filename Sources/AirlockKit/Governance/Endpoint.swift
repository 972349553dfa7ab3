import AirlockFormat
import Foundation

/// A network endpoint a release can reach: a host and a port.
public struct Endpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// A lowercase DNS name, a dotted IPv4 address, or an IPv6 address (without brackets).
    public var host: String
    /// The port, 1 to 65535.
    public var port: Int

    /// An endpoint of `host` and `port` as given; `parse` is what checks them.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, or `[host]:port` for an IPv6 address: the form `parse` reads.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Orders endpoints by host, then by port.
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
