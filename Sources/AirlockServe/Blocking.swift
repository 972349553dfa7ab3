import Dispatch

/// Runs blocking work (the site lock, fsync, a health check, an alert command) on a thread of
/// its own rather than on Swift's cooperative threads, which are as many as the cores: two
/// blocked there would stall every request.
enum Blocking {
    private static let queue = DispatchQueue(label: "airlock.serve.blocking", attributes: .concurrent)

    /// `body`'s result, computed on the blocking queue.
    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}
