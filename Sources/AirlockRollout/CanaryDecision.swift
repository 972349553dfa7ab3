import Foundation

/// What the canary should do now.
public enum CanaryVerdict: Sendable, Equatable, Codable {
    /// The candidate is worse on `metric` beyond its abort margin, with the anytime bound:
    /// stop sending it tasks.
    case abort(metric: CanaryMetric)
    /// The horizon is reached and the candidate is non-inferior on every metric: advance to the
    /// next step (or promote at the last).
    case advance
    /// The horizon is reached and the candidate is not shown non-inferior on `metrics`, nor
    /// worse: stop at this weight and alert; a person decides.
    case hold(metrics: [CanaryMetric])
    /// Keep collecting tasks.
    case `continue`
}

/// The numbers behind the decision on one metric, for the alert's table. All on the metric's
/// harm scale (positive is worse for the candidate; see `CanaryMetric`).
public struct MetricComparison: Sendable, Equatable, Codable {
    /// The metric.
    public var metric: CanaryMetric
    /// The incumbent's task count.
    public var incumbentTasks: Int
    /// The incumbent's mean (a share, or the mean log cost).
    public var incumbentMean: Double
    /// The candidate's task count.
    public var candidateTasks: Int
    /// The candidate's mean (a share, or the mean log cost).
    public var candidateMean: Double
    /// The harm h, signed so that positive is worse.
    public var harm: Double
    /// The variance V of the harm, s_c^2/n_c + s_i^2/n_i.
    public var variance: Double
    /// The half-width w of the anytime (confidence-sequence) bound.
    public var abortHalfWidth: Double
    /// The margin `harm - abortHalfWidth` must exceed for an abort.
    public var abortMargin: Double
    /// The upper bound of the harm for non-inferiority, h + z(1 - beta) sqrt(V).
    public var nonInferiorityBound: Double
    /// The margin `nonInferiorityBound` must stay below to be non-inferior.
    public var nonInferiorityMargin: Double

    /// The lower bound of the harm, `harm - abortHalfWidth`, valid at any look.
    public var harmLowerBound: Double { harm - abortHalfWidth }
    /// Whether the harm is shown to exceed the abort margin.
    public var exceedsAbortMargin: Bool { harmLowerBound > abortMargin }
    /// Whether the candidate is shown non-inferior on this metric (a fixed-horizon check: it
    /// means something at the horizon only).
    public var isNonInferior: Bool { nonInferiorityBound < nonInferiorityMargin }
}

/// The canary's decision: abort at any look, advance only at a fixed horizon (ADR 0008).
///
/// At every look, for each metric, with h the harm and V = s_c^2/n_c + s_i^2/n_i its variance:
/// - abort when h - w > abort margin and both releases have `minimumCandidateTasks`, where
///   w = sqrt(2V(V + tau^2)/tau^2 * (ln(1/a) + 0.5 ln(1 + tau^2/V))) is the half-width of the
///   normal-mixture confidence sequence (the mSPRT's), which holds however often it is checked,
///   at a = alpha/3 per metric (so alpha over the three);
/// - at `horizon` candidate tasks, advance when h + z(1 - beta) sqrt(V) < non-inferiority
///   margin for every metric, otherwise hold;
/// - otherwise continue.
///
/// Pure: the same statistics and settings give the same decision. The caller acts on the first
/// verdict other than `continue`; the non-inferiority check is made once, at the horizon.
public struct CanaryDecision: Sendable, Equatable, Codable {
    /// The verdict.
    public var verdict: CanaryVerdict
    /// The numbers for each metric, in `CanaryMetric.allCases` order; empty while either
    /// release has fewer than 2 tasks (no variance yet).
    public var comparisons: [MetricComparison]

    /// A decision given as its parts.
    public init(verdict: CanaryVerdict, comparisons: [MetricComparison]) {
        self.verdict = verdict
        self.comparisons = comparisons
    }

    /// The smallest variance used, so that releases whose values are all equal (a variance of
    /// 0) still give a finite bound; far below any variance of real data.
    public static let varianceFloor = 1e-12

    /// Decides from the incumbent's and the candidate's statistics. `settings` should have no
    /// `problems`.
    public static func decide(incumbent: ReleaseStats, candidate: ReleaseStats, settings: DecisionSettings) -> CanaryDecision {
        let comparisons = CanaryMetric.allCases.compactMap { compare($0, incumbent: incumbent, candidate: candidate, settings: settings) }
        guard comparisons.count == CanaryMetric.allCases.count,
            candidate.tasks >= settings.minimumCandidateTasks, incumbent.tasks >= settings.minimumCandidateTasks
        else {
            return CanaryDecision(verdict: .continue, comparisons: comparisons)
        }
        if let worse = comparisons.first(where: \.exceedsAbortMargin) {
            return CanaryDecision(verdict: .abort(metric: worse.metric), comparisons: comparisons)
        }
        guard candidate.tasks >= settings.horizon else {
            return CanaryDecision(verdict: .continue, comparisons: comparisons)
        }
        let unproven = comparisons.filter { !$0.isNonInferior }.map(\.metric)
        return CanaryDecision(verdict: unproven.isEmpty ? .advance : .hold(metrics: unproven), comparisons: comparisons)
    }

    /// The comparison on one metric; nil while either release has fewer than 2 values.
    public static func compare(
        _ metric: CanaryMetric, incumbent: ReleaseStats, candidate: ReleaseStats, settings: DecisionSettings
    ) -> MetricComparison? {
        let i = incumbent[metric]
        let c = candidate[metric]
        guard let vi = i.variance(asProportion: metric.isProportion), let vc = c.variance(asProportion: metric.isProportion) else {
            return nil
        }
        let m = settings[metric]
        let harm = metric == .success ? i.mean - c.mean : c.mean - i.mean
        let v = max(vc / Double(c.count) + vi / Double(i.count), varianceFloor)
        return MetricComparison(
            metric: metric, incumbentTasks: i.count, incumbentMean: i.mean, candidateTasks: c.count, candidateMean: c.mean,
            harm: harm, variance: v,
            abortHalfWidth: anytimeHalfWidth(variance: v, tau: m.smallestHarm, alpha: settings.alpha / Double(CanaryMetric.allCases.count)),
            abortMargin: m.abortMargin, nonInferiorityBound: harm + Normal.quantile(1 - settings.beta) * v.squareRoot(),
            nonInferiorityMargin: m.nonInferiorityMargin)
    }

    /// The half-width of the normal-mixture confidence sequence for an estimate of variance
    /// `variance`, mixing over effects with spread `tau`, at error rate `alpha`:
    /// sqrt(2V(V + tau^2)/tau^2 * (ln(1/alpha) + 0.5 ln(1 + tau^2/V))). The chance that the
    /// estimate is ever further than this from the truth, over all looks, is at most alpha.
    public static func anytimeHalfWidth(variance v: Double, tau: Double, alpha: Double) -> Double {
        let t2 = tau * tau
        return (2 * v * (v + t2) / t2 * (log(1 / alpha) + 0.5 * log(1 + t2 / v))).squareRoot()
    }

    /// The comparisons as a plain-text table for an alert: tasks and means per release (cost as
    /// the geometric-mean cost per task in dollars), the harm, and the bounds that decide.
    public func table() -> String {
        func cell(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        func number(_ value: Double, _ width: Int, signed: Bool = false) -> String {
            cell(String(format: signed ? "%+.4f" : "%.4f", value), width)
        }
        var lines = ["metric        n(inc)  n(cand)  incumbent  candidate     harm  lower(h-w)  abort>  upper(NI)     NI<"]
        for c in comparisons {
            let means =
                c.metric == .cost
                ? [c.incumbentMean, c.candidateMean].map { cell(String(format: "$%.4f", exp($0) - ReleaseStats.costEpsilon), 11) }
                : [c.incumbentMean, c.candidateMean].map { number($0, 11) }
            let row = [
                c.metric.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0), cell(String(c.incumbentTasks), 8),
                cell(String(c.candidateTasks), 9), means[0], means[1], number(c.harm, 9, signed: true),
                number(c.harmLowerBound, 12, signed: true), number(c.abortMargin, 8), number(c.nonInferiorityBound, 11, signed: true),
                number(c.nonInferiorityMargin, 8),
            ]
            lines.append(row.joined())
        }
        return lines.joined(separator: "\n")
    }
}

/// The standard normal distribution's quantile function.
enum Normal {
    /// The z with P(Z <= z) = p, for 0 < p < 1: Acklam's rational approximation (relative
    /// error below 1.15e-9), enough for the bounds' one-digit-after-the-point precision.
    /// A `p` outside (0, 1) (settings with `problems`) is clamped into it, for a finite answer.
    static func quantile(_ p: Double) -> Double {
        let p = min(max(p, 1e-300), 1 - 1e-16)
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low {
            return -quantile(1 - p)
        }
        let q = p - 0.5
        let r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }
}
