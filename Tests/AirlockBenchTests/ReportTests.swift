import AirlockBench
import Testing

/// Results of a made-up run; `tweak` changes them before the report is rendered.
func fixture(_ tweak: (inout BenchResults) -> Void = { _ in }) -> BenchResults {
    func runs(_ seconds: [Double], rss: Int = 40_000, cpu: Double = 1) -> [RunSample] {
        seconds.map { RunSample(seconds: $0, peakRSSKiB: rss, cpuSeconds: cpu) }
    }
    let rows = [
        ComparisonRow(name: "pack", airlock: runs([3.5, 3.3, 3.2]), baseline: runs([5.5, 4.8, 4.8], rss: 21_000), ratioTarget: 1.0),
        ComparisonRow(name: "verify", airlock: runs([1.6, 1.7, 1.6]), baseline: runs([4.9, 9.3, 10.5], rss: 7_000), ratioTarget: 0.6),
        ComparisonRow(name: "install", airlock: runs([4.7, 4.5, 4.6]), baseline: runs([8.0, 9.9, 5.1], rss: 5_000), ratioTarget: 1.3),
    ]
    let switches = (1...10).map { 13 + Double($0 % 3) * 0.2 }
    func series(_ name: String, _ label: String) -> SwitchSeries {
        SwitchSeries(
            name: name, label: label, files: 4, bytes: 10 << 20, rollbackMs: switches, activateMs: switches.map { $0 + 1 },
            straceWindowMs: [0.43, 0.44, 0.42], straceSyscallsMs: [0.24, 0.25, 0.24])
    }
    let scale = [1000, 10000, 100_000].map { n in
        ScaleEntry(
            files: n, manifestBytes: n * 140,
            samples: Dictionary(
                uniqueKeysWithValues: scaleCommands.map { c in
                    (c, runs([Double(n) * 3e-5, Double(n) * 3.1e-5, Double(n) * 2.9e-5], rss: 30_000 + n / 10))
                }))
    }
    var r = BenchResults(
        context: RunContext(
            date: "2026-11-28T01:24:13Z", machine: "2 cores", airlock: "/bin/airlock (0.2.0)", tools: "zstd v1.5.4",
            scale: "1", runs: 3, switches: 10, scaleRunsLargest: 3, settleWaited: 0),
        dataset: DatasetFacts(bytes: 2_076_831_744, files: 20303, weightsBytes: 1536 << 20, indexFiles: 20000),
        main: MainTable(
            rows: rows, bundleBytes: 1_716_276_694, baselineBytes: 1_714_800_000, bundleID: "sha256:" + String(repeating: "d", count: 64), payloadFiles: 20302),
        rollback: RollbackTable(
            small: series("small-agent", "small (small-agent, 10 MiB weights)"),
            large: series("bench-agent", "large (bench-agent, BENCH_SCALE=1)"),
            helpMs: (1...20).map { 9.5 + Double($0 % 4) * 0.1 }, statusMs: [12.1, 12.2, 12.3], peakRSSKiB: 22_000, straceAvailable: true),
        disk: DiskTable(
            siteRoot: "/w/sites/switch", emptyKiB: 28, afterFirstKiB: 2_066_676, afterSecondKiB: 2_071_164,
            objectsAfterFirstKiB: 2_000_000, objectsAfterSecondKiB: 2_000_856, secondOwnKiB: 3632, changedBytes: 874_009,
            changedFiles: "prompts/prompt-000.md", releaseBytes: 2_076_831_744, filesShared: 20301, files: 20302, bytesWritten: 874_009),
        delta: DeltaTable(
            fullBytes: 1_716_276_694, deltaBytes: 1_737_725, changedFiles: "prompts/prompt-000.md", changedRawBytes: 874_009,
            changedZstdBytes: 222_160, manifestBytes: 2_904_287,
            members: [BundleMember(name: "airlock/manifest.json", bytes: 2_904_287, zstdBytes: 787_424)],
            packDelta: runs([1.6, 1.6, 1.7]), packFull: runs([5.1, 4.7, 5.4]), installDelta: runs([2.6, 2.6, 2.5]),
            installFull: runs([2.7, 2.8, 2.8]), deltaShared: 20301, deltaWritten: 874_009, fullShared: 20301, fullWritten: 874_009),
        scale: scale,
        reference: ReferenceTable(sha256: 1816, zstdCompress: 357, zstdDecompress: 1183.9, zstdRatio: 3.963, sampleBytes: 64 << 20),
        notes: [])
    tweak(&r)
    return r
}

@Suite struct ReportTests {
    @Test func everyRowAndTableIsRendered() {
        let md = Report(fixture()).markdown
        for heading in Report.sections where heading != "### Scale: time per file and memory" {
            #expect(md.contains(heading + "\n"), "\(heading)")
        }
        #expect(md.contains("### Scale: time per file and memory from 1000 to 100000 files"))
        for row in ["pack", "verify", "install"] {
            #expect(md.contains("| \(row) | "), "\(row)")
            #expect(md.contains("- \(row)_airlock: "))
            #expect(md.contains("- \(row)_baseline: "))
        }
        #expect(
            md.contains("| pack | 3.200 / 3.300 / 3.500 | 4.800 / 4.800 / 5.500 | 0.69 | 0.64 – 0.69 | 39.1 | 20.5 | ratio <= 1.0 PASS; RSS < 64 MiB PASS |"))
        for n in [1000, 10000, 100_000] {
            let kib = Int((Double(n * 140) / 1024).rounded())
            for c in ["pack", "verify", "install", "audit"] { #expect(md.contains("| \(n) | \(kib) | \(c) | 3 | "), "\(n) \(c)") }
            #expect(md.contains("| \(n) | \(kib) | (reference: zstd -dc \\| tar -x, sync) | 3 | "))
        }
        for line in [
            "| small (small-agent, 10 MiB weights) | 4 |", "| large (bench-agent, BENCH_SCALE=1) |", "| start-up reference: `airlock --help` |",
            "| **added by the second release** | **4488** |", "| **delta bundle (out-v2-delta.airlock)** | **1737725** |",
            "| pack the second release (--base out.airlock / full) | 1.600 / 1.600 / 1.700 | 4.700 / 5.100 / 5.400 |",
            "| install it into a site holding out.airlock |", "| SHA-256 (openssl speed -evp sha256, 1 MiB blocks) | 1816 |",
            "| zstd -1 decompress (same) | 1183.9 |", "- deltapack_delta: 1.600 1.600 1.700", "- scale 100000 tarx: ",
            "- rollback bench-agent (ms): ", "- airlock --help (ms): ",
        ] {
            #expect(md.contains(line), "\(line)")
        }
    }

    @Test func everyTargetGetsAVerdict() {
        let r = Report(fixture())
        // 3 rows x (ratio, RSS) + rollback 4 + disk 1 + delta 1 + scale 4 flat + 4 memory.
        #expect(r.verdicts.count == 20)
        #expect(r.verdicts.map(\.section).filter { $0 == "scale" }.count == 8)
        #expect(r.markdown.contains("20 targets: 20 PASS, 0 not established, 0 FAIL."))
        // install: run ratios 0.59, 0.45, 0.90 all <= 1.3; verify: 0.33, 0.18, 0.15 <= 0.6.
        #expect(r.verdicts.first { $0.section == "install" }?.verdict == .pass)
        // Rollback's start-up reference is not a target.
        #expect(r.verdicts.failures.isEmpty)
    }

    @Test func aRatioWhoseRunsCrossTheTargetIsNotEstablished() {
        #expect(Report(fixture()).verdicts.unsettled.isEmpty)
        // Run ratios against the baseline's 8.0, 9.9, 5.1: 1.10, 0.47, 1.37 around the target 1.3.
        let crossing = Report(
            fixture {
                $0.main.rows[2].airlock = [8.8, 4.7, 7.0].map { RunSample(seconds: $0, peakRSSKiB: 35_000, cpuSeconds: 4) }
            })
        let install = crossing.verdicts.first { $0.section == "install" && $0.check.hasPrefix("ratio") }
        #expect(install?.verdict == .notEstablished)
        #expect(crossing.markdown.contains("ratio <= 1.3 not established; RSS < 64 MiB PASS |"))
        #expect(crossing.markdown.contains("- not established: install, ratio <= 1.3"))
    }

    @Test func missedTargetsFail() {
        let r = Report(
            fixture {
                $0.main.rows[0].airlock = [6, 6, 6].map { RunSample(seconds: $0, peakRSSKiB: 70_000, cpuSeconds: 4) }
                $0.delta.deltaBytes = 4_000_000
                $0.disk.afterSecondKiB = $0.disk.afterFirstKiB + 30_000
                $0.rollback.large.rollbackMs = $0.rollback.small.rollbackMs.map { $0 + 5 }
            })
        let failed = Set(r.verdicts.failures.map { "\($0.section): \($0.check)" })
        #expect(
            failed == [
                "pack: ratio <= 1.0", "pack: peak RSS < 64 MiB", "delta: delta <= allowance",
                "disk: added <= changed + 1% of the release", "rollback: flat, rollback",
            ])
        #expect(r.markdown.contains("ratio <= 1.0 FAIL; RSS < 64 MiB FAIL |"))
        #expect(r.markdown.contains("- FAIL: delta, delta <= allowance"))
    }

    @Test func notesAndTheSettleWaitAreReported() {
        let md = Report(
            fixture {
                $0.notes = ["WARNING: the bundle id differed between pack runs"]
                $0.context.settleWaited = 120
                $0.context.scaleRunsLargest = 1
                $0.rollback.straceAvailable = false
            }
        ).markdown
        #expect(md.contains("- WARNING: the bundle id differed between pack runs\n"))
        #expect(md.contains("Waited 120 s before creating many files"))
        #expect(md.contains("The largest file count ran 1 time(s) per command"))
        #expect(md.contains("| (no strace) |"))
        #expect(md.contains("rollback minus start-up; strace is not installed"))
    }
}
