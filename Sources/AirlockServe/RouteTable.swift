import AirlockKit
import Logging
import NIOConcurrencyHelpers

/// What routing a request needs, per managed name: the name's `RolloutBook` with its journal,
/// the releases `current` and last-good, and the runtimes that answered ready. The event loops
/// route agent requests here, under one lock and on their own thread, never waiting for the
/// `Supervisor` actor; the supervisor changes it under the same lock.
final class RouteTable: @unchecked Sendable {  // every access to `slots` holds `lock`
    /// One managed name.
    struct Slot {
        var book: RolloutBook
        let journal: TaskJournal
        var current: String?
        var lastGood: String?
        /// The runtimes that answered ready, by release folder.
        var ready: [String: Ready] = [:]
    }

    /// A runtime that answered ready: where to connect, and its process.
    struct Ready: Sendable, Equatable {
        let address: Runtime.Address
        let pid: Int32
    }

    /// A runtime a request goes to.
    struct Target: Sendable, Equatable {
        /// The release folder it serves.
        let release: String
        let address: Runtime.Address
        /// The runtime's process: connections kept alive to it are not lent to another.
        let pid: Int32
    }

    /// Why a request cannot be routed now (a 503).
    struct Unavailable: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    private let lock = NIOLock()
    private var slots: [String: Slot] = [:]
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func insert(_ name: String, _ slot: Slot) {
        lock.withLock { slots[name] = slot }
    }

    /// Runs `body` on the name's slot under the lock; nil when the name is not served.
    func with<R>(_ name: String, _ body: (inout Slot) throws -> R) rethrows -> R? {
        try lock.withLock { () -> R? in
            // In place (`slots[name]!`): a copy of the book would be copied whole on write.
            guard slots[name] != nil else { return nil }
            return try body(&slots[name]!)
        }
    }

    /// Every name's journal, for the last sync on the way out.
    func journals() -> [TaskJournal] { lock.withLock { slots.values.map(\.journal) } }

    /// Where a request of `task` for `name` goes now, recording the task's assignment (in the
    /// journal, then in the book) on its first request; why not while no release can serve it.
    func route(name: String, task: String, now: Double) -> Result<Target, Unavailable> {
        // The task's key (a SHA-256) is computed before the lock is taken.
        let key = RolloutBook.TaskKey(task)
        let routed = with(name) { s -> Result<Target, Unavailable> in
            let ready = s.ready
            guard
                let (release, assignment) = s.book.route(
                    task: task, key: key, now: now, current: s.current, lastGood: s.lastGood, usable: { ready[$0] != nil })
            else {
                if s.book.isFull && s.book.release(of: task) == nil {
                    return .failure(
                        Unavailable(
                            "\(name) has \(s.book.capacity) tasks without an outcome; report outcomes (POST /_airlock/outcomes/\(name)) or wait for their deadline"
                        ))
                }
                return .failure(Unavailable("no runtime of \(name) is ready yet; try again shortly"))
            }
            if let assignment {
                do {
                    try s.journal.append(assignment)
                } catch {
                    logger.error("\(name): cannot record the assignment of a task: \(error)")
                    return .failure(Unavailable("\(name): the task could not be recorded (\(error)); nothing was sent to a release"))
                }
                _ = s.book.apply(assignment)
            }
            guard let runtime = ready[release] else { return .failure(Unavailable("no runtime of \(name) is ready yet; try again shortly")) }
            return .success(Target(release: release, address: runtime.address, pid: runtime.pid))
        }
        return routed ?? .failure(Unavailable("\(name) is not served"))
    }
}
