/// A SHA-256 digest.
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest is 32 bytes")
        self.bytes = bytes
    }

    /// Parses 64 lowercase hex digits; nil for anything else (uppercase included).
    public init?(hex: String) {
        let u = Array(hex.utf8)
        guard u.count == 64 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        for k in 0..<32 {
            guard let hi = Self.nibble(u[2 * k]), let lo = Self.nibble(u[2 * k + 1]) else { return nil }
            out[k] = hi << 4 | lo
        }
        bytes = out
    }

    /// Parses `sha256:<64 lowercase hex>`.
    public init?(prefixed: String) {
        guard prefixed.hasPrefix("sha256:") else { return nil }
        self.init(hex: String(prefixed.dropFirst(7)))
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    private static let digits = Array("0123456789abcdef".utf8)

    public var hex: String {
        var out = [UInt8]()
        out.reserveCapacity(64)
        for b in bytes {
            out.append(Self.digits[Int(b >> 4)])
            out.append(Self.digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `sha256:<hex>`, the form the manifest and the CLI use.
    public var prefixed: String { "sha256:" + hex }
    public var description: String { prefixed }

    /// The SHA-256 of `bytes`.
    public static func of(_ bytes: [UInt8]) -> SHA256Digest {
        let h = SHA256Hasher()
        h.update(bytes)
        return h.finish()
    }
}
