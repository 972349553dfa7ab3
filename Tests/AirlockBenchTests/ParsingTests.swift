import AirlockBench
import Testing

@Suite struct ToolOutputTests {
    @Test func theSwitchIsFoundInAnStraceLog() throws {
        let log = """
            10358 1796040040.791745 fsync(4)        = 0 <0.000509>
            10358 1796040040.792000 openat(AT_FDCWD, "/site/bench-agent", O_RDONLY|O_CLOEXEC) = 4 <0.000020>
            10358 1796040040.792857 fsync(4)        = 0 <0.000143>
            10358 1796040040.793391 symlink("releases/1.0.0-36b45eba1167", "/site/bench-agent/.current.tmp-10358-2296672694") = 0 <0.000057>
            10358 1796040040.793503 rename("/site/bench-agent/.current.tmp-10358-2296672694", "/site/bench-agent/current") = 0 <0.000057>
            10358 1796040040.793600 openat(AT_FDCWD, "/site/bench-agent", O_RDONLY|O_CLOEXEC) = 4 <0.000020>
            10358 1796040040.793706 fsync(4)        = 0 <0.000149>
            10358 1796040040.794470 fsync(4)        = 0 <0.000216>
            10358 1796040040.798000 +++ exited with 0 +++
            """
        let s = try #require(ToolOutput.straceSwitch(log))
        #expect(abs(s.windowMs - 0.464) < 0.0005)
        #expect(abs(s.syscallsMs - 0.263) < 0.0005)
        #expect(ToolOutput.straceSwitch("10358 1796040040.791745 fsync(4) = 0 <0.000509>") == nil)
    }

    @Test func opensslSpeedIsReadInMegabytesPerSecond() {
        let out = """
            The 'numbers' are in 1000s of bytes per second processed.
            type        1048576 bytes
            sha256         1990154.45k
            """
        #expect(ToolOutput.opensslSpeed(out).map { Int($0.rounded()) } == 1990)
        #expect(ToolOutput.opensslSpeed("nothing here") == nil)
    }

    @Test func zstdBenchIsReadFromItsLastCompleteLine() throws {
        let out = " 1#zs.txt :   5403512 ->   4072677 (x1.327),  725.3 MB/s \r 1#zs.txt :   5403512 ->   4072677 (x1.327),  725.3 MB/s, 1681.3 MB/s\n"
        let z = try #require(ToolOutput.zstdBench(out))
        #expect(z.compress == 725.3)
        #expect(z.decompress == 1681.3)
        #expect(z.ratio == 1.327)
        #expect(ToolOutput.zstdBench(" 1#zs.txt : 5403512 -> 4072677 (x1.327),  725.3 MB/s \r") == nil)
    }

    @Test func opensslSumsBecomeSHA256SUMSLines() {
        let h1 = String(repeating: "a", count: 64), h2 = String(repeating: "0", count: 64)
        let out = "SHA2-256(/w/rel/model/w.bin)= \(h1)\nSHA256(/w/rel/a b.txt)= \(h2)\ngarbage\nSHA2-256(/w/rel/x)= short\n"
        #expect(ToolOutput.normalizedSums(out, root: "/w/rel") == ["\(h2)  a b.txt", "\(h1)  model/w.bin"])
    }

    @Test func tarListingsGiveSizesAndNames() {
        let out = """
            -rw-r--r-- 0/0         2904287 2026-01-01 00:00 airlock/manifest.json
            drwxr-xr-x 0/0               0 2026-01-01 00:00 payload/prompts/
            -rw-r--r-- 0/0          874009 2026-01-01 00:00 payload/prompts/a file.md
            """
        let l = ToolOutput.tarListing(out)
        #expect(l.map(\.size) == [2904287, 0, 874009])
        #expect(l.map(\.name) == ["airlock/manifest.json", "payload/prompts/", "payload/prompts/a file.md"])
    }

    @Test func duAndBundleIDsAndInstallReports() throws {
        #expect(ToolOutput.duKiB("100\t/a\n2066676\t/b\n") == 2066676)
        #expect(ToolOutput.duKiB("") == nil)
        let id = "sha256:" + String(repeating: "d6", count: 32)
        #expect(ToolOutput.bundleIDs("  bundle id  \(id)\n  bundle id  \(id)") == [id])
        #expect(ToolOutput.bundleIDs("sha256:abc") == [])
        let r = try #require(InstallReport(json: #"{"name": "a", "release": "1.0.0-36b4", "files": 20302, "files_shared": 20301, "bytes_written": 874009}"#))
        #expect(r == InstallReport(json: #"{"release":"1.0.0-36b4","files":20302,"files_shared":20301,"bytes_written":874009}"#))
        #expect(r.release == "1.0.0-36b4" && r.files == 20302 && r.filesShared == 20301 && r.bytesWritten == 874009)
        #expect(InstallReport(json: "installed a 1.0.0") == nil)
    }
}
