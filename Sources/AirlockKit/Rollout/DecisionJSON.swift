import AirlockFormat
import AirlockRollout

/// The JSON of a canary decision, for `canary status --json`, `serve`'s status and alerts.
public enum DecisionJSON {
    /// `{"verdict", "metrics": [{metric, incumbent_tasks, incumbent_mean, candidate_tasks,
    /// candidate_mean, harm, harm_lower_bound, abort_margin, non_inferiority_bound,
    /// non_inferiority_margin}], "table"}`. Cost means are on the log scale, as decided; the
    /// table shows them as dollars.
    public static func json(_ d: CanaryDecision) -> JSONValue {
        func n(_ x: Double) -> JSONValue { x.isFinite ? .number(EvalAttestation.decimal(x)) : .null }
        let verdict: String
        switch d.verdict {
        case .abort(let m): verdict = "abort (\(m.rawValue))"
        case .advance: verdict = "advance"
        case .hold(let ms): verdict = "hold (\(ms.map(\.rawValue).joined(separator: ", ")))"
        case .continue: verdict = "continue"
        }
        return .object([
            "verdict": .string(verdict),
            "metrics": .array(
                d.comparisons.map { c in
                    .object([
                        "metric": .string(c.metric.rawValue), "incumbent_tasks": .integer(c.incumbentTasks), "incumbent_mean": n(c.incumbentMean),
                        "candidate_tasks": .integer(c.candidateTasks), "candidate_mean": n(c.candidateMean), "harm": n(c.harm),
                        "harm_lower_bound": n(c.harmLowerBound), "abort_margin": n(c.abortMargin), "non_inferiority_bound": n(c.nonInferiorityBound),
                        "non_inferiority_margin": n(c.nonInferiorityMargin),
                    ])
                }),
            "table": .string(d.table()),
        ])
    }
}
