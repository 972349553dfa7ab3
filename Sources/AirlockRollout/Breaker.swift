/// The limits of a circuit breaker. A limit left nil is not checked; a value trips the breaker
/// when it is strictly above its limit.
public struct BreakerThresholds: Sendable, Equatable, Codable {
    /// Tasks the window must hold before a rate or a cost per task can trip it (default 20), so
    /// that two failures in a quiet minute do not. Spend per hour is checked below it: it is an
    /// amount of money, not an estimate, and a few runaway tasks can spend it.
    public var minimumTasks: Int
    /// The largest share of failed tasks (default 0.5: a healthy agent fails far less, and the
    /// canary's decision handles the subtle regressions).
    public var errorRate: Double?
    /// The largest share of tasks that needed a person (default 0.3).
    public var interventionRate: Double?
    /// The largest mean cost per task in the window, in dollars (no default: it depends on the
    /// agent).
    public var costPerTask: Double?
    /// The largest mean cost per task as a multiple of `Breaker.referenceCostPerTask` (default
    /// 3); not checked while there is no reference.
    public var costMultiple: Double?
    /// The largest spend per hour, in dollars: the window's spend scaled to an hour (no
    /// default).
    public var spendPerHour: Double?

    /// Limits; every argument has its documented default.
    public init(
        minimumTasks: Int = 20, errorRate: Double? = 0.5, interventionRate: Double? = 0.3, costPerTask: Double? = nil,
        costMultiple: Double? = 3, spendPerHour: Double? = nil
    ) {
        self.minimumTasks = minimumTasks
        self.errorRate = errorRate
        self.interventionRate = interventionRate
        self.costPerTask = costPerTask
        self.costMultiple = costMultiple
        self.spendPerHour = spendPerHour
    }
}

/// The rolling window of a breaker: `bucketCount` buckets of `bucketSeconds` each (default 10
/// of 60 s, the last ten minutes). A bucket starts at a multiple of `bucketSeconds`, so the
/// window covers between (count - 1) and count bucket lengths of the past.
public struct BreakerWindow: Sendable, Equatable, Codable {
    /// The length of a bucket, in seconds; greater than 0.
    public var bucketSeconds: Double
    /// The number of buckets; at least 1.
    public var bucketCount: Int

    /// A window; the defaults are 10 buckets of 60 s.
    public init(bucketSeconds: Double = 60, bucketCount: Int = 10) {
        self.bucketSeconds = bucketSeconds
        self.bucketCount = bucketCount
    }

    /// The window's length in seconds.
    public var seconds: Double { bucketSeconds * Double(bucketCount) }
}

/// Why a breaker tripped.
public enum BreakerReason: String, Sendable, Equatable, Codable, CaseIterable {
    /// The share of failed tasks.
    case errorRate
    /// The share of tasks that needed a person.
    case interventionRate
    /// The mean cost per task, in dollars.
    case costPerTask
    /// The mean cost per task over the reference cost per task.
    case costMultiple
    /// The spend per hour, in dollars.
    case spendPerHour
}

/// The totals of a breaker's window.
public struct BreakerTotals: Sendable, Equatable, Codable {
    /// Tasks recorded in the window.
    public var tasks: Int
    /// Tasks that failed.
    public var errors: Int
    /// Tasks that needed a person.
    public var interventions: Int
    /// What the tasks cost, in dollars.
    public var cost: Double

    /// Totals given one by one.
    public init(tasks: Int = 0, errors: Int = 0, interventions: Int = 0, cost: Double = 0) {
        self.tasks = tasks
        self.errors = errors
        self.interventions = interventions
        self.cost = cost
    }

    /// The share of failed tasks; 0 without tasks.
    public var errorRate: Double { tasks > 0 ? Double(errors) / Double(tasks) : 0 }
    /// The share of tasks that needed a person; 0 without tasks.
    public var interventionRate: Double { tasks > 0 ? Double(interventions) / Double(tasks) : 0 }
    /// The mean cost per task, in dollars; 0 without tasks.
    public var costPerTask: Double { tasks > 0 ? cost / Double(tasks) : 0 }

    mutating func add(_ other: BreakerTotals) {
        tasks += other.tasks
        errors += other.errors
        interventions += other.interventions
        cost += other.cost
    }
}

/// A trip: which limit, the value and the limit, and the window's totals at the time.
public struct BreakerTrip: Sendable, Equatable, Codable {
    /// The limit that was exceeded.
    public var reason: BreakerReason
    /// The value measured (a share, dollars, a multiple, or dollars per hour).
    public var observed: Double
    /// The limit it exceeded.
    public var limit: Double
    /// The window's totals when it tripped.
    public var totals: BreakerTotals
    /// When it tripped, in the caller's seconds.
    public var at: Double

    /// A trip given as its parts.
    public init(reason: BreakerReason, observed: Double, limit: Double, totals: BreakerTotals, at: Double) {
        self.reason = reason
        self.observed = observed
        self.limit = limit
        self.totals = totals
        self.at = at
    }
}

/// The state of a breaker. There is no automatic half-open state: after a trip a person resets
/// the breaker, and for an agent the half-open state is a new rollout at a small weight.
public enum BreakerState: Sendable, Equatable, Codable {
    /// Tasks flow; a limit exceeded trips it.
    case closed
    /// Open after a trip (the circuit breaker's "open"; `tripped` so that no name reads as the
    /// `open(2)` call SourceRulesTests looks for): no new tasks for this release until `reset`.
    case tripped(BreakerTrip)
    /// Opened by a person (or the daemon) with a reason: no new tasks until `reset`.
    case forcedOpen(reason: String, at: Double)
    /// Records and reports (`breach`), never trips: to watch the limits of a new release
    /// before enforcing them.
    case metricsOnly
}

/// A circuit breaker for one running release: a rolling window of task outcomes and the limits
/// that trip it (ADR 0008). When a candidate's breaker trips the caller aborts the canary; when
/// the current release's trips, the caller switches to the warm last-good release.
///
/// Time is given by the caller, in seconds from any fixed origin (a monotonic clock); the
/// breaker never reads a clock, so the same calls give the same states. Codable (JSON) so that
/// the caller can persist it. A value type: the caller serializes access.
public struct Breaker: Sendable, Equatable, Codable {
    private struct Bucket: Sendable, Equatable, Codable {
        var index: Int64
        var totals: BreakerTotals
    }

    /// The limits.
    public var thresholds: BreakerThresholds
    /// The window, fixed when the breaker is made (its buckets depend on it).
    public let window: BreakerWindow
    /// The reference cost per task for `BreakerThresholds.costMultiple`, in dollars (the
    /// incumbent's or the last-good release's, kept up to date by the caller); nil while there
    /// is none.
    public var referenceCostPerTask: Double?
    /// The state.
    public private(set) var state: BreakerState
    private var buckets: [Bucket]
    private var latest: Int64?

    /// A closed breaker (or a metrics-only one) with an empty window. `window` needs a bucket
    /// length above 0 and at least one bucket (it is corrected to that otherwise).
    public init(thresholds: BreakerThresholds = BreakerThresholds(), window: BreakerWindow = BreakerWindow(), metricsOnly: Bool = false) {
        self.thresholds = thresholds
        self.window = BreakerWindow(
            bucketSeconds: window.bucketSeconds > 0 && window.bucketSeconds.isFinite ? window.bucketSeconds : 60, bucketCount: max(1, window.bucketCount))
        self.state = metricsOnly ? .metricsOnly : .closed
        self.buckets = []
        self.latest = nil
    }

    /// Whether the release may be sent new tasks (closed or metrics only).
    public var allowsTasks: Bool {
        switch state {
        case .closed, .metricsOnly: return true
        case .tripped, .forcedOpen: return false
        }
    }

    /// Records a task's outcome at `seconds` and checks the limits; returns the new state. An
    /// outcome older than the window is dropped; a time that is not finite is ignored.
    @discardableResult
    public mutating func record(_ outcome: TaskOutcome, at seconds: Double) -> BreakerState {
        guard let index = bucketIndex(seconds) else { return state }
        let now = max(latest ?? index, index)
        latest = now
        if index > now - Int64(window.bucketCount) {
            let one = BreakerTotals(tasks: 1, errors: outcome.succeeded ? 0 : 1, interventions: outcome.neededIntervention ? 1 : 0, cost: outcome.cost)
            if let k = buckets.firstIndex(where: { $0.index == index }) {
                buckets[k].totals.add(one)
            } else {
                buckets.append(Bucket(index: index, totals: one))
            }
        }
        buckets.removeAll { $0.index <= now - Int64(window.bucketCount) }
        return evaluate(at: seconds)
    }

    /// Checks the limits against the window at `seconds` (old buckets fall out as time passes)
    /// and trips a closed breaker when one is exceeded; returns the new state.
    @discardableResult
    public mutating func evaluate(at seconds: Double) -> BreakerState {
        if case .closed = state, let trip = breach(at: seconds) {
            state = .tripped(trip)
        }
        return state
    }

    /// The window's totals at `seconds`: the buckets of the last `bucketCount` bucket lengths
    /// up to the later of `seconds` and the latest outcome recorded.
    public func totals(at seconds: Double) -> BreakerTotals {
        guard let latest else { return BreakerTotals() }
        let now = max(latest, bucketIndex(seconds) ?? latest)
        var sum = BreakerTotals()
        for bucket in buckets where bucket.index > now - Int64(window.bucketCount) {
            sum.add(bucket.totals)
        }
        return sum
    }

    /// The first limit the window exceeds at `seconds`, whatever the state (so a metrics-only
    /// breaker can report what would have tripped it); nil when none is.
    public func breach(at seconds: Double) -> BreakerTrip? {
        let t = totals(at: seconds)
        func trip(_ reason: BreakerReason, _ observed: Double, _ limit: Double?) -> BreakerTrip? {
            guard let limit, observed > limit else { return nil }
            return BreakerTrip(reason: reason, observed: observed, limit: limit, totals: t, at: seconds)
        }
        if t.tasks >= thresholds.minimumTasks {
            if let hit = trip(.errorRate, t.errorRate, thresholds.errorRate) { return hit }
            if let hit = trip(.interventionRate, t.interventionRate, thresholds.interventionRate) { return hit }
            if let hit = trip(.costPerTask, t.costPerTask, thresholds.costPerTask) { return hit }
            if let reference = referenceCostPerTask, reference > 0,
                let hit = trip(.costMultiple, t.costPerTask / reference, thresholds.costMultiple)
            {
                return hit
            }
        }
        return trip(.spendPerHour, t.cost * 3600 / window.seconds, thresholds.spendPerHour)
    }

    /// Opens the breaker by hand (a person, or the daemon on a signal outside the window), with
    /// the reason to report; it stays open until `reset`.
    public mutating func forceOpen(reason: String, at seconds: Double) {
        state = .forcedOpen(reason: reason, at: seconds)
    }

    /// Closes the breaker (or makes it metrics only) and empties the window, so that the tasks
    /// that tripped it do not trip it again; what they were is in the trip reported.
    public mutating func reset(metricsOnly: Bool = false) {
        state = metricsOnly ? .metricsOnly : .closed
        buckets = []
        latest = nil
    }

    private func bucketIndex(_ seconds: Double) -> Int64? {
        let index = (seconds / window.bucketSeconds).rounded(.down)
        guard index.isFinite, abs(index) < 1e15 else { return nil }
        return Int64(index)
    }
}
