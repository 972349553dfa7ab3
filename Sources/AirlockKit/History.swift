#if canImport(Glibc)
import Glibc
#endif

/// One line of the site's history.
public struct HistoryEntry: Sendable {
    public var seq: UInt64
    public var at: String
    public var action: String
    public var name: String?
    /// Every field of the line, as written.
    public var fields: [String: JSONValue]
    /// The exact bytes of the line, without its newline.
    public var line: [UInt8]
}

/// `.history.jsonl`: one canonical JSON object per line, append-only, hash-chained: each line's
/// `prev` is `sha256:` + the SHA-256 of the previous line's bytes (without its newline), the
/// first line's is 64 zeros, so a removed or edited line breaks the chain.
///
/// Lines are appended only by the lock holder. A line cut short by a crash (no newline) is
/// dropped by the next append and reported by `verify` until then.
public enum History {
    public static let genesis = "sha256:" + String(repeating: "0", count: 64)

    /// Appends one line; the caller holds the site lock.
    static func append(_ site: Site, action: String, name: String? = nil, _ fields: [String: JSONValue] = [:]) throws {
        let path = site.path(SiteLayout.history)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw AirlockError.io("history-failed", "cannot open the site history \(path)", errno: errno) }
        defer { close(fd) }
        let (last, validEnd) = try lastLine(fd, path: path)
        if validEnd < lseek(fd, 0, SEEK_END) { ftruncate(fd, validEnd) }
        var seq: UInt64 = 1
        var prev = genesis
        if let last {
            prev = SHA256Digest.of(last).prefixed
            if let v = try? JSONParser.parse(last), let s = v.objectValue?["seq"]?.unsignedInteger(max: .max) { seq = s + 1 }
        }
        var o = fields
        o["seq"] = .integer(seq)
        o["at"] = .string(Timestamp.format(Timestamp.now()))
        o["action"] = .string(action)
        if let name { o["name"] = .string(name) }
        o["prev"] = .string(prev)
        let line = CanonicalJSON.encode(.object(o)) + [0x0A]
        lseek(fd, 0, SEEK_END)
        try line.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
        guard Sys.fsync(fd) == 0 else { throw AirlockError.io("history-failed", "cannot flush the site history \(path)", errno: errno) }
    }

    /// The last complete line and the offset where complete lines end.
    private static func lastLine(_ fd: Int32, path: String) throws -> ([UInt8]?, off_t) {
        let size = lseek(fd, 0, SEEK_END)
        if size <= 0 { return (nil, 0) }
        var end = size
        var window = 64 * 1024
        while true {
            let start = max(0, end - off_t(window))
            var buf = [UInt8](repeating: 0, count: Int(size - start))
            let n = pread(fd, &buf, buf.count, start)
            guard n == buf.count else { throw AirlockError.io("history-failed", "cannot read the site history \(path)", errno: errno) }
            // Complete lines end at the last newline.
            guard let lastNL = buf.lastIndex(of: 0x0A) else {
                if start == 0 { return (nil, 0) }
                window *= 4
                continue
            }
            end = start + off_t(lastNL) + 1
            let body = buf[..<lastNL]
            if let prevNL = body.lastIndex(of: 0x0A) { return (Array(body[(prevNL + 1)...]), end) }
            if start == 0 { return (Array(body), end) }
            window *= 4
        }
    }

    /// Every complete line, parsed. A line that is not JSON is returned with empty fields.
    public static func read(_ site: Site) throws -> [HistoryEntry] {
        let path = site.path(SiteLayout.history)
        guard FileIO.exists(path) else { return [] }
        let bytes = try FileIO.read(path, limit: 1 << 30, what: "site history")
        var out: [HistoryEntry] = []
        for raw in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            let line = Array(raw)
            let o = (try? JSONParser.parse(line))?.objectValue ?? [:]
            out.append(HistoryEntry(
                seq: o["seq"]?.unsignedInteger(max: .max) ?? 0, at: o["at"]?.stringValue ?? "", action: o["action"]?.stringValue ?? "",
                name: o["name"]?.stringValue, fields: o, line: line))
        }
        return out
    }

    /// Checks the chain; returns nil when it holds, else the first broken line and why.
    public static func verify(_ site: Site) throws -> (line: Int, reason: String)? {
        let path = site.path(SiteLayout.history)
        guard FileIO.exists(path) else { return nil }
        let bytes = try FileIO.read(path, limit: 1 << 30, what: "site history")
        if let last = bytes.last, last != 0x0A { return (bytes.split(separator: 0x0A).count, "the last line is incomplete (a crash while writing it)") }
        var prev = genesis
        var seq: UInt64 = 0
        for (i, raw) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().enumerated() {
            let line = Array(raw)
            guard let o = (try? JSONParser.parse(line))?.objectValue else { return (i + 1, "not a JSON object") }
            guard o["prev"]?.stringValue == prev else { return (i + 1, "its prev does not match the line before: a line was removed, inserted or edited") }
            guard let s = o["seq"]?.unsignedInteger(max: .max), s == seq + 1 else { return (i + 1, "its seq does not follow the line before") }
            seq = s
            prev = SHA256Digest.of(line).prefixed
        }
        return nil
    }
}
