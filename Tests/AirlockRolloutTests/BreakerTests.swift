import AirlockRollout
import Foundation
import Testing

/// Circuit breakers: the minimum, each limit with its reason, the rolling window, forced open,
/// reset, metrics only. Time is given in seconds; no clock is read.
@Suite struct BreakerTests {
    static let ok = TaskOutcome(succeeded: true, cost: 0.05, neededIntervention: false)
    static let failed = TaskOutcome(succeeded: false, cost: 0.05, neededIntervention: false)

    /// Only the limit under test is set, so that the reason is unambiguous.
    static func only(_ set: (inout BreakerThresholds) -> Void) -> BreakerThresholds {
        var t = BreakerThresholds(errorRate: nil, interventionRate: nil, costPerTask: nil, costMultiple: nil, spendPerHour: nil)
        set(&t)
        return t
    }

    @Test func tripsOnlyOnceTheWindowHoldsTheMinimum() throws {
        var breaker = Breaker()
        for k in 0..<19 {
            #expect(breaker.record(Self.failed, at: Double(k)) == .closed)
        }
        #expect(breaker.breach(at: 19) == nil)
        guard case .tripped(let trip) = breaker.record(Self.failed, at: 19) else {
            Issue.record("not tripped at 20 failures: \(breaker.state)")
            return
        }
        #expect(trip.reason == .errorRate && trip.observed == 1 && trip.limit == 0.5 && trip.totals.tasks == 20 && trip.at == 19)
        #expect(!breaker.allowsTasks)
    }

    struct Row: Sendable, CustomStringConvertible {
        var reason: BreakerReason
        var thresholds: BreakerThresholds
        var reference: Double?
        var outcome: TaskOutcome
        var tasks: Int
        var observed: Double
        var description: String { reason.rawValue }
    }

    static let rows: [Row] = [
        Row(reason: .errorRate, thresholds: only { $0.errorRate = 0.5 }, outcome: failed, tasks: 20, observed: 1),
        Row(
            reason: .interventionRate, thresholds: only { $0.interventionRate = 0.3 },
            outcome: TaskOutcome(succeeded: true, cost: 0.05, neededIntervention: true), tasks: 20, observed: 1),
        Row(
            reason: .costPerTask, thresholds: only { $0.costPerTask = 1 }, outcome: TaskOutcome(succeeded: true, cost: 2, neededIntervention: false),
            tasks: 20, observed: 2),
        Row(
            reason: .costMultiple, thresholds: only { $0.costMultiple = 3 }, reference: 0.1,
            outcome: TaskOutcome(succeeded: true, cost: 0.5, neededIntervention: false), tasks: 20, observed: 5),
        // $10 a task, 10 tasks in a 600 s window: $100 in ten minutes is $600 an hour. Spend trips below the minimum.
        Row(
            reason: .spendPerHour, thresholds: only { $0.spendPerHour = 550 }, outcome: TaskOutcome(succeeded: true, cost: 10, neededIntervention: false),
            tasks: 10, observed: 600),
    ]

    @Test(arguments: rows) func tripsOnEachLimitWithItsReason(_ row: Row) throws {
        var breaker = Breaker(thresholds: row.thresholds)
        breaker.referenceCostPerTask = row.reference
        for k in 0..<(row.tasks - 1) { breaker.record(row.outcome, at: Double(k)) }
        #expect(breaker.state == .closed)
        breaker.record(row.outcome, at: Double(row.tasks))
        guard case .tripped(let trip) = breaker.state else {
            Issue.record("\(row.reason): not tripped: \(breaker.state)")
            return
        }
        #expect(trip.reason == row.reason)
        #expect(abs(trip.observed - row.observed) < 1e-9)
        #expect(trip.totals.tasks == row.tasks)
    }

    @Test func healthyTrafficNeverTrips() {
        // One task a second at $0.05 is $180 an hour.
        var breaker = Breaker(thresholds: BreakerThresholds(costPerTask: 1, spendPerHour: 200))
        breaker.referenceCostPerTask = 0.05
        for k in 0..<3000 {
            let outcome = TaskOutcome(succeeded: k % 10 != 0, cost: 0.05, neededIntervention: k % 20 == 0)
            #expect(breaker.record(outcome, at: Double(k)) == .closed)
        }
        #expect(breaker.breach(at: 3000) == nil)
    }

    @Test func oldBucketsFallOutOfTheWindow() {
        var breaker = Breaker()  // 10 buckets of 60 s
        for k in 0..<15 { breaker.record(Self.failed, at: Double(k)) }  // bucket 0
        #expect(breaker.totals(at: 599).tasks == 15)  // buckets 0...9
        #expect(breaker.totals(at: 600).tasks == 0)  // buckets 1...10
        // 15 old failures and 10 new successes would trip it (25 tasks, 60% errors); the failures fell out.
        for k in 0..<10 { breaker.record(Self.ok, at: 600 + Double(k)) }
        #expect(breaker.state == .closed)
        let totals = breaker.totals(at: 610)
        #expect(totals.tasks == 10 && totals.errors == 0 && abs(totals.cost - 0.5) < 1e-12)
        // An outcome older than the window is dropped; one inside it counts in its own bucket.
        breaker.record(Self.failed, at: 30)
        breaker.record(Self.failed, at: 61)
        #expect(breaker.totals(at: 610).tasks == 11)
        #expect(breaker.totals(at: 660).tasks == 10)  // bucket 1 (60...119) is gone at bucket 11
        // A time that is not a number is ignored.
        breaker.record(Self.failed, at: .nan)
        #expect(breaker.totals(at: 660).tasks == 10)
    }

    @Test func aWindowThatStraddlesTheBoundaryCountsBothSides() {
        var breaker = Breaker()
        for k in 0..<10 { breaker.record(Self.failed, at: 540 + Double(k)) }  // bucket 9
        for k in 0..<10 { breaker.record(Self.failed, at: 600 + Double(k)) }  // bucket 10
        #expect(breaker.totals(at: 610).tasks == 20)
        guard case .tripped(let trip) = breaker.state else {
            Issue.record("not tripped: \(breaker.state)")
            return
        }
        #expect(trip.totals.errors == 20)
    }

    @Test func openStaysOpenUntilReset() {
        var breaker = Breaker()
        for k in 0..<20 { breaker.record(Self.failed, at: Double(k)) }
        let tripped = breaker.state
        for k in 0..<100 { breaker.record(Self.ok, at: 1000 + Double(k)) }
        #expect(breaker.state == tripped)
        breaker.reset()
        #expect(breaker.state == .closed && breaker.allowsTasks)
        #expect(breaker.totals(at: 1100) == BreakerTotals())
    }

    @Test func forcedOpenHoldsUntilReset() {
        var breaker = Breaker()
        breaker.forceOpen(reason: "operator: bad tool release", at: 5)
        #expect(breaker.state == .forcedOpen(reason: "operator: bad tool release", at: 5))
        #expect(!breaker.allowsTasks)
        for k in 0..<50 { breaker.record(Self.failed, at: 10 + Double(k)) }
        #expect(breaker.state == .forcedOpen(reason: "operator: bad tool release", at: 5))
        #expect(breaker.totals(at: 60).tasks == 50)  // it still counts, for the metrics
        breaker.reset()
        #expect(breaker.state == .closed)
        breaker.record(Self.failed, at: 70)
        #expect(breaker.state == .closed)  // the window starts afresh
    }

    @Test func metricsOnlyNeverTripsButReports() throws {
        var breaker = Breaker(metricsOnly: true)
        for k in 0..<100 { breaker.record(Self.failed, at: Double(k)) }
        #expect(breaker.state == .metricsOnly && breaker.allowsTasks)
        let wouldTrip = try #require(breaker.breach(at: 100))
        #expect(wouldTrip.reason == .errorRate)
        breaker.reset()
        #expect(breaker.state == .closed)
        breaker.reset(metricsOnly: true)
        #expect(breaker.state == .metricsOnly)
    }

    @Test func aBrokenWindowIsCorrected() {
        let breaker = Breaker(window: BreakerWindow(bucketSeconds: 0, bucketCount: 0))
        #expect(breaker.window == BreakerWindow(bucketSeconds: 60, bucketCount: 1))
    }
}
