import CZstd
import Foundation

/// The payload of a one-pass pack: the tar stream goes into a ring of `frameSize` slots, each
/// slot is hashed (per file, in order) on one thread and compressed as a zstd frame of its own
/// on `workers` others, and the frames are written in order (`BackgroundFileWriter`).
///
/// Every byte is read once, by the packing thread, straight into the slot it belongs to: the
/// file reads land at the end of the stream so far (`room`), and when libarchive hands the same
/// bytes back as tar data (`emit`) they are already in place, not copied. Only the tar headers
/// and paddings are copied in. The hasher and the compressors read the slots where they are.
///
/// A frame depends on its slot's bytes, the level and `frameSize` only: the output is the same
/// for any number of workers. A slot is free again once it is hashed and its frame written.
/// Memory: `workers + 4` slots (at least 6) of `frameSize` input, `workers + 2` frames of
/// output, and a compressor per worker.
package final class FramedPayloadWriter: @unchecked Sendable {
    /// Bytes of the tar stream per zstd frame. A frame declares its size, and zstd never gives
    /// a frame a window larger than its size: at most 2 MiB (512 KiB at level 1), well under
    /// the 8 MiB a reader allows.
    package static let frameSize = 2 << 20
    /// Slots in the ring: one being filled, and enough for every worker to have one to compress
    /// while the hasher and the writer have theirs.
    private let slots: Int

    private let level: Int32
    private let sink: BackgroundFileWriter
    private let inputs: [UnsafeMutableRawBufferPointer]
    private let outputs: [UnsafeMutableRawBufferPointer]
    private let lock = NSCondition()

    // The packing thread's:
    /// Slots handed over so far: the slot being filled is `sequence % slots`.
    private var sequence = 0
    private var filled = 0
    private var segments: [Segment] = []
    private var started = false

    // Guarded by `lock`:
    /// Per slot: 2 while it is with the hasher and the compressors, 1 once one of them is done.
    private var users: [Int]
    private var lengths: [Int]
    private var slotSegments: [[Segment]]
    private var toHash: [Int] = []
    private var toCompress: [Int] = []
    private var freeOutputs: [Int]
    /// Frames compressed and not yet written: sequence -> (output, size).
    private var compressed: [Int: (output: Int, size: Int)] = [:]
    private var nextToWrite = 0
    private var writing = false
    private var closed = false
    private var stopped = false
    private var running = 0
    private var failure: AirlockError?
    private var digests: [SHA256Digest?] = []

    private struct Segment {
        var start: Int
        var count: Int
        var file: Int
        var last: Bool
    }

    /// Writes the frames to `fd`, a new and empty file, from the start (`BackgroundFileWriter`).
    package init(fileDescriptor fd: Int32, path: String, level: Int, workers: Int) throws {
        guard (1...19).contains(level) else {
            throw AirlockError(.usage, .archiveSetupFailed, "compression level \(level) is out of range (zstd 1-19)")
        }
        self.level = Int32(level)
        let workers = max(1, workers)
        let slots = max(6, workers + 4)
        self.slots = slots
        inputs = (0..<slots).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: Self.frameSize, alignment: 64) }
        let bound = ZSTD_compressBound(Self.frameSize)
        outputs = (0..<(workers + 2)).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: bound, alignment: 64) }
        freeOutputs = Array(outputs.indices)
        users = Array(repeating: 0, count: slots)
        lengths = Array(repeating: 0, count: slots)
        slotSegments = Array(repeating: [], count: slots)
        sink = BackgroundFileWriter(fileDescriptor: fd, path: path)
        running = workers + 1
        let hasher = Thread { [self] in hash() }
        hasher.name = "airlock-hash"
        hasher.start()
        for i in 0..<workers {
            let worker = Thread { [self] in compress() }
            worker.name = "airlock-zstd-\(i)"
            worker.start()
        }
    }

    deinit {
        for b in inputs { b.deallocate() }
        for b in outputs { b.deallocate() }
    }

    // MARK: The packing thread

    /// Room for the next bytes of the stream: the rest of the slot being filled (a whole slot
    /// once the hasher and the writer are done with it). Throws what failed in the threads.
    package func room() throws -> UnsafeMutableRawBufferPointer {
        if filled == Self.frameSize { try handOver() }
        if !started { try claim() }
        return UnsafeMutableRawBufferPointer(rebasing: inputs[sequence % slots][filled...])
    }

    /// The first `count` bytes of `room()` are file `file`'s next bytes (`last`: its end); they
    /// enter the stream when `emit` is handed them. A file of no bytes is one chunk of none.
    package func fileData(count: Int, file: Int, last: Bool) {
        segments.append(Segment(start: filled, count: count, file: file, last: last))
    }

    /// The next bytes of the stream (libarchive's output): already in place when they are the
    /// bytes read into `room()`, else copied in.
    package func emit(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        if started, bytes.baseAddress == UnsafeRawPointer(inputs[sequence % slots].baseAddress! + filled) {
            precondition(filled + bytes.count <= Self.frameSize, "FramedPayloadWriter.emit: more bytes in place than the room given")
            filled += bytes.count
            return
        }
        var off = 0
        while off < bytes.count {
            let space = try room()
            let n = min(space.count, bytes.count - off)
            space.baseAddress!.copyMemory(from: bytes.baseAddress! + off, byteCount: n)
            filled += n
            off += n
        }
    }

    /// Waits until the slot to fill next is free.
    private func claim() throws {
        let slot = sequence % slots
        lock.lock()
        while users[slot] > 0 && failure == nil { lock.wait() }
        let e = failure
        lock.unlock()
        if let e { throw e }
        started = true
        filled = 0
    }

    /// Gives the slot being filled to the hasher and the compressors.
    private func handOver() throws {
        guard started, filled > 0 else { return }
        let slot = sequence % slots
        lock.lock()
        users[slot] = 2
        lengths[slot] = filled
        slotSegments[slot] = segments
        toHash.append(sequence)
        toCompress.append(sequence)
        lock.broadcast()
        let e = failure
        lock.unlock()
        segments.removeAll(keepingCapacity: true)
        sequence += 1
        started = false
        filled = 0
        if let e { throw e }
    }

    /// Hands over what is left, waits for every frame to be written and every file hashed, and
    /// returns the digests, one per file (nil for a file whose last bytes never came). Stops
    /// the threads.
    package func finish() throws -> [SHA256Digest?] {
        do {
            try handOver()
        } catch {
            abandon()
            throw error
        }
        lock.lock()
        closed = true
        lock.broadcast()
        while running > 0 { lock.wait() }
        let e = failure
        let out = digests
        lock.unlock()
        if let e {
            sink.abandon()
            throw e
        }
        try sink.close()
        return out
    }

    /// Stops the threads without writing what is left (after a failure elsewhere).
    package func abandon() {
        lock.lock()
        if failure == nil { failure = AirlockError(.internal, .writeFailed, "the payload was abandoned") }
        stopped = true
        closed = true
        lock.broadcast()
        while running > 0 { lock.wait() }
        lock.unlock()
        sink.abandon()
    }

    // MARK: The hasher

    private func hash() {
        let hasher = SHA256Hasher()
        var file = -1
        var done: [(Int, SHA256Digest)] = []
        lock.lock()
        while true {
            while toHash.isEmpty && !closed && !stopped { lock.wait() }
            if stopped || toHash.isEmpty { break }
            let sequence = toHash.removeFirst()
            let slot = sequence % slots
            let segments = slotSegments[slot]
            lock.unlock()
            for s in segments {
                if s.file != file {
                    hasher.reset()
                    file = s.file
                }
                hasher.update(UnsafeRawBufferPointer(rebasing: inputs[slot][s.start..<(s.start + s.count)]))
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
            done.removeAll(keepingCapacity: true)
            users[slot] -= 1
            lock.broadcast()
        }
        running -= 1
        lock.broadcast()
        lock.unlock()
    }

    // MARK: The compressors

    private func compress() {
        var cctx = ZSTD_createCCtx()
        defer { ZSTD_freeCCtx(cctx) }
        if let c = cctx {
            for (p, v) in [(ZSTD_c_compressionLevel, level), (ZSTD_c_checksumFlag, 0), (ZSTD_c_contentSizeFlag, 1)]
            where ZSTD_isError(ZSTD_CCtx_setParameter(c, p, v)) != 0 {
                // A compressor at another level would change the bytes: none at all.
                ZSTD_freeCCtx(c)
                cctx = nil
                break
            }
        }
        lock.lock()
        if cctx == nil, failure == nil {
            failure = AirlockError(.internal, .outOfMemory, "cannot set up zstd for the payload")
            lock.broadcast()
        }
        while true {
            // A slot to compress and an output to compress it into; or, once closed, none left.
            while !stopped && failure == nil && (toCompress.isEmpty ? !closed : freeOutputs.isEmpty) { lock.wait() }
            if stopped || failure != nil || toCompress.isEmpty { break }
            let sequence = toCompress.removeFirst()
            let output = freeOutputs.removeLast()
            let slot = sequence % slots
            let length = lengths[slot]
            lock.unlock()
            let out = outputs[output]
            let r = ZSTD_compress2(cctx, out.baseAddress, out.count, inputs[slot].baseAddress, length)
            lock.lock()
            if ZSTD_isError(r) != 0 {
                if failure == nil {
                    failure = AirlockError(
                        .internal, .outOfMemory, "cannot compress the payload (zstd: \(String(cString: ZSTD_getErrorName(r))))")
                }
                lock.broadcast()
                break
            }
            compressed[sequence] = (output, r)
            writeReady()
        }
        running -= 1
        lock.broadcast()
        lock.unlock()
    }

    /// Writes the frames that are next in order, unless another compressor is writing them.
    /// Called and returns with `lock` held.
    private func writeReady() {
        guard !writing else { return }
        writing = true
        while failure == nil, !stopped, let frame = compressed.removeValue(forKey: nextToWrite) {
            lock.unlock()
            var failed: AirlockError?
            do {
                try sink.write(UnsafeRawBufferPointer(rebasing: outputs[frame.output][0..<frame.size]))
            } catch let e as AirlockError {
                failed = e
            } catch {
                failed = AirlockError(.io, .writeFailed, "cannot write the payload", cause: "\(error)")
            }
            lock.lock()
            if let failed, failure == nil { failure = failed }
            freeOutputs.append(frame.output)
            users[nextToWrite % slots] -= 1
            nextToWrite += 1
            lock.broadcast()
        }
        writing = false
    }
}
