import Foundation
import Testing

/// Issue 9, item 8: the tail of `.history.jsonl`. A complete last line that lost only its
/// newline is kept (the next write adds the newline and chains to it); a torn tail, or one that
/// does not chain, is cut by the next write. Every appended line's seq and hash also go to
/// syslog, and `history --verify` / `evidence` print the head to be recorded elsewhere.
@Suite(.serialized) struct HistoryTailTests {
    // MARK: helpers

    private static func historyPath(_ root: String) -> String { root + "/.history.jsonl" }

    private static func bytes(_ root: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: historyPath(root))))
    }

    /// The newline-terminated lines (without their newline).
    private static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        var parts = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
        parts.removeLast()
        return parts
    }

    private static func append(_ root: String, _ text: String) throws {
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: historyPath(root)))
        try h.seekToEnd()
        try h.write(contentsOf: Data(text.utf8))
        try h.close()
    }

    /// `sha256:` + the SHA-256 of the bytes, by `sha256sum` (not by Airlock's own code).
    private static func sha256(_ bytes: [UInt8], in w: Workspace) throws -> String {
        let file = w.file("hash-input")
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let r = try CLI.sh("sha256sum '\(file)' | cut -d' ' -f1")
        #expect(r.status == 0)
        return "sha256:" + r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func object(_ s: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
    }

    private static func object(_ line: [UInt8]) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(line)) as! [String: Any]
    }

    /// `history --verify --json`, expected to pass: (lines, head).
    private static func verified(_ root: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> (lines: Int, head: String) {
        let r = try CLI.run(["history", "--verify", "--json", "--root", root])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)", sourceLocation: sourceLocation)
        let o = try object(r.stdout)
        #expect(o["verified"] as? Bool == true, sourceLocation: sourceLocation)
        return (o["lines"] as? Int ?? -1, o["head"] as? String ?? "")
    }

    /// The new last line follows `previous` (its `prev` is previous's hash, `sha256sum`med) with
    /// the next seq, and `history --verify` passes with it as head.
    private static func expectChained(
        _ root: String, after previous: [UInt8]?, count: Int, in w: Workspace, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let all = try bytes(root)
        #expect(all.last == 0x0A, sourceLocation: sourceLocation)
        let ls = lines(all)
        #expect(ls.count == count, sourceLocation: sourceLocation)
        let newest = try object(ls.last!)
        let expectedPrev = try previous.map { try sha256($0, in: w) } ?? "sha256:" + String(repeating: "0", count: 64)
        #expect(newest["prev"] as? String == expectedPrev, sourceLocation: sourceLocation)
        #expect(newest["seq"] as? Int == count, sourceLocation: sourceLocation)
        let (n, head) = try verified(root, sourceLocation: sourceLocation)
        #expect(n == count, sourceLocation: sourceLocation)
        #expect(head == (try sha256(ls.last!, in: w)), sourceLocation: sourceLocation)
        let text = try CLI.run(["history", "--verify", "--root", root])
        #expect(text.stdout.contains("history chain OK (\(count) lines, head \(head))"), "\(text.stdout)", sourceLocation: sourceLocation)
    }

    // MARK: a complete line without its newline is kept

    /// The attack as written: `truncate -s -1` then a write command. Before the fix the complete
    /// last line was cut as torn and `history --verify` still passed.
    @Test func oneByteCutKeepsTheLastLine() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let before = try Self.bytes(s.root)
        let beforeLines = Self.lines(before)
        #expect(beforeLines.count == 4)
        #expect(try CLI.sh("truncate -s -1 '\(Self.historyPath(s.root))'").status == 0)

        // Until the next write: the chain holds, every line is counted, the newline is noted.
        let v = try s.airlock(["history", "--verify"])
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stdout.contains("history chain OK (4 lines, head \(try Self.sha256(beforeLines.last!, in: s.w)))"), "\(v.stdout)")
        #expect(v.stdout.contains("lacks its newline"))
        let j = try Self.object(try s.airlock(["history", "--verify", "--json"]).stdout)
        #expect(j["unterminated"] as? Bool == true && j["lines"] as? Int == 4)
        let listed = try JSONSerialization.jsonObject(with: Data(try s.airlock(["history", "--json"]).stdout.utf8)) as! [[String: Any]]
        #expect(listed.count == 4)

        let pin = try s.airlock(["pin", "example-agent", "1.0.0"])
        #expect(pin.status == 0, "\(pin.stderr)")
        let after = try Self.bytes(s.root)
        // Exactly one line more; everything before, the previously last line included, is
        // byte-identical.
        #expect(Array(after.prefix(before.count)) == before)
        #expect(Self.lines(after).count == beforeLines.count + 1)
        #expect(Self.lines(after)[beforeLines.count - 1] == beforeLines.last!)
        #expect((try Self.object(Self.lines(after).last!))["action"] as? String == "pin")
        #expect((try Self.object(Self.lines(after).last!))["discarded_tail"] == nil)
        try Self.expectChained(s.root, after: beforeLines.last!, count: 5, in: s.w)
        #expect(try s.airlock(["history", "--verify"]).stdout.contains("lacks its newline") == false)
    }

    /// A history of one line without its newline: the line chains to the genesis value, so it
    /// is kept too.
    @Test func oneLineWithoutNewlineIsKept() throws {
        let w = try Workspace()
        let root = w.file("site")
        #expect(try CLI.run(["trust", "allow", "kb.internal:443", "--root", root]).status == 0)
        let first = Self.lines(try Self.bytes(root))
        #expect(first.count == 1)
        #expect(try CLI.sh("truncate -s -1 '\(Self.historyPath(root))'").status == 0)
        let (n, head) = try Self.verified(root)
        #expect(n == 1)
        #expect(head == (try Self.sha256(first[0], in: w)))
        #expect(try CLI.run(["trust", "allow", "tickets.internal:443", "--root", root]).status == 0)
        #expect(Self.lines(try Self.bytes(root))[0] == first[0])
        try Self.expectChained(root, after: first[0], count: 2, in: w)
    }

    // MARK: a tail that is not a complete line is cut

    enum Tail: String, CaseIterable, Sendable {
        /// Half a line of garbage after the last newline.
        case garbage
        /// The last line cut in the middle (the crash this repair is for).
        case cutMidLine
        /// The last line cut right before its closing brace.
        case cutBeforeBrace
        /// Valid JSON that does not chain: a wrong prev.
        case wrongPrev
        /// Valid JSON with the right prev but a seq that does not follow.
        case wrongSeq
        /// Valid JSON that is not an object (it can not chain).
        case notAnObject
    }

    @Test(arguments: Tail.allCases)
    func tornTailIsCut(_ kind: Tail) throws {
        let w = try Workspace()
        let root = w.file("site")
        for e in ["kb.internal:443", "tickets.internal:443", "orders.internal:8443"] {
            #expect(try CLI.run(["trust", "allow", e, "--root", root]).status == 0)
        }
        let good = Self.lines(try Self.bytes(root))
        #expect(good.count == 3)
        let path = Self.historyPath(root)
        // The lines that remain complete, and the bytes of the tail.
        var kept = good
        switch kind {
        case .garbage:
            try Self.append(root, #"{"action":"pin","na"#)
        case .cutMidLine:
            #expect(try CLI.sh("truncate -s -20 '\(path)'").status == 0)
            kept.removeLast()
        case .cutBeforeBrace:
            #expect(try CLI.sh("truncate -s -2 '\(path)'").status == 0)
            kept.removeLast()
        case .wrongPrev:
            try Self.append(root, #"{"action":"pin","at":"2026-01-01T00:00:00Z","prev":"sha256:"# + String(repeating: "0", count: 64) + #"","seq":4}"#)
        case .wrongSeq:
            try Self.append(root, #"{"action":"pin","at":"2026-01-01T00:00:00Z","prev":""# + (try Self.sha256(good[2], in: w)) + #"","seq":7}"#)
        case .notAnObject:
            try Self.append(root, "[4]")
        }
        let tail = Array(try Self.bytes(root).dropFirst(kept.reduce(0) { $0 + $1.count + 1 }))
        #expect(!tail.isEmpty && !tail.contains(0x0A))

        // Until the next write, verify fails at the tail; read lists only the complete lines.
        let broken = try CLI.run(["history", "--verify", "--root", root])
        #expect(broken.status == 1, "\(kind): \(broken.stdout)")
        #expect(broken.stderr.contains("line \(kept.count + 1)"), "\(broken.stderr)")
        let expected = [Tail.wrongPrev, .wrongSeq].contains(kind) ? "does not follow the line before" : "incomplete"
        #expect(broken.stderr.contains(expected), "\(kind): \(broken.stderr)")
        let listed = try JSONSerialization.jsonObject(with: Data(try CLI.run(["history", "--json", "--root", root]).stdout.utf8)) as! [[String: Any]]
        #expect(listed.count == kept.count)

        // The next write cuts the tail, records what it cut, and chains to the last complete line.
        #expect(try CLI.run(["trust", "allow", "mail.internal:25", "--root", root]).status == 0)
        let after = Self.lines(try Self.bytes(root))
        #expect(Array(after.prefix(kept.count)) == kept)
        try Self.expectChained(root, after: kept.last, count: kept.count + 1, in: w)
        let newest = try Self.object(after.last!)
        let discarded = newest["discarded_tail"] as? [String: Any]
        #expect(discarded?["bytes"] as? Int == tail.count)
        #expect(discarded?["sha256"] as? String == (try Self.sha256(tail, in: w)))
        #expect(newest["action"] as? String == "perimeter-add")
    }

    // MARK: the anchor

    /// `evidence` shows the head and the count, in text and JSON.
    @Test func evidenceShowsTheHead() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let (n, head) = try Self.verified(s.root)
        #expect(n == 4)
        let text = try s.airlock(["evidence", "example-agent"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("history head: line 4 is \(head)"), "\(text.stdout)")
        #expect(text.stdout.contains("record both elsewhere"))
        let j = try Self.object(try s.airlock(["evidence", "example-agent", "--json"]).stdout)
        let h = j["history"] as? [String: Any]
        #expect(h?["head"] as? String == head)
        #expect(h?["entries"] as? Int == 4)
    }

    /// A unix datagram socket bound at `path`, as syslog's /dev/log is.
    private final class Listener {
        let fd: Int32
        init(_ path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(.EIO) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw POSIXError(.ENAMETOOLONG) }
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        deinit { close(fd) }

        /// Every datagram already queued.
        func drain() -> [String] {
            var out: [String] = []
            var buf = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
                if n <= 0 { return out }
                out.append(String(decoding: buf[..<n], as: UTF8.self))
            }
        }
    }

    /// Runs `airlock ARGS` in a private mount namespace whose /dev is a fresh tmpfs of links to
    /// the real device files, and whose /dev/log (when `socket` is given) leads to `socket`.
    /// Works whether or not the host has a /dev/log; nothing is left mounted on the host.
    private static func inNamespace(_ w: Workspace, socket: String?, _ args: [String]) throws -> CLI.Result {
        let hostdev = w.file("hostdev")
        try FileManager.default.createDirectory(atPath: hostdev, withIntermediateDirectories: true)
        defer { rmdir(hostdev) }
        let quoted = args.map { "'" + $0 + "'" }.joined(separator: " ")
        return try CLI.sh(
            """
            exec unshare --mount --propagation private /bin/sh -e -c '
              mount --bind /dev "$1"
              mount -t tmpfs -o mode=0755 airlock-test-dev /dev
              for e in "$1"/* "$1"/.[!.]*; do
                [ -e "$e" ] || [ -L "$e" ] || continue
                [ "${e##*/}" = log ] || ln -s "$e" /dev/
              done
              [ -z "$2" ] || ln -s "$2" /dev/log
              shift 2
              exec "$@"
            ' sh '\(hostdev)' '\(socket ?? "")' '\(CLI.binary)' \(quoted)
            """)
    }

    /// Each appended line's seq and hash reach syslog (/dev/log), with the site root; the last
    /// one names the head `history --verify` reports.
    @Test func syslogAnchorIsDelivered() throws {
        let w = try Workspace()
        let root = w.file("site")
        // No syslog at all: the command still succeeds.
        let quiet = try Self.inNamespace(w, socket: nil, ["trust", "allow", "kb.internal:443", "--root", root])
        #expect(quiet.status == 0, "\(quiet.stderr)")

        let sock = w.file("log.sock")
        let listener = try Listener(sock)
        let r = try Self.inNamespace(w, socket: sock, ["trust", "allow", "tickets.internal:443", "orders.internal:8443", "--root", root])
        #expect(r.status == 0, "\(r.stderr)")
        let again = try Self.inNamespace(w, socket: sock, ["trust", "disallow", "orders.internal:8443", "--root", root])
        #expect(again.status == 0, "\(again.stderr)")
        let messages = listener.drain()
        #expect(messages.count == 2, "\(messages)")

        let ls = Self.lines(try Self.bytes(root))
        #expect(ls.count == 3)
        let (n, head) = try Self.verified(root)
        #expect(n == 3)
        for (i, m) in messages.enumerated() {
            let seq = i + 2
            let hash = try Self.sha256(ls[seq - 1], in: w)
            let action = seq == 2 ? "perimeter-add" : "perimeter-remove"
            // <85>: LOG_AUTHPRIV | LOG_NOTICE; ident airlock with the pid.
            #expect(m.hasPrefix("<85>"), "\(m)")
            #expect(m.contains(" airlock["), "\(m)")
            #expect(m.hasSuffix("]: history seq=\(seq) line=\(hash) action=\(action) root=\(root)"), "\(m)")
        }
        #expect(messages.last?.contains("seq=\(n) line=\(head) ") == true)
    }
}
