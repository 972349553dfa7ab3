import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit
@testable import AirlockRollout

#if canImport(Glibc)
import Glibc
#endif

/// `RolloutBook` (what `airlock serve` knows of a name's tasks) and `TaskJournal` (its
/// append-only log): stickiness at scale, replay equivalence, refusals, deadlines, breakers,
/// per-step statistics, the journal's safety and the book's memory.
@Suite(.serialized) struct RolloutBookTests {
    static let name = "support-agent"
    static let incumbent = "2.3.0-aaaaaaaaaaaa"
    static let candidate = "2.4.0-bbbbbbbbbbbb"
    static let older = "2.2.0-cccccccccccc"
    static let canaryID = "0123456789abcdef"
    static let canaryNumber: UInt64 = 0x0123_4567_89ab_cdef
    static let salt = String(repeating: "5a", count: 32)

    static func canary(
        id: String = canaryID, steps: [Double] = [5, 100], step: Int = 0, status: Canary.Status = .running, generation: Int = 1
    ) -> Canary {
        Canary(
            id: id, salt: salt, candidate: candidate, incumbent: incumbent, steps: steps, step: step, status: status, reason: nil,
            startedAt: "2026-11-26T00:00:00Z", stepStartedAt: "2026-11-26T00:00:00Z", generation: generation)
    }

    static func settings(deadline: Double = 600) -> RolloutSettings {
        var s = RolloutSettings()
        s.outcomeDeadlineSeconds = deadline
        return s
    }

    static func book(
        _ canary: Canary? = canary(), settings: RolloutSettings = settings(), breakers: [String: BreakerRecord] = [:], events: [TaskJournal.Event] = []
    ) -> RolloutBook {
        RolloutBook(name: name, settings: settings, canary: canary, breakers: breakers, events: events)
    }

    static let success = TaskOutcome(succeeded: true, cost: 0.1, neededIntervention: false)
    static let failure = TaskOutcome(succeeded: false, cost: 0.1, neededIntervention: false)

    /// `count` task ids whose bucket is below (`candidate`) or at or above `weight` basis points
    /// under the test salt.
    static func tasks(candidate: Bool, count: Int, weight: UInt64, prefix: String) -> [String] {
        let saltBytes = canary().saltBytes
        var out: [String] = []
        var i = 0
        while out.count < count {
            let task = "\(prefix)-\(i)"
            if Assignment.isCandidate(salt: saltBytes, taskID: task, weight: weight) == candidate { out.append(task) }
            i += 1
        }
        return out
    }

    /// Routes one request of `task`, journals (when given a journal) and applies its assignment;
    /// the release, nil when none can serve it.
    @discardableResult
    static func send(
        _ book: inout RolloutBook, _ task: String, at now: Double, current: String? = incumbent, lastGood: String? = nil,
        usable: (String) -> Bool = { _ in true }, journal: TaskJournal? = nil, written: inout [TaskJournal.Event]
    ) throws -> String? {
        guard let (release, assignment) = book.route(task: task, now: now, current: current, lastGood: lastGood, usable: usable) else { return nil }
        if let assignment {
            try journal?.append(assignment)
            written.append(assignment)
            #expect(book.apply(assignment) == [])
        }
        return release
    }

    @discardableResult
    static func send(
        _ book: inout RolloutBook, _ task: String, at now: Double, current: String? = incumbent, lastGood: String? = nil,
        usable: (String) -> Bool = { _ in true }
    ) throws -> String? {
        var ignored: [TaskJournal.Event] = []
        return try send(&book, task, at: now, current: current, lastGood: lastGood, usable: usable, written: &ignored)
    }

    /// Reports `outcome` for `task` (it must be accepted) and applies it; the notices.
    @discardableResult
    static func report(_ book: inout RolloutBook, _ task: String, _ outcome: TaskOutcome, at now: Double) throws -> [RolloutBook.Notice] {
        let event = try book.report(task: task, outcome: outcome, now: now).get()
        #expect(event == .reported(task: task, outcome: outcome, at: now))
        return book.apply(event)
    }

    /// Everything a book counts, to compare two books or a book before and after.
    struct Snapshot: Equatable {
        var incumbentStats: ReleaseStats
        var candidateStats: ReleaseStats
        var breakers: [String: Breaker]
        var breakerSince: [String: Double]
        var assignedCount: [String: Int]
        var outcomeCount: [String: Int]
        var taskCount: Int

        init(_ b: RolloutBook) {
            incumbentStats = b.incumbentStats
            candidateStats = b.candidateStats
            breakers = b.breakers
            breakerSince = b.breakerSince
            assignedCount = b.assignedCount
            outcomeCount = b.outcomeCount
            taskCount = b.taskCount
        }
    }

    /// A site root (0755) in a scratch folder with `<name>/releases/`, for the journal.
    final class JournalSite {
        let tmp = TempDir()
        let site: Site

        init() {
            chmod(tmp.path, 0o755)
            let root = tmp.file("root")
            for dir in [root, root + "/" + RolloutBookTests.name, root + "/" + RolloutBookTests.name + "/releases"] {
                mkdir(dir, 0o755)
                chmod(dir, 0o755)
            }
            site = Site(root: root)
        }

        var serveDirectory: String { CanaryStore.directory(site: site, name: RolloutBookTests.name) }
        var journalPath: String { serveDirectory + "/" + SiteLayout.taskJournal }

        func journalBytes() -> [UInt8] { Array(FileManager.default.contents(atPath: journalPath) ?? Data()) }

        /// Appends raw bytes to the journal file, as a writer killed mid-line would leave them.
        func appendRaw(_ text: String) throws {
            let h = try #require(FileHandle(forWritingAtPath: journalPath))
            try h.seekToEnd()
            try h.write(contentsOf: Data(text.utf8))
            try h.close()
        }
    }

    static func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }

    /// Gives what earlier tests freed back to the system (glibc's `malloc_trim`), so that the
    /// growth measured is not hidden by pages reused unseen.
    static func trimHeap() {
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        typealias Trim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    /// A SplitMix64 generator, so that the mixed stream is the same in every run.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    // MARK: 1. Stickiness at scale

    @Test func tasksKeepTheirFirstReleaseAtScaleAndAcrossAStep() throws {
        let n = 100_000
        var book = Self.book(Self.canary(steps: [5, 50], step: 0))
        var onCandidate = [Bool](repeating: false, count: n)
        var wrongEvents = 0
        var bucketMismatches = 0
        let saltBytes = Self.canary().saltBytes
        for i in 0..<n {
            let task = "task-\(i)"
            let now = Double(i) / 1000
            let (release, assignment) = try #require(book.route(task: task, now: now, current: Self.incumbent, lastGood: nil) { _ in true })
            let a = try #require(assignment)
            if a != .assigned(task: task, release: release, canary: Self.canaryNumber, step: 0, at: now) { wrongEvents += 1 }
            #expect(book.apply(a) == [])
            onCandidate[i] = release == Self.candidate
            if i < 10_000, Assignment.isCandidate(salt: saltBytes, taskID: task, weight: 500) != onCandidate[i] { bucketMismatches += 1 }
        }
        #expect(wrongEvents == 0)
        #expect(bucketMismatches == 0)
        #expect(book.taskCount == n)
        let share = Double(onCandidate.filter { $0 }.count) / Double(n) * 100
        #expect(abs(share - 5) < 0.5, "candidate share \(share)%")
        #expect(book.assignedCount[Self.candidate, default: 0] + book.assignedCount[Self.incumbent, default: 0] == n)

        // The second and third requests of every task go where its first went, and are not
        // assignments.
        var moved = 0
        for round in 0..<2 {
            for i in 0..<n {
                let r = book.route(task: "task-\(i)", now: 200 + Double(round), current: Self.incumbent, lastGood: nil) { _ in true }
                if r?.release != (onCandidate[i] ? Self.candidate : Self.incumbent) || r?.assignment != nil { moved += 1 }
            }
        }
        #expect(moved == 0)

        // The same canary at its next step (50%): no assigned task moves, though about 45% of
        // them now have a bucket below the weight.
        book.adopt(canary: Self.canary(steps: [5, 50], step: 1))
        var couldMove = 0
        moved = 0
        for i in 0..<n {
            let task = "task-\(i)"
            let r = book.route(task: task, now: 300, current: Self.incumbent, lastGood: nil) { _ in true }
            if r?.release != (onCandidate[i] ? Self.candidate : Self.incumbent) || r?.assignment != nil { moved += 1 }
            if i < 20_000, !onCandidate[i], Assignment.isCandidate(salt: saltBytes, taskID: task, weight: 5000) { couldMove += 1 }
        }
        #expect(moved == 0)
        #expect(couldMove > 8_000, "the step must put many incumbent tasks' buckets below the weight for the test to mean something")

        // New tasks split about evenly, recorded at step 1.
        let m = 50_000
        var newOnCandidate = 0
        wrongEvents = 0
        for i in 0..<m {
            let task = "new-\(i)"
            let now = 400 + Double(i) / 1000
            let (release, assignment) = try #require(book.route(task: task, now: now, current: Self.incumbent, lastGood: nil) { _ in true })
            let a = try #require(assignment)
            if a != .assigned(task: task, release: release, canary: Self.canaryNumber, step: 1, at: now) { wrongEvents += 1 }
            _ = book.apply(a)
            if release == Self.candidate { newOnCandidate += 1 }
        }
        #expect(wrongEvents == 0)
        let newShare = Double(newOnCandidate) / Double(m) * 100
        #expect(abs(newShare - 50) < 1.5, "new tasks' candidate share \(newShare)%")
        #expect(book.taskCount == n + m)
    }

    // MARK: 2. Replay equivalence

    @Test func aBookRebuiltFromTheJournalIsTheSameBook() throws {
        let js = JournalSite()
        var journal: TaskJournal? = try TaskJournal(site: js.site, name: Self.name)
        var a = Self.book(Self.canary(steps: [20, 50]), settings: Self.settings(deadline: 60))
        var written: [TaskJournal.Event] = []
        var rng = SplitMix(state: 42)
        var pending: [String] = []
        var done: [String] = []
        var all: [String] = []
        var refusedDuplicates = 0
        var expiries = 0
        var tick = 0
        for stepIndex in 0..<6000 {
            tick += 1
            let now = Double(tick) / 4
            if stepIndex == 3000 { a.adopt(canary: Self.canary(steps: [20, 50], step: 1)) }
            let roll = rng.next() % 100
            if roll < 45 {
                let task = "t\(all.count)"
                let release = try Self.send(&a, task, at: now, journal: journal, written: &written)
                #expect(release != nil)
                all.append(task)
                pending.append(task)
            } else if roll < 55, !all.isEmpty {
                let task = all[Int(rng.next() % UInt64(all.count))]
                let before = a.release(of: task)
                let r = a.route(task: task, now: now, current: Self.incumbent, lastGood: nil) { _ in true }
                #expect(r?.assignment == nil && r?.release == before)
            } else if roll < 88, !pending.isEmpty {
                let task = pending.remove(at: Int(rng.next() % UInt64(pending.count)))
                let outcome = TaskOutcome(
                    succeeded: rng.next() % 10 < 8, cost: Double(rng.next() % 5000) / 1000, neededIntervention: rng.next() % 20 == 0)
                let event = try a.report(task: task, outcome: outcome, now: now).get()
                try journal?.append(event)
                written.append(event)
                _ = a.apply(event)
                done.append(task)
            } else if roll < 95, !done.isEmpty {
                let task = done[Int(rng.next() % UInt64(done.count))]
                if case .failure(.duplicate) = a.report(task: task, outcome: Self.success, now: now) { refusedDuplicates += 1 }
            } else {
                let events = a.expired(now: now)
                for e in events {
                    try journal?.append(e)
                    written.append(e)
                    _ = a.apply(e)
                    if case .expired(let task, _) = e {
                        pending.removeAll { $0 == task }
                        done.append(task)
                        expiries += 1
                    }
                }
            }
        }
        journal?.sync()
        journal = nil
        #expect(refusedDuplicates > 50)
        #expect(expiries > 50, "the stream must expire tasks")
        #expect(a.candidateStats.tasks > 50 && a.incumbentStats.tasks > 50)

        let read = try TaskJournal.read(site: js.site, name: Self.name)
        #expect(read.skipped == 0)
        #expect(read.events == written)
        let b = Self.book(Self.canary(steps: [20, 50], step: 1), settings: Self.settings(deadline: 60), events: read.events)
        #expect(Snapshot(a) == Snapshot(b))

        let end = Double(tick) / 4 + 1
        var differences = 0
        for task in all + ["unseen-1", "unseen-2", "unseen-3"] {
            let ra = a.route(task: task, now: end, current: Self.incumbent, lastGood: nil) { _ in true }
            let rb = b.route(task: task, now: end, current: Self.incumbent, lastGood: nil) { _ in true }
            if ra?.release != rb?.release || ra?.assignment != rb?.assignment { differences += 1 }
            if a.report(task: task, outcome: Self.success, now: end) != b.report(task: task, outcome: Self.success, now: end) { differences += 1 }
            if a.release(of: task) != b.release(of: task) { differences += 1 }
        }
        #expect(differences == 0)
        #expect(a.expired(now: end + 1000) == b.expired(now: end + 1000))
        #expect(b.report(task: "unseen-1", outcome: Self.success, now: end) == .failure(.unknownTask))

        // A line a kill cut short: readers drop it; the next writer truncates it.
        let whole = js.journalBytes()
        #expect(whole.last == 0x0A)
        try js.appendRaw("o \(all[0]) 1 0.5")
        let torn = try TaskJournal.read(site: js.site, name: Self.name)
        #expect(torn.events == written)
        #expect(torn.skipped == 0)
        var reopened: TaskJournal? = try TaskJournal(site: js.site, name: Self.name)
        #expect(js.journalBytes() == whole)
        #expect(js.journalBytes().last == 0x0A)

        // A whole line that does not parse is skipped and counted; the next event starts on its
        // own line.
        try js.appendRaw("not an event\n")
        let next = TaskJournal.Event.assigned(task: "after-restart", release: Self.incumbent, canary: 0, step: 0, at: end)
        try reopened?.append(next)
        reopened = nil
        let again = try TaskJournal.read(site: js.site, name: Self.name)
        #expect(again.skipped == 1)
        #expect(again.events == written + [next])
    }

    // MARK: 3. Refusals

    @Test func reportsOfUnknownFinishedAndExpiredTasksAreRefusedAndChangeNothing() throws {
        var book = Self.book(Self.canary(steps: [50, 100]), settings: Self.settings(deadline: 60))
        let c = Self.tasks(candidate: true, count: 2, weight: 5000, prefix: "r")
        #expect(book.report(task: "nobody", outcome: Self.success, now: 1) == .failure(.unknownTask))

        try Self.send(&book, c[0], at: 0)
        try Self.send(&book, c[1], at: 0)
        try Self.report(&book, c[0], Self.success, at: 5)
        #expect(book.candidateStats.tasks == 1)
        #expect(book.report(task: c[0], outcome: Self.failure, now: 6) == .failure(.duplicate(expired: false)))

        let expired = book.expired(now: 61)
        #expect(expired == [.expired(task: c[1], at: 61)])
        for e in expired { _ = book.apply(e) }
        #expect(book.report(task: c[1], outcome: Self.success, now: 62) == .failure(.duplicate(expired: true)))
        #expect(book.candidateStats.tasks == 2)
        #expect(book.candidateStats.success.sum == 1)

        // Events for refused reports (a caller that journaled them anyway, or a replayed
        // duplicate) change nothing.
        let before = Snapshot(book)
        #expect(book.apply(.reported(task: "nobody", outcome: Self.failure, at: 63)) == [])
        #expect(book.apply(.reported(task: c[0], outcome: Self.failure, at: 63)) == [])
        #expect(book.apply(.reported(task: c[1], outcome: Self.failure, at: 63)) == [])
        #expect(book.apply(.expired(task: c[0], at: 63)) == [])
        #expect(book.apply(.expired(task: "nobody", at: 63)) == [])
        #expect(book.apply(.assigned(task: c[0], release: Self.incumbent, canary: 0, step: 0, at: 63)) == [])
        #expect(Snapshot(book) == before)
        #expect(book.release(of: c[0]) == Self.candidate)
        #expect(book.report(task: c[0], outcome: Self.success, now: 64) == .failure(.duplicate(expired: false)))
        #expect(book.report(task: c[1], outcome: Self.success, now: 64) == .failure(.duplicate(expired: true)))
        #expect(book.report(task: "nobody", outcome: Self.success, now: 64) == .failure(.unknownTask))
    }

    // MARK: 4. Deadlines

    @Test func aTaskWithoutAnOutcomeByItsDeadlineCountsAsAFailure() throws {
        var book = Self.book(Self.canary(steps: [50, 100]), settings: Self.settings(deadline: 60))
        let c = Self.tasks(candidate: true, count: 2, weight: 5000, prefix: "d")
        let i = Self.tasks(candidate: false, count: 2, weight: 5000, prefix: "d")
        try Self.send(&book, c[0], at: 0)
        try Self.send(&book, i[0], at: 0)
        try Self.send(&book, i[1], at: 0)
        try Self.send(&book, c[1], at: 30)
        #expect(book.release(of: c[0]) == Self.candidate && book.release(of: i[0]) == Self.incumbent)
        try Self.report(&book, i[1], Self.success, at: 10)

        #expect(book.expired(now: 59).isEmpty)
        let due = book.expired(now: 61)
        #expect(due == [.expired(task: c[0], at: 61), .expired(task: i[0], at: 61)])
        for e in due { #expect(book.apply(e) == []) }
        #expect(book.expired(now: 61).isEmpty)
        #expect(book.expired(now: 89).isEmpty)

        #expect(book.candidateStats.tasks == 1 && book.candidateStats.success.sum == 0)
        #expect(book.incumbentStats.tasks == 2 && book.incumbentStats.success.sum == 1)
        #expect(book.outcomeCount[Self.candidate] == 1 && book.outcomeCount[Self.incumbent] == 2)
        let totals = book.breakerTotals(now: 61)
        #expect(totals[Self.candidate]?.errors == 1 && totals[Self.incumbent]?.errors == 1)

        #expect(book.expired(now: 91) == [.expired(task: c[1], at: 91)])
    }

    // MARK: 5. Breakers

    @Test func aFailingCandidateTripsAndItsTasksGoToTheFallbackUntilReset() throws {
        var book = Self.book(Self.canary(steps: [50, 100]))
        let cands = Self.tasks(candidate: true, count: 30, weight: 5000, prefix: "b")
        let incs = Self.tasks(candidate: false, count: 30, weight: 5000, prefix: "b")
        let minimum = book.settings.breaker.minimumTasks
        var t = 0.0
        for task in cands.prefix(minimum) + incs.prefix(minimum) {
            #expect(try Self.send(&book, task, at: t) == (cands.contains(task) ? Self.candidate : Self.incumbent))
            t += 1
        }
        var trip: BreakerTrip?
        for k in 0..<minimum {
            #expect(try Self.report(&book, incs[k], Self.success, at: t) == [])
            t += 1
            let notices = try Self.report(&book, cands[k], Self.failure, at: t)
            if k < minimum - 1 {
                #expect(notices == [], "tripped after \(k + 1) outcomes")
                #expect(book.breakerAllows(Self.candidate))
            } else {
                guard case .tripped(let release, let tr)? = notices.first, notices.count == 1 else {
                    Issue.record("no trip after \(minimum) failures: \(notices)")
                    return
                }
                #expect(release == Self.candidate)
                #expect(tr.reason == .errorRate && tr.totals.tasks == minimum && tr.totals.errors == minimum)
                trip = tr
            }
            t += 1
        }
        let tripped = try #require(trip)
        #expect(!book.breakerAllows(Self.candidate))
        #expect(book.breakerAllows(Self.incumbent))
        #expect(book.breakerSince[Self.candidate] == tripped.at)

        // Its known tasks and new tasks of candidate buckets go to the fallback (current).
        for task in cands.prefix(minimum) {
            let r = book.route(task: task, now: t, current: Self.incumbent, lastGood: Self.older) { _ in true }
            #expect(r?.release == Self.incumbent && r?.assignment == nil)
        }
        for task in cands[minimum...].prefix(5) {
            #expect(try Self.send(&book, task, at: t, lastGood: Self.older) == Self.incumbent)
        }

        // The trip as persisted (same since) changes nothing; a newer closed record re-allows it.
        book.adopt(breakers: [Self.candidate: BreakerRecord(state: .tripped(tripped), since: tripped.at)])
        #expect(!book.breakerAllows(Self.candidate))
        book.adopt(breakers: [Self.candidate: BreakerRecord(state: .closed, since: t + 100)])
        #expect(book.breakerAllows(Self.candidate))
        #expect(book.breakerTotals(now: t + 100)[Self.candidate]?.tasks == 0)
        #expect(try Self.send(&book, cands[29], at: t + 101) == Self.candidate)
        // An outcome from before the reset does not count in the new window.
        #expect(try Self.report(&book, cands[29], Self.failure, at: t + 99) == [])
        #expect(book.breakerTotals(now: t + 101)[Self.candidate]?.tasks == 0)
    }

    @Test func aTrippedCurrentSendsTasksToTheLastGoodRelease() throws {
        var book = Self.book(Self.canary(steps: [50, 100]))
        var written: [TaskJournal.Event] = []
        let incs = Self.tasks(candidate: false, count: 30, weight: 5000, prefix: "c")
        let cands = Self.tasks(candidate: true, count: 5, weight: 5000, prefix: "c")
        let minimum = book.settings.breaker.minimumTasks
        var t = 0.0
        for task in incs.prefix(minimum) {
            #expect(try Self.send(&book, task, at: t, lastGood: Self.older, written: &written) == Self.incumbent)
            t += 1
        }
        var notices: [RolloutBook.Notice] = []
        for task in incs.prefix(minimum) {
            let e = try book.report(task: task, outcome: Self.failure, now: t).get()
            written.append(e)
            notices += book.apply(e)
            t += 1
        }
        #expect(notices.count == 1)
        guard case .tripped(let release, let trip)? = notices.first else {
            Issue.record("the current release did not trip")
            return
        }
        #expect(release == Self.incumbent)
        #expect(!book.breakerAllows(Self.incumbent))

        // New tasks, even of candidate buckets, and the current's known tasks go to last-good.
        for task in incs[minimum...].prefix(3) + cands.prefix(3) {
            let r = book.route(task: task, now: t, current: Self.incumbent, lastGood: Self.older) { _ in true }
            #expect(r?.release == Self.older)
            #expect(r?.assignment == .assigned(task: task, release: Self.older, canary: Self.canaryNumber, step: 0, at: t))
        }
        let known = book.route(task: incs[0], now: t, current: Self.incumbent, lastGood: Self.older) { _ in true }
        #expect(known?.release == Self.older && known?.assignment == nil)
        // No usable last-good: nothing can serve (503).
        #expect(book.route(task: incs[0], now: t, current: Self.incumbent, lastGood: Self.older) { $0 != Self.older } == nil)
        #expect(book.route(task: "fresh", now: t, current: Self.incumbent, lastGood: nil) { _ in true } == nil)

        // Rebuilt from the journal with the persisted trip: the same routing.
        let replayed = Self.book(
            Self.canary(steps: [50, 100]), breakers: [Self.incumbent: BreakerRecord(state: .tripped(trip), since: trip.at)], events: written)
        #expect(!replayed.breakerAllows(Self.incumbent))
        #expect(replayed.route(task: incs[0], now: t, current: Self.incumbent, lastGood: Self.older) { _ in true }?.release == Self.older)

        // A person resets it: tasks go to current again.
        book.adopt(breakers: [Self.incumbent: BreakerRecord(state: .closed, since: t + 10)])
        #expect(book.breakerAllows(Self.incumbent))
        #expect(try Self.send(&book, incs[29], at: t + 11, lastGood: Self.older) == Self.incumbent)
        let back = book.route(task: incs[0], now: t + 11, current: Self.incumbent, lastGood: Self.older) { _ in true }
        #expect(back?.release == Self.incumbent && back?.assignment == nil)
    }

    @Test func metricsOnlyBreakersNeverTripAfterAResetOrAPolicyChange() throws {
        var metricsOnly = Self.settings()
        metricsOnly.breakerMetricsOnly = true
        func failAll(_ book: inout RolloutBook, _ prefix: String, from t: Double) throws -> [RolloutBook.Notice] {
            var notices: [RolloutBook.Notice] = []
            for k in 0..<30 {
                let task = "\(prefix)-\(k)"
                #expect(try Self.send(&book, task, at: t + Double(k)) == Self.incumbent)
                notices += try Self.report(&book, task, Self.failure, at: t + Double(k))
                if !notices.isEmpty { break }
            }
            return notices
        }

        // A breaker a person reset (`airlock breaker reset` writes a closed record) stays
        // metrics only under the site's metrics_only, in the rebuilt book and when adopted.
        var rebuilt = Self.book(nil, settings: metricsOnly, breakers: [Self.incumbent: BreakerRecord(state: .closed, since: 5)])
        #expect(try failAll(&rebuilt, "a", from: 10) == [])
        #expect(rebuilt.breakerAllows(Self.incumbent))
        #expect(rebuilt.breakers[Self.incumbent]?.breach(at: 40) != nil, "a metrics-only breaker still reports what would trip it")
        rebuilt.adopt(breakers: [Self.incumbent: BreakerRecord(state: .closed, since: 100)])
        #expect(try failAll(&rebuilt, "b", from: 110) == [])
        #expect(rebuilt.breakerAllows(Self.incumbent))

        // metrics_only switched on while serving applies to the breakers that already exist...
        var live = Self.book(nil)
        #expect(try Self.send(&live, "first", at: 1) == Self.incumbent)
        try Self.report(&live, "first", Self.success, at: 1)
        live.adopt(settings: metricsOnly)
        #expect(try failAll(&live, "c", from: 10) == [])
        #expect(live.breakerAllows(Self.incumbent))
        // ...and switched off, so does enforcing.
        live.adopt(settings: Self.settings())
        let notices = try failAll(&live, "d", from: 100)
        #expect(notices.count == 1)
        #expect(!live.breakerAllows(Self.incumbent))
    }

    // MARK: 6. Statistics per step

    @Test func outcomesCountOnlyInTheStepTheirTaskWasAssignedIn() throws {
        var book = Self.book(Self.canary(steps: [50, 100], step: 0))
        let c = Self.tasks(candidate: true, count: 6, weight: 5000, prefix: "s")
        let i = Self.tasks(candidate: false, count: 6, weight: 5000, prefix: "s")
        for task in c.prefix(4) + i.prefix(4) { try Self.send(&book, task, at: 1) }
        try Self.report(&book, c[0], Self.success, at: 2)
        try Self.report(&book, i[0], Self.failure, at: 2)
        #expect(book.candidateStats.tasks == 1 && book.incumbentStats.tasks == 1)

        // The same canary, changed but not moved (held, a new generation): nothing resets.
        book.adopt(canary: Self.canary(steps: [50, 100], step: 0, status: .held, generation: 2))
        #expect(book.candidateStats.tasks == 1 && book.incumbentStats.tasks == 1)
        try Self.report(&book, c[1], Self.success, at: 3)
        #expect(book.candidateStats.tasks == 2)

        // Step 1: step 0's outcomes no longer count.
        book.adopt(canary: Self.canary(steps: [50, 100], step: 1, generation: 3))
        #expect(book.candidateStats == ReleaseStats() && book.incumbentStats == ReleaseStats())
        try Self.report(&book, c[2], Self.success, at: 4)
        try Self.report(&book, i[2], Self.success, at: 4)
        #expect(book.candidateStats.tasks == 0 && book.incumbentStats.tasks == 0)
        #expect(book.outcomeCount[Self.candidate] == 3 && book.outcomeCount[Self.incumbent] == 2)

        let late = Self.tasks(candidate: true, count: 1, weight: 10_000, prefix: "s1")
        try Self.send(&book, late[0], at: 5)
        #expect(book.release(of: late[0]) == Self.candidate)
        try Self.report(&book, late[0], Self.failure, at: 6)
        #expect(book.candidateStats.tasks == 1 && book.candidateStats.success.sum == 0)
        #expect(book.incumbentStats.tasks == 0)

        // A new canary (another id) starts from zero, and the old canary's tasks do not count.
        book.adopt(canary: Self.canary(id: "fedcba9876543210", steps: [50, 100], step: 1))
        #expect(book.candidateStats == ReleaseStats())
        try Self.report(&book, c[3], Self.success, at: 7)
        #expect(book.candidateStats.tasks == 0)
    }

    // MARK: 7. The journal's safety

    @Test func aSecondJournalOfTheNameIsRefusedWhileTheFirstIsOpen() throws {
        let js = JournalSite()
        var first: TaskJournal? = try TaskJournal(site: js.site, name: Self.name)
        try first?.append(.assigned(task: "one", release: Self.incumbent, canary: 0, step: 0, at: 1))
        #expect { try TaskJournal(site: js.site, name: Self.name) } throws: { ($0 as? AirlockError)?.code == "site-busy" }
        // Readers do not need the lock.
        #expect(try TaskJournal.read(site: js.site, name: Self.name).events.count == 1)
        first = nil
        let second = try TaskJournal(site: js.site, name: Self.name)
        try second.append(.expired(task: "one", at: 2))
        #expect(
            try TaskJournal.read(site: js.site, name: Self.name).events == [
                .assigned(task: "one", release: Self.incumbent, canary: 0, step: 0, at: 1), .expired(task: "one", at: 2),
            ])
    }

    @Test func aLinkOrASecondNameAtTheJournalIsRefusedAndItsTargetUntouched() throws {
        let js = JournalSite()
        mkdir(js.serveDirectory, 0o755)
        let target = js.tmp.write("outside.log", Array("keep\n".utf8))
        #expect(symlink(target, js.journalPath) == 0)
        #expect { try TaskJournal(site: js.site, name: Self.name) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect { try TaskJournal.read(site: js.site, name: Self.name) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect(FileManager.default.contents(atPath: target) == Data("keep\n".utf8))

        // The refusal released the serve lock: once the link is gone, a journal opens.
        unlink(js.journalPath)
        #expect(link(target, js.journalPath) == 0)
        #expect { try TaskJournal(site: js.site, name: Self.name) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect(FileManager.default.contents(atPath: target) == Data("keep\n".utf8))
        unlink(js.journalPath)
        let journal = try TaskJournal(site: js.site, name: Self.name)
        try journal.append(.expired(task: "x", at: 1))
        #expect(FileManager.default.contents(atPath: target) == Data("keep\n".utf8))

        // A link at the lock or at the rollout folder is refused too.
        let js2 = JournalSite()
        mkdir(js2.serveDirectory, 0o755)
        let lockTarget = js2.tmp.write("outside.lock", Array("keep\n".utf8))
        #expect(symlink(lockTarget, js2.serveDirectory + "/" + SiteLayout.serveLock) == 0)
        #expect { try TaskJournal(site: js2.site, name: Self.name) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect(FileManager.default.contents(atPath: lockTarget) == Data("keep\n".utf8))

        let js3 = JournalSite()
        let elsewhere = js3.tmp.file("elsewhere")
        mkdir(elsewhere, 0o755)
        #expect(symlink(elsewhere, js3.serveDirectory) == 0)
        #expect { try TaskJournal(site: js3.site, name: Self.name) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: elsewhere)) == [])
    }

    // MARK: 8. Memory and retention

    @Test func a100000TaskBookStaysSmall() throws {
        let n = 100_000
        Self.trimHeap()
        let before = Self.residentBytes()
        let start = ContinuousClock.now
        var book = Self.book(Self.canary(steps: [5, 100]))
        for k in 0..<n {
            let task = String(format: "%08x-7a1e-4b2c-9d3f-%012x", k, k &* 2_654_435_761)  // as long as a UUID
            let now = Double(k) / 100
            let (_, assignment) = try #require(book.route(task: task, now: now, current: Self.incumbent, lastGood: nil) { _ in true })
            _ = book.apply(try #require(assignment))
            let outcome = TaskOutcome(succeeded: k % 10 != 0, cost: Double(k % 50) / 100, neededIntervention: k % 50 == 0)
            _ = book.apply(try book.report(task: task, outcome: outcome, now: now + 1).get())
        }
        let elapsed = ContinuousClock.now - start
        let after = Self.residentBytes()
        withExtendedLifetime(book) {}
        let growth = after - before
        print(
            "RolloutBookTests: \(n) tasks routed and reported in \(elapsed); resident memory grew \(String(format: "%.1f", Double(growth) / 1_048_576)) MiB"
        )
        #expect(book.taskCount == n)
        #expect(book.outcomeCount.values.reduce(0, +) == n)
        #expect(before > 0 && growth < 64 << 20)
    }

    @Test func finishedTasksAreForgottenAfterTheRetentionPeriodAndExpiryStillWorks() throws {
        // Metrics-only breakers: the 5,000 expiries below would trip the current release.
        var settings = Self.settings(deadline: 60)
        settings.breakerMetricsOnly = true
        var book = Self.book(nil, settings: settings)
        let n = 10_000
        for k in 0..<n { try Self.send(&book, "old-\(k)", at: Double(k) / 1000) }
        for k in stride(from: 0, to: n, by: 2) { try Self.report(&book, "old-\(k)", Self.success, at: 20) }
        let retention = book.retentionSeconds
        #expect(retention == 86_400)

        // An unfinished task holds the ones after it until it expires.
        #expect(try Self.send(&book, "x", at: retention + 20) == Self.incumbent)
        #expect(book.taskCount > n - 10)
        let due = book.expired(now: retention + 20)
        #expect(due.count == n / 2)
        for e in due { _ = book.apply(e) }
        #expect(try Self.send(&book, "y", at: retention + 21) == Self.incumbent)
        #expect(book.taskCount == 2)
        #expect(book.report(task: "old-0", outcome: Self.success, now: retention + 22) == .failure(.unknownTask))
        #expect(book.report(task: "old-1", outcome: Self.success, now: retention + 22) == .failure(.unknownTask))

        // After the forgotten tasks are dropped from the order, deadlines still work.
        #expect(try Self.send(&book, "z", at: retention + 30) == Self.incumbent)
        try Self.report(&book, "y", Self.success, at: retention + 31)
        #expect(book.expired(now: retention + 79).isEmpty)
        #expect(book.expired(now: retention + 81) == [.expired(task: "x", at: retention + 81)])
        #expect(book.expired(now: retention + 91) == [.expired(task: "x", at: retention + 91), .expired(task: "z", at: retention + 91)])
        // A forgotten task id seen again is a new task.
        let r = book.route(task: "old-0", now: retention + 92, current: Self.incumbent, lastGood: nil) { _ in true }
        #expect(r?.assignment == .assigned(task: "old-0", release: Self.incumbent, canary: 0, step: 0, at: retention + 92))
    }

    /// Compaction keeps what a rebuilt book needs: a journal of old forgotten tasks and recent
    /// ones, compacted, gives the same statistics, remembered tasks and routing, and refuses the
    /// same reports; the forgotten tasks' events are gone.
    @Test func aCompactedJournalRebuildsTheSameBook() throws {
        var events: [TaskJournal.Event] = []
        // A canary whose step started long ago: its old tasks stay for the statistics.
        var book = Self.book(Self.canary())
        for i in 0..<300 {
            let task = "old-\(i)"
            try Self.send(&book, task, at: Double(i), written: &events)
            let e = try book.report(task: task, outcome: i % 7 == 0 ? Self.failure : Self.success, now: Double(i) + 1).get()
            events.append(e)
            _ = book.apply(e)
        }
        // A day and more later, under a new step: the old tasks are forgotten and not in the step.
        book.adopt(canary: Self.canary(steps: [5, 50], step: 1, generation: 2))
        let later = 3 * 86_400.0
        for i in 0..<200 {
            let task = "new-\(i)"
            try Self.send(&book, task, at: later + Double(i), written: &events)
            if i % 3 != 0 {
                let e = try book.report(task: task, outcome: i % 5 == 0 ? Self.failure : Self.success, now: later + Double(i) + 0.5).get()
                events.append(e)
                _ = book.apply(e)
            }
        }
        let needed = book.needed(events)
        #expect(needed.count < events.count / 2, "\(needed.count) of \(events.count) events kept")
        let rebuilt = RolloutBook(
            name: Self.name, settings: Self.settings(), canary: Self.canary(steps: [5, 50], step: 1, generation: 2), breakers: [:], events: needed)
        #expect(rebuilt.incumbentStats == book.incumbentStats && rebuilt.candidateStats == book.candidateStats)
        #expect(rebuilt.taskCount == book.taskCount)
        for i in 0..<200 {
            let task = "new-\(i)"
            #expect(rebuilt.release(of: task) == book.release(of: task))
            let now = later + 300
            switch (rebuilt.report(task: task, outcome: Self.success, now: now), book.report(task: task, outcome: Self.success, now: now)) {
            case (.success, .success), (.failure(.duplicate), .failure(.duplicate)): break
            case (let a, let b): Issue.record("\(task): \(a) after compaction, \(b) before")
            }
        }
        #expect(rebuilt.release(of: "old-1") == nil)

        // Through a real journal, as serve does it: replayed while read, compacted in one
        // streaming pass into a file of the owner's alone that replaces it, and later appends
        // go to the new one.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("airlock-compact-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/" + Self.name + "/releases", withIntermediateDirectories: true)
        let site = Site(root: root)
        let journal = try TaskJournal(site: site, name: Self.name)
        for e in events { try journal.append(e) }
        var replayed = RolloutBook(
            name: Self.name, settings: Self.settings(), canary: Self.canary(steps: [5, 50], step: 1, generation: 2), breakers: [:], events: [])
        var stepTasks: Set<String> = []
        let read = try TaskJournal.forEach(site: site, name: Self.name) { e in
            _ = replayed.apply(e)
            if let t = replayed.currentStepTask(e) { stepTasks.insert(t) }
        }
        #expect(read.events == events.count && read.skipped == 0)
        let c = try journal.compact { replayed.keeps($0, stepTasks: stepTasks) }
        #expect(c.replaced && c.kept == needed.count && c.total == events.count)
        let extra = TaskJournal.Event.assigned(task: "after", release: Self.incumbent, canary: 0, step: 0, at: later + 400)
        try journal.append(extra)
        #expect(try TaskJournal.read(site: site, name: Self.name).events == needed + [extra])
        var st = stat()
        #expect(stat(root + "/" + Self.name + "/.serve/" + SiteLayout.taskJournal, &st) == 0 && st.st_mode & 0o777 == 0o600)
        // Nothing left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/" + Self.name + "/.serve").sorted() == ["serve.lock", "tasks.log"])
        // A journal that keeps more than half stays as it is.
        let kept = try journal.compact { _ in true }
        #expect(!kept.replaced && kept.total == needed.count + 1)
    }

    /// The journal is read in 1 MiB pieces: events across a piece's edge, a line too long to be
    /// one of the journal's (skipped without being held), and a last line a kill cut short
    /// (dropped, and cut off when the journal is opened for writing).
    @Test func theJournalIsReadInPieces() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("airlock-pieces-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/" + Self.name + "/.serve", withIntermediateDirectories: true)
        let site = Site(root: root)
        var bytes: [UInt8] = []
        var written: [TaskJournal.Event] = []
        for i in 0..<40_000 {
            let e = TaskJournal.Event.assigned(task: "task-\(i)", release: Self.incumbent, canary: 0, step: 0, at: Double(i))
            written.append(e)
            bytes += TaskJournal.line(e) + [0x0A]
            if i == 20_000 { bytes += [UInt8](repeating: 0x61, count: 3 << 20) + [0x0A] }
        }
        bytes += Array("a torn-".utf8)
        #expect(bytes.count > 4 << 20)
        let path = root + "/" + Self.name + "/.serve/" + SiteLayout.taskJournal
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]))
        var seen: [TaskJournal.Event] = []
        let r = try TaskJournal.forEach(site: site, name: Self.name) { seen.append($0) }
        #expect(r.events == 40_000 && r.skipped == 1 && seen == written)
        _ = try TaskJournal(site: site, name: Self.name)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == bytes.count - 7)
    }

    /// A flood of task ids cannot grow the book past its capacity: finished tasks are forgotten
    /// oldest first, and while every remembered task is open no new task is taken (known ones
    /// still are), until outcomes or deadlines finish some.
    @Test func aFloodOfTaskIdsStopsAtTheCapacity() throws {
        var settings = Self.settings(deadline: 60)
        settings.breaker.errorRate = nil  // the expiries below are failures: not a breaker's business here
        var book = RolloutBook(name: Self.name, settings: settings, canary: nil, breakers: [:], events: [], capacity: 100)
        for i in 0..<100 { #expect(try Self.send(&book, "open-\(i)", at: Double(i) / 100) == Self.incumbent) }
        #expect(book.isFull && book.taskCount == 100)
        #expect(try Self.send(&book, "one-more", at: 2) == nil)
        #expect(try Self.send(&book, "open-7", at: 2) == Self.incumbent)
        // Outcomes for the ten oldest: they are forgotten at once, and room is made.
        for i in 0..<10 { try Self.report(&book, "open-\(i)", Self.success, at: 3) }
        #expect(book.taskCount == 90 && !book.isFull)
        for i in 0..<10 { #expect(try Self.send(&book, "next-\(i)", at: 4) == Self.incumbent) }
        #expect(book.isFull)
        // Past the deadline the open ones expire (failures), and are forgotten in turn.
        for e in book.expired(now: 100) { _ = book.apply(e) }
        #expect(book.taskCount < 100)
        #expect(try Self.send(&book, "after-expiry", at: 101) == Self.incumbent)
    }
}
