import Foundation

/// Hashes payload files on a thread of its own while the reader goes on decompressing and
/// parsing (verify: three stages on two cores). The reader copies each file's bytes in; small
/// files share a buffer. Each file's digest is compared with the one expected as soon as it is
/// known; `finish` reports the first file that differed, so memory does not grow with the
/// number of files. Memory: `depth` buffers of 1 MiB. One producer, one hasher.
package final class HashPipeline: @unchecked Sendable {
    private static let bufferSize = 1 << 20
    private let depth = 4
    private let buffers: [UnsafeMutableRawBufferPointer]
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Job] = []
    private var free: [Int]
    private var closed = false
    private var finished = false
    private var mismatch: (file: Int, got: SHA256Digest)?
    private var hashedFiles = 0
    private var endedFiles = 0
    // The producer's:
    private var current: Int?
    private var filled = 0
    private var segments: [Segment] = []

    private struct Segment {
        var file: Int
        var start: Int
        var count: Int
        /// Set on a file's last segment: the digest it must have.
        var expected: SHA256Digest?
    }

    private struct Job {
        var buffer: Int
        var segments: [Segment]
    }

    package init() {
        buffers = (0..<depth).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 64) }
        free = Array(0..<depth)
        let thread = Thread { [self] in self.run() }
        thread.name = "airlock-verify-hash"
        thread.start()
    }

    deinit {
        for b in buffers { b.deallocate() }
    }

    private func buffer() -> Int {
        if let c = current { return c }
        lock.lock()
        while free.isEmpty { lock.wait() }
        let b = free.removeLast()
        lock.unlock()
        current = b
        filled = 0
        return b
    }

    private func submit() {
        guard let c = current else { return }
        lock.lock()
        queue.append(Job(buffer: c, segments: segments))
        lock.broadcast()
        lock.unlock()
        current = nil
        segments = []
    }

    /// Bytes of file `file` (files come one after the other, each in order).
    package func add(_ bytes: UnsafeRawBufferPointer, file: Int) {
        var off = 0
        while off < bytes.count {
            let b = buffer()
            let n = min(Self.bufferSize - filled, bytes.count - off)
            (buffers[b].baseAddress! + filled).copyMemory(from: bytes.baseAddress! + off, byteCount: n)
            segments.append(Segment(file: file, start: filled, count: n, expected: nil))
            filled += n
            off += n
            if filled == Self.bufferSize { submit() }
        }
    }

    /// Ends file `file`, whose digest must be `expected`.
    package func end(file: Int, expected: SHA256Digest) {
        _ = buffer()
        segments.append(Segment(file: file, start: filled, count: 0, expected: expected))
        endedFiles += 1
        if segments.count >= 4096 { submit() }
    }

    /// The outcome once every byte given was hashed: the first file whose digest was not the one
    /// expected (in the order given), or nil; `complete` is false if a file ended was never
    /// hashed (a bug). Stops the hasher.
    package func finish() -> (mismatch: (file: Int, got: SHA256Digest)?, complete: Bool) {
        submit()
        lock.lock()
        closed = true
        lock.broadcast()
        while !finished { lock.wait() }
        let out = (mismatch, hashedFiles == endedFiles)
        lock.unlock()
        return out
    }

    private func run() {
        let hasher = SHA256Hasher()
        var file = -1
        while true {
            lock.lock()
            while queue.isEmpty && !closed { lock.wait() }
            if queue.isEmpty {
                finished = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let job = queue.removeFirst()
            lock.unlock()
            var done = 0
            var wrong: (file: Int, got: SHA256Digest)?
            for s in job.segments {
                if s.file != file {
                    hasher.reset()
                    file = s.file
                }
                if s.count > 0 { hasher.update(UnsafeRawBufferPointer(rebasing: buffers[job.buffer][s.start..<s.start + s.count])) }
                if let expected = s.expected {
                    let got = hasher.finish()
                    if got != expected && wrong == nil { wrong = (s.file, got) }
                    done += 1
                    file = -1
                }
            }
            lock.lock()
            hashedFiles += done
            if mismatch == nil, let wrong { mismatch = wrong }
            free.append(job.buffer)
            lock.broadcast()
            lock.unlock()
        }
    }
}
