#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A reader-writer lock (`pthread_rwlock_t`) that prefers writers.
///
/// The event loops route the requests of known tasks as readers, side by side; a first request
/// of a task and the supervisor write. With a plain mutex the loops took turns on every request,
/// and a loop that found it taken slept in the kernel (`futex`) until the other let go: a wake-up
/// in the path of the request. Writers are preferred so that a steady stream of readers does not
/// keep an assignment waiting.
final class ReadWriteLock: @unchecked Sendable {  // the pthread lock is the synchronisation
    private let rwlock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        rwlock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        let status = pthread_rwlock_init(rwlock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
        precondition(status == 0, "pthread_rwlock_init failed: \(status)")
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }

    /// Runs `body` holding the lock shared with other readers.
    func withReadLock<R>(_ body: () throws -> R) rethrows -> R {
        let status = pthread_rwlock_rdlock(rwlock)
        precondition(status == 0, "pthread_rwlock_rdlock failed: \(status)")
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    /// Runs `body` holding the lock alone.
    func withWriteLock<R>(_ body: () throws -> R) rethrows -> R {
        let status = pthread_rwlock_wrlock(rwlock)
        precondition(status == 0, "pthread_rwlock_wrlock failed: \(status)")
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }
}
