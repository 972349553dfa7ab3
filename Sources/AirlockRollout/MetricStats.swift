import Foundation

/// What one finished agent task reports, the input of the canary's statistics and of the
/// breakers. A task with no outcome by its deadline is recorded as a failure, and each task's
/// outcome is recorded once (the caller keeps track of both).
public struct TaskOutcome: Sendable, Equatable, Codable {
    /// Whether the task succeeded. `false` counts as an error for the breakers.
    public var succeeded: Bool
    /// What the task cost, in US dollars: finite and at least 0 (see `init`).
    public var cost: Double
    /// Whether a person had to step in.
    public var neededIntervention: Bool

    /// The largest cost recorded, in US dollars; larger costs are recorded as this one.
    public static let maximumCost: Double = 1_000_000

    /// An outcome. The caller validates `cost`; a value that is not a finite amount between 0
    /// and `maximumCost` is clamped (NaN and negative amounts to 0), so that the persisted sums
    /// stay finite whatever a provider reports.
    public init(succeeded: Bool, cost: Double, neededIntervention: Bool) {
        self.succeeded = succeeded
        self.cost = cost.isNaN ? 0 : min(max(cost, 0), Self.maximumCost)
        self.neededIntervention = neededIntervention
    }
}

/// A metric the canary compares. Each is signed so that a positive harm is worse for the
/// candidate (see `CanaryDecision`).
public enum CanaryMetric: String, Sendable, Equatable, Codable, CaseIterable {
    /// The share of tasks that succeeded (0/1 per task). Harm: incumbent - candidate.
    case success
    /// The cost per task on a log scale, `log(cost + ReleaseStats.costEpsilon)`. Harm:
    /// candidate - incumbent, a log-ratio (0.10 is about +10.5% in geometric-mean cost).
    case cost
    /// The share of tasks that needed a person (0/1 per task). Harm: candidate - incumbent.
    case intervention

    /// Whether the metric is a 0/1 proportion (its variance is smoothed, see `MetricStats`).
    public var isProportion: Bool { self != .cost }
}

/// The sufficient statistics of one metric of one release: the number of tasks, the sum of
/// their values and the sum of the squares. Adding two of them gives the statistics of the
/// union, so that each process can keep its own and the caller can merge and persist them.
public struct MetricStats: Sendable, Equatable, Codable {
    /// The number of values.
    public private(set) var count: Int
    /// The sum of the values.
    public private(set) var sum: Double
    /// The sum of the squares of the values.
    public private(set) var sumOfSquares: Double

    /// No values.
    public init() {
        self.init(count: 0, sum: 0, sumOfSquares: 0)
    }

    /// Statistics given as their three sums (for example read back from a store, or the
    /// summary of a batch).
    public init(count: Int, sum: Double, sumOfSquares: Double) {
        self.count = count
        self.sum = sum
        self.sumOfSquares = sumOfSquares
    }

    /// Decodes the three sums, refusing a negative count or sum of squares (a damaged store).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decode(Int.self, forKey: .count)
        sum = try c.decode(Double.self, forKey: .sum)
        sumOfSquares = try c.decode(Double.self, forKey: .sumOfSquares)
        guard count >= 0, sumOfSquares >= 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "a negative count or sum of squares"))
        }
    }

    /// Adds one value.
    public mutating func add(_ value: Double) {
        count += 1
        sum += value
        sumOfSquares += value * value
    }

    /// Adds the values summarized by `other`.
    public mutating func merge(_ other: MetricStats) {
        count += other.count
        sum += other.sum
        sumOfSquares += other.sumOfSquares
    }

    /// The mean of the values; 0 when there are none.
    public var mean: Double { count > 0 ? sum / Double(count) : 0 }

    /// The variance of one value, as the decision uses it. For a proportion (values 0 and 1),
    /// p(1 - p) with p smoothed as (x + 1)/(n + 2), so that a candidate with no failures yet
    /// does not get a variance of 0; otherwise the sample variance (n - 1 in the denominator),
    /// never below 0. Nil with fewer than 2 values.
    public func variance(asProportion: Bool) -> Double? {
        guard count >= 2 else { return nil }
        let n = Double(count)
        if asProportion {
            let p = (sum + 1) / (n + 2)
            return p * (1 - p)
        }
        return max(0, (sumOfSquares - sum * sum / n) / (n - 1))
    }
}

/// The statistics of one release on the canary's three metrics. Codable (JSON) so that the
/// caller can persist them; the decision is made from two of them (`CanaryDecision.decide`).
public struct ReleaseStats: Sendable, Equatable, Codable {
    /// The cost added before taking the logarithm, in US dollars (a tenth of a cent): it keeps
    /// a task that cost nothing (an answer from a cache, a failure before any model call) from
    /// being minus infinity, and it is small beside the cost of a task that called a model
    /// (cents to dollars), so the log scale still measures ratios there.
    public static let costEpsilon: Double = 0.001

    /// Success, one 0/1 value per task.
    public var success: MetricStats
    /// `log(cost + costEpsilon)`, one value per task.
    public var cost: MetricStats
    /// Intervention, one 0/1 value per task.
    public var intervention: MetricStats

    /// No tasks.
    public init() {
        self.init(success: MetricStats(), cost: MetricStats(), intervention: MetricStats())
    }

    /// Statistics given per metric. The three should have the same count (they describe the
    /// same tasks); `tasks` is the count of `success`.
    public init(success: MetricStats, cost: MetricStats, intervention: MetricStats) {
        self.success = success
        self.cost = cost
        self.intervention = intervention
    }

    /// The number of tasks recorded.
    public var tasks: Int { success.count }

    /// The statistics of `metric`.
    public subscript(metric: CanaryMetric) -> MetricStats {
        switch metric {
        case .success: return success
        case .cost: return cost
        case .intervention: return intervention
        }
    }

    /// Records one task's outcome.
    public mutating func record(_ outcome: TaskOutcome) {
        success.add(outcome.succeeded ? 1 : 0)
        cost.add(Self.logCost(outcome.cost))
        intervention.add(outcome.neededIntervention ? 1 : 0)
    }

    /// Adds the tasks summarized by `other`.
    public mutating func merge(_ other: ReleaseStats) {
        success.merge(other.success)
        cost.merge(other.cost)
        intervention.merge(other.intervention)
    }

    /// The value recorded for a cost: `log(cost + costEpsilon)`.
    public static func logCost(_ cost: Double) -> Double {
        log(cost + costEpsilon)
    }
}
