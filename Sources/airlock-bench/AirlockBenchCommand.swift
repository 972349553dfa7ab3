import AirlockBench
import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses of the benchmark.
enum BenchExit {
    /// Every command ran; at least one target FAILed.
    static let targetFailed: Int32 = 1
    /// A command failed (or its output was wrong): there is no report.
    static let commandFailed: Int32 = 2
}

/// `airlock-bench AIRLOCK WORKDIR`: benchmarks the airlock binary against the standard tools
/// and prints a markdown report on standard output (progress goes to standard error).
@main
struct AirlockBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airlock-bench",
        abstract: "Benchmark the airlock CLI against the standard tools and print a markdown report.",
        discussion: """
            Rows: pack, verify and install (airlock against openssl, tar and zstd, alternating, with
            ratio targets), and the rollback, disk, delta, scale and reference tables. Datasets are
            generated once per scale into WORKDIR and reused; per-run logs land in WORKDIR/results.

            Each option falls back to its environment variable: BENCH_RUNS (3), BENCH_SCALE (1, about
            2 GiB; 0.05 is about 100 MiB), BENCH_SETTLE_SECONDS (360), BENCH_SWITCHES (20),
            BENCH_SCALE_FILES ("1000 10000 100000", or "100 1000 10000" below scale 1),
            BENCH_SCALE_RUNS_LARGEST (BENCH_RUNS), BENCH_REFERENCE_SECONDS (2 for openssl, 3 for zstd).

            Exit status: 0 when every target is PASS or "not established"; 1 when a target FAILed;
            2 when a command failed (no report); 64 for bad arguments.
            """)

    @Argument(help: "The airlock binary to measure.")
    var airlock: String

    @Argument(help: "The work folder (datasets, bundles, sites, results).")
    var workdir: String

    @Option(help: "Timed runs per tool and step (BENCH_RUNS).")
    var runs: Int?

    @Option(help: "Dataset size factor, in (0, 64] (BENCH_SCALE).")
    var scale: String?

    @Option(help: "Seconds to wait after a deletion before creating many files (BENCH_SETTLE_SECONDS).")
    var settleSeconds: Int?

    @Option(help: "Timed pointer switches per release (BENCH_SWITCHES).")
    var switches: Int?

    @Option(help: "File counts of the scale table, ascending, space-separated (BENCH_SCALE_FILES).")
    var scaleFiles: String?

    @Option(help: "Timed runs at the scale table's largest file count (BENCH_SCALE_RUNS_LARGEST).")
    var scaleRunsLargest: Int?

    @Option(help: "Seconds of each reference throughput measurement (BENCH_REFERENCE_SECONDS).")
    var referenceSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Only write a shape's release and its second version into WORKDIR/v1 and WORKDIR/v2 (reused when present), then exit: many (300 MiB of weights) or large (1,536 MiB), both with the same code, prompts and 20,000 index documents; tiny (about 12 MiB in all, for the tests) (scripts/bench-peers.sh).",
            valueName: "shape"))
    var writeRelease: String?

    /// The settings, from the options, then the environment, then the defaults.
    func settings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        func number(_ option: Int?, _ name: String, _ fallback: Int, minimum: Int) throws -> Int {
            if let option {
                guard option >= minimum else { throw ValidationError("\(name) must be at least \(minimum) (got \(option))") }
                return option
            }
            guard let text = environment[name], !text.isEmpty else { return fallback }
            guard let v = Int(text), v >= minimum else { throw ValidationError("\(name) must be an integer of at least \(minimum) (got '\(text)')") }
            return v
        }
        let runs = try number(runs, "BENCH_RUNS", 3, minimum: 1)
        let scaleText = scale ?? environment["BENCH_SCALE"].flatMap { $0.isEmpty ? nil : $0 } ?? "1"
        guard scaleText.allSatisfy({ $0.isNumber || $0 == "." }), let scale = Double(scaleText), scale > 0, scale <= 64 else {
            throw ValidationError("BENCH_SCALE must be a number in (0, 64] (got '\(scaleText)')")
        }
        let filesText = scaleFiles ?? environment["BENCH_SCALE_FILES"].flatMap { $0.isEmpty ? nil : $0 }
        let files: [Int]
        if let filesText {
            files = try filesText.split(separator: " ").map {
                guard let n = Int($0), n >= 1, n <= 10_000_000 else {
                    throw ValidationError("BENCH_SCALE_FILES: '\($0)' is not a file count (1 to 10,000,000)")
                }
                return n
            }
        } else {
            files = scale >= 1 ? [1000, 10000, 100_000] : [100, 1000, 10000]
        }
        guard files.count >= 2 else { throw ValidationError("BENCH_SCALE_FILES needs at least two file counts") }
        guard zip(files, files.dropFirst()).allSatisfy({ $0 < $1 }) else { throw ValidationError("BENCH_SCALE_FILES must be ascending") }
        let reference = referenceSeconds ?? environment["BENCH_REFERENCE_SECONDS"].flatMap { Int($0) }
        if let reference, reference < 1 { throw ValidationError("BENCH_REFERENCE_SECONDS must be at least 1") }

        var binary = airlock
        if !binary.contains("/") { binary = Bench.which(binary) ?? binary }
        if !binary.hasPrefix("/") { binary = FileManager.default.currentDirectoryPath + "/" + binary }
        var st = stat()
        guard stat(binary, &st) == 0, st.st_mode & S_IFMT == S_IFREG, access(binary, X_OK) == 0 else {
            throw ValidationError("airlock binary not found or not executable: \(airlock)")
        }
        do {
            try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot make the work folder \(workdir): \(error.localizedDescription)")
        }
        let work = URL(fileURLWithPath: workdir).standardizedFileURL.resolvingSymlinksInPath().path
        return Settings(
            airlock: binary, workdir: work, runs: runs, scale: scale, scaleText: scaleText,
            settleSeconds: try number(settleSeconds, "BENCH_SETTLE_SECONDS", 360, minimum: 0),
            switches: try number(switches, "BENCH_SWITCHES", 20, minimum: 1),
            scaleFiles: files, scaleRunsLargest: try number(scaleRunsLargest, "BENCH_SCALE_RUNS_LARGEST", runs, minimum: 1),
            referenceSeconds: reference)
    }

    func run() throws {
        setenv("LC_ALL", "C", 1)
        if let shape = writeRelease {
            let shapes = ["many": LargeRelease(scale: 1, weightsMiB: 300), "large": LargeRelease(scale: 1), "tiny": LargeRelease(scale: 0.005)]
            guard let release = shapes[shape] else { throw ValidationError("--write-release takes many, large or tiny (got '\(shape)')") }
            do {
                try Self.writeShape(release, into: workdir)
            } catch {
                log("ERROR: \(error)")
                throw ExitCode(BenchExit.commandFailed)
            }
            return
        }
        let settings = try settings()
        let results: BenchResults
        do {
            results = try Bench(settings).run()
        } catch let e as BenchError {
            log("ERROR: \(e.description)")
            throw ExitCode(BenchExit.commandFailed)
        } catch {
            log("ERROR: \(error)")
            throw ExitCode(BenchExit.commandFailed)
        }
        let report = Report(results)
        print(report.markdown, terminator: "")
        try? report.markdown.write(toFile: settings.workdir + "/results/report.md", atomically: true, encoding: .utf8)
        for v in report.verdicts where v.verdict != .pass {
            log("\(v.verdict.rawValue): \(v.section), \(v.check)")
        }
        log("done; details in \(settings.workdir)/results")
        if !report.verdicts.failures.isEmpty {
            throw ExitCode(BenchExit.targetFailed)
        }
    }

    /// Writes `release` into `folder/v1`, its revision with 104 index documents rewritten into
    /// `folder/v2` and the one with a prompt line appended into `folder/v2-append` (hard links
    /// but for the changed files), each through a `.partial` folder renamed into place; a marker beside them
    /// names what they hold, so that a second call with the same shape reuses them.
    static func writeShape(_ release: LargeRelease, into folder: String) throws {
        let marker = folder + "/shape.txt"
        let spread = release.spreadRevision
        let description =
            release.plan.description + " v2=2 rewritten=\(spread.rewritten.count + 1) v2-append=1 changed=" + LargeRelease.revision.changedPath
        if Bench.readMarker(marker) == description && Bench.isDirectory(folder + "/v2-append") {
            log("reusing \(folder)/v1, v2 and v2-append (\(description))")
            return
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = FileSystem.unlink(marker)
        for dir in ["v1", "v2", "v2-append"].flatMap({ [$0, $0 + ".partial"] }) { try? FileManager.default.removeItem(atPath: folder + "/" + dir) }
        log("writing \(folder)/v1 (\(release.plan.description)), v2 and v2-append")
        try ReleaseWriter.write(release.plan, to: folder + "/v1.partial")
        guard FileSystem.rename(folder + "/v1.partial", folder + "/v1") == 0 else { throw BenchError(description: "cannot rename \(folder)/v1.partial") }
        for (dir, revision) in [("v2", spread), ("v2-append", LargeRelease.revision)] {
            try ReleaseWriter.writeRevision(revision, of: folder + "/v1", to: folder + "/\(dir).partial")
            guard FileSystem.rename(folder + "/\(dir).partial", folder + "/" + dir) == 0 else {
                throw BenchError(description: "cannot rename \(folder)/\(dir).partial")
            }
        }
        sync()
        try Bench.writeMarker(marker, description)
    }
}
