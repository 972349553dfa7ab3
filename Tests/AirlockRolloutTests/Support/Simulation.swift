import AirlockRollout
import Foundation

/// A seeded generator (xoshiro256**, seeded through SplitMix64) and the draws the simulation
/// needs. Concrete, not generic, so that a debug build stays fast.
struct SimulationRandom {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix()
        s1 = splitmix()
        s2 = splitmix()
        s3 = splitmix()
    }

    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// A number in (0, 1): never 0, so that its logarithm is finite.
    mutating func unit() -> Double {
        (Double(next() >> 11) + 0.5) * 0x1p-53
    }

    /// A standard normal draw (Box-Muller, one of the pair).
    mutating func normal() -> Double {
        (-2 * log(unit())).squareRoot() * cos(2 * Double.pi * unit())
    }

    /// A gamma draw of shape `k` >= 1 and scale 1 (Marsaglia and Tsang).
    mutating func gamma(shape k: Double) -> Double {
        let d = k - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = unit()
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }

    /// The number of successes in `n` trials of probability `p`, by geometric jumps between the
    /// rarer outcomes: about n min(p, 1 - p) + 1 draws.
    mutating func binomial(_ n: Int, _ p: Double) -> Int {
        if p <= 0 { return 0 }
        if p >= 1 { return n }
        if p > 0.5 { return n - binomial(n, 1 - p) }
        let logQ = log(1 - p)
        var count = 0
        var position = 0
        while true {
            position += Int((log(unit()) / logQ).rounded(.down)) + 1
            if position > n { return count }
            count += 1
        }
    }
}

/// How one release behaves in the simulation: the chance of success and of an intervention, and
/// log(cost + epsilon) drawn as normal (a log-normal cost per task).
struct SimulatedRelease: Sendable {
    var success: Double
    var intervention: Double
    var logCostMean: Double
    var logCostSD: Double

    /// The incumbent of every case: 90% success, 5% of tasks need a person, a geometric-mean
    /// cost of $0.05 per task with a spread of a factor e (log-scale standard deviation 1).
    static let incumbent = SimulatedRelease(success: 0.90, intervention: 0.05, logCostMean: log(0.05), logCostSD: 1.0)

    /// The statistics of a batch of `n` tasks. The log costs' sum and sum of squares come from
    /// their mean (normal) and their sum of squared deviations (sigma^2 times a chi-square of
    /// n - 1 degrees of freedom), which is exact for normal values and needs two draws.
    func batch(_ n: Int, _ random: inout SimulationRandom) -> ReleaseStats {
        let successes = Double(random.binomial(n, success))
        let interventions = Double(random.binomial(n, intervention))
        let mean = logCostMean + logCostSD * random.normal() / Double(n).squareRoot()
        let deviations = n > 1 ? logCostSD * logCostSD * 2 * random.gamma(shape: Double(n - 1) / 2) : 0
        return ReleaseStats(
            success: MetricStats(count: n, sum: successes, sumOfSquares: successes),
            cost: MetricStats(count: n, sum: Double(n) * mean, sumOfSquares: deviations + Double(n) * mean * mean),
            intervention: MetricStats(count: n, sum: interventions, sumOfSquares: interventions))
    }
}

/// What Flagger-style canary analysis does, for comparison: every `intervalTasks` candidate
/// tasks, check the interval's success rate against the incumbent's mean minus `successDrop`
/// and, when `costRatio` is set, the interval's geometric-mean cost against the incumbent's
/// times `costRatio`; a check fails when either does, and the canary rolls back after
/// `failedChecks` failed checks (counted over the rollout, as Flagger's threshold counts them).
struct FixedThresholdCanary: Sendable {
    var intervalTasks = 100
    var successDrop = 0.05
    var costRatio: Double? = 1.2
    var failedChecks = 2

    private var start = ReleaseStats()
    private var failed = 0

    init(intervalTasks: Int = 100, successDrop: Double = 0.05, costRatio: Double? = 1.2, failedChecks: Int = 2) {
        self.intervalTasks = intervalTasks
        self.successDrop = successDrop
        self.costRatio = costRatio
        self.failedChecks = failedChecks
    }

    /// Looks at the totals so far; true when the canary rolls back now.
    mutating func rollsBack(incumbent: ReleaseStats, candidate: ReleaseStats) -> Bool {
        let n = candidate.tasks - start.tasks
        guard n >= intervalTasks else { return false }
        let successRate = (candidate.success.sum - start.success.sum) / Double(n)
        let meanLogCost = (candidate.cost.sum - start.cost.sum) / Double(n)
        start = candidate
        var fails = successRate < incumbent.success.mean - successDrop
        if let costRatio, meanLogCost > incumbent.cost.mean + log(costRatio) { fails = true }
        if fails { failed += 1 }
        return failed >= failedChecks
    }
}

/// One simulated case: a candidate against `SimulatedRelease.incumbent` at 5% weight.
struct SimulationCase: Sendable {
    var name: String
    var candidate: SimulatedRelease
    var seed: UInt64
}

/// What happened over the rollouts of a case.
struct CaseFigures: Sendable {
    var name: String
    var rollouts: Int
    /// Candidate tasks at each abort of the sequential design.
    var abortsAt: [Int] = []
    var abortsBy: [CanaryMetric: Int] = [:]
    var advanced = 0
    var held = 0
    /// Candidate tasks at each rollback of each fixed-threshold configuration, by its index.
    var baselineRollbacksAt: [[Int]]

    var abortRate: Double { Double(abortsAt.count) / Double(rollouts) }
    var advanceRate: Double { Double(advanced) / Double(rollouts) }
    var holdRate: Double { Double(held) / Double(rollouts) }
    var medianTasksToAbort: Int? { median(abortsAt) }
    func baselineRate(_ k: Int) -> Double { Double(baselineRollbacksAt[k].count) / Double(rollouts) }
}

func median(_ values: [Int]) -> Int? {
    guard !values.isEmpty else { return nil }
    let s = values.sorted()
    return s[s.count / 2]
}

enum Simulation {
    /// Simulates `rollouts` rollouts of `scenario`: after every batch of `batch` candidate tasks
    /// (and 19 times as many incumbent tasks, 5% weight) the sequential decision looks (from
    /// `minimumCandidateTasks` on) and so does each baseline; a rollout ends when the decision
    /// and every baseline have stopped, or at the horizon.
    static func run(
        _ scenario: SimulationCase, rollouts: Int, batch: Int = 10, settings: DecisionSettings = DecisionSettings(),
        baselines: [FixedThresholdCanary] = []
    ) -> CaseFigures {
        let incumbentBatch = 19 * batch
        var random = SimulationRandom(seed: scenario.seed)
        var figures = CaseFigures(name: scenario.name, rollouts: rollouts, baselineRollbacksAt: Array(repeating: [], count: baselines.count))
        for _ in 0..<rollouts {
            var incumbent = ReleaseStats()
            var candidate = ReleaseStats()
            var checks = baselines
            var baselineDone = Array(repeating: false, count: baselines.count)
            var decided = false
            while candidate.tasks < settings.horizon && !(decided && !baselineDone.contains(false)) {
                incumbent.merge(SimulatedRelease.incumbent.batch(incumbentBatch, &random))
                candidate.merge(scenario.candidate.batch(batch, &random))
                if !decided {
                    let decision = CanaryDecision.decide(incumbent: incumbent, candidate: candidate, settings: settings)
                    switch decision.verdict {
                    case .continue: break
                    case .abort(let metric):
                        figures.abortsAt.append(candidate.tasks)
                        figures.abortsBy[metric, default: 0] += 1
                        decided = true
                    case .advance:
                        figures.advanced += 1
                        decided = true
                    case .hold:
                        figures.held += 1
                        decided = true
                    }
                }
                for k in checks.indices where !baselineDone[k] {
                    if checks[k].rollsBack(incumbent: incumbent, candidate: candidate) {
                        figures.baselineRollbacksAt[k].append(candidate.tasks)
                        baselineDone[k] = true
                    }
                }
            }
        }
        return figures
    }
}
