import AirlockFormat
import Foundation

/// Hashes the chunks a packer reads on a thread of its own, in the order they were read, so that
/// reading, compressing and hashing each keep a core busy. The reader reads into a ring of
/// `depth` buffers of 1 MiB; small files share a buffer (one after the other), so that the
/// hasher is handed a whole buffer at a time, never a file at a time: 20,000 files of 3 KiB
/// cost some 60 hand-overs, not 20,000. A buffer is free again once the hasher went through
/// it (the reader, going in order, has handed it to the compressor by then).
/// One reader, one hasher. Memory: `depth` MiB.
final class ChunkHasher: @unchecked Sendable {
    static let chunkSize = 1 << 20
    private let depth = 3
    private let buffers: [UnsafeMutableRawBufferPointer]
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Job] = []
    private var hashed = 0
    private var closed = false
    private var finished = false
    private var digests: [SHA256Digest?] = []
    // The reader's:
    private var submitted = 0
    private var filled = 0
    private var segments: [Segment] = []

    private struct Segment {
        var start: Int
        var count: Int
        var file: Int
        var last: Bool
    }

    private struct Job {
        var buffer: Int
        var segments: [Segment]
    }

    init() {
        buffers = (0..<depth).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 64) }
        let thread = Thread { [self] in self.run() }
        thread.name = "airlock-hash"
        thread.start()
    }

    deinit {
        for b in buffers { b.deallocate() }
    }

    /// Room for the next chunk: what is left of the buffer being filled when that holds
    /// `wanted` bytes (or is still empty), else a whole buffer, once the hasher is done with it.
    func nextBuffer(wanted: Int) -> UnsafeMutableRawBufferPointer {
        if filled > 0 && Self.chunkSize - filled < min(wanted, Self.chunkSize) { handOver() }
        if filled == 0 {
            lock.lock()
            while hashed < submitted - depth + 1 { lock.wait() }
            lock.unlock()
        }
        return UnsafeMutableRawBufferPointer(rebasing: buffers[submitted % depth][filled...])
    }

    /// Hands the chunk just read into `nextBuffer` (its first `count` bytes) to the hasher;
    /// `last` ends file `file`. A file with no bytes is one chunk of none.
    func submit(count: Int, file: Int, last: Bool) {
        segments.append(Segment(start: filled, count: count, file: file, last: last))
        filled += count
        if filled == Self.chunkSize { handOver() }
    }

    /// Gives the buffer being filled to the hasher.
    private func handOver() {
        guard !segments.isEmpty else { return }
        lock.lock()
        queue.append(Job(buffer: submitted % depth, segments: segments))
        submitted += 1
        lock.broadcast()
        lock.unlock()
        segments.removeAll(keepingCapacity: true)
        filled = 0
    }

    /// Waits for every chunk submitted to be hashed and returns the digests, one per file up to
    /// the last file submitted; nil for a file whose chunks were not all submitted. Stops the
    /// hasher.
    func finish() -> [SHA256Digest?] {
        handOver()
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
        var done: [(Int, SHA256Digest)] = []
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
            for s in job.segments {
                if s.file != file {
                    hasher.reset()
                    file = s.file
                }
                hasher.update(UnsafeRawBufferPointer(rebasing: buffers[job.buffer][s.start..<(s.start + s.count)]))
                if s.last {
                    done.append((s.file, hasher.finish()))
                    file = -1
                }
            }
            lock.lock()
            for (f, d) in done {
                if f >= digests.count { digests.append(contentsOf: repeatElement(nil, count: f - digests.count + 1)) }
                digests[f] = d
            }
            hashed += 1
            lock.broadcast()
            lock.unlock()
            done.removeAll(keepingCapacity: true)
        }
    }
}
