import AirlockRollout
import Foundation
import Testing

/// The decision on hand-made statistics: signs, bounds, the minimum, the horizon.
@Suite struct CanaryDecisionTests {
    /// Statistics of `n` tasks with `successes` successes, `interventions` interventions and
    /// every task costing `cost` times a spread factor that alternates, so the cost has a variance.
    static func stats(_ n: Int, successes: Int, interventions: Int = 0, cost: Double = 0.05) -> ReleaseStats {
        var s = ReleaseStats()
        for k in 0..<n {
            s.record(TaskOutcome(succeeded: k < successes, cost: cost * (k % 2 == 0 ? 1.5 : 0.5), neededIntervention: k < interventions))
        }
        return s
    }

    @Test func halfWidthIsTheNormalMixtureBound() {
        // sqrt(2V(V + tau^2)/tau^2 * (ln(1/alpha) + 0.5 ln(1 + tau^2/V))), computed in Python.
        let w = CanaryDecision.anytimeHalfWidth(variance: 2.2e-4, tau: 0.05, alpha: 0.05)
        #expect(abs(w - 0.045122608689530906) < 1e-12)
        // It shrinks as tasks accumulate and grows as alpha gets smaller.
        #expect(CanaryDecision.anytimeHalfWidth(variance: 1e-4, tau: 0.05, alpha: 0.05) < w)
        #expect(CanaryDecision.anytimeHalfWidth(variance: 2.2e-4, tau: 0.05, alpha: 0.01) > w)
    }

    @Test func harmIsPositiveWhenTheCandidateIsWorse() throws {
        let incumbent = Self.stats(1000, successes: 900, interventions: 50, cost: 0.05)
        let candidate = Self.stats(100, successes: 80, interventions: 10, cost: 0.10)
        let d = CanaryDecision.decide(incumbent: incumbent, candidate: candidate, settings: DecisionSettings(horizon: 10_000))
        #expect(d.comparisons.map(\.metric) == CanaryMetric.allCases)
        let success = d.comparisons[0], cost = d.comparisons[1], intervention = d.comparisons[2]
        #expect(abs(success.harm - 0.10) < 1e-12)
        // Costs alternate 1.5x and 0.5x: the mean log cost of each release is the mean of two logs.
        let e = ReleaseStats.costEpsilon
        #expect(abs(cost.harm - 0.5 * (log(0.15 + e) + log(0.05 + e) - log(0.075 + e) - log(0.025 + e))) < 1e-12)
        #expect(abs(intervention.harm - 0.05) < 1e-12)
        #expect(success.incumbentTasks == 1000 && success.candidateTasks == 100)
        #expect(abs(success.candidateMean - 0.8) < 1e-12)
        // The variance is s_c^2/n_c + s_i^2/n_i with proportions smoothed as (x + 1)/(n + 2).
        let pc = 81.0 / 102, pi = 901.0 / 1002
        #expect(abs(success.variance - (pc * (1 - pc) / 100 + pi * (1 - pi) / 1000)) < 1e-15)
        // The non-inferiority bound is h + z(0.95) sqrt(V).
        #expect(abs((success.nonInferiorityBound - success.harm) / success.variance.squareRoot() - 1.6448536) < 1e-6)
        #expect(d.verdict == .abort(metric: .cost))
    }

    @Test func aBetterCandidateHasANegativeHarm() {
        let incumbent = Self.stats(1000, successes: 800, interventions: 100, cost: 0.10)
        let candidate = Self.stats(1000, successes: 950, interventions: 10, cost: 0.05)
        let d = CanaryDecision.decide(incumbent: incumbent, candidate: candidate, settings: DecisionSettings(horizon: 1000))
        #expect(d.comparisons.allSatisfy { $0.harm < 0 })
        #expect(d.verdict == .advance)
    }

    @Test func noLookBeforeTheMinimum() {
        let incumbent = Self.stats(1000, successes: 900)
        let d29 = CanaryDecision.decide(incumbent: incumbent, candidate: Self.stats(29, successes: 0), settings: DecisionSettings())
        #expect(d29.verdict == .continue)
        #expect(d29.comparisons.count == 3)
        #expect(d29.comparisons[0].exceedsAbortMargin)
        let d30 = CanaryDecision.decide(incumbent: incumbent, candidate: Self.stats(30, successes: 0), settings: DecisionSettings())
        #expect(d30.verdict == .abort(metric: .success))
        let none = CanaryDecision.decide(incumbent: incumbent, candidate: Self.stats(1, successes: 1), settings: DecisionSettings())
        #expect(none == CanaryDecision(verdict: .continue, comparisons: []))
    }

    @Test func smoothingGivesAPerfectCandidateAVariance() {
        let perfect = Self.stats(30, successes: 30)
        #expect(perfect.success.variance(asProportion: true)! > 0)
        #expect(perfect.success.variance(asProportion: false)! == 0)
    }

    @Test func equalCostsEverywhereGiveFiniteNumbers() throws {
        var a = ReleaseStats()
        for _ in 0..<1000 { a.record(TaskOutcome(succeeded: true, cost: 0, neededIntervention: false)) }
        let d = CanaryDecision.decide(incumbent: a, candidate: a, settings: DecisionSettings(horizon: 1000))
        #expect(d.comparisons.allSatisfy { $0.abortHalfWidth.isFinite && $0.nonInferiorityBound.isFinite })
        #expect(d.verdict == .advance)
        _ = try JSONEncoder().encode(d)
    }

    @Test func theHorizonAdvancesOrHolds() {
        let incumbent = Self.stats(20_000, successes: 18_000, interventions: 1000)
        let same = Self.stats(2000, successes: 1800, interventions: 100)
        #expect(CanaryDecision.decide(incumbent: incumbent, candidate: same, settings: DecisionSettings()).verdict == .advance)
        #expect(
            CanaryDecision.decide(incumbent: incumbent, candidate: Self.stats(1990, successes: 1791, interventions: 100), settings: DecisionSettings()).verdict
                == .continue)
        // 2 points worse: not shown worse by the anytime bound, not shown within the 3-point margin.
        let slightlyWorse = Self.stats(2000, successes: 1760, interventions: 100)
        let d = CanaryDecision.decide(incumbent: incumbent, candidate: slightlyWorse, settings: DecisionSettings())
        #expect(d.verdict == .hold(metrics: [.success]))
        // An abort wins over the horizon.
        let muchWorse = Self.stats(2000, successes: 1600, interventions: 100)
        #expect(CanaryDecision.decide(incumbent: incumbent, candidate: muchWorse, settings: DecisionSettings()).verdict == .abort(metric: .success))
    }

    @Test func anAbortMarginToleratesSmallHarms() {
        let incumbent = Self.stats(20_000, successes: 18_000)
        let candidate = Self.stats(1000, successes: 850)
        #expect(CanaryDecision.decide(incumbent: incumbent, candidate: candidate, settings: DecisionSettings()).verdict == .abort(metric: .success))
        var lenient = DecisionSettings()
        lenient.success.abortMargin = 0.04
        #expect(CanaryDecision.decide(incumbent: incumbent, candidate: candidate, settings: lenient).verdict == .continue)
    }

    @Test func tableShowsTheNumbers() {
        let d = CanaryDecision.decide(incumbent: Self.stats(1000, successes: 900), candidate: Self.stats(100, successes: 70), settings: DecisionSettings())
        let table = d.table()
        print(table)
        let lines = table.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[1].hasPrefix("success") && lines[1].contains("1000") && lines[1].contains("0.7000") && lines[1].contains("+0.2000"))
        #expect(lines[2].hasPrefix("cost") && lines[2].contains("$0.0435"))  // sqrt(0.076 x 0.026) - 0.001
    }

    @Test func defaultsHaveNoProblemsAndBadValuesAreNamed() {
        #expect(DecisionSettings().problems.isEmpty)
        var s = DecisionSettings(alpha: 0, beta: 0.7, minimumCandidateTasks: 1, horizon: 0)
        s.cost.smallestHarm = 0
        s.intervention.nonInferiorityMargin = -1
        s.success.abortMargin = .nan
        let problems = s.problems
        #expect(problems.count == 7, "\(problems)")
        for word in ["cost.smallestHarm", "intervention.nonInferiorityMargin", "success.abortMargin", "alpha", "beta", "minimumCandidateTasks", "horizon"] {
            #expect(problems.contains { $0.hasPrefix(word) }, "no problem about \(word)")
        }
    }

    @Test func outcomesClampCosts() {
        #expect(TaskOutcome(succeeded: true, cost: -1, neededIntervention: false).cost == 0)
        #expect(TaskOutcome(succeeded: true, cost: .nan, neededIntervention: false).cost == 0)
        #expect(TaskOutcome(succeeded: true, cost: .infinity, neededIntervention: false).cost == TaskOutcome.maximumCost)
        #expect(ReleaseStats.logCost(0) == log(ReleaseStats.costEpsilon))
    }

    @Test func mergingEqualsRecordingInOrder() {
        let outcomes = (0..<50).map { (k: Int) -> TaskOutcome in
            TaskOutcome(succeeded: k % 3 != 0, cost: Double(k) / 100, neededIntervention: k % 7 == 0)
        }
        var all = ReleaseStats()
        outcomes.forEach { all.record($0) }
        var first = ReleaseStats(), second = ReleaseStats()
        outcomes.prefix(20).forEach { first.record($0) }
        outcomes.dropFirst(20).forEach { second.record($0) }
        first.merge(second)
        #expect(first.tasks == all.tasks && first.success == all.success && first.intervention == all.intervention)
        #expect(abs(first.cost.sum - all.cost.sum) < 1e-9 && abs(first.cost.sumOfSquares - all.cost.sumOfSquares) < 1e-9)
    }
}
