/// Order statistics over a benchmark's samples (run times, peak memory, CPU time).
///
/// Every function takes the samples in any order and does not change them. Empty input has no
/// statistics: the functions return `nil` rather than a made-up number.
public enum Statistics {
    /// The middle value: for an odd count the middle one, for an even count the mean of the two
    /// middle ones.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        let n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }

    /// The smallest value.
    public static func min(_ values: [Double]) -> Double? { values.min() }

    /// The largest value.
    public static func max(_ values: [Double]) -> Double? { values.max() }

    /// The `p`-th percentile (`p` from 0 to 100) by linear interpolation between the closest
    /// ranks: rank `1 + (n - 1) * p / 100` of the sorted values (percentile 50 is the median,
    /// 0 the minimum, 100 the maximum).
    public static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty, p >= 0, p <= 100 else { return nil }
        let s = values.sorted()
        let x = 1 + Double(s.count - 1) * p / 100
        let i = Int(x.rounded(.down))
        if i >= s.count { return s[s.count - 1] }
        return s[i - 1] + (x - Double(i)) * (s[i] - s[i - 1])
    }

    /// The interquartile range: the 75th minus the 25th percentile.
    public static func interquartileRange(_ values: [Double]) -> Double? {
        guard let q3 = percentile(values, 75), let q1 = percentile(values, 25) else { return nil }
        return q3 - q1
    }

    /// `a / b`, or `nil` when `b` is not positive (a ratio against nothing is not a number).
    public static func ratio(_ a: Double, _ b: Double) -> Double? {
        b > 0 ? a / b : nil
    }

    /// The ratio of each pair of runs, `a[i] / b[i]`: runs that alternate A B / B A are
    /// neighbours in time, so their ratio is free of the drift between runs. `nil` when the
    /// counts differ or a `b` is not positive.
    public static func pairedRatios(_ a: [Double], _ b: [Double]) -> [Double]? {
        guard a.count == b.count, !a.isEmpty else { return nil }
        var out: [Double] = []
        for (x, y) in zip(a, b) {
            guard let r = ratio(x, y) else { return nil }
            out.append(r)
        }
        return out
    }
}

/// The minimum, median and maximum of a set of samples, and how many there were.
public struct Summary: Equatable, Sendable {
    /// The smallest sample.
    public var min: Double
    /// The median sample (see `Statistics.median`).
    public var median: Double
    /// The largest sample.
    public var max: Double
    /// The number of samples.
    public var count: Int

    /// The summary of `values`, or `nil` when there are none.
    public init?(_ values: [Double]) {
        guard let lo = Statistics.min(values), let mid = Statistics.median(values), let hi = Statistics.max(values) else {
            return nil
        }
        self.min = lo
        self.median = mid
        self.max = hi
        self.count = values.count
    }
}

/// The order in which the benchmark runs the things it compares, so that drift over time
/// (page cache, writeback, other load) falls on both sides alike.
public enum Alternation {
    /// Which side goes first in run `run` (from 1) of a row of two sides: side 0 in odd runs,
    /// side 1 in even runs (A B, then B A, ...).
    public static func order(run: Int) -> [Int] {
        run % 2 == 1 ? [0, 1] : [1, 0]
    }

    /// The order of `count` interleaved items in round `round` (from 1): the list rotated by
    /// the round, so that each item takes each place in turn.
    public static func rotation(count: Int, round: Int) -> [Int] {
        (0..<count).map { (round + $0) % count }
    }
}
