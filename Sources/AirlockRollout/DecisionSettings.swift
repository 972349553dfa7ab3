/// The margins of one metric, all on the metric's harm scale (positive is worse for the
/// candidate): points of a proportion for success and intervention, a log-ratio for cost.
public struct MetricSettings: Sendable, Equatable, Codable {
    /// The canary aborts when the lower confidence bound of the harm exceeds this: 0 aborts as
    /// soon as the candidate is shown to be worse at all.
    public var abortMargin: Double
    /// Tau, the smallest harm worth detecting: the spread of the normal mixture behind the
    /// abort bound, which is tightest for harms of about this size. Greater than 0.
    public var smallestHarm: Double
    /// The candidate is non-inferior on this metric when the upper bound of its harm at the
    /// horizon is below this. Greater than 0.
    public var nonInferiorityMargin: Double

    /// Margins given one by one.
    public init(abortMargin: Double, smallestHarm: Double, nonInferiorityMargin: Double) {
        self.abortMargin = abortMargin
        self.smallestHarm = smallestHarm
        self.nonInferiorityMargin = nonInferiorityMargin
    }
}

/// The settings of the canary's decision (ADR 0008). The defaults were checked by the seeded
/// simulation in `AirlockRolloutTests` at 5% weight: an identical candidate is aborted in well
/// under 1% of rollouts and promoted in more than 90%, a 5-point success regression or a 30%
/// cost increase is aborted in more than 99%.
///
/// Decoding fills a missing key with its default, so a configuration names only what it
/// changes; `problems` lists what a decoded value gets wrong.
public struct DecisionSettings: Sendable, Equatable, Codable {
    /// Success: abort when shown worse at all; tau and the non-inferiority margin 3 points.
    public static let defaultSuccess = MetricSettings(abortMargin: 0, smallestHarm: 0.03, nonInferiorityMargin: 0.03)
    /// Cost: abort when shown dearer at all; tau and the non-inferiority margin 0.10 on the log
    /// scale (about +10.5% in geometric-mean cost per task).
    public static let defaultCost = MetricSettings(abortMargin: 0, smallestHarm: 0.10, nonInferiorityMargin: 0.10)
    /// Intervention: abort when shown worse at all; tau and the non-inferiority margin 2 points.
    public static let defaultIntervention = MetricSettings(abortMargin: 0, smallestHarm: 0.02, nonInferiorityMargin: 0.02)

    /// The margins for success.
    public var success: MetricSettings
    /// The margins for cost (log scale).
    public var cost: MetricSettings
    /// The margins for intervention.
    public var intervention: MetricSettings
    /// The error rate of the anytime abort bounds over the three metrics together: each metric's
    /// bound uses alpha/3 (Bonferroni), so the chance that an identical candidate is ever
    /// aborted, however often the decision is made, is at most alpha (the bounds are two-sided
    /// and the abort uses one side, so in practice it is well under alpha/2). Default 0.05.
    public var alpha: Double
    /// The error rate of the non-inferiority check at the horizon, per metric (a harm at the
    /// margin passes with chance at most beta on that metric, so every metric must pass): the upper bound
    /// of the harm is h + z(1 - beta) sqrt(V). Default 0.05 (z = 1.645).
    public var beta: Double
    /// Tasks each release must have before the first look (the variance estimates need them).
    /// At least 2; default 30.
    public var minimumCandidateTasks: Int
    /// Candidate tasks at which the step ends: advance when non-inferior on every metric,
    /// otherwise hold. Default 2,000 (40,000 tasks in all at 5% weight).
    public var horizon: Int

    /// Settings; every argument has its documented default.
    public init(
        success: MetricSettings = defaultSuccess, cost: MetricSettings = defaultCost, intervention: MetricSettings = defaultIntervention,
        alpha: Double = 0.05, beta: Double = 0.05, minimumCandidateTasks: Int = 30, horizon: Int = 2000
    ) {
        self.success = success
        self.cost = cost
        self.intervention = intervention
        self.alpha = alpha
        self.beta = beta
        self.minimumCandidateTasks = minimumCandidateTasks
        self.horizon = horizon
    }

    /// Decodes the settings, with the default for each missing key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DecisionSettings()
        success = try c.decodeIfPresent(MetricSettings.self, forKey: .success) ?? d.success
        cost = try c.decodeIfPresent(MetricSettings.self, forKey: .cost) ?? d.cost
        intervention = try c.decodeIfPresent(MetricSettings.self, forKey: .intervention) ?? d.intervention
        alpha = try c.decodeIfPresent(Double.self, forKey: .alpha) ?? d.alpha
        beta = try c.decodeIfPresent(Double.self, forKey: .beta) ?? d.beta
        minimumCandidateTasks = try c.decodeIfPresent(Int.self, forKey: .minimumCandidateTasks) ?? d.minimumCandidateTasks
        horizon = try c.decodeIfPresent(Int.self, forKey: .horizon) ?? d.horizon
    }

    /// The margins of `metric`.
    public subscript(metric: CanaryMetric) -> MetricSettings {
        switch metric {
        case .success: return success
        case .cost: return cost
        case .intervention: return intervention
        }
    }

    /// What is wrong with these settings, one sentence each saying what to change; empty when
    /// they can be used. The caller refuses settings with problems (the decision assumes none).
    public var problems: [String] {
        var out: [String] = []
        for metric in CanaryMetric.allCases {
            let m = self[metric]
            if !(m.smallestHarm > 0 && m.smallestHarm.isFinite) {
                out.append("\(metric.rawValue).smallestHarm is \(m.smallestHarm); give a harm greater than 0")
            }
            if !(m.nonInferiorityMargin > 0 && m.nonInferiorityMargin.isFinite) {
                out.append("\(metric.rawValue).nonInferiorityMargin is \(m.nonInferiorityMargin); give a margin greater than 0")
            }
            if !(m.abortMargin >= 0 && m.abortMargin.isFinite) {
                out.append("\(metric.rawValue).abortMargin is \(m.abortMargin); give a margin of 0 or more")
            }
        }
        if !(alpha > 0 && alpha < 1) { out.append("alpha is \(alpha); give a rate between 0 and 1, such as 0.05") }
        if !(beta > 0 && beta < 0.5) { out.append("beta is \(beta); give a rate between 0 and 0.5, such as 0.05") }
        if minimumCandidateTasks < 2 { out.append("minimumCandidateTasks is \(minimumCandidateTasks); give 2 or more (30 by default)") }
        if horizon < minimumCandidateTasks {
            out.append("horizon is \(horizon), below minimumCandidateTasks (\(minimumCandidateTasks)); give a larger horizon")
        }
        return out
    }
}
