import AirlockRollout
import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// The storage of task recordings (issue 12): gzip members a line, the size cap under a
/// sustained load, retention, a line a kill cut short, damage named by its line.
@Suite struct RecordingTests {
    static let name = "rec"

    /// A site root with `rec/.serve/` in a scratch folder.
    final class RecordingSite {
        let tmp = TempDir()
        let site: Site

        init() {
            chmod(tmp.path, 0o755)
            let root = tmp.file("root")
            for dir in [root, root + "/rec", root + "/rec/releases", root + "/rec/.serve"] {
                mkdir(dir, 0o755)
                chmod(dir, 0o755)
            }
            site = Site(root: root)
        }

        var directory: String { RecordingStore.directory(site: site, name: RecordingTests.name) }
    }

    static func settings(maxBytes: Int64 = 1 << 30, retentionDays: Int = 7) -> RecordingSettings {
        RecordingSettings(sample: 1, maxBytes: maxBytes, retentionDays: retentionDays, salt: String(repeating: "ab", count: 32), since: "2026-11-30T00:00:00Z")
    }

    static func exchange(_ text: String, calls: Int = 1) -> JSONValue {
        .object([
            "at": .string("2026-11-30T00:00:00Z"), "release": .string("1.0.0-abc"),
            "request": .object(["method": .string("POST"), "path": .string("/v1/answer"), "content_type": .null, "body": .string(text)]),
            "response": .object(["status": .integer(200), "content_type": .null, "body": .string("answer to " + text), "truncated": .bool(false)]),
            "tool_calls": .array(
                (0..<calls).map { _ in
                    .object([
                        "tool": .string("search_kb"), "arguments": .object(["query": .string(text)]), "status": .string("ok"),
                        "result": .object(["hits": .array([])]), "error": .null, "ms": .number("0.5"),
                    ])
                }),
        ])
    }

    @Test func eventsReadBackAsTasksWithTheirOutcomes() throws {
        let s = RecordingSite()
        let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings())
        for i in 0..<3000 {
            try w.append(RecordingEvents.exchange(task: "t\(i % 1000)", Self.exchange("question \(i) " + String(repeating: "x", count: i % 700))))
        }
        try w.append(RecordingEvents.outcome(task: "t7", release: "1.0.0-abc", TaskOutcome(succeeded: true, cost: 0.25, neededIntervention: false)))
        w.sync()
        // Readable by standard tools too: each line is a gzip member, a file is what zcat reads.
        let read = try RecordingReader.read(site: s.site, name: Self.name)
        #expect(read.dropped == 0 && read.tasks.count == 1000)
        let t7 = try #require(read.tasks.first { $0.task == "t7" })
        #expect(t7.exchanges.count == 3 && t7.toolCalls.count == 3 && t7.release == "1.0.0-abc")
        #expect(t7.outcome?.objectValue?["success"] == .bool(true) && t7.outcome?.objectValue?["cost"] == .number("0.25"))
        #expect(read.tasks.first?.task == "t0")
        // Only the last 10 kept while reading: the same as the last 10 of all.
        let last = try RecordingReader.read(site: s.site, name: Self.name, last: 10)
        #expect(last.tasks == Array(read.tasks.suffix(10)))
        var mode = stat()
        #expect(lstat(s.directory, &mode) == 0 && mode.st_mode & 0o777 == 0o700)
    }

    @Test func staysUnderItsCapUnderASustainedLoad() throws {
        let s = RecordingSite()
        let cap: Int64 = 1 << 20
        let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings(maxBytes: cap))
        var g = SystemRandomNumberGenerator()
        var most: Int64 = 0
        for i in 0..<6000 {
            // Incompressible text, about 600 bytes a line: 3.5 MiB written in all.
            let noise = (0..<300).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
            try w.append(RecordingEvents.exchange(task: "load-\(i)", Self.exchange(noise, calls: 0)))
            let onDisk = RecordingWriter.segments(s.directory).reduce(Int64(0)) { $0 + $1.size }
            most = max(most, onDisk)
        }
        #expect(most <= cap, "\(most) bytes on disk against a cap of \(cap)")
        let read = try RecordingReader.read(site: s.site, name: Self.name)
        // The newest tasks stay, the oldest went.
        #expect(read.tasks.last?.task == "load-5999")
        #expect(read.tasks.count > 500 && read.tasks.count < 6000 && read.tasks.first?.task != "load-0")
    }

    @Test func segmentsPastTheRetentionAreDeleted() throws {
        let s = RecordingSite()
        let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings(retentionDays: 1))
        try w.append(RecordingEvents.exchange(task: "old", Self.exchange("a")))
        w.enforce(adding: 0, now: RecordingWriter.wallNow() + 2 * 86_400)
        #expect(RecordingWriter.segments(s.directory).isEmpty)
        #expect(try RecordingReader.read(site: s.site, name: Self.name).tasks.isEmpty)
    }

    @Test func aLineAKillCutShortIsDroppedAndCounted() throws {
        let s = RecordingSite()
        do {
            let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings())
            for i in 0..<10 { try w.append(RecordingEvents.exchange(task: "k\(i)", Self.exchange("q\(i)"))) }
        }
        let segment = try #require(RecordingWriter.segments(s.directory).last)
        let path = s.directory + "/" + segment.file
        // Half of one more member, as a kill during its write leaves it.
        let member = Gzip.member(RecordingEvents.exchange(task: "k10", Self.exchange("q10")) + [0x0A])
        let h = try #require(FileHandle(forWritingAtPath: path))
        try h.seekToEnd()
        try h.write(contentsOf: Data(member.prefix(member.count / 2)))
        try h.close()
        let read = try RecordingReader.read(site: s.site, name: Self.name)
        #expect(read.tasks.count == 10 && read.dropped == 1 && !read.tasks.contains { $0.task == "k10" })

        // A new writer (serve started again) writes a segment of its own: the torn one stays torn
        // at its end, and everything reads.
        let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings())
        try w.append(RecordingEvents.exchange(task: "k11", Self.exchange("q11")))
        let again = try RecordingReader.read(site: s.site, name: Self.name)
        #expect(again.tasks.count == 11 && again.dropped == 1)
    }

    @Test func damageInsideASegmentIsRefusedNamingIt() throws {
        let s = RecordingSite()
        do {
            let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings())
            for i in 0..<10 { try w.append(RecordingEvents.exchange(task: "d\(i)", Self.exchange("q\(i)"))) }
        }
        let segment = try #require(RecordingWriter.segments(s.directory).last)
        let path = s.directory + "/" + segment.file
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        for k in (bytes.count / 2)..<(bytes.count / 2 + 16) { bytes[k] ^= 0x5A }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try RecordingReader.read(site: s.site, name: Self.name)
        } throws: { e in
            (e as? AirlockError)?.code == "recording-damaged" && (e as? AirlockError)?.message.contains(segment.file) == true
        }
    }

    @Test func anExportedFileIsReadStrictly() throws {
        let tmp = TempDir()
        let tasks = (0..<5).map { RecordedTask(task: "e\($0)", exchanges: [Self.exchange("q\($0)")], outcome: nil) }
        for file in ["tasks.jsonl", "tasks.jsonl.gz"] {
            let path = tmp.file(file)
            try RecordingExport.write(tasks, to: path)
            #expect(try RecordingReader.readTasks(file: path) == tasks)
            // Never over an existing file.
            #expect(throws: AirlockError.self) { try RecordingExport.write(tasks, to: path) }
        }
        // A line that is no task, named by its number.
        let plain = try String(contentsOfFile: tmp.file("tasks.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        let bad = tmp.file("bad.jsonl")
        try (plain[0..<2] + ["{\"task\": \"x\"}"] + plain[3...]).joined(separator: "\n").appending("\n").write(
            toFile: bad, atomically: true, encoding: .utf8)
        #expect {
            _ = try RecordingReader.readTasks(file: bad)
        } throws: { e in
            (e as? AirlockError)?.code == "recording-damaged" && (e as? AirlockError)?.message.contains("bad.jsonl:3") == true
        }
        // Cut short: plain without its last newline, gzip in the middle of a member.
        let cut = tmp.file("cut.jsonl")
        try plain.joined(separator: "\n").write(toFile: cut, atomically: true, encoding: .utf8)
        #expect(throws: AirlockError.self) { try RecordingReader.readTasks(file: cut) }
        let gz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tmp.file("tasks.jsonl.gz"))))
        try Data(gz.prefix(gz.count - 7)).write(to: URL(fileURLWithPath: tmp.file("cut.jsonl.gz")))
        #expect {
            _ = try RecordingReader.readTasks(file: tmp.file("cut.jsonl.gz"))
        } throws: { e in
            (e as? AirlockError)?.message.contains("cut short after line 4") == true
        }
        // The same task twice.
        let twice = tmp.file("twice.jsonl")
        try ([plain[0], plain[0]].joined(separator: "\n") + "\n").write(toFile: twice, atomically: true, encoding: .utf8)
        #expect(throws: AirlockError.self) { try RecordingReader.readTasks(file: twice) }
    }

    @Test func samplingIsStableAndNearItsShare() {
        var s = Self.settings()
        s.sample = 0.1
        let picked = (0..<20_000).filter { s.samples("task-\($0)") }.count
        #expect(picked > 1_700 && picked < 2_300, "\(picked) of 20000 at 10%")
        #expect((0..<1000).allSatisfy { s.samples("task-\($0)") == s.samples("task-\($0)") })
        var other = s
        other.salt = String(repeating: "cd", count: 32)
        #expect((0..<1000).contains { s.samples("task-\($0)") != other.samples("task-\($0)") })
    }

    /// Review findings: a segment `record purge` unlinked under a running writer, an event
    /// larger than a segment, and the retention of recordings left after `record off`.
    @Test func purgeUnderAWriterAnOversizedEventAndRetentionWhenOff() throws {
        let s = RecordingSite()
        let w = try RecordingWriter(site: s.site, name: Self.name, settings: Self.settings(maxBytes: 1 << 20))
        try w.append(RecordingEvents.exchange(task: "before", Self.exchange("a")))
        for seg in RecordingWriter.segments(s.directory) { unlink(s.directory + "/" + seg.file) }
        try w.append(RecordingEvents.exchange(task: "after", Self.exchange("b")))
        #expect(try RecordingReader.read(site: s.site, name: Self.name).tasks.map(\.task) == ["after"])

        var g = SystemRandomNumberGenerator()
        let noise = (0..<(1 << 18)).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
        #expect(throws: AirlockError.self) { try w.append(RecordingEvents.exchange(task: "huge", Self.exchange(noise))) }
        #expect(try RecordingReader.read(site: s.site, name: Self.name).tasks.map(\.task) == ["after"])

        // Off, with a retention of one day: a segment older than that is not read.
        var off = Self.settings(retentionDays: 1)
        off.enabled = false
        #expect(!off.samples("anything"))
        try FileIO.writeAtomically(
            CanaryStore.directory(site: s.site, name: Self.name) + "/" + RecordingStore.settingsFile, JSONCoding.encoder.encode(off), mode: 0o600)
        let old = "\(Int64((RecordingWriter.wallNow() - 3 * 86_400) * 1000))-1-1.jsonl.gz"
        try Data(Gzip.member(RecordingEvents.exchange(task: "old", Self.exchange("c")) + [0x0A])).write(to: URL(fileURLWithPath: s.directory + "/" + old))
        #expect(try RecordingReader.read(site: s.site, name: Self.name).tasks.map(\.task) == ["after"])
        #expect(try RecordingStore.load(site: s.site, name: Self.name)?.enabled == false)
    }
}
