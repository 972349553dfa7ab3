import AirlockRollout
import Foundation
import Testing

/// The seeded simulation behind the defaults of `DecisionSettings` (ADR 0008): rollouts at 5%
/// weight against an incumbent with 90% success, 5% intervention and a geometric-mean cost of
/// $0.05 per task (`SimulatedRelease.incumbent`); the decision looks after every 10 candidate
/// tasks, from 30 on, up to the horizon of 2,000. The same outcomes go to the fixed-threshold
/// baseline. Deterministic: the seeds are fixed, so the figures are the same on every run.
@Suite struct CanarySimulationTests {
    static let rollouts = 4000

    static let cases: [SimulationCase] = {
        let i = SimulatedRelease.incumbent
        func with(_ change: (inout SimulatedRelease) -> Void) -> SimulatedRelease {
            var r = i
            change(&r)
            return r
        }
        return [
            SimulationCase(name: "identical (A/A)", candidate: i, seed: 1),
            SimulationCase(name: "success -2 points", candidate: with { $0.success -= 0.02 }, seed: 2),
            SimulationCase(name: "success -5 points", candidate: with { $0.success -= 0.05 }, seed: 3),
            SimulationCase(name: "success -10 points", candidate: with { $0.success -= 0.10 }, seed: 4),
            SimulationCase(name: "success -20 points", candidate: with { $0.success -= 0.20 }, seed: 7),
            SimulationCase(name: "cost +30%", candidate: with { $0.logCostMean += log(1.3) }, seed: 5),
            SimulationCase(name: "intervention +5 points", candidate: with { $0.intervention += 0.05 }, seed: 6),
        ]
    }()

    /// The fixed-threshold configurations: 100 candidate tasks per interval, success at least the
    /// incumbent's minus 5 points and geometric-mean cost at most 1.2 times the incumbent's,
    /// rolling back after 1, 2 (the one compared in the assertions) or 5 failed checks.
    static let baselines = [1, 2, 5].map { FixedThresholdCanary(failedChecks: $0) }
    static let mainBaseline = 1

    static func percent(_ x: Double) -> String { String(format: "%6.2f%%", 100 * x) }
    static func cell(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }

    @Test func sequentialDecisionMeetsItsErrorRatesAndBeatsFixedThresholds() async throws {
        let started = ContinuousClock.now
        let figures = await withTaskGroup(of: CaseFigures.self) { group in
            for scenario in Self.cases {
                group.addTask { Simulation.run(scenario, rollouts: Self.rollouts, baselines: Self.baselines) }
            }
            var out: [CaseFigures] = []
            for await f in group { out.append(f) }
            return Self.cases.map { c in out.first { $0.name == c.name }! }
        }

        var lines = [
            "Canary simulation: \(Self.rollouts) rollouts per case, 5% weight, incumbent success 0.90, intervention 0.05,",
            "geometric-mean cost $0.05 (log sd 1); looks every 10 candidate tasks from 30; horizon 2,000 (DecisionSettings defaults).",
            "fixed(N): every 100 candidate tasks, success >= incumbent - 0.05 and cost <= 1.2 x incumbent; roll back after N failed checks",
            "(rolled back %, median candidate tasks when rolled back).",
            "",
            "| case                   | aborted | median n | advanced |    held |     fixed(1) |     fixed(2) |     fixed(5) |",
            "|------------------------|--------:|---------:|---------:|--------:|-------------:|-------------:|-------------:|",
        ]
        for f in figures {
            var cells = [
                f.name.padding(toLength: 22, withPad: " ", startingAt: 0), Self.cell(Self.percent(f.abortRate), 7),
                Self.cell(f.medianTasksToAbort.map(String.init) ?? "-", 8), Self.cell(Self.percent(f.advanceRate), 8),
                Self.cell(Self.percent(f.holdRate), 7),
            ]
            for k in Self.baselines.indices {
                cells.append(Self.cell(Self.percent(f.baselineRate(k)) + " " + Self.cell(median(f.baselineRollbacksAt[k]).map(String.init) ?? "-", 5), 12))
            }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        let aa = figures[0]
        lines.append("")
        lines.append(
            "\(aa.name) aborts by metric: "
                + CanaryMetric.allCases.map { "\($0.rawValue) \(aa.abortsBy[$0, default: 0])" }.joined(separator: ", ")
                + " of \(aa.rollouts) rollouts")
        let elapsed = ContinuousClock.now - started
        lines.append("")
        lines.append("simulated in \(elapsed)")
        print(lines.joined(separator: "\n"))

        let byName = Dictionary(uniqueKeysWithValues: figures.map { ($0.name, $0) })
        #expect(aa.name == "identical (A/A)")
        #expect(aa.abortRate <= 0.01, "identical candidate aborted in \(Self.percent(aa.abortRate))")
        #expect(aa.advanceRate >= 0.90, "identical candidate promoted in \(Self.percent(aa.advanceRate))")
        #expect(aa.abortRate < aa.baselineRate(Self.mainBaseline), "the sequential design must false-abort less than the fixed thresholds")

        let bounds: [(String, ClosedRange<Int>)] = [
            ("success -5 points", 200...1500), ("success -10 points", 50...600), ("cost +30%", 30...600), ("intervention +5 points", 100...1500),
        ]
        for (name, range) in bounds {
            let f = try #require(byName[name])
            #expect(f.abortRate >= 0.99, "\(name): aborted in \(Self.percent(f.abortRate))")
            let n = try #require(f.medianTasksToAbort)
            #expect(range.contains(n), "\(name): median \(n) candidate tasks to abort, expected \(range)")
        }
        let cost = try #require(byName["cost +30%"])
        #expect(cost.abortsBy[.cost, default: 0] >= cost.abortsAt.count * 99 / 100, "cost +30% aborted on other metrics: \(cost.abortsBy)")
        let small = try #require(byName["success -2 points"])
        #expect(small.advanceRate < aa.advanceRate, "a 2-point regression should be promoted less often than an identical candidate")
    }

    /// The abort bound holds however often it is read: an identical candidate with a look after
    /// every single task is aborted about as rarely as with a look every 10.
    @Test func lookingAfterEveryTaskKeepsTheFalseAbortRate() {
        let scenario = SimulationCase(name: "identical, a look per task", candidate: SimulatedRelease.incumbent, seed: 11)
        let f = Simulation.run(scenario, rollouts: 1000, batch: 1)
        print("identical candidate, a look after every task: aborted \(Self.percent(f.abortRate)), advanced \(Self.percent(f.advanceRate)) of 1000")
        #expect(f.abortRate <= 0.01)
        #expect(f.advanceRate >= 0.90)
    }
}
