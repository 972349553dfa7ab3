import AirlockFormat
import Foundation

/// The files of a release as a scan on a thread of its own finds them, in bundle order, so that
/// a one-pass pack reads and compresses the first files while the scan is still walking the
/// rest (20,000 files take some 50 ms to scan, which would otherwise pass with one core idle).
///
/// The scan runs `work`, which hands each file to `emit` in bundle order and then runs the
/// checks that need every file (the path set, the tool manifest, the output): the feed is
/// complete only once they passed. An error of the scan or of those checks is thrown by the next
/// call to `file(_:)` or `complete()`, so packing stops at the next file. One consumer.
final class ScanFeed: @unchecked Sendable {
    private let cond = NSCondition()
    // Guarded by `cond`:
    private var files: [SourceFile] = []
    private var total: UInt64 = 0
    private var done = false
    private var failure: Error?
    private var cancelled = false
    private var running = true

    /// Files are published this many at a time (one wake-up of the consumer each), and at the end.
    private static let batch = 32

    struct Cancelled: Error {}

    /// Starts the scan: `work` gets an `emit` that publishes one file (and throws `Cancelled`
    /// once the consumer gave up), and a `finish` that publishes what is left and returns every
    /// file emitted, for the checks that need them all.
    init(_ work: @escaping @Sendable (_ emit: (SourceFile) throws -> Void, _ all: () throws -> [SourceFile]) throws -> Void) {
        let thread = Thread { [self] in
            var pending: [SourceFile] = []
            pending.reserveCapacity(Self.batch)
            var sum: UInt64 = 0  // `work` refuses a release over 2^53 bytes before it is emitted
            func publish() throws {
                cond.lock()
                defer { cond.unlock() }
                if cancelled { throw Cancelled() }
                files.append(contentsOf: pending)
                cond.broadcast()
                pending.removeAll(keepingCapacity: true)
            }
            do {
                try work(
                    { f in
                        sum &+= f.size
                        pending.append(f)
                        if pending.count == Self.batch { try publish() }
                    },
                    {
                        try publish()
                        cond.lock()
                        defer { cond.unlock() }
                        return files
                    })
                try publish()
                cond.lock()
                total = sum
                done = true
            } catch {
                cond.lock()
                if failure == nil && !(error is Cancelled) { failure = error }
            }
            running = false
            cond.broadcast()
            cond.unlock()
        }
        thread.name = "airlock-scan"
        thread.start()
    }

    /// File `index` in bundle order; nil after the last once the scan and its checks are
    /// complete. Waits for the scan to reach it; throws what the scan threw.
    func file(_ index: Int) throws -> SourceFile? {
        cond.lock()
        defer { cond.unlock() }
        while true {
            if let failure { throw failure }
            if index < files.count { return files[index] }
            if done { return nil }
            if !running { throw Cancelled() }
            cond.wait()
        }
    }

    /// Throws what the scan threw, if it failed.
    func throwIfFailed() throws {
        cond.lock()
        defer { cond.unlock() }
        if let failure { throw failure }
    }

    /// The bytes of every file, once the scan is complete; nil before.
    var completedTotal: UInt64? {
        cond.lock()
        defer { cond.unlock() }
        return done ? total : nil
    }

    /// Every file, once the scan and its checks are complete.
    func complete() throws -> [SourceFile] {
        cond.lock()
        defer { cond.unlock() }
        while running { cond.wait() }
        if let failure { throw failure }
        guard done else { throw Cancelled() }
        return files
    }

    /// Stops the scan at its next file and waits for its thread to end.
    func cancel() {
        cond.lock()
        cancelled = true
        while running { cond.wait() }
        cond.unlock()
    }
}
