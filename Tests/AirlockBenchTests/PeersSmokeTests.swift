import Foundation
import Testing

/// `scripts/bench-peers.sh` on the tiny shape, one run per side: every peer runs for real
/// (OSTree, RAUC, the shell pipeline), the report has every row, and its exit status follows its
/// verdicts. The timings are not judged.
@Suite struct PeersSmokeTests {
    @Test(.timeLimit(.minutes(3))) func aTinyRunOfThePeersProducesEveryRow() throws {
        let s = try Scratch()
        let r = try Built.run(
            Built.root + "/scripts/bench-peers.sh", [Built.airlock, Built.bench],
            settings: ["PEERS_RUNS": "1", "PEERS_SHAPES": "tiny", "PEERS_WORK": s.path + "/peers"], scratch: s.path)
        let md = r.stdout
        #expect(r.status == 0 || r.status == 1, "exit \(r.status): \(r.stderr.suffix(3000))")
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
        #expect(r.status == (failing ? 1 : 0))
    }
}
