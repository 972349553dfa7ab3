import Foundation

/// Hashes payload files on a thread of its own while the reader goes on decompressing and
/// parsing (verify: three stages on two cores). The reader copies each file's bytes in; small
/// files share a buffer. Digests come back at `finish`, one per file index. Memory: `depth`
/// buffers of 1 MiB. One producer, one hasher.
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
    private var digests: [Int: SHA256Digest] = [:]
    // The producer's:
    private var current: Int?
    private var filled = 0
    private var segments: [Segment] = []

    private struct Segment {
        var file: Int
        var start: Int
        var count: Int
        var last: Bool
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
            segments.append(Segment(file: file, start: filled, count: n, last: false))
            filled += n
            off += n
            if filled == Self.bufferSize { submit() }
        }
    }

    /// Ends file `file`: its digest is computed once its last byte is hashed.
    package func end(file: Int) {
        _ = buffer()
        segments.append(Segment(file: file, start: filled, count: 0, last: true))
        if segments.count >= 4096 { submit() }
    }

    /// Waits for every byte given to be hashed and returns the digests of the files ended.
    /// Stops the hasher.
    package func finish() -> [Int: SHA256Digest] {
        submit()
        lock.lock()
        closed = true
        lock.broadcast()
        while !finished { lock.wait() }
        let out = digests
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
            var done: [(Int, SHA256Digest)] = []
            for s in job.segments {
                if s.file != file {
                    hasher.reset()
                    file = s.file
                }
                if s.count > 0 { hasher.update(UnsafeRawBufferPointer(rebasing: buffers[job.buffer][s.start..<s.start + s.count])) }
                if s.last {
                    done.append((s.file, hasher.finish()))
                    file = -1
                }
            }
            lock.lock()
            for (f, d) in done { digests[f] = d }
            free.append(job.buffer)
            lock.broadcast()
            lock.unlock()
        }
    }
}
