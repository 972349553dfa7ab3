import CAirlockSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes a stream of bytes to a file from a thread of its own, in 1 MiB blocks, bypassing the
/// page cache (`oDirect`) where the file system allows: copying a many-GB bundle into the page
/// cache costs more CPU on the writing thread than compressing it, and the bundle is read next
/// from another medium, not from this cache. The file's tail (less than a block) is written
/// through the page cache at `close`. Durability is the caller's: direct I/O skips the page
/// cache, not the device's own cache (the site still flushes with syncfs). Memory: three blocks. Errors surface at the next `write`
/// or at `close`. One producer.
package final class BackgroundFileWriter: @unchecked Sendable {
    private static let blockSize = 1 << 20
    private let oDirect = airlock_o_direct()
    private static let depth = 3
    private let fd: Int32
    private let path: String
    private let blocks: [UnsafeMutableRawBufferPointer]
    private var current = 0
    private var filled = 0
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Int] = []
    private var inFlight = 0
    private var closing = false
    private var done = false
    private var error: AirlockError?
    private var direct: Bool
    /// A direct write went through: a later EINVAL is an error, not a refusal of direct I/O.
    private var directWorked = false

    /// Writes to `fd` from its current offset, which must be 0 (a new file). `path` names it in
    /// errors.
    package init(fileDescriptor fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        blocks = (0..<Self.depth).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: Self.blockSize, alignment: 4096) }
        let flags = fcntl(fd, F_GETFL)
        direct = flags >= 0 && fcntl(fd, F_SETFL, flags | oDirect) == 0
        let thread = Thread { [self] in self.run() }
        thread.name = "airlock-write"
        thread.start()
    }

    deinit {
        for b in blocks { b.deallocate() }
    }

    /// The first write error, if any.
    package var pendingError: AirlockError? {
        lock.lock()
        defer { lock.unlock() }
        return error
    }

    /// Copies `bytes` into the current block; a full block goes to the writing thread.
    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = min(Self.blockSize - filled, bytes.count - off)
            (blocks[current].baseAddress! + filled).copyMemory(from: bytes.baseAddress! + off, byteCount: n)
            filled += n
            off += n
            if filled == Self.blockSize { try hand() }
        }
    }

    /// Queues the current block and waits for a free one.
    private func hand() throws {
        lock.lock()
        queue.append(current)
        inFlight += 1
        lock.broadcast()
        while inFlight >= Self.depth && error == nil { lock.wait() }
        let e = error
        lock.unlock()
        if let e { throw e }
        current = (current + 1) % Self.depth
        filled = 0
    }

    /// Waits for every block, then writes the tail through the page cache. Stops the thread.
    package func close() throws {
        lock.lock()
        closing = true
        lock.broadcast()
        while !done { lock.wait() }
        let e = error
        lock.unlock()
        if let e { throw e }
        // Direct I/O off again, whatever the tail: the descriptor's next user writes unaligned.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 && flags & oDirect != 0 { _ = fcntl(fd, F_SETFL, flags & ~oDirect) }
        direct = false
        if filled > 0 {
            if let e = writeAll(UnsafeRawBufferPointer(rebasing: blocks[current][0..<filled])) { throw e }
            filled = 0
        }
    }

    /// Stops the thread without writing what is left (after a failure elsewhere).
    package func abandon() {
        lock.lock()
        closing = true
        queue.removeAll()
        lock.broadcast()
        while !done { lock.wait() }
        lock.unlock()
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 && flags & oDirect != 0 { _ = fcntl(fd, F_SETFL, flags & ~oDirect) }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) -> AirlockError? {
        var off = 0
        while off < bytes.count {
            let n = Sys.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EINVAL && direct && !directWorked {
                // The file system refused direct I/O after all: go through the page cache.
                direct = false
                let flags = fcntl(fd, F_GETFL)
                if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~oDirect) }
                continue
            }
            guard n > 0 else {
                let code = errno
                if code == ENOSPC || code == EDQUOT {
                    return .io(.diskFull, "no space left writing \(path); free some space and run the command again", errno: code)
                }
                return .io(.writeFailed, "cannot write \(path)", errno: code)
            }
            if direct { directWorked = true }
            off += n
        }
        return nil
    }

    private func run() {
        while true {
            lock.lock()
            while queue.isEmpty && !closing { lock.wait() }
            if queue.isEmpty {
                done = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let index = queue.removeFirst()
            let failed = error != nil
            lock.unlock()
            let e = failed ? nil : writeAll(UnsafeRawBufferPointer(blocks[index]))
            lock.lock()
            if let e, error == nil { error = e }
            inFlight -= 1
            lock.broadcast()
            lock.unlock()
        }
    }
}
