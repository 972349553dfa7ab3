import Foundation

/// Runs one throwing computation on a thread of its own, so that the caller can go on with
/// other work and collect the result after (`airlock verify` parses the manifest while it
/// reads ahead). One caller; `value` may be called once.
package final class BackgroundTask<T: Sendable>: @unchecked Sendable {
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var result: Result<T, Error>?

    package init(name: String, _ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let r = Result { try body() }
            lock.lock()
            result = r
            lock.broadcast()
            lock.unlock()
        }
        thread.name = name
        thread.start()
    }

    /// True once the computation ended (returned or threw).
    package var isDone: Bool {
        lock.lock()
        defer { lock.unlock() }
        return result != nil
    }

    /// Waits for the computation and returns what it returned, or throws what it threw.
    package func value() throws -> T {
        lock.lock()
        while result == nil { lock.wait() }
        let r = result!
        lock.unlock()
        return try r.get()
    }
}
