import AirlockRollout
import Foundation
import Testing

/// What the caller persists comes back equal from JSON, and behaves the same afterwards.
@Suite struct CodableTests {
    static func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
        let data = try JSONEncoder().encode(value)
        let back = try JSONDecoder().decode(T.self, from: data)
        #expect(back == value, "\(String(decoding: data, as: UTF8.self))")
        return back
    }

    @Test func releaseStatsRoundTrip() throws {
        var s = ReleaseStats()
        for k in 0..<37 { s.record(TaskOutcome(succeeded: k % 4 != 0, cost: 0.01 * Double(k), neededIntervention: k % 9 == 0)) }
        var back = try Self.roundTrip(s)
        back.record(TaskOutcome(succeeded: true, cost: 1, neededIntervention: false))
        s.record(TaskOutcome(succeeded: true, cost: 1, neededIntervention: false))
        #expect(back == s)
    }

    @Test func statsWithANegativeCountAreRefused() {
        let json = Data(#"{"count":-1,"sum":0,"sumOfSquares":0}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(MetricStats.self, from: json) }
    }

    @Test func settingsRoundTripAndFillDefaults() throws {
        var s = DecisionSettings(alpha: 0.01, horizon: 5000)
        s.cost.nonInferiorityMargin = 0.2
        _ = try Self.roundTrip(s)
        let partial = try JSONDecoder().decode(
            DecisionSettings.self, from: Data(#"{"horizon": 800, "success": {"abortMargin": 0.01, "smallestHarm": 0.05, "nonInferiorityMargin": 0.05}}"#.utf8))
        var expected = DecisionSettings(horizon: 800)
        expected.success = MetricSettings(abortMargin: 0.01, smallestHarm: 0.05, nonInferiorityMargin: 0.05)
        #expect(partial == expected)
        #expect(try JSONDecoder().decode(DecisionSettings.self, from: Data("{}".utf8)) == DecisionSettings())
    }

    @Test func decisionsRoundTrip() throws {
        var incumbent = ReleaseStats(), candidate = ReleaseStats()
        for k in 0..<400 { incumbent.record(TaskOutcome(succeeded: k % 10 != 0, cost: 0.05, neededIntervention: k % 20 == 0)) }
        for k in 0..<100 { candidate.record(TaskOutcome(succeeded: k % 2 == 0, cost: 0.05, neededIntervention: false)) }
        let abort = CanaryDecision.decide(incumbent: incumbent, candidate: candidate, settings: DecisionSettings())
        #expect(abort.verdict == .abort(metric: .success))
        _ = try Self.roundTrip(abort)
        for verdict in [CanaryVerdict.advance, .hold(metrics: [.cost, .intervention]), .continue] {
            _ = try Self.roundTrip(CanaryDecision(verdict: verdict, comparisons: abort.comparisons))
        }
    }

    @Test(arguments: [false, true]) func breakerRoundTripsMidWindowAndCarriesOn(forced: Bool) throws {
        var breaker = Breaker(thresholds: BreakerThresholds(costPerTask: 2, spendPerHour: 1000))
        breaker.referenceCostPerTask = 0.04
        for k in 0..<300 { breaker.record(TaskOutcome(succeeded: k % 3 != 0, cost: 0.05, neededIntervention: false), at: Double(k) * 2) }
        if forced { breaker.forceOpen(reason: "drill", at: 600) }
        var back = try Self.roundTrip(breaker)
        for k in 0..<200 {
            let outcome = TaskOutcome(succeeded: false, cost: 0.05, neededIntervention: k % 2 == 0)
            #expect(back.record(outcome, at: 700 + Double(k)) == breaker.record(outcome, at: 700 + Double(k)))
        }
        #expect(back == breaker)
        if !forced, case .tripped(let trip) = breaker.state {
            _ = try Self.roundTrip(trip)
        } else if !forced {
            Issue.record("expected a trip: \(breaker.state)")
        }
    }
}
