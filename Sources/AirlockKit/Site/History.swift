import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// One line of the site's history.
public struct HistoryEntry: Sendable {
    /// The line's sequence number, from 1 (0 when the line does not carry one).
    public var seq: UInt64
    /// When the line was written (empty when it does not say).
    public var at: String
    /// What happened: `install`, `activate`, `rollback`, `refuse`, `gc`, ... (docs/site.md).
    public var action: String
    /// The release name the line is about (nil for site-wide lines).
    public var name: String?
    /// Every field of the line, as written.
    public var fields: [String: JSONValue]
    /// The exact bytes of the line, without its newline.
    public var line: [UInt8]
}

/// What `History.check` finds: the chain's state and its head.
public struct HistoryCheck: Sendable, JSONRepresentable {
    /// The site root whose history it is.
    public var root: String
    /// The lines of the history: every newline-terminated line, plus a final line that lacks
    /// only its newline (see `History`). A torn final line is not counted.
    public var lines: Int
    /// `sha256:` + the SHA-256 of the last line (without its newline), the genesis value for an
    /// empty history: the `prev` the next line will carry. Recorded elsewhere with `lines`, it
    /// shows later whether the tail of the file was cut.
    public var head: String
    /// Nil when the chain holds, else the first line that breaks it and why.
    public var problem: (line: Int, reason: String)?
    /// The last line is complete and chains, but its newline is missing (the file was cut by
    /// exactly that byte, or a kill came between the line and its newline): the line counts, and
    /// the next write adds the newline.
    public var unterminated: Bool

    /// The `--json` form of `airlock history --verify` (docs/cli.md).
    public var json: JSONValue {
        .object([
            "root": .string(root), "verified": .bool(problem == nil), "lines": .integer(lines), "head": .string(head),
            "unterminated": .bool(unterminated),
            "problem": problem.map { .object(["line": .integer($0.line), "reason": .string($0.reason)]) } ?? .null,
        ])
    }
}

/// Lines of the history, as `airlock history --json` prints them (docs/cli.md).
public struct HistoryListing: Sendable, JSONRepresentable {
    /// The lines listed, in the order of the file.
    public var entries: [HistoryEntry]

    /// A listing of `entries`.
    public init(_ entries: [HistoryEntry]) { self.entries = entries }

    /// An array of the lines' objects, every field as written.
    public var json: JSONValue { .array(entries.map { .object($0.fields) }) }
}

/// `.history.jsonl`: one canonical JSON object per line, append-only, hash-chained: each line's
/// `prev` is `sha256:` + the SHA-256 of the previous line's bytes (without its newline), the
/// first line's is 64 zeros, so a removed or edited line breaks the chain.
///
/// Lines are appended only by the lock holder. When the file does not end with a newline, the
/// bytes after the last newline (the tail) are judged by one rule, the same in `append`, `read`
/// and `check`:
///
/// - the tail is a complete line when it parses as a JSON object whose `prev` is the hash of the
///   line before it (the genesis value when it is the first line) and whose `seq` follows that
///   line's. Only its newline is missing (for example `truncate -s -1`): it is kept, the next
///   append writes the newline and chains to it, and `verify` passes (it counts the line).
/// - anything else is a torn write (a crash while writing the line): it is not a line of the
///   history, `verify` reports it, and the next append cuts it off and records how many bytes it
///   discarded and their hash (`discarded_tail`) in the line it writes.
///
/// A tail that is valid JSON but does not chain is cut too: every line Airlock finishes is
/// written under the lock chained to the last line, so such a tail is not a write Airlock
/// finished (it was written by something else, or a line before it changed); kept, it would
/// break the chain for good at that line, while its hash in the next line still shows what it was.
///
/// After each line is written its seq and hash also go to syslog (`anchor`), so a history whose
/// tail is later cut (whole lines removed from the end, which the chain alone can not show) can
/// be compared with a record kept elsewhere.
public enum History {
    /// The `prev` of the first line: `sha256:` and 64 zeros.
    public static let genesis = "sha256:" + String(repeating: "0", count: 64)

    /// Appends one line; the caller holds the site lock.
    static func append(_ site: Site, action: String, name: String? = nil, _ fields: [String: JSONValue] = [:]) throws {
        let path = site.path(SiteLayout.history)
        let fd = Sys.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw AirlockError.io(.historyFailed, "cannot open the site history \(path)", errno: errno) }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw AirlockError.io(.historyFailed, "cannot read the site history \(path)", errno: errno) }
        // The bytes after the last newline, and the complete line before them.
        let (tailStart, tail) = try line(fd, endingAt: size, path: path)
        let previous = tailStart > 0 ? try line(fd, endingAt: tailStart - 1, path: path).bytes : nil
        var last = previous
        var writeAt = tailStart
        var out: [UInt8] = []
        var o = fields
        if !tail.isEmpty {
            if completes(tail, after: previous) {
                // A complete line that lost only its newline: keep it.
                last = tail
                writeAt = size
                out.append(0x0A)
            } else {
                guard ftruncate(fd, tailStart) == 0 else {
                    throw AirlockError.io(.historyFailed, "cannot cut the torn last line of the site history \(path)", errno: errno)
                }
                o["discarded_tail"] = .object(["bytes": .integer(tail.count), "sha256": .string(SHA256Digest.of(tail).prefixed)])
            }
        }
        var seq: UInt64 = 1
        var prev = genesis
        if let last {
            prev = SHA256Digest.of(last).prefixed
            if let s = seqOf(last) { seq = s &+ 1 }
        }
        o["seq"] = .integer(seq)
        o["at"] = .string(Timestamp.format(Timestamp.now()))
        o["action"] = .string(action)
        if let name { o["name"] = .string(name) }
        o["prev"] = .string(prev)
        let line = CanonicalJSON.encode(.object(o))
        out += line
        out.append(0x0A)
        guard lseek(fd, writeAt, SEEK_SET) == writeAt else { throw AirlockError.io(.historyFailed, "cannot write the site history \(path)", errno: errno) }
        try out.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
        guard Sys.fsync(fd) == 0 else { throw AirlockError.io(.historyFailed, "cannot flush the site history \(path)", errno: errno) }
        anchor(seq: seq, hash: SHA256Digest.of(line).prefixed, action: action, root: site.root)
    }

    /// The bytes from the newline before `end` (or the start of the file) up to `end`, and the
    /// offset where they start.
    private static func line(_ fd: Int32, endingAt end: off_t, path: String) throws -> (start: off_t, bytes: [UInt8]) {
        if end <= 0 { return (0, []) }
        var window: off_t = 64 * 1024
        while true {
            let start = max(0, end - window)
            var buf = [UInt8](repeating: 0, count: Int(end - start))
            let n = pread(fd, &buf, buf.count, start)
            guard n == buf.count else { throw AirlockError.io(.historyFailed, "cannot read the site history \(path)", errno: errno) }
            if let nl = buf.lastIndex(of: 0x0A) { return (start + off_t(nl) + 1, Array(buf[(nl + 1)...])) }
            if start == 0 { return (0, buf) }
            window *= 4
        }
    }

    private static func seqOf(_ line: [UInt8]) -> UInt64? {
        (try? JSONParser.parse(line))?.objectValue?["seq"]?.unsignedInteger(max: .max)
    }

    /// Whether `tail`, found after the last newline, is a complete line: a JSON object chained to
    /// `previous` (nil: it is the first line) with the seq `append` would have given it.
    private static func completes(_ tail: [UInt8], after previous: [UInt8]?) -> Bool {
        guard let o = (try? JSONParser.parse(tail))?.objectValue else { return false }
        guard o["prev"]?.stringValue == (previous.map { SHA256Digest.of($0).prefixed } ?? genesis) else { return false }
        let before = previous.flatMap(seqOf) ?? 0
        return o["seq"]?.unsignedInteger(max: .max) == before &+ 1
    }

    /// The file split into its lines, by the rule above: the newline-terminated lines, the tail
    /// when it is a complete line, and a torn tail (nil when there is none).
    private static func lines(_ site: Site) throws -> (lines: [[UInt8]], unterminated: Bool, torn: [UInt8]?) {
        let path = site.path(SiteLayout.history)
        guard FileIO.exists(path) else { return ([], false, nil) }
        let bytes = try FileIO.read(path, limit: 1 << 30, what: "site history")
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
        let tail = lines.removeLast()
        if tail.isEmpty { return (lines, false, nil) }
        if completes(tail, after: lines.last) { return (lines + [tail], true, nil) }
        return (lines, false, tail)
    }

    /// Every line (a final line missing only its newline included, a torn one not), parsed. A
    /// line that is not JSON is returned with empty fields. Throws `file-not-found`,
    /// `permission-denied`, `is-a-directory`, `open-failed`, `read-failed` and `file-too-large` when
    /// the history cannot be read (a missing history is empty).
    public static func read(_ site: Site) throws -> [HistoryEntry] {
        try lines(site).lines.map { line in
            let o = (try? JSONParser.parse(line))?.objectValue ?? [:]
            return HistoryEntry(
                seq: o["seq"]?.unsignedInteger(max: .max) ?? 0, at: o["at"]?.stringValue ?? "", action: o["action"]?.stringValue ?? "",
                name: o["name"]?.stringValue, fields: o, line: line)
        }
    }

    /// Checks the chain and gives its head. Throws `file-not-found`, `permission-denied`,
    /// `is-a-directory`, `open-failed`, `read-failed` and `file-too-large` when the history cannot be
    /// read (a missing history is empty); a broken chain is `problem`, not an error.
    public static func check(_ site: Site) throws -> HistoryCheck {
        let (all, unterminated, torn) = try lines(site)
        var problem: (line: Int, reason: String)?
        var prev = genesis
        var seq: UInt64 = 0
        for (i, line) in all.enumerated() {
            guard let o = (try? JSONParser.parse(line))?.objectValue else {
                problem = (i + 1, "not a JSON object")
                break
            }
            guard o["prev"]?.stringValue == prev else {
                problem = (i + 1, "its prev does not match the line before: a line was removed, inserted or edited")
                break
            }
            guard let s = o["seq"]?.unsignedInteger(max: .max), seq < .max, s == seq + 1 else {
                problem = (i + 1, "its seq does not follow the line before")
                break
            }
            seq = s
            prev = SHA256Digest.of(line).prefixed
        }
        if problem == nil, let torn {
            let json = (try? JSONParser.parse(torn))?.objectValue != nil
            problem = (
                all.count + 1,
                json
                    ? "the last line has no newline and does not follow the line before: not a line Airlock finished (the next write discards it)"
                    : "the last line is incomplete (a crash while writing it; the next write discards it)"
            )
        }
        return HistoryCheck(
            root: site.root, lines: all.count, head: all.last.map { SHA256Digest.of($0).prefixed } ?? genesis, problem: problem, unterminated: unterminated)
    }

    /// The number of lines and the hash of the last one (`check`). Throws what `check` throws:
    /// `file-not-found`, `permission-denied`, `is-a-directory`, `open-failed`, `read-failed` and
    /// `file-too-large` when the history cannot be read (a missing history is empty).
    public static func head(_ site: Site) throws -> (lines: Int, head: String) {
        let c = try check(site)
        return (c.lines, c.head)
    }

    /// Checks the chain; returns nil when it holds, else the first broken line and why. Throws what
    /// `check` throws: `file-not-found`, `permission-denied`, `is-a-directory`, `open-failed`,
    /// `read-failed` and `file-too-large` when the history cannot be read (a missing history is empty);
    /// a broken chain is returned, not thrown.
    public static func verify(_ site: Site) throws -> (line: Int, reason: String)? {
        try check(site).problem
    }

    // MARK: the anchor

    /// The syslog ident, opened once (facility LOG_AUTHPRIV, with the pid). The ident string is
    /// never freed: syslog keeps the pointer.
    private static let syslogOpened: Bool = {
        openlog(strdup("airlock"), LOG_PID, LOG_AUTHPRIV)
        return true
    }()

    /// Sends the seq and hash of the line just written, with the action and the site root, to
    /// syslog at LOG_AUTHPRIV|LOG_NOTICE:
    /// `history seq=12 line=sha256:<hex> action=install root=/var/lib/airlock`. Best effort:
    /// without a syslog daemon (no /dev/log) nothing is sent and nothing fails.
    static func anchor(seq: UInt64, hash: String, action: String, root: String) {
        _ = syslogOpened
        // The root with its control characters escaped: it can not forge a syslog line.
        var safeRoot = ""
        for scalar in root.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                safeRoot += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                safeRoot.unicodeScalars.append(scalar)
            }
        }
        let message = "history seq=\(seq) line=\(hash) action=\(action) root=\(safeRoot)"
        message.withCString { m in
            withVaList([m]) { vsyslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", $0) }
        }
    }
}
