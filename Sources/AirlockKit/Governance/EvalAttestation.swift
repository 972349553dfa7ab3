import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The passing result `pack` signs into the manifest as `attestations.eval`:
/// `{"suite": "sha256:...", "command": "...", "score": 0.93, "threshold": 0.9,
///   "cases": {"passed": 47, "total": 50}, "runs": 3}`.
public struct EvalAttestation: Equatable, Sendable {
    /// The suite digest: SHA-256 over the command and the suite's files (`EvalGate.suiteDigest`).
    public var suite: SHA256Digest
    /// The eval command, as `airlock.yaml` gives it.
    public var command: String
    /// The recorded score, 0 to 1: the lowest of the runs.
    public var score: Double
    /// The vendor's threshold, 0 to 1: the lowest passing score.
    public var threshold: Double
    /// How many cases passed in the run whose score is recorded.
    public var passed: Int
    /// How many cases that run had, at least 1.
    public var total: Int
    /// How many times the suite ran, 1 to 100.
    public var runs: Int

    /// Whether the score is at or above the threshold.
    public var isPassing: Bool { score >= threshold }

    /// An attestation of the given fields, taken as they are (nothing is checked).
    public init(suite: SHA256Digest, command: String, score: Double, threshold: Double, passed: Int, total: Int, runs: Int) {
        self.suite = suite
        self.command = command
        self.score = score
        self.threshold = threshold
        self.passed = passed
        self.total = total
        self.runs = runs
    }

    /// Parses `attestations.eval` strictly; `source` names it in errors. Throws
    /// `eval-attestation-invalid`.
    public init(json: JSONValue, source: String) throws {
        func bad(_ what: String) -> AirlockError { .verification(.evalAttestationInvalid, "\(source) is invalid: \(what)") }
        guard case .object(let o) = json else { throw bad("not an object") }
        for k in o.keys where !["suite", "command", "score", "threshold", "cases", "runs"].contains(k) { throw bad("unknown field \"\(k)\"") }
        guard let s = o["suite"]?.stringValue, let suite = SHA256Digest(prefixed: s) else { throw bad("suite must be sha256:<hex>") }
        guard let command = o["command"]?.stringValue else { throw bad("command must be a string") }
        guard case .number(let st) = o["score"], let score = Double(st), (0...1).contains(score) else { throw bad("score must be a number from 0 to 1") }
        guard case .number(let tt) = o["threshold"], let threshold = Double(tt), (0...1).contains(threshold) else {
            throw bad("threshold must be a number from 0 to 1")
        }
        guard case .object(let c) = o["cases"], c.count == 2, let passed = c["passed"]?.unsignedInteger(), let total = c["total"]?.unsignedInteger(),
            passed <= total,
            total >= 1
        else { throw bad("cases must be {\"passed\": n, \"total\": m} with n <= m and m >= 1") }
        guard let runs = o["runs"]?.unsignedInteger(max: 100), runs >= 1 else { throw bad("runs must be a whole number from 1 to 100") }
        self.init(suite: suite, command: command, score: score, threshold: threshold, passed: Int(passed), total: Int(total), runs: Int(runs))
    }

    /// The attestation as the manifest holds it in `attestations.eval`.
    public var json: JSONValue {
        .object([
            "suite": .string(suite.prefixed), "command": .string(command), "score": .number(Self.decimal(score)),
            "threshold": .number(Self.decimal(threshold)), "cases": .object(["passed": .integer(passed), "total": .integer(total)]),
            "runs": .integer(runs),
        ])
    }

    /// A decimal JSON number for a score: the shortest text that reads back as the same Double.
    public static func decimal(_ x: Double) -> String {
        if x == 0 { return "0" }
        if x == 1 { return "1" }
        return "\(x)"
    }
}
