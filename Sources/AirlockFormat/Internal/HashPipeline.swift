import Foundation

/// Hashes payload files on a thread of its own while the reader goes on decompressing and
/// parsing (verify: three stages on two cores). Nothing is copied: the hasher reads each file's
/// bytes where the decompressor put them, in chunks of the `DecompressedStream` that it holds
/// (`retain`) until they are hashed, so a chunk is recycled once both the reader and the hasher
/// are past it. Each file's digest is compared with the one expected as soon as both are known
/// (a file read before the manifest was parsed learns its digest later, `expect`); `finish`
/// reports the first file of the manifest that differed, so memory does not grow with the
/// number of files (beyond those waiting for their expected digest). Memory: the stream's chunks (it is widened to `DecompressedStream.maxDepth`), and
/// at most `maxQueued` jobs of at most `maxSegments` segments. One producer, one hasher.
package final class HashPipeline: @unchecked Sendable {
    private static let maxSegments = 4096
    private static let maxQueued = 16
    private let stream: DecompressedStream
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Job] = []
    private var closed = false
    private var finished = false
    /// The mismatch of the lowest manifest index seen so far.
    private var mismatch: (file: Int, got: SHA256Digest)?
    private var hashedFiles = 0
    /// Files hashed before their expected digest was given: id to digest.
    private var unmatched: [Int: SHA256Digest] = [:]
    /// Expected digests given before their file was hashed: id to (manifest index, digest).
    private var expectations: [Int: (file: Int, digest: SHA256Digest)] = [:]
    // The producer's (`finish` runs on the producer too):
    private var job = Job()
    private var endedFiles = 0

    private struct Segment {
        /// The file's id, given by the caller: unique, in the order the files come.
        var file: Int
        var bytes: UnsafeRawBufferPointer
        /// Set on a file's last segment.
        var end: End?
    }

    private enum End {
        /// The file is manifest file `index` and must have `digest`.
        case expected(index: Int, digest: SHA256Digest)
        /// Its expected digest comes later (`expect`).
        case later
    }

    /// Segments in order; `chunk`: the stream's chunk their bytes lie in, held for the hasher.
    private struct Job {
        var chunk: DecompressedStream.Chunk?
        var segments: [Segment] = []
    }

    /// A pipeline hashing bytes that lie in `stream`'s chunks.
    package init(stream: DecompressedStream) {
        self.stream = stream
        stream.widen()
        let thread = Thread { [self] in self.run() }
        thread.name = "airlock-verify-hash"
        thread.start()
    }

    private func submit() {
        if job.segments.isEmpty && job.chunk == nil { return }
        lock.lock()
        while queue.count >= Self.maxQueued { lock.wait() }
        queue.append(job)
        lock.broadcast()
        lock.unlock()
        job = Job()
    }

    /// Bytes of the file of id `file` (files come one after the other, each in order), lying in `chunk`
    /// of the stream, which the caller holds; `endsChunk`: nothing after them is in `chunk`.
    package func add(_ bytes: UnsafeRawBufferPointer, chunk: DecompressedStream.Chunk, endsChunk: Bool, file: Int) {
        if job.chunk?.index != chunk.index {
            if job.chunk != nil { submit() }
            stream.retain(chunk)
            job.chunk = chunk
        }
        job.segments.append(Segment(file: file, bytes: bytes, end: nil))
        // The reader has left the chunk: hash it now rather than when the next one comes.
        if endsChunk || job.segments.count >= Self.maxSegments { submit() }
    }

    /// Ends the file of id `file`, which is manifest file `index` and must have digest `expected`.
    package func end(file: Int, index: Int, expected: SHA256Digest) {
        finishFile(file, .expected(index: index, digest: expected))
    }

    /// Ends the file of id `file`, whose place in the manifest and digest `expect` gives later.
    package func endUnmatched(file: Int) {
        finishFile(file, .later)
    }

    private func finishFile(_ file: Int, _ end: End) {
        job.segments.append(Segment(file: file, bytes: UnsafeRawBufferPointer(start: nil, count: 0), end: end))
        endedFiles += 1
        if job.segments.count >= Self.maxSegments { submit() }
    }

    /// The file of id `file`, ended with `endUnmatched`, is manifest file `index` and must have
    /// digest `expected`.
    package func expect(file: Int, index: Int, expected: SHA256Digest) {
        lock.lock()
        if let got = unmatched.removeValue(forKey: file) {
            record(index, got: got, expected: expected)
        } else {
            expectations[file] = (index, expected)
        }
        lock.unlock()
    }

    /// Under `lock`: keeps the mismatch of the lowest manifest index.
    private func record(_ index: Int, got: SHA256Digest, expected: SHA256Digest) {
        if got != expected, mismatch.map({ index < $0.file }) ?? true { mismatch = (index, got) }
    }

    /// The outcome once every byte given was hashed: the file of the lowest manifest index whose
    /// digest was not the one expected, or nil; `complete` is false if a file ended was never
    /// hashed or never given its expected digest. Stops the hasher; every chunk it held is
    /// recycled.
    package func finish() -> (mismatch: (file: Int, got: SHA256Digest)?, complete: Bool) {
        submit()
        lock.lock()
        closed = true
        lock.broadcast()
        while !finished { lock.wait() }
        let out = (mismatch, hashedFiles == endedFiles && unmatched.isEmpty && expectations.isEmpty)
        lock.unlock()
        return out
    }

    private func run() {
        let hasher = SHA256Hasher()
        var file = -1
        var done: [(file: Int, end: End, got: SHA256Digest)] = []
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
            lock.broadcast()
            lock.unlock()
            done.removeAll(keepingCapacity: true)
            for s in job.segments {
                if s.file != file {
                    hasher.reset()
                    file = s.file
                }
                if s.bytes.count > 0 { hasher.update(s.bytes) }
                if let end = s.end {
                    done.append((s.file, end, hasher.finish()))
                    file = -1
                }
            }
            if let c = job.chunk { stream.recycle(c) }
            lock.lock()
            hashedFiles += done.count
            for d in done {
                switch d.end {
                case .expected(let index, let digest): record(index, got: d.got, expected: digest)
                case .later:
                    if let e = expectations.removeValue(forKey: d.file) {
                        record(e.file, got: d.got, expected: e.digest)
                    } else {
                        unmatched[d.file] = d.got
                    }
                }
            }
            lock.unlock()
        }
    }
}
