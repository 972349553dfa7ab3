import Foundation

/// Writes tar streams byte by byte, including every malformed thing the threat model lists, so
/// tests can craft hostile bundles. The recipe of each fixture is the test that builds it.
struct TarBuilder {
    struct Entry {
        var name: [UInt8]
        var type: UInt8 = UInt8(ascii: "0")
        var mode: UInt32 = 0o644
        var uid: UInt64 = 0
        var gid: UInt64 = 0
        var uname: [UInt8] = []
        var gname: [UInt8] = []
        var linkname: [UInt8] = []
        var data: [UInt8] = []
        /// Size written in the header when it differs from `data.count`.
        var declaredSize: UInt64?
        var pax: [(String, [UInt8])] = []

        init(_ name: String, _ data: [UInt8] = [], mode: UInt32 = 0o644) {
            self.name = Array(name.utf8)
            self.data = data
            self.mode = mode
        }

        init(rawName: [UInt8], _ data: [UInt8] = []) {
            self.name = rawName
            self.data = data
        }

        static func directory(_ name: String) -> Entry {
            var e = Entry(name)
            e.type = UInt8(ascii: "5")
            e.mode = 0o755
            return e
        }
    }

    var bytes: [UInt8] = []

    mutating func add(_ e: Entry) {
        var pax = e.pax
        var name = e.name
        if name.count > 100 {
            pax.insert(("path", name), at: 0)
            name = Array("PaxHeader/long".utf8)
        }
        if !pax.isEmpty {
            var body: [UInt8] = []
            for (k, v) in pax {
                let payload = Array(" \(k)=".utf8) + v + [0x0A]
                var len = payload.count + 1
                while String(len).count + payload.count != len { len += 1 }
                body += Array(String(len).utf8) + payload
            }
            bytes += header(
                name: Array("PaxHeader/x".utf8), type: UInt8(ascii: "x"), mode: 0o644, uid: 0, gid: 0, uname: [], gname: [], linkname: [],
                size: UInt64(body.count))
            bytes += body
            pad()
        }
        bytes += header(
            name: name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname, linkname: e.linkname,
            size: e.declaredSize ?? UInt64(e.data.count))
        bytes += e.data
        pad()
    }

    mutating func pad() {
        let r = bytes.count % 512
        if r != 0 { bytes += [UInt8](repeating: 0, count: 512 - r) }
    }

    /// The end-of-archive marker: two zero blocks.
    mutating func end() { bytes += [UInt8](repeating: 0, count: 1024) }

    func header(name: [UInt8], type: UInt8, mode: UInt32, uid: UInt64, gid: UInt64, uname: [UInt8], gname: [UInt8], linkname: [UInt8], size: UInt64) -> [UInt8]
    {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ v: [UInt8], _ at: Int, _ len: Int) { for (i, b) in v.prefix(len).enumerated() { h[at + i] = b } }
        func octal(_ v: UInt64, _ at: Int, _ len: Int) {
            let s = String(v, radix: 8)
            put(Array((String(repeating: "0", count: max(0, len - 1 - s.count)) + s).utf8) + [0], at, len)
        }
        put(name, 0, 100)
        octal(UInt64(mode), 100, 8)
        octal(uid, 108, 8)
        octal(gid, 116, 8)
        octal(size, 124, 12)
        octal(1000, 136, 12)
        h[156] = type
        put(linkname, 157, 100)
        put(Array("ustar".utf8) + [0], 257, 6)
        put(Array("00".utf8), 263, 2)
        put(uname, 265, 32)
        put(gname, 297, 32)
        put(Array(repeating: 0x20, count: 8), 148, 8)
        let sum = h.reduce(0) { $0 + UInt64($1) }
        octal(sum, 148, 7)
        h[155] = 0x20
        return h
    }

    static func build(_ entries: [Entry], end: Bool = true) -> [UInt8] {
        var t = TarBuilder()
        for e in entries { t.add(e) }
        if end { t.end() }
        return t.bytes
    }
}
