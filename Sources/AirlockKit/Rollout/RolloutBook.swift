import AirlockFormat
import AirlockRollout

/// What `airlock serve` knows of one name's tasks: which release each task was assigned to, its
/// outcome, the canary's statistics for its current step, and a breaker per release. A value
/// with no I/O: `serve` writes each event to the `TaskJournal` and then applies it here, and
/// replaying the journal after a restart (or a `kill -9`) gives the same book.
///
/// Routing (docs/rollout.md, "Routing"): a task keeps the release it was first assigned to
/// while that release may serve it (current, last-good, or the active canary's candidate, with
/// its breaker closed and its runtime ready); otherwise its requests go to the fallback. A new
/// task goes to the active canary's candidate when its bucket is below the weight
/// (`Assignment`), else to the fallback: `current`, or last-good when `current`'s breaker is
/// open or its runtime is down.
public struct RolloutBook: Sendable {
    /// Why an outcome report is refused (a 4xx; nothing changes).
    public enum Refusal: Error, Equatable, Sendable {
        /// No request of the task was routed (or it was forgotten after the retention period).
        case unknownTask
        /// The task's outcome was already counted (`expired`: as a failure at its deadline).
        case duplicate(expired: Bool)
    }

    /// What applying an event did that `serve` must act on.
    public enum Notice: Equatable, Sendable {
        /// The breaker of `release` tripped.
        case tripped(release: String, trip: BreakerTrip)
    }

    /// A task's key: the first 16 bytes of SHA-256 of its id. Fixed-size, so that a task costs
    /// no allocation of its own whatever the length of its id (the id itself is kept in the
    /// arena, and compared on every lookup, so that two ids with the same key are told apart).
    /// A router computes it before it takes the book's lock (`route(task:key:...)`).
    public struct TaskKey: Hashable, Sendable {
        var a: UInt64
        var b: UInt64

        /// The key of the task whose id is `task`.
        public init(_ task: String) {
            let d = SHA256Digest.of(Array(task.utf8)).bytes
            var a: UInt64 = 0
            var b: UInt64 = 0
            for i in 0..<8 {
                a = a << 8 | UInt64(d[i])
                b = b << 8 | UInt64(d[8 + i])
            }
            self.a = a
            self.b = b
        }
    }

    struct Record: Sendable {
        var canary: UInt64
        var assignedAt: Double
        var idOffset: UInt32
        var step: Int32
        var release: UInt16
        var idLength: UInt8
        var done: Bool
        var expired: Bool
    }

    /// The name.
    public let name: String
    /// The site's rollout settings for the name.
    public private(set) var settings: RolloutSettings
    /// The name's canary (any status), nil when it never had one.
    public private(set) var canary: Canary?
    /// The incumbent's statistics in the canary's current step (tasks assigned in it).
    public private(set) var incumbentStats = ReleaseStats()
    /// The candidate's statistics in the canary's current step.
    public private(set) var candidateStats = ReleaseStats()
    /// The breakers, by release folder.
    public private(set) var breakers: [String: Breaker] = [:]
    /// When each breaker took its state (unix seconds).
    public private(set) var breakerSince: [String: Double] = [:]
    /// Tasks assigned and outcomes counted (reported or expired) per release, since the start.
    public private(set) var assignedCount: [String: Int] = [:]
    /// Outcomes counted per release (reported or expired).
    public private(set) var outcomeCount: [String: Int] = [:]

    private var releases: [String] = []
    private var releaseIndex: [String: UInt16] = [:]
    private var tasks: [TaskKey: Record] = [:]
    private var order: [TaskKey] = []
    /// The ids of the remembered tasks, one after another (`Record.idOffset`, `idLength`).
    private var arena: [UInt8] = []
    /// Bytes of the arena that belong to forgotten tasks.
    private var arenaGarbage = 0
    private var expireHead = 0
    private var pruneHead = 0

    /// How long a finished task is remembered (to answer a second report as a duplicate):
    /// a day, or twice the outcome deadline when that is longer.
    public var retentionSeconds: Double { max(86_400, 2 * settings.outcomeDeadlineSeconds) }

    /// The most tasks a book remembers (about 300 bytes each): above 90% of it, finished tasks
    /// are forgotten oldest first before their retention period ends, and at it no new task is
    /// taken (`isFull`) until outcomes or deadlines finish some, so that a flood of task ids
    /// cannot exhaust the daemon's memory.
    public static let maxRememberedTasks = 500_000

    /// The most tasks this book remembers (`maxRememberedTasks` unless a test sets another).
    public let capacity: Int

    /// Above this many remembered tasks (90% of the capacity), finished tasks are forgotten
    /// oldest first without waiting for their retention period.
    var lowWater: Int { capacity - capacity / 10 }

    /// Whether no new task can be taken now (see `maxRememberedTasks`).
    public var isFull: Bool { tasks.count >= capacity }

    /// A book of `name` with the site's settings, its canary and persisted breakers, rebuilt
    /// from the journal's `events`.
    public init(
        name: String, settings: RolloutSettings, canary: Canary?, breakers: [String: BreakerRecord], events: [TaskJournal.Event],
        capacity: Int = RolloutBook.maxRememberedTasks
    ) {
        self.name = name
        self.capacity = max(1, capacity)
        self.settings = settings
        self.canary = canary
        for (release, record) in breakers {
            var b = Breaker(thresholds: settings.breaker, window: settings.window, metricsOnly: settings.breakerMetricsOnly)
            Self.force(&b, to: record.state, metricsOnly: settings.breakerMetricsOnly)
            self.breakers[release] = b
            breakerSince[release] = record.since
        }
        for e in events { _ = apply(e) }
    }

    /// The number of tasks remembered.
    public var taskCount: Int { tasks.count }

    /// The record of `task`, nil when it is not remembered.
    func record(_ task: String, key: TaskKey? = nil) -> (key: TaskKey, record: Record)? {
        let key = key ?? TaskKey(task)
        guard let r = tasks[key], arena[Int(r.idOffset)..<Int(r.idOffset) + Int(r.idLength)].elementsEqual(task.utf8) else { return nil }
        return (key, r)
    }

    /// The id of a remembered task.
    func id(_ r: Record) -> String { String(decoding: arena[Int(r.idOffset)..<Int(r.idOffset) + Int(r.idLength)], as: UTF8.self) }

    /// The canary's id as a number (0: no canary).
    static func number(_ c: Canary?) -> UInt64 { c.flatMap { UInt64($0.id, radix: 16) } ?? 0 }

    /// Takes the canary as it now is on disk: a new canary or a new step starts its statistics
    /// from zero (a step compares the tasks assigned during it).
    public mutating func adopt(canary new: Canary?) {
        if new?.id != canary?.id || new?.step != canary?.step {
            incumbentStats = ReleaseStats()
            candidateStats = ReleaseStats()
        }
        canary = new
    }

    /// Takes the site's settings as they now are (breaker limits apply from now on; when
    /// `metrics_only` changes, each breaker that lets tasks through follows it, its window
    /// emptied, and an open one stays open).
    public mutating func adopt(settings new: RolloutSettings) {
        let metricsOnlyChanged = new.breakerMetricsOnly != settings.breakerMetricsOnly
        settings = new
        for k in breakers.keys {
            breakers[k]?.thresholds = new.breaker
            if metricsOnlyChanged, breakers[k]?.allowsTasks == true { breakers[k]?.reset(metricsOnly: new.breakerMetricsOnly) }
        }
    }

    /// Takes the persisted breakers as they now are: a breaker reset by a person closes (its
    /// window emptied), one opened by a person opens.
    public mutating func adopt(breakers records: [String: BreakerRecord]) {
        for (release, record) in records where record.since != breakerSince[release] {
            var b = breakers[release] ?? Breaker(thresholds: settings.breaker, window: settings.window, metricsOnly: settings.breakerMetricsOnly)
            Self.force(&b, to: record.state, metricsOnly: settings.breakerMetricsOnly)
            breakers[release] = b
            breakerSince[release] = record.since
        }
    }

    /// A closed record (`airlock breaker reset`) closes the breaker, or makes it metrics only
    /// under the site's `metrics_only`.
    private static func force(_ b: inout Breaker, to state: BreakerState, metricsOnly: Bool) {
        switch state {
        case .closed: b.reset(metricsOnly: metricsOnly)
        case .metricsOnly: b.reset(metricsOnly: true)
        case .tripped(let t): b.forceOpen(reason: "tripped on \(t.reason.rawValue)", at: t.at)
        case .forcedOpen(let reason, let at): b.forceOpen(reason: reason, at: at)
        }
    }

    /// Whether `release`'s breaker lets it take tasks.
    public func breakerAllows(_ release: String) -> Bool { breakers[release]?.allowsTasks ?? true }

    /// The release the task of a request goes to, and the assignment to journal first when it
    /// is the task's first request; nil when no release can serve it (503). `usable` says
    /// whether a release's runtime is ready; `key` is the task's `TaskKey` when the caller has it.
    public func route(
        task: String, key: TaskKey? = nil, now: Double, current: String?, lastGood: String?, usable: (String) -> Bool
    ) -> (
        release: String, assignment: TaskJournal.Event?
    )? {
        func ok(_ r: String?) -> String? { r.flatMap { breakerAllows($0) && usable($0) ? $0 : nil } }
        let fallback = ok(current) ?? ok(lastGood)
        let active = canary.flatMap { $0.isActive && $0.incumbent == current ? $0 : nil }
        if let (_, record) = self.record(task, key: key) {
            let r = releases[Int(record.release)]
            // (known tasks are served even when the book is full)
            let mayServe = r == current || r == lastGood || r == active?.candidate
            if mayServe, ok(r) != nil { return (r, nil) }
            return fallback.map { ($0, nil) }
        }
        if isFull { return nil }
        var pick = fallback
        var step = 0
        if let c = active, let candidate = ok(c.candidate), fallback == current, Assignment.isCandidate(salt: c.saltBytes, taskID: task, weight: c.weight) {
            pick = candidate
        }
        if let c = active { step = c.step }
        guard let pick else { return nil }
        return (pick, .assigned(task: task, release: pick, canary: active.map { Self.number($0) } ?? 0, step: step, at: now))
    }

    /// The event recording `outcome` for `task`, or why it is refused.
    public func report(task: String, outcome: TaskOutcome, now: Double) -> Result<TaskJournal.Event, Refusal> {
        guard let (_, r) = record(task) else { return .failure(.unknownTask) }
        if r.done { return .failure(.duplicate(expired: r.expired)) }
        return .success(.reported(task: task, outcome: outcome, at: now))
    }

    /// The release a remembered task was assigned to.
    public func release(of task: String) -> String? { record(task).map { releases[Int($0.record.release)] } }

    /// The events for the tasks whose deadline passed by `now` without an outcome.
    /// At most `limit` of them, oldest first: a caller that applies them in batches holds its
    /// lock for one batch at a time.
    public func expired(now: Double, limit: Int = .max) -> [TaskJournal.Event] {
        var out: [TaskJournal.Event] = []
        var i = expireHead
        while i < order.count && out.count < limit {
            if let r = tasks[order[i]] {
                if r.assignedAt + settings.outcomeDeadlineSeconds > now { break }
                if !r.done { out.append(.expired(task: id(r), at: now)) }
            }
            i += 1
        }
        return out
    }

    /// Applies an event written to the journal; returns what `serve` must act on.
    public mutating func apply(_ event: TaskJournal.Event) -> [Notice] {
        switch event {
        case .assigned(let task, let release, let canaryID, let step, let at):
            let bytes = Array(task.utf8)
            guard record(task) == nil, (1...255).contains(bytes.count) else { return [] }
            let key = TaskKey(task)
            guard tasks[key] == nil else { return [] }  // another id with the same key: not taken
            let index = intern(release)
            tasks[key] = Record(
                canary: canaryID, assignedAt: at, idOffset: UInt32(arena.count), step: Int32(clamping: step), release: index,
                idLength: UInt8(bytes.count), done: false, expired: false)
            arena += bytes
            order.append(key)
            assignedCount[release, default: 0] += 1
            prune(now: at)
            return []
        case .reported(let task, let outcome, let at):
            return finish(task, outcome, at: at, expired: false)
        case .expired(let task, let at):
            return finish(task, TaskOutcome(succeeded: false, cost: 0, neededIntervention: false), at: at, expired: true)
        }
    }

    private mutating func finish(_ task: String, _ outcome: TaskOutcome, at: Double, expired: Bool) -> [Notice] {
        guard let (key, found) = record(task), !found.done else { return [] }
        var r = found
        r.done = true
        r.expired = expired
        tasks[key] = r
        while expireHead < order.count, tasks[order[expireHead]]?.done ?? true { expireHead += 1 }
        if tasks.count > lowWater { prune(now: at) }
        let release = releases[Int(r.release)]
        outcomeCount[release, default: 0] += 1
        if let c = canary, r.canary == Self.number(c), Int(r.step) == c.step {
            if release == c.candidate {
                candidateStats.record(outcome)
            } else if release == c.incumbent {
                incumbentStats.record(outcome)
            }
        }
        var b = breakers[release] ?? Breaker(thresholds: settings.breaker, window: settings.window, metricsOnly: settings.breakerMetricsOnly)
        guard at > breakerSince[release] ?? -.infinity else { return [] }
        if let c = canary, release == c.candidate, let inc = breakers[c.incumbent] {
            let t = inc.totals(at: at)
            b.referenceCostPerTask = t.tasks >= settings.breaker.minimumTasks && t.costPerTask > 0 ? t.costPerTask : nil
        }
        let before = b.allowsTasks
        b.record(outcome, at: at)
        breakers[release] = b
        if before, case .tripped(let trip) = b.state {
            breakerSince[release] = at
            return [.tripped(release: release, trip: trip)]
        }
        return []
    }

    private mutating func intern(_ release: String) -> UInt16 {
        if let i = releaseIndex[release] { return i }
        let i = UInt16(clamping: releases.count)
        releases.append(release)
        releaseIndex[release] = i
        return i
    }

    /// Forgets the finished tasks older than the retention period.
    private mutating func prune(now: Double) {
        while pruneHead < order.count {
            let key = order[pruneHead]
            if let r = tasks[key] {
                guard r.done, r.assignedAt + retentionSeconds < now || tasks.count > lowWater else { break }
                tasks[key] = nil
                arenaGarbage += Int(r.idLength)
            }
            pruneHead += 1
        }
        // The arena is written again with the live ids once most of it is garbage.
        if arenaGarbage > 65_536 && arenaGarbage * 2 > arena.count {
            var fresh: [UInt8] = []
            fresh.reserveCapacity(arena.count - arenaGarbage)
            for key in order[pruneHead...] {
                guard var r = tasks[key] else { continue }
                let start = Int(r.idOffset)
                r.idOffset = UInt32(fresh.count)
                fresh += arena[start..<start + Int(r.idLength)]
                tasks[key] = r
            }
            arena = fresh
            arenaGarbage = 0
        }
        expireHead = max(expireHead, pruneHead)
        if pruneHead > 4096 && pruneHead * 2 > order.count {
            order.removeFirst(pruneHead)
            expireHead -= pruneHead
            pruneHead = 0
        }
    }

    /// The events of `events` (the journal this book was built from) that a book rebuilt from
    /// them needs to be this book: those of the tasks it still remembers, and every event of
    /// the tasks assigned in the active canary's current step (its statistics). Replaying the
    /// result gives the same assignments, statistics and breaker windows; only the tasks
    /// forgotten after the retention period are gone.
    public func needed(_ events: [TaskJournal.Event]) -> [TaskJournal.Event] {
        let stepTasks = Set(events.compactMap { currentStepTask($0) })
        return events.filter { keeps($0, stepTasks: stepTasks) }
    }

    /// The task of `e` when it is an assignment in the active canary's current step: a
    /// compaction keeps every event of such a task, which rebuilds the step's statistics.
    public func currentStepTask(_ e: TaskJournal.Event) -> String? {
        guard let c = canary, c.isActive, case .assigned(let task, _, let canaryID, let step, _) = e, step == c.step, canaryID == Self.number(c)
        else { return nil }
        return task
    }

    /// Whether a compaction keeps `e`: its task is remembered, or is one of `stepTasks`
    /// (`currentStepTask` over the journal).
    public func keeps(_ e: TaskJournal.Event, stepTasks: Set<String>) -> Bool {
        let task: String
        switch e {
        case .assigned(let t, _, _, _, _), .reported(let t, _, _), .expired(let t, _): task = t
        }
        return record(task) != nil || stepTasks.contains(task)
    }

    /// The canary's decision now; nil without a running or held canary.
    public func decision() -> CanaryDecision? {
        guard let c = canary, c.isActive else { return nil }
        return CanaryDecision.decide(incumbent: incumbentStats, candidate: candidateStats, settings: settings.decision)
    }

    /// The window totals of every release's breaker at `now`.
    public func breakerTotals(now: Double) -> [String: BreakerTotals] { breakers.mapValues { $0.totals(at: now) } }
}

extension RolloutBook {
    /// The book of `name` as the site holds it now, read without the serve lock (for `canary
    /// status` and `breaker status` while `serve` runs). Throws what reading the canary, the
    /// breakers, the journal and the site's policy throw.
    public static func read(site: Site, name: String) throws -> RolloutBook {
        try site.requireInstalled(name)
        let (trust, _) = try Activation.loadPolicy(site: site)
        let settings = (trust?.policy.rollout ?? RolloutPolicy()).settings(for: name)
        var book = RolloutBook(
            name: name, settings: settings, canary: try CanaryStore.load(site: site, name: name), breakers: try BreakerStore.load(site: site, name: name),
            events: [])
        try TaskJournal.forEach(site: site, name: name) { _ = book.apply($0) }
        return book
    }
}
