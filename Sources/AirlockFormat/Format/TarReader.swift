/// One entry of a tar stream as the strict reader accepts it.
package struct TarEntry {
    package enum Kind { case file, directory }
    package var path: [UInt8]
    package var kind: Kind
    package var size: UInt64
    /// Permission bits (setuid, setgid and sticky are refused before an entry is returned).
    package var mode: UInt32
}

/// A strict reader of the POSIX tar subset bundles use (bundle-format.md): ustar headers with
/// verified checksums; regular files and directories only; pax extended headers holding only
/// path, size, mtime/atime/ctime, uid, gid, uname, gname; owners 0/root; after the
/// end-of-archive marker only zeros, at most 1 MiB of them.
///
/// It parses the headers itself rather than trusting libarchive's interpretation, so that
/// hardlinks, symlinks, devices, sparse maps, xattrs, ACLs and unknown pax records can never
/// slip through as something else.
package final class TarReader {
    /// The decompressed bytes; chunks `readDataChunks` gives may be retained from it.
    package let stream: DecompressedStream
    private var current: (DecompressedStream.Chunk, UnsafeRawBufferPointer)?
    private var position = 0
    private var ended = false
    /// Decompressed bytes consumed so far.
    private(set) var offset: UInt64 = 0
    /// Data bytes of the current entry not yet read, and the padding after them.
    private var pendingData: UInt64 = 0
    private var pendingPadding = 0
    private var headerBuffer = [UInt8](repeating: 0, count: 512)
    private(set) var entriesRead = 0

    package static let maxPaxHeader = 64 << 10
    package static let allowedPaxKeys: Set<String> = ["path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"]

    package init(stream: DecompressedStream) { self.stream = stream }

    private var closed = false

    deinit { close() }

    /// Stops decompression; the descriptor may be closed after this returns.
    package func close() {
        if closed { return }
        closed = true
        if let (c, _) = current { stream.recycle(c) }
        current = nil
        stream.cancel()
    }

    package var compression: Compression? { stream.compression }

    package static func malformed(_ what: String) -> AirlockError {
        .verification(.tarInvalid, "the bundle's tar stream is invalid: \(what)")
    }

    // MARK: Byte access

    /// Makes bytes available; false at the end of the stream.
    private func fill() throws -> Bool {
        if let (c, buf) = current {
            if position < buf.count { return true }
            stream.recycle(c)
            current = nil
        }
        if ended { return false }
        guard let next = try stream.next() else {
            ended = true
            return false
        }
        current = next
        position = 0
        return true
    }

    /// Passes up to `count` bytes to `body` straight from the stream's buffers.
    private func consume(_ count: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try consumeChunks(count) { part, _, _ in try body(part) }
    }

    /// Passes `count` bytes to `body` straight from the stream's buffers, each part with the
    /// chunk it lies in and whether it ends that chunk (nothing more will be read from it).
    private func consumeChunks(_ count: UInt64, _ body: (UnsafeRawBufferPointer, DecompressedStream.Chunk, Bool) throws -> Void) throws {
        var left = count
        while left > 0 {
            guard try fill(), let (chunk, buf) = current else {
                throw AirlockError.verification(
                    .bundleTruncated, "the bundle ends in the middle of an entry; it is truncated: copy it again from the source medium")
            }
            let n = min(Int(clamping: left), buf.count - position)
            try body(UnsafeRawBufferPointer(rebasing: buf[position..<position + n]), chunk, position + n == buf.count)
            position += n
            left -= UInt64(n)
            offset += UInt64(n)
        }
    }

    /// Reads one 512-byte block; false at a clean end of stream.
    private func readBlock() throws -> Bool {
        guard try fill() else { return false }
        var got = 0
        try consume(512) { part in
            headerBuffer.withUnsafeMutableBytes { h in
                (h.baseAddress! + got).copyMemory(from: part.baseAddress!, byteCount: part.count)
            }
            got += part.count
        }
        return true
    }

    // MARK: Entries

    /// The next entry, or nil at the end-of-archive marker. Any data of the previous entry that
    /// was not read is skipped.
    package func nextEntry() throws -> TarEntry? {
        try skipData()
        var pax: [String: [UInt8]]?
        while true {
            guard try readBlock() else {
                throw AirlockError.verification(.bundleTruncated, "the bundle ends without a tar end-of-archive marker; it is truncated: copy it again")
            }
            if headerBuffer.allSatisfy({ $0 == 0 }) {
                if pax != nil { throw Self.malformed("a pax header is followed by the end of the archive") }
                // The end-of-archive marker is two zero blocks.
                guard try readBlock(), headerBuffer.allSatisfy({ $0 == 0 }) else {
                    throw Self.malformed("a lone zero block where the end-of-archive marker (two zero blocks) should be")
                }
                return nil
            }
            let h = try parseHeader()
            switch h.type {
            case UInt8(ascii: "x"):
                if pax != nil { throw Self.malformed("two pax headers in a row") }
                guard h.size <= UInt64(Self.maxPaxHeader) else { throw Self.malformed("a pax header larger than 64 KiB") }
                var data: [UInt8] = []
                data.reserveCapacity(Int(h.size))
                try consume(h.size) { data.append(contentsOf: $0) }
                try skipPadding(after: h.size)
                pax = try parsePax(data)
                continue
            case UInt8(ascii: "0"), 0, UInt8(ascii: "5"):
                var e = TarEntry(path: h.path, kind: h.type == UInt8(ascii: "5") ? .directory : .file, size: h.size, mode: h.mode)
                if let pax {
                    if let p = pax["path"] { e.path = p }
                    if let s = pax["size"] {
                        guard let v = Self.decimal(s) else { throw Self.malformed("pax size is not a decimal number") }
                        e.size = v
                    }
                    for key in ["uid", "gid"] {
                        if let v = pax[key], Self.decimal(v) != 0 {
                            throw AirlockError.verification(.entryOwner, "entry \(Self.show(e.path)) names an owner (pax \(key)); bundles carry no owners")
                        }
                    }
                    for key in ["uname", "gname"] {
                        if let v = pax[key], !v.isEmpty, v != Array("root".utf8) {
                            throw AirlockError.verification(.entryOwner, "entry \(Self.show(e.path)) names an owner (pax \(key)); bundles carry no owners")
                        }
                    }
                }
                if e.kind == .directory && e.size != 0 { throw Self.malformed("directory \(Self.show(e.path)) has a size") }
                pendingData = e.size
                pendingPadding = Int((512 - e.size % 512) % 512)
                entriesRead += 1
                return e
            default:
                throw AirlockError.verification(.entryType, "entry \(Self.show(h.path)) is \(Self.typeName(h.type)); bundles hold only regular files")
            }
        }
    }

    /// Streams the current entry's data to `body`, exactly its declared size.
    package func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let n = pendingData
        pendingData = 0
        try consume(n, body)
        try skipPadding()
    }

    /// As `readData`, each part with the stream's chunk it lies in, which `body` may keep
    /// readable after the reader moved on (`stream.retain`), and whether the part ends that chunk.
    package func readDataChunks(_ body: (UnsafeRawBufferPointer, DecompressedStream.Chunk, Bool) throws -> Void) throws {
        let n = pendingData
        pendingData = 0
        try consumeChunks(n, body)
        try skipPadding()
    }

    private func skipData() throws {
        if pendingData > 0 {
            let n = pendingData
            pendingData = 0
            try consume(n) { _ in }
        }
        try skipPadding()
    }

    private func skipPadding(after size: UInt64? = nil) throws {
        let pad = size.map { Int((512 - $0 % 512) % 512) } ?? pendingPadding
        pendingPadding = 0
        if pad > 0 { try consume(UInt64(pad)) { _ in } }
    }

    /// After `nextEntry` returned nil: only zeros may follow, at most 1 MiB, then the end of the
    /// stream (and nothing after the compressed stream, which `DecompressedStream` checks).
    package func finish() throws {
        try drainPadding()
    }

    private func drainPadding() throws {
        var zeros: UInt64 = 0
        let limit = UInt64(BundleLayout.maxTrailingZeros + 512)
        let end = offset
        while try afterEnd(fill(), archiveEnd: end) {
            guard let (_, buf) = current else { break }
            let part = UnsafeRawBufferPointer(rebasing: buf[position...])
            if part.contains(where: { $0 != 0 }) {
                throw AirlockError.verification(.trailingData, "data follows the end of the tar archive; the bundle was altered or badly copied")
            }
            zeros += UInt64(part.count)
            position = buf.count
            offset += UInt64(part.count)
            if zeros > limit {
                throw AirlockError.verification(.trailingData, "more than 1 MiB of padding follows the end of the tar archive")
            }
        }
    }

    /// After the end of the archive (at `archiveEnd` among the decoded bytes), a compressed
    /// frame cut short that began after it is something that follows the archive, not a
    /// truncated bundle; the frame that holds the archive's end cut short is a truncated bundle.
    private func afterEnd<T>(_ body: @autoclosure () throws -> T, archiveEnd: UInt64) throws -> T {
        do { return try body() } catch let e as AirlockError where e.code == ErrorCode.bundleTruncated.rawValue {
            if let start = stream.cutFrameStart, start < archiveEnd { throw e }
            throw AirlockError.verification(
                .trailingData, "data follows the end of the tar archive (a compressed frame cut short); the bundle was altered or badly copied")
        }
    }

    // MARK: Header parsing

    private struct RawHeader {
        var path: [UInt8]
        var type: UInt8
        var size: UInt64
        var mode: UInt32
    }

    private func field(_ r: Range<Int>) -> ArraySlice<UInt8> {
        let s = headerBuffer[r]
        if let z = s.firstIndex(of: 0) { return headerBuffer[r.lowerBound..<z] }
        return s
    }

    private func octal(_ r: Range<Int>, _ name: String) throws -> UInt64 {
        let raw = headerBuffer[r]
        if let first = raw.first, first & 0x80 != 0 { throw Self.malformed("base-256 \(name) field (only octal is allowed)") }
        var v: UInt64 = 0
        var seenDigit = false
        var done = false
        for c in raw {
            if done {
                guard c == 0 || c == 0x20 else { throw Self.malformed("bad \(name) field") }
                continue
            }
            switch c {
            case 0x30...0x37:
                guard v <= (UInt64.max >> 3) else { throw Self.malformed("\(name) field overflows") }
                v = v << 3 | UInt64(c - 0x30)
                seenDigit = true
            case 0x20 where !seenDigit: continue
            case 0, 0x20: done = true
            default: throw Self.malformed("bad \(name) field")
            }
        }
        return v
    }

    private func parseHeader() throws -> RawHeader {
        let isFirst = entriesRead == 0 && offset == 512
        guard headerBuffer[257..<263].elementsEqual([0x75, 0x73, 0x74, 0x61, 0x72, 0]), headerBuffer[263] == 0x30,
            headerBuffer[264] == 0x30
        else {
            if isFirst { throw Self.notABundle(headerBuffer) }
            throw Self.malformed("a header is not POSIX ustar (magic \"ustar\\0\" \"00\")")
        }
        let stored = try octal(148..<156, "checksum")
        var sum: UInt64 = 0
        for (k, b) in headerBuffer.enumerated() { sum += (148..<156).contains(k) ? 0x20 : UInt64(b) }
        guard sum == stored else { throw Self.malformed("a header checksum does not match") }

        var path = Array(field(0..<100))
        let prefix = field(345..<500)
        if !prefix.isEmpty { path = Array(prefix) + [UInt8(ascii: "/")] + path }
        let type = headerBuffer[156]
        let mode = try octal(100..<108, "mode")
        let uid = try octal(108..<116, "uid")
        let gid = try octal(116..<124, "gid")
        let size = try octal(124..<136, "size")
        _ = try octal(136..<148, "mtime")
        if type == UInt8(ascii: "x") { return RawHeader(path: path, type: type, size: size, mode: UInt32(mode & 0o7777)) }
        if !field(157..<257).isEmpty && type != UInt8(ascii: "1") && type != UInt8(ascii: "2") {
            throw Self.malformed("entry \(Self.show(path)) carries a link name")
        }
        if uid != 0 || gid != 0 {
            throw AirlockError.verification(.entryOwner, "entry \(Self.show(path)) is owned by uid \(uid) gid \(gid); bundles carry no owners")
        }
        for r in [265..<297, 297..<329] {
            let name = field(r)
            if !name.isEmpty && !name.elementsEqual("root".utf8) {
                throw AirlockError.verification(.entryOwner, "entry \(Self.show(path)) names owner \"\(Self.show(Array(name)))\"; bundles carry no owners")
            }
        }
        if mode & 0o7000 != 0 {
            throw AirlockError.verification(
                .entryMode, "entry \(Self.show(path)) has mode \(String(mode, radix: 8)) with setuid, setgid or sticky bits; bundles never carry them")
        }
        if mode > 0o7777 { throw Self.malformed("entry \(Self.show(path)) has file-type bits in its mode") }
        return RawHeader(path: path, type: type, size: size, mode: UInt32(mode))
    }

    private func parsePax(_ data: [UInt8]) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        var i = 0
        while i < data.count {
            var len = 0
            var j = i
            while j < data.count, (0x30...0x39).contains(data[j]) {
                len = len * 10 + Int(data[j] - 0x30)
                guard len <= data.count else { throw Self.malformed("a pax record length is too large") }
                j += 1
            }
            guard j > i, j < data.count, data[j] == 0x20, len > j - i + 1, i + len <= data.count, data[i + len - 1] == 0x0A
            else { throw Self.malformed("a malformed pax record") }
            let record = data[(j + 1)..<(i + len - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")) else { throw Self.malformed("a pax record without '='") }
            let key = String(decoding: record[record.startIndex..<eq], as: UTF8.self)
            let value = Array(record[(eq + 1)...])
            guard Self.allowedPaxKeys.contains(key) else {
                let what: String
                if key.hasPrefix("GNU.sparse") {
                    what = "a sparse map"
                } else if key.hasPrefix("SCHILY.xattr") || key.hasPrefix("LIBARCHIVE.xattr") {
                    what = "an extended attribute"
                } else if key.hasPrefix("SCHILY.acl") {
                    what = "an ACL"
                } else if key == "linkpath" {
                    what = "a link target"
                } else {
                    what = "a record that bundles do not allow"
                }
                throw AirlockError.verification(
                    .paxRecord, "the bundle's tar stream carries pax record \"\(key)\" (\(what)); bundles allow only path, size, times and root owners")
            }
            if out.updateValue(value, forKey: key) != nil { throw Self.malformed("pax record \"\(key)\" appears twice") }
            i += len
        }
        return out
    }

    package static func decimal(_ v: [UInt8]) -> UInt64? {
        guard !v.isEmpty, v.count <= 19, v.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return v.reduce(0) { $0 * 10 + UInt64($1 - 0x30) }
    }

    /// A path for a message: valid UTF-8 as is, anything else with its bytes escaped.
    package static func show(_ bytes: [UInt8]) -> String {
        if let s = String(validating: bytes, as: UTF8.self), !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "\"\(s)\""
        }
        var out = "\""
        for b in bytes {
            if b >= 0x20 && b < 0x7F && b != 0x22 && b != 0x5C {
                out.append(Character(Unicode.Scalar(b)))
            } else {
                out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
            }
        }
        return out + "\""
    }

    package static func typeName(_ t: UInt8) -> String {
        switch t {
        case UInt8(ascii: "1"): return "a hardlink"
        case UInt8(ascii: "2"): return "a symlink"
        case UInt8(ascii: "3"): return "a character device"
        case UInt8(ascii: "4"): return "a block device"
        case UInt8(ascii: "6"): return "a FIFO"
        case UInt8(ascii: "7"): return "a contiguous file"
        case UInt8(ascii: "g"): return "a global pax header"
        case UInt8(ascii: "L"), UInt8(ascii: "K"): return "a GNU long-name header"
        case UInt8(ascii: "S"): return "a GNU sparse file"
        default: return "of tar type '\(t >= 0x20 && t < 0x7F ? String(Character(Unicode.Scalar(t))) : "\\x" + String(t, radix: 16))'"
        }
    }

    package static func notABundle(_ first: [UInt8]) -> AirlockError {
        var guess = ""
        if first.starts(with: [0x50, 0x4B, 0x03, 0x04]) || first.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
            guess = " (it looks like a ZIP file)"
        } else if first.starts(with: Array("Rar!".utf8)) {
            guess = " (it looks like a RAR file)"
        } else if first.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
            guess = " (it looks like an xz file)"
        } else if first.starts(with: Array("BZh".utf8)) {
            guess = " (it looks like a bzip2 file)"
        }
        return .verification(.notABundle, "this is not an Airlock bundle: not a POSIX tar archive compressed with zstd, gzip or nothing\(guess)")
    }
}
