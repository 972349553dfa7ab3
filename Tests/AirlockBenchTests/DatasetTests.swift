import AirlockBench
import Foundation
import Testing

/// A scratch folder, removed at the end.
final class Scratch {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/airlock-bench-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: made)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Every regular file under `root`: relative path to bytes.
func contents(of root: String) throws -> [String: Data] {
    var out: [String: Data] = [:]
    let e = FileManager.default.enumerator(atPath: root)
    while let rel = e?.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + rel, isDirectory: &isDir), !isDir.boolValue {
            out[rel] = try Data(contentsOf: URL(fileURLWithPath: root + "/" + rel))
        }
    }
    return out
}

@Suite struct GeneratorTests {
    @Test func theSameSeedGivesTheSameSequence() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let x = (0..<100).map { _ in a.next() }
        #expect(x == (0..<100).map { _ in b.next() })
        #expect(x != (0..<100).map { _ in c.next() })
        // The first outputs are fixed: a change of the generator would change every dataset.
        var d = SeededGenerator(seed: 0)
        #expect(d.next() == 0x99EC_5F36_CB75_F2B4)  // the reference xoshiro256** seeded by SplitMix64(0)
        #expect(d.next() == 0xBF6E_1F78_4956_452A)
    }

    @Test func belowCoversItsWholeRangeAndNothingElse() {
        var g = SeededGenerator(seed: 7)
        var seen = [Int](repeating: 0, count: 7)
        for _ in 0..<7000 { seen[g.below(7)] += 1 }
        #expect(seen.allSatisfy { $0 > 800 && $0 < 1200 })
        var h = SeededGenerator(seed: 8)
        #expect((0..<1000).allSatisfy { _ in h.below(1) == 0 })
        let units = (0..<1000).map { _ in h.unit() }
        #expect(units.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(units.min()! < 0.05 && units.max()! > 0.95)
    }

    @Test func filledBytesLookRandom() {
        var g = SeededGenerator(seed: LargeRelease.weightsSeed)
        var bytes = [UInt8](repeating: 0, count: 65_539)
        bytes.withUnsafeMutableBytes { g.fill($0) }
        var counts = [Int](repeating: 0, count: 256)
        for b in bytes { counts[Int(b)] += 1 }
        // 256 values about 256 times each: nothing a compressor could use.
        #expect(counts.allSatisfy { $0 > 150 && $0 < 370 })
    }
}

@Suite struct DatasetTests {
    @Test func sizesFollowTheScale() {
        let full = LargeRelease(scale: 1)
        #expect(full.weightsBytes == 1536 << 20)
        #expect(full.codeBytes == 300 << 20)
        #expect(full.promptBytes == 100 << 20)
        #expect(full.indexFiles == 20000)
        let small = LargeRelease(scale: 0.05)
        #expect(small.weightsBytes == 80_530_636)
        #expect(small.indexFiles == 1000)
        #expect(LargeRelease(scale: 0.00001).indexFiles == 1)
        let plan = LargeRelease(scale: 0.05).plan
        #expect(plan.files.count == 3 + 240 + 60 + 1000)
        #expect(plan.files.filter { $0.path.hasPrefix("code/") }.count == 240)
        #expect(plan.files.filter { $0.path.hasPrefix("code/scripts/") && $0.mode == 0o755 }.count == 4)
        #expect(plan.files.filter { $0.path.hasPrefix("prompts/") }.count == 60)
        #expect(plan.files.filter { $0.path.hasPrefix("index/shard-") }.count == 1000)
        #expect(plan.directories.filter { $0.hasPrefix("index/shard-") }.count == 20)
        // Code and prompt files share their component's bytes (half to one and a half times the average).
        let code = plan.files.filter { $0.path.hasPrefix("code/") }.reduce(0) { $0 + $1.size }
        #expect(abs(Double(code) / Double(small.codeBytes) - 1) < 0.05)
        #expect(plan.files.first { $0.path == "model/weights.safetensors" }?.size == small.weightsBytes)
        #expect(plan.description.hasPrefix("gen=\(LargeRelease.generation) scale=0.05 "))
        #expect(plan.description != LargeRelease(scale: 0.06).plan.description)
    }

    @Test func theLargeReleaseIsTheSameBytesEveryTime() throws {
        let a = try Scratch(), b = try Scratch()
        let plan = LargeRelease(scale: 0.002).plan
        try ReleaseWriter.write(plan, to: a.path + "/r")
        try ReleaseWriter.write(LargeRelease(scale: 0.002).plan, to: b.path + "/r")
        let ca = try contents(of: a.path + "/r"), cb = try contents(of: b.path + "/r")
        #expect(ca.count == plan.files.count)
        #expect(Set(ca.keys) == Set(plan.files.map(\.path)))
        #expect(ca == cb)
        for f in plan.files {
            #expect(ca[f.path]?.count == f.size, "\(f.path)")
        }
        // Different files hold different text.
        #expect(ca["prompts/prompt-001.md"] != ca["prompts/prompt-012.md"])
        var st = stat()
        #expect(stat(a.path + "/r/code/scripts/value-00.sh", &st) == 0 && st.st_mode & 0o777 == 0o755)
        #expect(stat(a.path + "/r/index/shard-19", &st) == 0)  // made even when it holds no document
    }

    @Test func generatedTextLooksLikeItsComponent() throws {
        let plan = LargeRelease(scale: 0.01).plan
        for f in plan.files where f.path.hasSuffix(".json") && f.path.hasPrefix("index/") {
            let bytes = ContentGenerator.text(f)
            #expect(bytes.count == f.size)
            let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
            #expect((object?["vector"] as? [Double])?.count == 12, "\(f.path)")
            #expect((object?["id"] as? String).map { f.path.hasSuffix($0 + ".json") } == true)
        }
        let script = try #require(plan.files.first { $0.path.hasSuffix(".sh") })
        #expect(String(decoding: ContentGenerator.text(script), as: UTF8.self).hasPrefix("#!/bin/sh\n"))
        let prompt = try #require(plan.files.first { $0.path == "prompts/prompt-007.md" })
        let text = String(decoding: ContentGenerator.text(prompt), as: UTF8.self)
        #expect(text.hasPrefix("# Prompt 7\n"))
        #expect(text.hasSuffix("\n"))
        // Prose of many words, not one repeated.
        #expect(Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" })).count > 30)
    }

    @Test func scaleReleasesHaveTheirDocumentsAtTheirSizes() throws {
        let plan = ScaleRelease(files: 2500).plan
        let docs = plan.files.filter { $0.path.hasPrefix("index/") }
        #expect(docs.count == 2500)
        #expect(plan.files.count == 2503)
        #expect(plan.directories.filter { $0.hasPrefix("index/shard-") } == ["index/shard-000", "index/shard-001", "index/shard-002"])
        #expect(docs[1234].path == "index/shard-001/doc-001234.txt")
        #expect(docs.allSatisfy { $0.size >= 200 && $0.size <= 2000 })
        let text = String(decoding: ContentGenerator.text(docs[42]), as: UTF8.self)
        #expect(text.hasPrefix("doc 000042: "))
        #expect(text.utf8.count == ScaleRelease.documentSize(42))
        #expect(ContentGenerator.text(docs[42]) == ContentGenerator.text(ScaleRelease(files: 2500).plan.files[3 + 42]))
        #expect(ContentGenerator.text(docs[42]) != ContentGenerator.text(docs[43]))
    }

    @Test func aRevisionLinksEverythingButItsChanges() throws {
        let s = try Scratch()
        try ReleaseWriter.write(SmallRelease.plan, to: s.path + "/v1")
        try ReleaseWriter.writeRevision(SmallRelease.revision, of: s.path + "/v1", to: s.path + "/v2")
        let v1 = try contents(of: s.path + "/v1"), v2 = try contents(of: s.path + "/v2")
        #expect(Set(v1.keys) == Set(v2.keys))
        #expect(v1["model/weights.safetensors"]?.count == SmallRelease.weightsBytes)
        func inode(_ p: String) -> ino_t {
            var st = stat()
            stat(p, &st)
            return st.st_ino
        }
        #expect(inode(s.path + "/v1/model/weights.safetensors") == inode(s.path + "/v2/model/weights.safetensors"))
        #expect(inode(s.path + "/v1/prompts/system.md") != inode(s.path + "/v2/prompts/system.md"))
        #expect(v2["prompts/system.md"] == v1["prompts/system.md"]! + Data(SmallRelease.revision.appended.utf8))
        #expect(String(decoding: v2["airlock.yaml"]!, as: UTF8.self).contains("version: 1.0.1\nsequence: 2\n"))
        #expect(LargeRelease.revision.yaml == LargeRelease.yaml(version: "1.0.1", sequence: 2))
    }
}
