import Foundation
import Testing

/// `scripts/bench-peers.sh` on the tiny shape, one run per side: every peer runs for real
/// (OSTree, RAUC, the shell pipeline), the report has every row, and its exit status follows its
/// verdicts. The timings are not judged.
@Suite struct PeersSmokeTests {
    @Test(.timeLimit(.minutes(3))) func aTinyRunOfThePeersProducesEveryRow() throws {
        let s = try Scratch()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Built.root + "/scripts/bench-peers.sh")
        p.arguments = [Built.airlock, Built.bench]
        var environment = ProcessInfo.processInfo.environment
        environment["PEERS_RUNS"] = "1"
        environment["PEERS_SHAPES"] = "tiny"
        environment["PEERS_WORK"] = s.path + "/peers"
        p.environment = environment
        let out = s.path + "/stdout", err = s.path + "/stderr"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let md = try String(contentsOfFile: out, encoding: .utf8)
        let stderr = try String(contentsOfFile: err, encoding: .utf8)
        #expect(p.terminationStatus == 0 || p.terminationStatus == 1, "exit \(p.terminationStatus): \(stderr.suffix(3000))")
        #expect(md.contains("## Shape: tiny"), "\(md)")
        for row in ["pack", "verify", "install"] {
            for side in ["airlock", "shell", "rauc", "ostree"] {
                #expect(md.range(of: "\n| \(row) | \(side) | [0-9.]+ / [0-9.]+ / [0-9.]+ |", options: .regularExpression) != nil, "\(row) \(side)")
            }
        }
        for side in ["airlock", "ostree", "changed-files"] {
            #expect(md.range(of: "\n| \(side) | [0-9,]+ |", options: .regularExpression) != nil, "delta \(side)")
        }
        #expect(md.contains("Control: the shell pack of the first shape took "))
        #expect(md.contains("tiny: delta, airlock / OSTree static delta: "))
        let failing = md.contains("**FAIL**") || md.contains("**not established**")
        #expect(p.terminationStatus == (failing ? 1 : 0))
    }
}
