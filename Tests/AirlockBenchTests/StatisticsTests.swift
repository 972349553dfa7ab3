import AirlockBench
import Testing

@Suite struct StatisticsTests {
    @Test func medianOfAnOddCountIsTheMiddleValue() {
        #expect(Statistics.median([5, 1, 3]) == 3)
        #expect(Statistics.median([7]) == 7)
        #expect(Statistics.median([9, 2, 4, 8, 1]) == 4)
    }

    @Test func medianOfAnEvenCountIsTheMeanOfTheTwoMiddleValues() {
        #expect(Statistics.median([4, 1, 3, 2]) == 2.5)
        #expect(Statistics.median([10, 20]) == 15)
        #expect(Statistics.median([1, 1, 5, 100]) == 3)
    }

    @Test func noSamplesHaveNoStatistics() {
        #expect(Statistics.median([]) == nil)
        #expect(Statistics.min([]) == nil)
        #expect(Statistics.max([]) == nil)
        #expect(Statistics.percentile([], 50) == nil)
        #expect(Statistics.interquartileRange([]) == nil)
        #expect(Summary([]) == nil)
    }

    @Test func percentilesInterpolateBetweenRanks() throws {
        let v: [Double] = [4, 1, 3, 2]  // sorted 1 2 3 4
        #expect(Statistics.percentile(v, 0) == 1)
        #expect(Statistics.percentile(v, 100) == 4)
        #expect(Statistics.percentile(v, 50) == 2.5)
        #expect(Statistics.percentile(v, 25) == 1.75)
        #expect(Statistics.percentile(v, 75) == 3.25)
        #expect(Statistics.interquartileRange(v) == 1.5)
        let odd: [Double] = [10, 30, 20, 50, 40]
        #expect(Statistics.percentile(odd, 50) == 30)
        #expect(Statistics.percentile(odd, 25) == 20)
        #expect(Statistics.percentile(odd, 90) == 46)
        #expect(Statistics.percentile(odd, 101) == nil)
        #expect(Statistics.percentile(odd, -1) == nil)
        #expect(Statistics.percentile([3], 25) == 3)
    }

    @Test func summaryGivesMinMedianMax() throws {
        let s = try #require(Summary([3.5, 1.25, 9, 2]))
        #expect(s.min == 1.25)
        #expect(s.median == 2.75)
        #expect(s.max == 9)
        #expect(s.count == 4)
    }

    @Test func ratiosAgainstNothingAreNotNumbers() {
        #expect(Statistics.ratio(3, 2) == 1.5)
        #expect(Statistics.ratio(3, 0) == nil)
        #expect(Statistics.pairedRatios([2, 3, 4], [4, 3, 2]) == [0.5, 1, 2])
        #expect(Statistics.pairedRatios([1, 2], [1]) == nil)
        #expect(Statistics.pairedRatios([1], [0]) == nil)
        #expect(Statistics.pairedRatios([], []) == nil)
    }

    @Test func formatting() {
        #expect(fixed(1.23456, 3) == "1.235")
        #expect(fixed(.infinity, 2) == "inf")
        #expect(mib(1_048_576 * 3 / 2) == "1.5")
        #expect(mib(kib: 2048) == "2.0")
        #expect(spread([3, 1, 2]) == "1.000 / 2.000 / 3.000")
        #expect(spread([]) == "?")
    }
}

@Suite struct VerdictTests {
    @Test func atMostIncludesTheLimitAndBelowDoesNot() {
        #expect(Target.atMost(1.0).verdict(1.0) == .pass)
        #expect(Target.atMost(1.0).verdict(1.0000001) == .fail)
        #expect(Target.below(64).verdict(64) == .fail)
        #expect(Target.below(64).verdict(63.9) == .pass)
        #expect(Target.atMost(1).verdict(nil) == .fail)
        #expect(Target.atMost(1).verdict(.nan) == .fail)
        #expect(Target.atMost(1).verdict(.infinity) == .fail)
    }

    @Test func aSpreadEntirelyWithinTheTargetPasses() {
        #expect(Target.atMost(0.6).verdict(spread: [0.15, 0.17, 0.2]) == .pass)
        #expect(Target.atMost(0.6).verdict(spread: [0.6, 0.6]) == .pass)
        #expect(Target.atMost(1.3).verdict(lowest: 0.48, highest: 1.3) == .pass)
    }

    @Test func aSpreadEntirelyBeyondTheTargetFails() {
        #expect(Target.atMost(1.0).verdict(spread: [1.1, 1.4, 1.2]) == .fail)
        #expect(Target.below(10).verdict(lowest: 10, highest: 12) == .fail)
    }

    @Test func aSpreadThatCrossesTheTargetIsNotEstablished() {
        #expect(Target.atMost(1.3).verdict(spread: [0.48, 0.87, 1.72]) == .notEstablished)
        #expect(Target.atMost(1.0).verdict(lowest: 1.0, highest: 1.01) == .notEstablished)
        #expect(Target.below(10).verdict(lowest: 9.99, highest: 10) == .notEstablished)
        #expect(Target.atMost(1).verdict(spread: []) == .fail)
    }

    @Test func theReportWordsTheComparison() {
        #expect(Target.atMost(1).describe("1.0") == "<= 1.0")
        #expect(Target.below(64).describe("64") == "< 64")
        #expect(Verdict.notEstablished.rawValue == "not established")
    }

    @Test func failuresAndUnsettledLinesAreFound() {
        let lines = [
            VerdictLine(section: "a", check: "x", verdict: .pass),
            VerdictLine(section: "b", check: "y", verdict: .fail),
            VerdictLine(section: "c", check: "z", verdict: .notEstablished),
        ]
        #expect(lines.failures.map(\.section) == ["b"])
        #expect(lines.unsettled.map(\.section) == ["c"])
    }
}

@Suite struct AlternationTests {
    @Test func sidesSwapEveryRun() {
        #expect(Alternation.order(run: 1) == [0, 1])
        #expect(Alternation.order(run: 2) == [1, 0])
        #expect(Alternation.order(run: 3) == [0, 1])
        // Over an even number of runs each side goes first as often as the other.
        let firsts = (1...6).map { Alternation.order(run: $0)[0] }
        #expect(firsts.filter { $0 == 0 }.count == 3)
    }

    @Test func roundsRotateTheInterleavedItems() {
        #expect(Alternation.rotation(count: 4, round: 1) == [1, 2, 3, 0])
        #expect(Alternation.rotation(count: 4, round: 2) == [2, 3, 0, 1])
        #expect(Alternation.rotation(count: 4, round: 4) == [0, 1, 2, 3])
        // Every item takes every place once in `count` rounds.
        for place in 0..<4 {
            #expect(Set((1...4).map { Alternation.rotation(count: 4, round: $0)[place] }) == [0, 1, 2, 3])
        }
    }
}
