import AirlockBench
import Foundation
import Testing

/// The built binaries: from an environment variable, beside the test bundle (where `swift build`
/// puts every product), or in the package's .build/debug.
enum Built {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func binary(_ name: String, env: String) -> String {
        if let p = ProcessInfo.processInfo.environment[env], !p.isEmpty { return p }
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path,
            root + "/.build/debug/" + name,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }

    /// `airlock-bench` (AIRLOCK_BENCH_BINARY).
    static var bench: String { binary("airlock-bench", env: "AIRLOCK_BENCH_BINARY") }
    /// `airlock` (AIRLOCK_BINARY).
    static var airlock: String { binary("airlock", env: "AIRLOCK_BINARY") }

    /// Runs the benchmark runner with `arguments` and BENCH_* `settings`; stdout and stderr go
    /// to files in `scratch`.
    static func runBench(_ arguments: [String], settings: [String: String], scratch: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(bench, arguments, settings: settings, scratch: scratch)
    }

    /// Runs `executable` with `arguments`, the environment without BENCH_* variables but for
    /// `settings`; stdout and stderr go to files in `scratch`.
    static func run(
        _ executable: String, _ arguments: [String], settings: [String: String], scratch: String
    ) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BENCH_") }
        for (k, v) in settings { environment[k] = v }
        p.environment = environment
        let out = scratch + "/stdout", err = scratch + "/stderr"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOfFile: out, encoding: .utf8), try String(contentsOfFile: err, encoding: .utf8))
    }
}

@Suite struct SmokeTests {
    /// The real runner against the real airlock binary at a tiny scale: every row and table is
    /// there (the timings are not judged), and the exit status agrees with the verdicts. The
    /// time limit catches a run that is no longer tiny; it runs beside the rest of the suite on
    /// two cores, where it took over 60 s once (as the peers' smoke test, 3 minutes).
    @Test(.timeLimit(.minutes(3))) func aTinyRunProducesEveryRowAndTable() throws {
        let s = try Scratch()
        let work = s.path + "/work"
        let settings = [
            "BENCH_SCALE": "0.005", "BENCH_RUNS": "1", "BENCH_SETTLE_SECONDS": "0", "BENCH_SWITCHES": "2",
            "BENCH_SCALE_FILES": "20 40 80", "BENCH_REFERENCE_SECONDS": "1",
        ]
        let started = Date()
        let r = try Built.runBench([Built.airlock, work], settings: settings, scratch: s.path)
        let seconds = Date().timeIntervalSince(started)
        #expect(r.status == 0 || r.status == 1, "exit \(r.status); stderr:\n\(r.stderr.suffix(3000))")
        let md = r.stdout
        for heading in Report.sections where heading != "### Scale: time per file and memory" {
            #expect(md.contains(heading + "\n"), "\(heading)")
        }
        #expect(md.contains("### Scale: time per file and memory from 20 to 80 files\n"))
        #expect(md.contains("- dataset: BENCH_SCALE=0.005, "))
        for row in ["pack", "verify", "install"] {
            #expect(md.contains("| \(row) | "), "\(row)")
            #expect(md.contains("- \(row)_airlock: "))
            #expect(md.contains("- \(row)_baseline: "))
        }
        for n in [20, 40, 80] {
            for c in ["| pack | 1 |", "| verify | 1 |", "| install | 1 |", "| audit | 1 |", "| (reference: zstd -dc \\| tar -x, sync) | 1 |"] {
                #expect(md.range(of: "\n| \(n) | [0-9]+ \\\(c)", options: .regularExpression) != nil, "scale \(n) \(c)")
            }
        }
        for line in [
            "| small (small-agent, 10 MiB weights) | 4 |", "| large (bench-agent, BENCH_SCALE=0.005) |",
            "| start-up reference: `airlock --help` |", "| `airlock status small-agent` (reads the site) |",
            "| **added by the second release** |", "| **delta bundle (out-v2-delta.airlock)** |",
            "| pack the second release (--base out.airlock / full) |", "| install it into a site holding out.airlock |",
            "| SHA-256 (openssl speed -evp sha256, 1 MiB blocks) |", "| zstd -1 compress (zstd -b1 -T1,",
            "- deltapack_delta: ", "- deltainst_full: ", "- scale 80 tarx: ", "- rollback small-agent (ms): ",
            "- activate bench-agent (ms): ", "- airlock --help (ms): ", "- flat, rollback: ", "- flat, activate: ",
            "- the switch itself < 10 ms", "- added <= changed + 1% of the release", "- delta <= allowance: ",
            "- flat, install: ", "- memory, audit: ", "Bundle id: sha256:",
        ] {
            #expect(md.contains(line), "\(line)")
        }
        #expect(!md.contains("WARNING"), "\(md)")
        // Every target has a verdict, and the exit status follows the FAILs.
        let summary = md.split(separator: "\n").first { $0.hasSuffix(" FAIL.") && $0.contains(" targets: ") }
        #expect(summary?.hasPrefix("20 targets: ") == true, "\(summary ?? "no summary")")
        let failed = md.contains("\n- FAIL: ")
        #expect(r.status == (failed ? 1 : 0))
        // The report is kept beside the logs; the sites and extraction folders are gone.
        #expect((try? String(contentsOfFile: work + "/results/report.md", encoding: .utf8)) == md)
        #expect(!FileManager.default.fileExists(atPath: work + "/sites"))
        #expect(!FileManager.default.fileExists(atPath: work + "/extract"))
        #expect(seconds < 180)
    }

    @Test func aFailingCommandHasItsOwnExitStatusAndNoReport() throws {
        let s = try Scratch()
        // An "airlock" that has an install command but cannot generate a key.
        let fake = s.path + "/airlock"
        try "#!/bin/sh\nif [ \"$1\" = install ]; then echo 'USAGE: airlock install <bundle>'; exit 0; fi\necho \"refused: $*\" >&2\nexit 3\n"
            .write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        let r = try Built.runBench([fake, s.path + "/work"], settings: ["BENCH_SCALE": "0.001", "BENCH_SETTLE_SECONDS": "0"], scratch: s.path)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("ERROR:"))
        #expect(r.stderr.contains("exited with status 3"))
    }

    @Test func badSettingsAreRefusedBeforeAnythingRuns() throws {
        let s = try Scratch()
        for settings in [["BENCH_RUNS": "0"], ["BENCH_SCALE": "65"], ["BENCH_SCALE": "-1"], ["BENCH_SCALE_FILES": "100 10"], ["BENCH_SCALE_FILES": "100"]] {
            let r = try Built.runBench([Built.airlock, s.path + "/work"], settings: settings, scratch: s.path)
            #expect(r.status == 64, "\(settings): \(r.status) \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: s.path + "/work/results"))
        }
        let missing = try Built.runBench([s.path + "/no-airlock", s.path + "/work"], settings: [:], scratch: s.path)
        #expect(missing.status == 64)
        #expect(missing.stderr.contains("airlock binary not found"))
    }
}
