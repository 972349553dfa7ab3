import Foundation
import Testing

/// Issue 4's scale: a single file over 4 GiB and a release of 100,000 files go through pack,
/// verify, install and audit.
@Suite(.serialized, .timeLimit(.minutes(10))) struct ScaleTests {
    private func siteRoundTrip(_ w: Workspace, release: String, name: String, label: String) throws {
        let packed = try CLI.run(["pack", w.file(release), "--key", w.file("vendor.key"), "--out", w.file("b.airlock")])
        #expect(packed.status == 0, "\(label) pack: \(packed.stderr)")
        let verified = try CLI.run(["verify", w.file("b.airlock"), "--trust", w.file("trust")])
        #expect(verified.status == 0, "\(label) verify: \(verified.stderr)")
        #expect(try CLI.run(["trust", "add", w.file("vendor.pub"), "--root", w.file("site")]).status == 0)
        let installed = try CLI.run(["install", w.file("b.airlock"), "--root", w.file("site"), "--activate"])
        #expect(installed.status == 0, "\(label) install: \(installed.stderr)")
        let audited = try CLI.run(["audit", name, "--root", w.file("site")])
        #expect(audited.status == 0, "\(label) audit: \(audited.stdout) \(audited.stderr)")
    }

    /// The source is sparse, so it costs no disk; the bundle stores it as a plain file of its
    /// full size (no sparse entry), and the site installs every byte.
    @Test func aFileLargerThan4GiB() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        let size: UInt64 = (4 << 30) + 12345
        #expect(
            try CLI.sh(
                """
                set -e
                mkdir -p big/model big/code
                truncate -s \(size) big/model/weights.bin
                printf 'x\\0y' | dd of=big/model/weights.bin bs=1 seek=\((4 << 30) + 100) conv=notrunc status=none
                echo 'print(1)' > big/code/run.py
                printf 'name: big\\nversion: 1.0.0\\nsequence: 1\\ncomponents:\\n  code: code/\\n  model: model/\\n' > big/airlock.yaml
                """, cwd: w.path
            ).status == 0)
        try siteRoundTrip(w, release: "big", name: "big", label: ">4 GiB")
        let listing = try CLI.sh("tar --zstd -tvf b.airlock | grep weights.bin", cwd: w.path).stdout
        #expect(listing.hasPrefix("-rw-r--r--") && listing.contains(" \(size) "), "\(listing)")
        var st = stat()
        stat(w.file("site/big/current/payload/model/weights.bin"), &st)
        #expect(UInt64(st.st_size) == size)
    }

    @Test func aReleaseOf100000Files() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        let fm = FileManager.default
        let base = w.file("many")
        for shard in 0..<100 {
            let dir = base + "/index/shard-\(shard)"
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for i in 0..<1000 {
                let n = shard * 1000 + i
                fm.createFile(atPath: dir + "/doc-\(n).txt", contents: Data("document \(n): \(String(repeating: "lorem ", count: n % 7))\n".utf8))
            }
        }
        try fm.createDirectory(atPath: base + "/code", withIntermediateDirectories: true)
        fm.createFile(atPath: base + "/code/run.py", contents: Data("print(1)\n".utf8))
        try "name: many\nversion: 1.0.0\nsequence: 1\ncomponents:\n  code: code/\n  index: index/\n".write(
            toFile: base + "/airlock.yaml", atomically: true, encoding: .utf8)
        try siteRoundTrip(w, release: "many", name: "many", label: "100,000 files")
        let st = try JSONSerialization.jsonObject(with: Data(try CLI.run(["status", "--json", "--root", w.file("site")]).stdout.utf8)) as! [String: Any]
        let releases = ((st["names"] as! [[String: Any]])[0]["releases"] as! [[String: Any]])
        #expect(releases[0]["files"] as? Int == 100_001)
    }
}
