import AirlockFormat
import AirlockKit
import Foundation

/// What a replay found (docs/replay.md, "The report"): the divergence rates of the candidate
/// and of the baseline (the noise floor) against the recording, the tasks only the candidate
/// diverged on, each diverged task side by side, and which components changed.
public struct ReplayReport: Sendable {
    /// The release name.
    public let name: String
    /// The baseline.
    public let baseline: ReleaseChange.Side
    /// The candidate.
    public let candidate: ReleaseChange.Side
    let change: ReleaseChange
    let results: [Replay.TaskResult]
    /// The highest share of tasks the candidate may diverge on beyond the baseline.
    public let threshold: Double
    /// Recorded lines a stop of `serve` cut short, dropped when read.
    public let dropped: Int
    /// Where the tasks came from.
    public let source: String
    /// How long the gateway took per tool call (from a call's head to its answer), in ms.
    public let gateway: (calls: Int, p50: Double, p99: Double, max: Double)
    /// How long the replay took, releases started and stopped included.
    public let seconds: Double

    /// Tasks replayed.
    public var tasks: Int { results.count }
    /// Tasks on which the candidate differs from the recording.
    public var candidateDiverged: Int { results.filter { $0.candidate.divergence != nil }.count }
    /// Tasks on which the baseline differs from the recording: the noise floor.
    public var baselineDiverged: Int { results.filter { $0.baseline.divergence != nil }.count }
    /// Tasks on which only the candidate differs.
    public var beyondNoise: Int { results.filter(\.candidateOnly).count }
    /// The share of tasks the candidate diverged on beyond the noise floor.
    public var beyondNoiseRate: Double { tasks == 0 ? 0 : Double(beyondNoise) / Double(tasks) }
    /// The candidate's divergence beyond the noise floor is within the threshold.
    public var passed: Bool { beyondNoiseRate <= threshold + 1e-12 }

    static func rate(_ n: Int, _ of: Int) -> JSONValue { .number(EvalAttestation.decimal(of == 0 ? 0 : Double(n) / Double(of))) }

    /// The report as JSON (`airlock replay --json`).
    public var json: JSONValue {
        func side(_ s: ReleaseChange.Side) -> JSONValue {
            .object(["release": .string(s.release), "version": .string(s.version), "bundle_id": .string(s.bundleID.prefixed)])
        }
        return .object([
            "name": .string(name), "baseline": side(baseline), "candidate": side(candidate), "source": .string(source),
            "tasks": .integer(tasks), "dropped": .integer(dropped),
            "candidate_diverged": .integer(candidateDiverged), "candidate_divergence_rate": Self.rate(candidateDiverged, tasks),
            "baseline_diverged": .integer(baselineDiverged), "baseline_divergence_rate": Self.rate(baselineDiverged, tasks),
            "beyond_noise": .integer(beyondNoise), "beyond_noise_rate": Self.rate(beyondNoise, tasks),
            "threshold": .number(EvalAttestation.decimal(threshold)), "passed": .bool(passed),
            "change": change.json,
            "seconds": .number(String(format: "%.3f", seconds)),
            "gateway": .object([
                "calls": .integer(gateway.calls), "p50_ms": .number(String(format: "%.3f", gateway.p50)),
                "p99_ms": .number(String(format: "%.3f", gateway.p99)), "max_ms": .number(String(format: "%.3f", gateway.max)),
            ]),
            "diverged": .array(results.filter { $0.candidate.divergence != nil || $0.baseline.divergence != nil }.map(Self.taskJSON)),
        ])
    }

    static func verdict(_ r: Replay.TaskResult) -> String {
        guard r.candidateOnly else { return r.candidate.divergence == nil ? "baseline only (noise)" : "both (noise)" }
        switch r.task.outcome?.objectValue?["success"]?.boolValue {
        case true?: return "likely regression (the task succeeded)"
        case false?: return "likely fix (the task failed)"
        default: return "no recorded outcome"
        }
    }

    static func callsJSON(_ run: Replay.Run) -> JSONValue {
        .array(
            run.calls.map {
                .object([
                    "tool": .string($0.tool), "arguments": (try? JSONParser.parse($0.arguments)) ?? .null, "status": .string($0.status.rawValue),
                ])
            })
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes.prefix(4096), as: UTF8.self) }

    static func runJSON(_ run: Replay.Run) -> JSONValue {
        .object([
            "diverged": .bool(run.divergence != nil), "first_divergence": run.divergence.map { .string($0) } ?? .null,
            "timed_out": .bool(run.timedOut), "exact_answer": .bool(run.exactAnswer), "tool_calls": callsJSON(run),
            "answer": run.answers.last.map { .object(["status": .integer($0.status), "body": .string(text($0.body))]) } ?? .null,
        ])
    }

    static func recordedJSON(_ t: RecordedTask) -> JSONValue {
        let last = t.exchanges.last?.objectValue?["response"]?.objectValue ?? [:]
        return .object([
            "tool_calls": .array(
                t.toolCalls.map { .object(["tool": $0["tool"] ?? .null, "arguments": $0["arguments"] ?? .null, "status": $0["status"] ?? .null]) }),
            "answer": .object(["status": last["status"] ?? .null, "body": .string(text(Replay.body(last) ?? []))]),
        ])
    }

    static func taskJSON(_ r: Replay.TaskResult) -> JSONValue {
        .object([
            "task": .string(r.task.task), "outcome": r.task.outcome ?? .null, "beyond_noise": .bool(r.candidateOnly), "verdict": .string(verdict(r)),
            "versus_baseline": r.versusBaseline.map { .string($0) } ?? .null, "recorded": recordedJSON(r.task),
            "baseline": runJSON(r.baseline), "candidate": runJSON(r.candidate),
        ])
    }

    /// A few lines for a terminal.
    public var text: String {
        func pct(_ n: Int) -> String { String(format: "%.1f%%", tasks == 0 ? 0 : 100 * Double(n) / Double(tasks)) }
        var lines = [
            "\(name): replay of \(tasks) recorded tasks, candidate \(candidate.release) against baseline \(baseline.release)",
            "  candidate diverged on \(candidateDiverged) (\(pct(candidateDiverged))), baseline on \(baselineDiverged) (\(pct(baselineDiverged)), the noise floor)",
            "  beyond the noise floor: \(beyondNoise) (\(pct(beyondNoise))); threshold \(EvalAttestation.decimal(threshold * 100))%: \(passed ? "PASS" : "FAIL")",
        ]
        if dropped > 0 { lines.append("  \(dropped) recorded lines cut short by a stop of serve were dropped") }
        lines.append(
            String(
                format: "  %d tool calls answered from the recording, the gateway taking %.3f ms at p50, %.3f ms at p99; %.1f s in all", gateway.calls,
                gateway.p50, gateway.p99, seconds))
        lines.append(contentsOf: change.summary().split(separator: "\n").map { "  " + $0 })
        let shown = results.filter(\.candidateOnly)
        for r in shown.prefix(20) {
            lines.append("  \(r.task.task): \(r.candidate.divergence ?? "") [\(Self.verdict(r))]")
        }
        if shown.count > 20 { lines.append("  ... and \(shown.count - 20) more (--json or --html lists them all)") }
        return lines.joined(separator: "\n")
    }

    /// One self-contained HTML page (no external asset, no script).
    public var html: String {
        func esc(_ s: String) -> String {
            var o = ""
            for ch in s.unicodeScalars {
                switch ch {
                case "&": o += "&amp;"
                case "<": o += "&lt;"
                case ">": o += "&gt;"
                case "\"": o += "&quot;"
                case "'": o += "&#39;"
                default: o.unicodeScalars.append(ch)
                }
            }
            return o
        }
        func calls(_ list: [(String, String, String)]) -> String {
            list.isEmpty
                ? "<p class=\"none\">no tool call</p>"
                : "<ol>" + list.map { "<li><code>\(esc($0.0))</code> <code>\(esc($0.1))</code> <span class=\"st\">\(esc($0.2))</span></li>" }.joined() + "</ol>"
        }
        func runCalls(_ run: Replay.Run) -> [(String, String, String)] {
            run.calls.map { ($0.tool, String(decoding: $0.arguments, as: UTF8.self), $0.status.rawValue) }
        }
        func answer(_ run: Replay.Run) -> String {
            if run.timedOut { return "<p class=\"bad\">timed out (killed)</p>" }
            guard let a = run.answers.last else { return "<p class=\"bad\">no answer\(run.error.map { ": " + esc($0) } ?? "")</p>" }
            return "<p>status \(a.status)</p><pre>\(esc(Self.text(a.body)))</pre>"
        }
        var rows = ""
        for r in results where r.candidate.divergence != nil || r.baseline.divergence != nil {
            let recordedCalls = r.task.toolCalls.map {
                ($0["tool"]?.stringValue ?? "", CanonicalJSON.string($0["arguments"] ?? .null), $0["status"]?.stringValue ?? "")
            }
            let last = r.task.exchanges.last?.objectValue?["response"]?.objectValue ?? [:]
            let recordedAnswer = "<p>status \(last["status"].map { CanonicalJSON.string($0) } ?? "?")</p><pre>\(esc(Self.text(Replay.body(last) ?? [])))</pre>"
            rows += """
                <section class="task \(r.candidateOnly ? "beyond" : "noise")">
                <h3><code>\(esc(r.task.task))</code> <span class="badge \(r.candidateOnly ? "diverged" : "noisy")">\(esc(Self.verdict(r)))</span></h3>
                <p>candidate: \(esc(r.candidate.divergence ?? "as recorded")); baseline: \(esc(r.baseline.divergence ?? "as recorded"))\
                \(r.versusBaseline.map { "; the candidate first differs from the baseline at " + esc($0) } ?? "")</p>
                <div class="cols">
                <div><h4>recorded</h4>\(calls(recordedCalls))\(recordedAnswer)</div>
                <div><h4>baseline \(esc(baseline.release))</h4>\(calls(runCalls(r.baseline)))\(answer(r.baseline))</div>
                <div><h4>candidate \(esc(candidate.release))</h4>\(calls(runCalls(r.candidate)))\(answer(r.candidate))</div>
                </div>
                </section>

                """
        }
        let changed = change.components.filter { $0.status != "unchanged" }.map { c in
            "<li><b>\(esc(c.name))</b> \(esc(c.status)): "
                + esc((c.added.paths.map { "+" + $0 } + c.removed.paths.map { "-" + $0 } + c.changed.paths.map { "~" + $0 }).joined(separator: ", ")) + "</li>"
        }.joined()
        func pct(_ n: Int) -> String { String(format: "%.1f%%", tasks == 0 ? 0 : 100 * Double(n) / Double(tasks)) }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Replay of \(esc(name)): \(esc(candidate.release))</title>
            <style>
            body { font: 14px/1.4 sans-serif; margin: 24px; color: #222; background: #fff; }
            .verdict { display: inline-block; padding: 6px 14px; color: #fff; font-weight: bold; border-radius: 4px; }
            .pass { background: #1e8449; } .fail { background: #c0392b; }
            table.summary td, table.summary th { padding: 4px 12px; text-align: left; border-bottom: 1px solid #ddd; }
            .cols { display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 12px; }
            .cols > div { background: #f7f7f7; padding: 8px; border-radius: 4px; overflow: hidden; }
            pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; }
            .badge { font-size: 12px; padding: 2px 8px; border-radius: 3px; color: #fff; }
            .badge.diverged { background: #c0392b; } .badge.noisy { background: #7f8c8d; }
            section.task { border-top: 2px solid #eee; margin-top: 16px; }
            .st { color: #555; font-size: 12px; } .none { color: #777; } .bad { color: #c0392b; font-weight: bold; }
            </style></head><body>
            <h1>Replay of \(esc(name))</h1>
            <p><span class="verdict \(passed ? "pass" : "fail")">\(passed ? "PASS" : "FAIL")</span>
            candidate <code>\(esc(candidate.release))</code> (\(esc(candidate.bundleID.prefixed))) against baseline <code>\(esc(baseline.release))</code>
            (\(esc(baseline.bundleID.prefixed)))</p>
            <table class="summary">
            <tr><th>tasks replayed</th><td>\(tasks)</td></tr>
            <tr><th>candidate diverged</th><td>\(candidateDiverged) (\(pct(candidateDiverged)))</td></tr>
            <tr><th>baseline diverged (noise floor)</th><td>\(baselineDiverged) (\(pct(baselineDiverged)))</td></tr>
            <tr><th>beyond the noise floor</th><td>\(beyondNoise) (\(pct(beyondNoise))), threshold \(esc(EvalAttestation.decimal(threshold * 100)))%</td></tr>
            <tr><th>recorded tasks from</th><td><code>\(esc(source))</code></td></tr>
            </table>
            <h2>What changed</h2>
            <ul>\(changed.isEmpty ? "<li>no component</li>" : changed)</ul>
            <h2>Diverged tasks</h2>
            \(rows.isEmpty ? "<p>none</p>" : rows)
            </body></html>

            """
    }
}
