import AirlockFormat
import AirlockKit
import AirlockRollout
import AsyncHTTPClient
import CAirlockSystem
import Foundation
import Logging

/// The site daemon's state, one actor: for each managed name, the runtimes it keeps warm
/// (`current`, last-good, and the active canary's candidate), and the name's `RolloutBook`
/// (task assignments, outcomes, the canary's statistics, the breakers) with its journal, kept
/// in the `RouteTable` the event loops route requests with.
///
/// Runtimes: started with `Runtime`, routed to only once their ready path answers 200, started
/// again with backoff after a crash; a runtime no longer wanted stops. Rollouts: every request
/// is routed by the book (task-sticky), every outcome is journaled and then counted, and the
/// canary's decision and the breakers run after each outcome. What changes the site (abort,
/// advance, hold, promote, a breaker's trip and the switch to last-good) runs off the actor
/// under the site lock, one action per name at a time, and is read back from the site.
actor Supervisor {
    /// One release's runtime and its supervision.
    struct Entry {
        var runtime: Runtime?
        var ready = false
        var failures = 0
        var restarts = 0
        var nextStart = 0.0
        var lastError: String?
        var crashLoopAlerted = false
        /// The runtime's `AIRLOCK_TOOLS_URL` (`ToolGateway.register`).
        var toolsURL: String?
    }

    /// What a name's action changes on the site.
    enum Action: Sendable {
        case abort(canary: String, reason: String, decision: CanaryDecision?)
        case advance(canary: String, step: Int, decision: CanaryDecision)
        case hold(canary: String, step: Int, decision: CanaryDecision)
        case trip(release: String, trip: BreakerTrip)
        case drain(release: String)
        case settle(canary: String)
    }

    let site: Site
    let names: [String]
    let client: HTTPClient
    let logger: Logger
    let metrics: ServeMetrics
    let alerts: AlertSender
    /// The tool gateway each runtime calls its tools through.
    let tools: ToolGateway
    /// Per name: its task recording (on while `airlock record on` says so).
    let recorders: [String: Recorder]
    /// Per name, per release folder.
    var entries: [String: [String: Entry]] = [:]
    /// Per name: the book, its journal, the pointers and the ready runtimes.
    let table: RouteTable
    var pending: Set<String> = []
    /// Per name, the files `refresh` last read, as they were then.
    var stamps: [String: [FileStamp]] = [:]
    /// Trips that happened while another action of the name ran: never dropped.
    var queuedTrips: [String: [Action]] = [:]
    var ticks = 0
    /// Why the site's policy did not read at the last try (logged once).
    var policyProblem: String?

    init(site: Site, names: [String], client: HTTPClient, logger: Logger, metrics: ServeMetrics) {
        self.site = site
        self.names = names
        self.client = client
        self.logger = logger
        self.metrics = metrics
        self.alerts = AlertSender(site: site, client: client, logger: logger)
        let recorders = Dictionary(uniqueKeysWithValues: names.map { ($0, Recorder(site: site, name: $0, logger: logger)) })
        self.recorders = recorders
        self.tools = ToolGateway(site: site, client: client, metrics: metrics, alerts: alerts, logger: logger) { call in
            recorders[call.name]?.toolCall(call)
        }
        self.table = RouteTable(logger: logger)
    }

    /// Opens each name's journal (taking its serve lock) and rebuilds its book. Throws
    /// `site-busy` when another `serve` serves a name, and what reading the state throws.
    func prepare() throws {
        let sitePolicy = try Self.sitePolicy(site)
        let policy = sitePolicy.rollout
        alerts.settings = policy.alerts
        tools.endpoints = sitePolicy.tools
        for name in names {
            let journal = try TaskJournal(site: site, name: name)
            // Holding the name's serve lock: runtimes still running are a killed serve's.
            let leftovers = Runtime.stopLeftovers(site: site, name: name)
            if leftovers > 0 { logger.warning("\(name): stopped \(leftovers) runtimes a killed airlock serve left running") }
            // The journal is replayed as it is read: memory does not grow with its length.
            var book = RolloutBook(
                name: name, settings: policy.settings(for: name), canary: try CanaryStore.load(site: site, name: name),
                breakers: try BreakerStore.load(site: site, name: name), events: [])
            var stepTasks: Set<String> = []
            let (events, skipped) = try TaskJournal.forEach(site: site, name: name) { e in
                _ = book.apply(e)
                if let task = book.currentStepTask(e) { stepTasks.insert(task) }
            }
            if skipped > 0 { logger.warning("\(name): skipped \(skipped) journal lines that do not parse") }
            // Compaction: the journal keeps what the book still needs once most of it is
            // about tasks forgotten after the retention period.
            if events > Self.compactionThreshold {
                let c = try journal.compact { book.keeps($0, stepTasks: stepTasks) }
                if c.replaced { logger.info("\(name): compacted the task journal from \(c.total) to \(c.kept) events") }
            }
            let trips = book.breakers.compactMap { kv -> (String, BreakerTrip)? in
                if case .tripped(let trip) = kv.value.state { return (kv.key, trip) }
                return nil
            }
            let canary = book.canary
            table.insert(
                name, RouteTable.Slot(book: book, journal: journal, current: site.current(name), lastGood: (try? site.rollbackTarget(name)) ?? nil))
            // A trip replayed from the journal that a kill kept from being written: act on it now.
            for (release, trip) in trips.sorted(by: { $0.0 < $1.0 }) { act(name, .trip(release: release, trip: trip)) }
            if let c = canary, c.isActive { logger.info("\(name): canary \(c.candidate) \(c.status.rawValue) at step \(c.step + 1)") }
        }
        // The replay's events and lines are freed: give the memory back rather than keep it.
        _ = airlock_malloc_trim()
    }

    static func sitePolicy(_ site: Site) throws -> SitePolicy {
        let dir = site.path(SiteLayout.trust)
        guard FileManager.default.fileExists(atPath: dir) else { return SitePolicy() }
        return try SiteTrust.load(directory: dir).policy
    }

    /// Deadlines expired under one hold of the route table's lock at most.
    static let expiryBatch = 1000

    /// Events in a journal above which `serve` compacts it at start.
    static let compactionThreshold = 200_000

    /// Unix seconds, to the millisecond the journal keeps, so that a replay is exact.
    static func wallNow() -> Double { (Date().timeIntervalSince1970 * 1000).rounded() / 1000 }

    // MARK: Routing and outcomes

    /// What an outcome report did.
    enum Reported: Sendable {
        case counted(release: String)
        case refused(RolloutBook.Refusal)
        case failed(String)
    }

    /// Counts `outcome` for `task` of `name` (journaled first), then runs the breakers and the
    /// canary's decision.
    func report(name: String, task: String, outcome: TaskOutcome) -> Reported {
        let now = Self.wallNow()
        var notices: [RolloutBook.Notice] = []
        let reported =
            table.with(name) { s -> Reported in
                switch s.book.report(task: task, outcome: outcome, now: now) {
                case .failure(let refusal): return .refused(refusal)
                case .success(let event):
                    do { try s.journal.append(event) } catch { return .failed("cannot record the outcome: \(error)") }
                    let release = s.book.release(of: task) ?? "?"
                    notices = s.book.apply(event)
                    return .counted(release: release)
                }
            } ?? .refused(.unknownTask)
        if case .counted(let release) = reported {
            metrics.outcome(name: name, release: release, outcome: outcome, expired: false)
            recorders[name]?.outcome(task: task, release: release, outcome)
            handle(name, notices)
            decide(name)
        }
        return reported
    }

    private func handle(_ name: String, _ notices: [RolloutBook.Notice]) {
        for case .tripped(let release, let trip) in notices {
            logger.warning("\(name): the breaker of \(release) tripped on \(trip.reason.rawValue) (\(trip.observed) > \(trip.limit))")
            act(name, .trip(release: release, trip: trip))
        }
    }

    private func decide(_ name: String) {
        let decided = table.with(name) { s -> (Canary, CanaryDecision)? in
            guard let c = s.book.canary, c.isActive, c.incumbent == s.current, let d = s.book.decision() else { return nil }
            return (c, d)
        }
        guard let (c, d) = decided ?? nil else { return }
        switch d.verdict {
        case .abort(let metric):
            var reason = "the candidate is worse than the incumbent on \(metric.rawValue)"
            if let m = d.comparisons.first(where: { $0.metric == metric }) {
                // Cost is decided on a log scale; the reason shows dollars per task.
                func show(_ x: Double) -> Double { metric == .cost ? exp(x) - ReleaseStats.costEpsilon : x }
                reason += String(
                    format: " (candidate %.4f over %d tasks, incumbent %.4f over %d; harm %+.4f, its anytime lower bound %+.4f above the margin %.4f)",
                    show(m.candidateMean), m.candidateTasks, show(m.incumbentMean), m.incumbentTasks, m.harm, m.harmLowerBound, m.abortMargin)
            }
            act(name, .abort(canary: c.id, reason: reason, decision: d))
        case .advance where c.status == .running:
            act(name, .advance(canary: c.id, step: c.step, decision: d))
        case .hold where c.status == .running:
            act(name, .hold(canary: c.id, step: c.step, decision: d))
        default:
            break
        }
    }

    // MARK: Actions on the site

    private func act(_ name: String, _ action: Action) {
        guard !pending.contains(name) else {
            // A decision, a drain or a settling is made again after the running action; a
            // trip is an event and waits its turn.
            if case .trip = action { queuedTrips[name, default: []].append(action) }
            return
        }
        pending.insert(name)
        let site = self.site, alerts = self.alerts, logger = self.logger
        let (current, lastGood) = table.with(name) { ($0.current, $0.lastGood) } ?? (nil, nil)
        Task {
            // Off Swift's cooperative threads: an action waits for the site lock, fsyncs and
            // may run a health check.
            let message = await Blocking.run {
                Self.perform(action, site: site, name: name, current: current, lastGood: lastGood, alerts: alerts, logger: logger)
            }
            self.finished(name, message)
        }
    }

    /// Runs an action (blocking: the site lock, fsyncs); returns what to log.
    static func perform(
        _ action: Action, site: Site, name: String, current: String?, lastGood: String?, alerts: AlertSender, logger: Logger
    ) -> String {
        do {
            switch action {
            case .abort(let id, let reason, let decision):
                let c = try CanaryStore.update(site: site, name: name, command: "canary abort") { c in
                    guard c.id == id, c.isActive else { return nil }
                    c.status = .aborted
                    c.reason = reason
                    return ("canary-abort", ["reason": .string(reason), "step": .integer(c.step), "by": .string("serve")])
                }
                alerts.queue(event: "canary-abort", name: name, reason: reason, from: c.incumbent, to: c.candidate, decision: decision)
                return "canary of \(c.candidate) aborted: \(reason)"
            case .advance(let id, let step, let decision):
                guard let c = try CanaryStore.load(site: site, name: name), c.id == id, c.step == step, c.status == .running else {
                    return "the canary changed meanwhile"
                }
                let next = step + 1
                if next >= c.steps.count || c.steps[next] >= 100 {
                    let reason =
                        "non-inferior on every metric at the horizon of step \(step + 1) (\(decision.comparisons.first?.candidateTasks ?? 0) candidate tasks)"
                    do {
                        let p = try CanaryStore.promote(site: site, name: name, reason: reason)
                        alerts.queue(event: "canary-promote", name: name, reason: reason, from: p.incumbent, to: p.candidate, decision: decision)
                        return "promoted \(p.candidate)"
                    } catch let e as AirlockError {
                        // Refused by the policy or its health check: hold, a person decides (no retry loop).
                        let why = "the promotion failed (\(e.code)): \(e.message)"
                        let held = try CanaryStore.update(site: site, name: name, command: "canary hold") { c in
                            guard c.id == id, c.isActive else { return nil }
                            c.status = .held
                            c.reason = why
                            return ("canary-hold", ["reason": .string(why), "step": .integer(c.step)])
                        }
                        alerts.queue(event: "canary-hold", name: name, reason: why, from: held.incumbent, to: held.candidate, decision: decision)
                        return "canary of \(held.candidate) holds: \(why)"
                    }
                }
                let weight = c.steps[next]
                try CanaryStore.update(site: site, name: name, command: "canary advance") { c in
                    guard c.id == id, c.step == step, c.status == .running else { return nil }
                    c.step = next
                    c.stepStartedAt = Timestamp.format(Timestamp.now())
                    return ("canary-advance", ["step": .integer(next), "weight_percent": .number(EvalAttestation.decimal(weight))])
                }
                return "canary of \(c.candidate) advanced to \(EvalAttestation.decimal(weight))%"
            case .hold(let id, let step, let decision):
                let unproven: [String]
                if case .hold(let metrics) = decision.verdict { unproven = metrics.map(\.rawValue) } else { unproven = [] }
                let reason = "not shown non-inferior on \(unproven.joined(separator: ", ")) at the horizon of step \(step + 1); promote or abort"
                let c = try CanaryStore.update(site: site, name: name, command: "canary hold") { c in
                    guard c.id == id, c.step == step, c.status == .running else { return nil }
                    c.status = .held
                    c.reason = reason
                    return ("canary-hold", ["reason": .string(reason), "step": .integer(step)])
                }
                alerts.queue(event: "canary-hold", name: name, reason: reason, from: c.incumbent, to: c.candidate, decision: decision)
                return "canary of \(c.candidate) holds: \(reason)"
            case .trip(let release, let trip):
                let reason =
                    "\(trip.reason.rawValue) \(String(format: "%.4g", trip.observed)) above its limit \(EvalAttestation.decimal(trip.limit)) over \(trip.totals.tasks) tasks in the window"
                try BreakerStore.update(
                    site: site, name: name, release: release, action: "breaker-trip",
                    fields: ["reason": .string(reason), "by": .string("serve")]
                ) { existing in
                    // A person's reset or opening after the trip wins.
                    if let existing, existing.since > trip.at { return existing }
                    return BreakerRecord(state: .tripped(trip), since: trip.at)
                }
                var log = "breaker of \(release) tripped: \(reason)"
                // The alert compares the tripped release with the one its tasks go to: a
                // candidate with its incumbent, a current release with last-good.
                var from = release
                var to: String? = nil
                if let c = try CanaryStore.load(site: site, name: name), c.isActive, c.candidate == release || c.incumbent == release {
                    let why = "the breaker of \(release) tripped: \(reason)"
                    try CanaryStore.abort(site: site, name: name, reason: why)
                    log += "; canary aborted"
                    if c.candidate == release { (from, to) = (c.incumbent, release) }
                }
                if release == site.current(name) {
                    if let target = lastGood {
                        _ = try Activation.rollback(site: site, name: name, to: target)
                        to = target
                        log += "; switched to last-good \(target)"
                    } else {
                        log += "; no last-good release to switch to"
                    }
                }
                alerts.queue(event: "breaker-trip", name: name, reason: reason, from: from, to: to, decision: nil, trip: trip)
                return log
            case .settle(let id):
                // `current` moved under an active canary: to the candidate (a promotion killed
                // before it was recorded, or a person's activate), or elsewhere.
                let c = try CanaryStore.update(site: site, name: name, command: "canary settle") { c in
                    let now = site.current(name)  // read under the site lock
                    guard c.id == id, c.isActive, now != c.incumbent else { return nil }
                    if now == c.candidate {
                        c.status = .promoted
                        c.reason = "the candidate is current (activated)"
                        return ("canary-promote", ["reason": .string(c.reason!), "step": .integer(c.step)])
                    }
                    c.status = .aborted
                    c.reason = "current moved to \(now ?? "nothing") during the canary"
                    return ("canary-abort", ["reason": .string(c.reason!), "step": .integer(c.step)])
                }
                return "canary of \(c.candidate) is \(c.status.rawValue): \(c.reason ?? "")"
            case .drain(let release):
                guard let target = lastGood, site.current(name) == release else { return "nothing to drain" }
                _ = try Activation.rollback(site: site, name: name, to: target)
                return "\(release)'s breaker is open: switched to last-good \(target)"
            }
        } catch {
            logger.error("\(name): \(error)")
            return "failed: \(error)"
        }
    }

    func finished(_ name: String, _ message: String) {
        pending.remove(name)
        logger.notice("\(name): \(message)")
        refresh(name)
        if var queue = queuedTrips[name], !queue.isEmpty {
            let next = queue.removeFirst()
            queuedTrips[name] = queue
            act(name, next)
            return
        }
        decide(name)
    }

    /// Reads the name's canary, breakers and pointer again from the site, unless none of the
    /// files they come from changed since the last time (every tick would otherwise parse them).
    private func refresh(_ name: String) {
        let now = Self.stamps(site, name)
        if stamps[name] == now { return }
        stamps[name] = now
        let canary = try? CanaryStore.load(site: site, name: name)
        let breakers = try? BreakerStore.load(site: site, name: name)
        do {
            recorders[name]?.adopt(try RecordingStore.load(site: site, name: name))
        } catch {
            logger.error("\(name): \(error); recording is off")
            recorders[name]?.adopt(nil)
        }
        let current = site.current(name)
        let lastGood = (try? site.rollbackTarget(name)) ?? nil
        table.with(name) { s in
            if let c = canary, c != s.book.canary { s.book.adopt(canary: c) }
            if let b = breakers { s.book.adopt(breakers: b) }
            s.current = current
            s.lastGood = lastGood
        }
    }

    /// A file as `lstat` sees it. The site replaces its state files and the `current` link by
    /// renaming a new one over them (a new inode), and adding or removing a release changes
    /// the releases folder's modification time.
    struct FileStamp: Equatable {
        var inode: UInt64 = 0
        var size: Int64 = -1
        var seconds: Int = 0
        var nanoseconds: Int = 0
    }

    static func stamps(_ site: Site, _ name: String) -> [FileStamp] {
        let serve = SiteLayout.serveState
        return [
            "\(serve)/\(SiteLayout.canaryFile)", "\(serve)/\(SiteLayout.breakersFile)", "\(serve)/\(RecordingStore.settingsFile)", SiteLayout.state,
            SiteLayout.current, SiteLayout.releases,
        ].map { part in
            var st = stat()
            guard lstat(site.path(name, part), &st) == 0 else { return FileStamp() }
            return FileStamp(inode: UInt64(st.st_ino), size: Int64(st.st_size), seconds: st.st_mtim.tv_sec, nanoseconds: st.st_mtim.tv_nsec)
        }
    }

    // MARK: Supervision

    /// One round of supervision; `serve` runs it every 200 ms.
    func tick() async {
        ticks += 1
        if ticks % 25 == 0 {
            do {
                let sitePolicy = try Self.sitePolicy(site)
                let policy = sitePolicy.rollout
                tools.endpoints = sitePolicy.tools
                alerts.settings = policy.alerts
                for name in names { table.with(name) { $0.book.adopt(settings: policy.settings(for: name)) } }
                policyProblem = nil
            } catch {
                // Fail closed for tools: endpoints the site's policy no longer vouches for (a host
                // taken out of the perimeter, say) get no call. The rest keeps its last settings.
                tools.endpoints = ToolEndpoints()
                if policyProblem != "\(error)" {
                    policyProblem = "\(error)"
                    logger.error("the site's policy does not read (\(error)); no tool call is forwarded until it does")
                }
            }
        }
        let now = Timestamp.monotonicSeconds()
        let wall = Self.wallNow()
        for name in names {
            let metrics = self.metrics
            let previous = table.with(name) { $0.current } ?? nil
            let cur = site.current(name)
            if cur != previous { logger.info("\(name): current is \(cur ?? "none")") }
            refresh(name)
            // Outcomes past their deadline count as failures.
            // In batches, so that routing never waits for more than one batch (a flood of tasks
            // opened together expires together).
            var notices: [RolloutBook.Notice] = []
            var more = true
            while more {
                more =
                    table.with(name) { s -> Bool in
                        let batch = s.book.expired(now: wall, limit: Self.expiryBatch)
                        for event in batch {
                            guard (try? s.journal.append(event)) != nil else { return false }
                            if case .expired(let task, _) = event, let r = s.book.release(of: task) {
                                metrics.outcome(
                                    name: name, release: r, outcome: TaskOutcome(succeeded: false, cost: 0, neededIntervention: false), expired: true)
                            }
                            notices += s.book.apply(event)
                        }
                        return batch.count == Self.expiryBatch
                    } ?? false
            }
            if ticks % 25 == 0 { recorders[name]?.maintain() } else { recorders[name]?.sync() }
            let unflushed = table.with(name) { $0.journal.takeUnflushed() } ?? nil
            handle(name, notices)
            // The flush runs off the actor and outside the table's lock, so that routing does
            // not wait for the disk.
            if let fd = unflushed, !(await Blocking.run { TaskJournal.flush(fd) }) {
                table.with(name) { $0.journal.flushFailed() }
                logger.error("\(name): cannot flush the task journal (fsync failed); it is tried again next tick")
            }
            decide(name)
            let (current, lastGood, canary, currentAllowed) =
                table.with(name) { s in (s.current, s.lastGood, s.book.canary, s.current.map { s.book.breakerAllows($0) } ?? true) }
                ?? (nil, nil, nil, true)
            // A current release whose breaker is open (tripped before a restart of serve, or
            // opened by a person) drains to last-good.
            if let c = current, !currentAllowed, let g = lastGood, entries[name]?[g]?.ready == true {
                act(name, .drain(release: c))
            }
            if let c = canary, c.isActive, c.incumbent != current {
                act(name, .settle(canary: c.id))
            }
            var wanted = Set([current, lastGood].compactMap { $0 })
            if let c = canary, c.isActive, c.incumbent == current { wanted.insert(c.candidate) }
            var all = entries[name] ?? [:]
            for (release, e) in all where !wanted.contains(release) {
                // Out of the table first, so that no request is sent to it while it stops.
                table.with(name) { $0.ready[release] = nil }
                e.runtime?.stop(graceSeconds: 5)
                tools.unregister(e.toolsURL)
                metrics.ready(name: name, release: release, false)
                logger.info("\(name): stopped \(release) (not current, last-good or a canary)")
                all[release] = nil
            }
            for release in wanted.sorted() {
                all[release] = await supervise(name: name, release: release, all[release] ?? Entry(), now: now)
            }
            entries[name] = all
            var ready: [String: RouteTable.Ready] = [:]
            for (release, e) in all {
                guard e.ready, let r = e.runtime, let address = r.connectAddress else { continue }
                ready[release] = RouteTable.Ready(release: release, address: address, pid: r.pid)
            }
            // The gauges are set outside the lock: routing waits for none of it.
            let gauges = table.with(name) { s in
                s.ready = ready
                return ServeMetrics.RolloutGauges(s.book)
            }
            if let gauges { metrics.rollout(name: name, gauges, now: wall) }
        }
    }

    private func supervise(name: String, release: String, _ entry: Entry, now: Double) async -> Entry {
        var e = entry
        if let r = e.runtime, !r.isRunning {
            e.failures += 1
            e.restarts += 1
            e.lastError = "\(release) \(r.ended ?? "stopped"): \(r.outputTail(bytes: 300).trimmingCharacters(in: .whitespacesAndNewlines))"
            logger.warning("\(name): runtime \(e.lastError!)")
            metrics.ready(name: name, release: release, false)
            metrics.restart(name: name)
            e.runtime = nil
            tools.unregister(e.toolsURL)
            e.toolsURL = nil
            e.ready = false
            e.nextStart = now + Self.backoff(e.failures)
            if e.failures >= 3 && !e.crashLoopAlerted {
                e.crashLoopAlerted = true
                alerts.queue(
                    event: "runtime-crash-loop", name: name, reason: "\(release) ended \(e.failures) times in a row; last: \(e.lastError!)",
                    from: nil, to: release, decision: nil)
            }
        }
        if e.runtime == nil, now >= e.nextStart {
            do {
                if let spec = try site.serveSpec(name, release) {
                    // Its own tool URL, which tells the gateway the tools it declares.
                    let declared = try ReleaseGrants.declaredTools(site: site, name: name, release: release)
                    guard let url = tools.register(name: name, release: release, declared: declared) else {
                        return e  // the gateway is not listening yet: next tick
                    }
                    do {
                        e.runtime = try Runtime.start(site: site, name: name, release: release, spec: spec, environment: ["AIRLOCK_TOOLS_URL=\(url)"])
                    } catch {
                        tools.unregister(url)
                        throw error
                    }
                    e.toolsURL = url
                    e.ready = false
                    logger.info("\(name): started \(release)")
                } else {
                    e.lastError = "\(release) declares no serve section"
                    e.nextStart = now + 30
                }
            } catch {
                e.failures += 1
                e.lastError = "\(error)"
                e.nextStart = now + Self.backoff(e.failures)
            }
        }
        e.runtime?.trimOutput()
        if let r = e.runtime, !e.ready {
            e.ready = await probe(r)
            if e.ready {
                metrics.ready(name: name, release: release, true)
                logger.info("\(name): \(release) is ready")
                e.failures = 0
                e.crashLoopAlerted = false
            }
        }
        return e
    }

    /// Seconds before starting a runtime again after `failures` failures in a row: 1, 2, 4,
    /// ... 30.
    static func backoff(_ failures: Int) -> Double { min(30, pow(2, Double(min(failures, 6) - 1))) }

    /// Stops every runtime and makes the journals durable.
    func stopAll() {
        for (name, all) in entries {
            for (_, e) in all {
                e.runtime?.stop(graceSeconds: 5)
                tools.unregister(e.toolsURL)
            }
            entries[name] = [:]
        }
        for j in table.journals() { j.sync() }
    }

    private func probe(_ r: Runtime) async -> Bool {
        guard let address = r.connectAddress else { return false }
        let request = HTTPClientRequest(url: Self.baseURL(address) + r.spec.readyPath)
        guard let response = try? await client.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 64 << 10)
        return response.status.code == 200
    }

    static func baseURL(_ address: Runtime.Address) -> String {
        switch address {
        case .port(let p): return "http://127.0.0.1:\(p)"
        case .socket(let path):
            return "http+unix://" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path)
        }
    }

    // MARK: Status

    /// What each name runs and how its rollout stands, for `/_airlock/status`.
    func status() -> [String: JSONValue] {
        func describe(_ release: String, _ e: Entry?) -> [String: JSONValue] {
            [
                "release": .string(release), "ready": .bool(e?.ready ?? false), "pid": e?.runtime.map { .integer($0.pid) } ?? .null,
                "restarts": .integer(e?.restarts ?? 0), "last_error": e?.lastError.map { .string($0) } ?? .null,
                "address": e?.runtime.map { r -> JSONValue in
                    switch r.address {
                    case .port(let p): return .string("127.0.0.1:\(p)")
                    case .socket(let path): return .string("unix:" + path)
                    }
                } ?? .null,
            ]
        }
        var out: [String: JSONValue] = [:]
        let wall = Self.wallNow()
        for name in names {
            let all = entries[name] ?? [:]
            out[name] = table.with(name) { s -> JSONValue in
                let book = s.book
                var o: [String: JSONValue] = s.current.map { describe($0, all[$0]) } ?? ["release": .null, "ready": .bool(false), "pid": .null]
                o["last_good"] = s.lastGood.map { .object(describe($0, all[$0])) } ?? .null
                o["canary"] =
                    book.canary.map { c in
                        var j = c.json.objectValue ?? [:]
                        j["runtime"] = .object(describe(c.candidate, all[c.candidate]))
                        if let d = book.decision() { j["decision"] = DecisionJSON.json(d) }
                        return .object(j)
                    } ?? .null
                o["breakers"] = .object(
                    book.breakers.reduce(into: [:]) { out, kv in
                        let t = kv.value.totals(at: wall)
                        out[kv.key] = .object([
                            "allows_tasks": .bool(kv.value.allowsTasks), "tasks": .integer(t.tasks), "errors": .integer(t.errors),
                            "interventions": .integer(t.interventions), "cost": .number(EvalAttestation.decimal(t.cost)),
                        ])
                    })
                o["tasks_remembered"] = .integer(book.taskCount)
                o["recording"] = recorders[name]?.status ?? .null
                return .object(o)
            }
        }
        return out
    }
}
