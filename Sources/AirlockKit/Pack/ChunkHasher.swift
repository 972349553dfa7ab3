import AirlockFormat
import Foundation

/// Hashes the chunks a packer reads on a thread of its own, in the order they were read, so that
/// reading, compressing and hashing each keep a core busy. Chunks live in a ring of `depth`
/// buffers: chunk `n` is read into buffer `n % depth`, which is free again once chunk
/// `n - depth` was hashed (the reader, going in order, has handed it to the compressor by then).
/// One reader, one hasher. Memory: `depth` MiB.
final class ChunkHasher: @unchecked Sendable {
    static let chunkSize = 1 << 20
    private let depth = 3
    private let buffers: [UnsafeMutableRawBufferPointer]
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Job] = []
    private var hashed = 0
    private var submitted = 0
    private var closed = false
    private var finished = false
    private var digests: [SHA256Digest?]

    private struct Job {
        var buffer: Int
        var count: Int
        var file: Int
        var last: Bool
    }

    init(files: Int) {
        digests = Array(repeating: nil, count: files)
        buffers = (0..<depth).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 64) }
        let thread = Thread { [self] in self.run() }
        thread.name = "airlock-hash"
        thread.start()
    }

    deinit {
        for b in buffers { b.deallocate() }
    }

    /// The buffer for the next chunk, once the hasher is done with what it held.
    func nextBuffer() -> UnsafeMutableRawBufferPointer {
        lock.lock()
        while hashed < submitted - depth + 1 { lock.wait() }
        lock.unlock()
        return buffers[submitted % depth]
    }

    /// Hands the chunk just read into `nextBuffer()` (its first `count` bytes) to the hasher;
    /// `last` ends file `file`. A file with no bytes is one chunk of none.
    func submit(count: Int, file: Int, last: Bool) {
        lock.lock()
        queue.append(Job(buffer: submitted % depth, count: count, file: file, last: last))
        submitted += 1
        lock.broadcast()
        lock.unlock()
    }

    /// Records the digest of file `file`, hashed by the caller.
    func record(_ digest: SHA256Digest, file: Int) {
        lock.lock()
        digests[file] = digest
        lock.unlock()
    }

    /// Waits for every chunk submitted to be hashed and returns the digests, one per file;
    /// nil for a file whose chunks were not all submitted. Stops the hasher.
    func finish() -> [SHA256Digest?] {
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
            if job.file != file {
                hasher.reset()
                file = job.file
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffers[job.buffer][0..<job.count]))
            let digest = job.last ? hasher.finish() : nil
            lock.lock()
            if let digest { digests[job.file] = digest }
            hashed += 1
            lock.broadcast()
            lock.unlock()
            if job.last { file = -1 }
        }
    }
}
