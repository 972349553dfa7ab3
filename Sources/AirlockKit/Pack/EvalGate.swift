import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The eval gate a release declares in `airlock.yaml` (docs/release.md, "Eval gate").
public struct EvalSpec: Equatable, Sendable {
    /// The command, run by `/bin/sh -c` in the release directory.
    public var command: String
    /// The lowest passing score, 0 to 1.
    public var threshold: Double
    /// Every run must pass; the recorded score is the lowest.
    public var runs = 1
    /// Seconds a run may take before it is killed and the gate fails (`eval.timeout`).
    public var timeoutSeconds: Double = 600
    /// Files and folders of the release directory the suite consists of (its digest covers them).
    public var files: [String] = []
}

/// What one run printed: `{"score": 0.93, "cases": [{"id": "refund-1", "passed": true}, ...]}`.
public struct EvalOutcome: Equatable, Sendable {
    /// The score the run printed, 0 to 1.
    public var score: Double
    /// How many cases passed.
    public var passed: Int
    /// How many cases the run printed, at least 1.
    public var total: Int
    /// The ids of the cases that failed, in the order printed.
    public var failedCases: [String]

    static func parse(_ bytes: [UInt8]) throws -> EvalOutcome {
        func bad(_ what: String) -> AirlockError {
            AirlockError(
                .invalidRelease, .evalOutputInvalid,
                "the eval printed \(what); it must print one JSON object like {\"score\": 0.93, \"cases\": [{\"id\": \"refund-1\", \"passed\": true}]} on stdout (logs go to stderr)"
            )
        }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw bad("something that is not strict JSON (\(error))") }
        guard case .object(let o) = v else { throw bad("JSON that is not an object") }
        guard case .number(let text) = o["score"], let score = Double(text), score.isFinite, (0...1).contains(score) else {
            throw bad("no \"score\" from 0 to 1")
        }
        guard let cases = o["cases"]?.arrayValue else { throw bad("no \"cases\" list") }
        guard !cases.isEmpty else { throw bad("an empty \"cases\" list (a suite of no case proves nothing)") }
        var passed = 0
        var failed: [String] = []
        var ids = Set<String>()
        for (k, c) in cases.enumerated() {
            guard case .object(let co) = c, let id = co["id"]?.stringValue, let ok = co["passed"]?.boolValue else {
                throw bad("cases[\(k)] without a string \"id\" and a boolean \"passed\"")
            }
            guard ids.insert(id).inserted else { throw bad("case \"\(id)\" twice") }
            if ok { passed += 1 } else { failed.append(id) }
        }
        return EvalOutcome(score: score, passed: passed, total: cases.count, failedCases: failed)
    }
}

/// Runs a release's eval gate (`pack` does, before it writes anything).
public enum EvalGate {
    static let maxOutputBytes = 16 << 20

    /// Runs the suite `spec.runs` times in `directory`; returns the attestation when every run
    /// passes. Throws `eval-below-threshold` (exit 4) naming the failing cases otherwise;
    /// `eval-failed` when the command cannot start, fails or times out; `eval-output-invalid` when
    /// it prints no valid result; `write-failed` when no scratch folder can be made; `wait-failed`;
    /// and what `suiteDigest` throws.
    public static func run(_ spec: EvalSpec, directory: String, progress: (@Sendable (String) -> Void)? = nil) throws -> EvalAttestation {
        let suite = try suiteDigest(spec, directory: directory)
        var lowest: EvalOutcome?
        for k in 1...spec.runs {
            progress?("eval run \(k) of \(spec.runs): \(spec.command)")
            let outcome = try runOnce(spec, directory: directory, run: k)
            guard outcome.score >= spec.threshold else {
                let failing = outcome.failedCases.prefix(10).joined(separator: ", ") + (outcome.failedCases.count > 10 ? ", ..." : "")
                throw AirlockError(
                    .policy, .evalBelowThreshold,
                    "eval run \(k) of \(spec.runs) scored \(EvalAttestation.decimal(outcome.score)), below the threshold \(EvalAttestation.decimal(spec.threshold)) (\(outcome.passed) of \(outcome.total) cases passed"
                        + (failing.isEmpty ? "" : "; failed: \(failing)") + "); no bundle was written")
            }
            if lowest == nil || outcome.score < lowest!.score { lowest = outcome }
        }
        let l = lowest!
        return EvalAttestation(
            suite: suite, command: spec.command, score: l.score, threshold: spec.threshold, passed: l.passed, total: l.total, runs: spec.runs)
    }

    /// SHA-256 over `airlock.eval/v1\n`, `command <command>\n`, then `<sha256 hex> <path>\n` for
    /// every regular file the suite declares (folders walked), sorted by path bytes. Throws
    /// `eval-file-missing`, `eval-file-unreadable` and `eval-file-refused`, and `permission-denied`,
    /// `file-not-found`, `open-failed` or `read-failed` for a file it cannot hash.
    public static func suiteDigest(_ spec: EvalSpec, directory: String) throws -> SHA256Digest {
        var files: [String] = []
        func walk(_ rel: String) throws {
            let full = directory + "/" + rel
            var st = stat()
            guard lstat(full, &st) == 0 else {
                throw AirlockError(.invalidRelease, .evalFileMissing, "eval.files names \(rel), which does not exist in \(directory)")
            }
            switch st.st_mode & S_IFMT {
            case S_IFREG: files.append(rel)
            case S_IFDIR:
                let names: [String]
                do { names = try FileManager.default.contentsOfDirectory(atPath: full) } catch {
                    throw AirlockError(.invalidRelease, .evalFileUnreadable, "eval.files: cannot read the folder \(rel); fix its permissions")
                }
                for n in names { try walk(rel + "/" + n) }
            default:
                throw AirlockError(.invalidRelease, .evalFileRefused, "eval.files: \(rel) is not a regular file or folder (symlinks are not followed)")
            }
        }
        for f in spec.files { try walk(f) }
        files = Array(Set(files)).sorted(by: PathRules.precedes)
        let h = SHA256Hasher()
        h.update(Array("airlock.eval/v1\ncommand \(spec.command)\n".utf8))
        for f in files {
            let d = try FileIO.sha256(of: directory + "/" + f)
            h.update(Array("\(d.hex) \(f)\n".utf8))
        }
        return h.finish()
    }

    /// The environment an eval runs in: nothing of the packer's but PATH.
    static func environment(directory: String, home: String, run: Int, runs: Int) -> [String] {
        [
            "PATH=\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")", "HOME=\(home)", "TMPDIR=\(home)",
            "LANG=C.UTF-8", "AIRLOCK_RELEASE_DIR=\(directory)", "AIRLOCK_EVAL_RUN=\(run)", "AIRLOCK_EVAL_RUNS=\(runs)",
        ]
    }

    static func runOnce(_ spec: EvalSpec, directory: String, run: Int) throws -> EvalOutcome {
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        var template = Array((NSTemporaryDirectory() + "/airlock-eval-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw AirlockError.io(.writeFailed, "cannot create a scratch folder for the eval", errno: errno) }
        let scratch = String(cString: made)
        defer { FileIO.removeTree(scratch) }
        let out = scratch + "/.stdout", err = scratch + "/.stderr"
        let argv = ["/bin/sh", "-c", "cd \"$0\" && exec /bin/sh -c \"$1\"", absolute, spec.command]
        let env = environment(directory: absolute, home: scratch, run: run, runs: spec.runs)
        let outcome: Subprocess.Outcome
        do {
            outcome = try Subprocess.run(argv, environment: env, stdout: .file(out), stderr: .file(err), timeoutSeconds: spec.timeoutSeconds)
        } catch let e as AirlockError where e.code == "spawn-failed" {
            throw AirlockError(.invalidRelease, .evalFailed, "cannot start the eval: \(e.message)")
        }
        if outcome == .timedOut {
            throw AirlockError(
                .invalidRelease, .evalFailed, "eval run \(run) did not finish within \(Int(spec.timeoutSeconds)) s (eval.timeout); no bundle was written")
        }
        if outcome != .exited(0) {
            let log = (try? FileIO.read(err, limit: 1 << 20, what: "eval output")) ?? []
            let tail = String(decoding: log.suffix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw AirlockError(.invalidRelease, .evalFailed, "eval run \(run) \(outcome.how)" + (tail.isEmpty ? "" : ": \(tail)") + "; no bundle was written")
        }
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(out, limit: maxOutputBytes, what: "eval output")
        } catch {
            throw AirlockError(.invalidRelease, .evalOutputInvalid, "eval run \(run) printed more than \(maxOutputBytes >> 20) MiB on stdout")
        }
        return try EvalOutcome.parse(bytes)
    }
}
