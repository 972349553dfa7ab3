import AirlockKit
import Logging

/// What routing a request needs, per managed name: the name's `RolloutBook` with its journal,
/// the releases `current` and last-good, and the runtimes that answered ready. The event loops
/// route agent requests here, on their own thread, never waiting for the `Supervisor` actor:
/// a request of a task already assigned as a reader of the table's lock, side by side with the
/// other loops; a task's first request, and every change the supervisor makes, as its writer.
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
        /// The `Host` header of the requests sent to it.
        let host: String
        /// The key its kept-alive connections are pooled under: per runtime process, so that a
        /// port or a socket used again by another runtime never gets a connection of the one before.
        let poolKey: String

        init(release: String, address: Runtime.Address, pid: Int32) {
            self.address = address
            self.pid = pid
            switch address {
            case .port(let p):
                host = "127.0.0.1:\(p)"
                poolKey = "\(release) \(pid) tcp:\(p)"
            case .socket(let path):
                host = "localhost"
                poolKey = "\(release) \(pid) unix:\(path)"
            }
        }
    }

    /// A runtime a request goes to.
    struct Target: Sendable, Equatable {
        /// The release folder it serves.
        let release: String
        let runtime: Ready
        var address: Runtime.Address { runtime.address }
        /// The runtime's process: connections kept alive to it are not lent to another.
        var pid: Int32 { runtime.pid }
    }

    /// Why a request cannot be routed now (a 503).
    struct Unavailable: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    private let lock = ReadWriteLock()
    private var slots: [String: Slot] = [:]
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func insert(_ name: String, _ slot: Slot) {
        lock.withWriteLock { slots[name] = slot }
    }

    /// Runs `body` on the name's slot holding the lock alone; nil when the name is not served.
    func with<R>(_ name: String, _ body: (inout Slot) throws -> R) rethrows -> R? {
        try lock.withWriteLock { () -> R? in
            // In place (`slots[name]!`): a copy of the book would be copied whole on write.
            guard slots[name] != nil else { return nil }
            return try body(&slots[name]!)
        }
    }

    /// Every name's journal, for the last sync on the way out.
    func journals() -> [TaskJournal] { lock.withReadLock { slots.values.map(\.journal) } }

    /// Where a request of `task` for `name` goes now, recording the task's assignment (in the
    /// journal, then in the book) on its first request; why not while no release can serve it.
    func route(name: String, task: String, now: Double) -> Result<Target, Unavailable> {
        // The task's key (a SHA-256) is computed before the lock is taken.
        let key = RolloutBook.TaskKey(task)
        // A task already assigned changes nothing: the loops route it as readers. A first
        // request is decided again as the writer (the table may have changed in between).
        let known = lock.withReadLock { () -> Decision? in
            slots[name].map { Self.decide($0, name: name, task: task, key: key, now: now) }
        }
        switch known {
        case nil: return .failure(Unavailable("\(name) is not served"))
        case .serve(let target)?: return .success(target)
        case .refuse(let why)?: return .failure(why)
        case .assign?: break
        }
        let routed = with(name) { s -> Result<Target, Unavailable> in
            switch Self.decide(s, name: name, task: task, key: key, now: now) {
            case .serve(let target): return .success(target)
            case .refuse(let why): return .failure(why)
            case .assign(let target, let assignment):
                do {
                    try s.journal.append(assignment)
                } catch {
                    logger.error("\(name): cannot record the assignment of a task: \(error)")
                    return .failure(Unavailable("\(name): the task could not be recorded (\(error)); nothing was sent to a release"))
                }
                _ = s.book.apply(assignment)
                return .success(target)
            }
        }
        return routed ?? .failure(Unavailable("\(name) is not served"))
    }

    /// Where a request goes, decided without changing anything.
    private enum Decision {
        /// To a release the task is assigned to (or falls back to).
        case serve(Target)
        /// The task's first request: to `Target` once the assignment is recorded.
        case assign(Target, TaskJournal.Event)
        case refuse(Unavailable)
    }

    private static func decide(_ s: Slot, name: String, task: String, key: RolloutBook.TaskKey, now: Double) -> Decision {
        let ready = s.ready
        guard
            let (release, assignment) = s.book.route(
                task: task, key: key, now: now, current: s.current, lastGood: s.lastGood, usable: { ready[$0] != nil })
        else {
            if s.book.isFull && s.book.release(of: task) == nil {
                return .refuse(
                    Unavailable(
                        "\(name) has \(s.book.capacity) tasks without an outcome; report outcomes (POST /_airlock/outcomes/\(name)) or wait for their deadline"
                    ))
            }
            return .refuse(Unavailable("no runtime of \(name) is ready yet; try again shortly"))
        }
        guard let runtime = ready[release] else { return .refuse(Unavailable("no runtime of \(name) is ready yet; try again shortly")) }
        let target = Target(release: release, runtime: runtime)
        if let assignment { return .assign(target, assignment) }
        return .serve(target)
    }
}
