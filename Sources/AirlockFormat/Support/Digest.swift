/// A SHA-256 digest, stored inline (no heap allocation per digest: a manifest holds one per
/// file).
public struct SHA256Digest: Hashable, Comparable, Sendable, CustomStringConvertible {
    private let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// The digest whose raw bytes are `bytes`; anything but 32 bytes is a programming error.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest is 32 bytes")
        func word(_ k: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(bytes[k * 8 + $1]) } }
        w0 = word(0)
        w1 = word(1)
        w2 = word(2)
        w3 = word(3)
    }

    /// Byte order (the words hold the bytes big-endian).
    public static func < (a: Self, b: Self) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }

    /// The 32 raw bytes.
    public var bytes: [UInt8] {
        [w0, w1, w2, w3].flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> (56 - 8 * UInt64($0))) } }
    }

    /// Parses 64 lowercase hex digits; nil for anything else (uppercase included).
    public init?(hex: String) {
        var hex = hex
        let words: (UInt64, UInt64, UInt64, UInt64)? = hex.withUTF8 { u in
            guard u.count == 64 else { return nil }
            func word(_ k: Int) -> UInt64? {
                var w: UInt64 = 0
                for i in (16 * k)..<(16 * k + 16) {
                    guard let n = Self.nibble(u[i]) else { return nil }
                    w = w << 4 | UInt64(n)
                }
                return w
            }
            guard let a = word(0), let b = word(1), let c = word(2), let d = word(3) else { return nil }
            return (a, b, c, d)
        }
        guard let words else { return nil }
        (w0, w1, w2, w3) = words
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

    /// The 64 lowercase hex digits.
    public var hex: String {
        String(unsafeUninitializedCapacity: 64) { buffer in
            var i = 0
            writeHex(into: buffer, at: &i)
            return 64
        }
    }

    /// Appends the 64 lowercase hex digits to `out`, with no allocation of its own (the
    /// manifest, SHA256SUMS and the component digests write one per file).
    package func appendHex(to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 64))
        out.withUnsafeMutableBufferPointer { b in
            var i = start
            writeHex(into: b, at: &i)
        }
    }

    private func writeHex(into buffer: UnsafeMutableBufferPointer<UInt8>, at i: inout Int) {
        Self.writeHex(w0, into: buffer, at: &i)
        Self.writeHex(w1, into: buffer, at: &i)
        Self.writeHex(w2, into: buffer, at: &i)
        Self.writeHex(w3, into: buffer, at: &i)
    }

    private static func writeHex(_ w: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at i: inout Int) {
        var shift: UInt64 = 64
        while shift > 0 {
            shift -= 4
            let d = UInt8(truncatingIfNeeded: (w >> shift) & 15)
            buffer[i] = d < 10 ? 0x30 + d : 0x57 + d
            i += 1
        }
    }

    /// `sha256:<hex>`, the form the manifest and the CLI use.
    public var prefixed: String { "sha256:" + hex }
    /// The `sha256:<hex>` form, as `prefixed`.
    public var description: String { prefixed }

    /// The SHA-256 of `bytes`.
    public static func of(_ bytes: [UInt8]) -> SHA256Digest {
        let h = SHA256Hasher()
        h.update(bytes)
        return h.finish()
    }
}
