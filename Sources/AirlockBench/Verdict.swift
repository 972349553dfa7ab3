/// The outcome of checking a measured figure against its target.
public enum Verdict: String, Sendable, Equatable {
    /// The figure meets the target, and so does every run behind it.
    case pass = "PASS"
    /// The figure misses the target, and so does every run behind it.
    case fail = "FAIL"
    /// The runs disagree: some meet the target and some miss it, so one run more or less could
    /// change the answer. Not a failure, but not a pass either.
    case notEstablished = "not established"
}

/// A limit a figure must stay under: `value <= limit` or `value < limit`.
public struct Target: Sendable, Equatable {
    /// How a value is compared with the limit.
    public enum Comparison: Sendable, Equatable {
        /// The value may reach the limit (`<=`).
        case atMost
        /// The value must stay strictly below the limit (`<`).
        case below
    }

    /// The comparison.
    public var comparison: Comparison
    /// The limit.
    public var limit: Double

    /// A target that holds when the value is at most `limit`.
    public static func atMost(_ limit: Double) -> Target { Target(comparison: .atMost, limit: limit) }
    /// A target that holds when the value is strictly below `limit`.
    public static func below(_ limit: Double) -> Target { Target(comparison: .below, limit: limit) }

    /// Whether a single value meets the target.
    public func holds(_ value: Double) -> Bool {
        guard value.isFinite else { return false }
        switch comparison {
        case .atMost: return value <= limit
        case .below: return value < limit
        }
    }

    /// The verdict on a single value: PASS or FAIL.
    public func verdict(_ value: Double?) -> Verdict {
        guard let value else { return .fail }
        return holds(value) ? .pass : .fail
    }

    /// The verdict on a figure whose runs spread from `lowest` to `highest`: PASS when even the
    /// highest meets the target, FAIL when even the lowest misses it, and "not established"
    /// when the spread crosses the limit.
    public func verdict(lowest: Double, highest: Double) -> Verdict {
        if holds(highest) && holds(lowest) { return .pass }
        if !holds(lowest) { return .fail }
        return .notEstablished
    }

    /// The verdict on the runs of a figure (for example the per-run ratios of a row).
    public func verdict(spread values: [Double]) -> Verdict {
        guard let lo = values.min(), let hi = values.max() else { return .fail }
        return verdict(lowest: lo, highest: hi)
    }

    /// The comparison as the report prints it: `<= 1.0` or `< 64`.
    public func describe(_ formatted: String) -> String {
        (comparison == .atMost ? "<= " : "< ") + formatted
    }
}

/// One checked target of a report: what was checked, and the verdict.
public struct VerdictLine: Sendable, Equatable {
    /// The table or row the check belongs to (`pack`, `rollback`, `scale`, ...).
    public var section: String
    /// What was checked, as the report words it (`ratio <= 1.0`, `flat, verify`, ...).
    public var check: String
    /// The outcome.
    public var verdict: Verdict

    /// A checked target.
    public init(section: String, check: String, verdict: Verdict) {
        self.section = section
        self.check = check
        self.verdict = verdict
    }
}

extension Array where Element == VerdictLine {
    /// The lines that failed.
    public var failures: [VerdictLine] { filter { $0.verdict == .fail } }
    /// The lines whose runs did not settle the question.
    public var unsettled: [VerdictLine] { filter { $0.verdict == .notEstablished } }
}
