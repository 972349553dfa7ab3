import CZlib
import CZstd
import Foundation

/// The compression of a bundle, as detected on reading or chosen on writing.
public enum Compression: String, Sendable, CaseIterable {
    case zstd, gzip, none
}

/// The decompressed bytes of one open file descriptor, produced on a background thread so that
/// decompression overlaps the consumer's hashing and writing.
///
/// The compression is detected from the first bytes and undone with libzstd (windows of at
/// most 8 MiB, after `ZstdFrameWalker` checked each frame's header) or zlib; the tar stream
/// itself is parsed by `TarReader`. Memory is bounded: `depth` chunks of `chunkSize` bytes
/// (`maxDepth` after `widen`), the
/// read buffer and the decoder's window. At the end it checks that nothing follows the
/// compressed stream. Not thread-safe: one consumer.
package final class DecompressedStream: @unchecked Sendable {
    package struct Chunk {
        let index: Int
        let count: Int
    }

    package static let chunkSize = 2 << 20
    /// Chunks in flight at first; `widen()` allows `maxDepth` (a consumer that hands chunks on
    /// to a thread of its own, `HashPipeline`, holds more of them at once).
    private static let depth = 4
    private static let maxDepth = 6

    private let fd: Int32
    /// The source when it is not a descriptor (`init(feed:)`).
    private let feed: ByteFeed?
    /// `maxDepth` slots (one per piece for `init(pieces:)`), of which `depth` are used until
    /// `widen()`. The producer allocates a slot's buffer the first time it takes the slot, so a
    /// small bundle uses one buffer, not `depth`; a slot is written only by whoever holds its
    /// index (free: the producer; ready or handed out: the consumer and those it lent the chunk
    /// to, who only read it), and handed over under `lock`.
    private let buffers: UnsafeMutableBufferPointer<UnsafeMutableRawBufferPointer>
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var free: [Int]
    /// Per slot handed out: how many holders still read it (`next` gives 1, `retain` adds one,
    /// `recycle` takes one); at 0 the slot is free again.
    private var holds: [Int]
    private var widened = false
    private var ready: [Chunk] = []
    private var finished = false
    private var failure: AirlockError?
    private var cancelled = false
    private var producerDone = false
    private var detected: Compression?
    private var producerError: AirlockError?
    private var cutFrame: UInt64?

    /// Seconds a read from a pipe, socket or terminal may wait for data before the stream
    /// fails (`stream-stalled`); a regular file never waits.
    private let readTimeout: Double

    /// Starts decompressing `fd`; the stream does not close `fd`.
    package convenience init(fileDescriptor fd: Int32, readTimeout: Double = 0) {
        self.init(fd: fd, feed: nil, readTimeout: readTimeout)
    }

    /// Starts decompressing what `feed` is given, read as a descriptor would be.
    package convenience init(feed: ByteFeed) {
        self.init(fd: -1, feed: feed, readTimeout: 0)
    }

    private init(fd: Int32, feed: ByteFeed?, readTimeout: Double) {
        self.fd = fd
        self.feed = feed
        self.readTimeout = readTimeout
        buffers = .allocate(capacity: Self.maxDepth)
        buffers.initialize(repeating: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        // Taken from the end and given back at the end: the buffers in use are reused first.
        free = Array((0..<Self.depth).reversed())
        holds = Array(repeating: 0, count: Self.maxDepth)
        let thread = Thread { [self] in self.produce() }
        thread.name = "airlock-decompress"
        thread.start()
    }

    /// A stream of bytes already decompressed and in memory, handed out in `pieces` (empty ones
    /// left out), with no thread: the fuzz targets feed the tar reader this way, with piece
    /// boundaries anywhere.
    package init(pieces: [[UInt8]]) {
        fd = -1
        feed = nil
        readTimeout = 0
        let kept = pieces.filter { !$0.isEmpty }
        buffers = .allocate(capacity: kept.count)
        for (i, piece) in kept.enumerated() {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: piece.count, alignment: 64)
            b.copyBytes(from: piece)
            (buffers.baseAddress! + i).initialize(to: b)
        }
        free = []
        holds = Array(repeating: 0, count: kept.count)
        widened = true
        ready = kept.indices.map { Chunk(index: $0, count: kept[$0].count) }
        finished = true
        producerDone = true
        detected = Compression.none
    }

    deinit {
        for b in buffers where b.baseAddress != nil { b.deallocate() }
        buffers.deallocate()
    }

    /// Stops the producer and waits for it; the owner must call this before dropping the
    /// stream (the producer thread holds it alive until then).
    package func cancel() {
        lock.lock()
        cancelled = true
        lock.broadcast()
        while !producerDone { lock.wait() }
        lock.unlock()
    }

    /// When the stream failed because its last frame (or gzip member) is cut short: where that
    /// frame began among the decoded bytes. A frame cut short that began after the end of the
    /// tar archive is something that follows the archive, not a truncated archive (`TarReader`).
    package var cutFrameStart: UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return cutFrame
    }

    /// The compression found, once the first chunk arrived (or the stream ended).
    package var compression: Compression? {
        lock.lock()
        defer { lock.unlock() }
        return detected
    }

    /// The next chunk of decompressed bytes, nil at the end of the stream. Give it back with
    /// `recycle` before asking for more than `depth - 1` further chunks (the producer needs a
    /// free slot to make the next one): a chunk lent on with `retain` must be recycled by its
    /// borrower without waiting on this consumer.
    package func next() throws(AirlockError) -> (Chunk, UnsafeRawBufferPointer)? {
        lock.lock()
        defer { lock.unlock() }
        while ready.isEmpty && !finished { lock.wait() }
        if !ready.isEmpty {
            let c = ready.removeFirst()
            holds[c.index] = 1
            return (c, UnsafeRawBufferPointer(rebasing: buffers[c.index][0..<c.count]))
        }
        if let failure { throw failure }
        return nil
    }

    /// One more holder of `chunk`, which must be handed out and not yet recycled by the caller:
    /// its bytes stay as they are until every holder recycled it.
    package func retain(_ chunk: Chunk) {
        lock.lock()
        precondition(holds[chunk.index] > 0, "retain takes a chunk handed out")
        holds[chunk.index] += 1
        lock.unlock()
    }

    /// Gives a chunk back (once per `next` or `retain`).
    package func recycle(_ chunk: Chunk) {
        lock.lock()
        precondition(holds[chunk.index] > 0, "recycle takes a chunk held")
        holds[chunk.index] -= 1
        if holds[chunk.index] == 0 {
            free.append(chunk.index)
            lock.broadcast()
        }
        lock.unlock()
    }

    /// Lets the producer have up to `maxDepth` chunks in flight instead of `depth`: for a
    /// consumer that lends chunks to a thread of its own. Memory: `maxDepth` MiB at most.
    package func widen() {
        lock.lock()
        if !widened {
            widened = true
            free.insert(contentsOf: (Self.depth..<Self.maxDepth).reversed(), at: 0)
            lock.broadcast()
        }
        lock.unlock()
    }

    // MARK: Producer

    /// The compressed side: a read buffer over `fd`, with the zstd frame walker deciding which
    /// bytes the decoder may have.
    private final class Source {
        let fd: Int32
        let feed: ByteFeed?
        /// 1 MiB, or less for a regular file smaller than that (at least 4 KiB).
        let buffer: UnsafeMutableRawBufferPointer
        /// Bytes `pos..<end` of `buffer` are the decoder's to take; `end..<have` were read but
        /// not yet given (the start of a zstd frame magic, not complete yet).
        var pos = 0
        var end = 0
        var have = 0
        /// Bytes of the file given to the decoder so far.
        var delivered: Int64 = 0
        var readError: Int32 = 0
        var sawEOF = false
        /// Follows the frames of a zstd bundle (`walk`), nil for gzip and plain tar.
        var zstd: ZstdFrameWalker?
        /// Set when bytes follow the last zstd frame (they are never given to the decoder).
        var afterFrame = false
        /// Milliseconds a read may wait on a stream (0: no limit).
        var timeoutMillis: Int32 = 0

        init(fd: Int32, feed: ByteFeed?, timeout: Double) {
            self.fd = fd
            self.feed = feed
            if feed != nil {
                buffer = .allocate(byteCount: 1 << 20, alignment: 64)
                return
            }
            var st = stat()
            if timeout > 0, fstat(fd, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG && (st.st_mode & S_IFMT) != S_IFBLK {
                timeoutMillis = Int32(min(timeout * 1000, Double(Int32.max)))
            }
            buffer = .allocate(byteCount: FileIO.readBufferSize(fd), alignment: 64)
        }
        deinit { buffer.deallocate() }

        /// No byte more will be given: reading failed, the walker stopped, or the file ended
        /// and everything read was given.
        var done: Bool { readError != 0 || pos == end && (zstd?.stopped == true || sawEOF && end == have) }

        /// read(2), waiting at most the timeout for a stream to have data (ETIMEDOUT after).
        func read(into p: UnsafeMutableRawPointer?, _ count: Int) -> Int {
            if let feed { return feed.read(into: p!, count) }
            if timeoutMillis > 0 {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                var r: Int32
                repeat { r = poll(&pfd, 1, timeoutMillis) } while r < 0 && errno == EINTR
                if r == 0 {
                    errno = ETIMEDOUT
                    return -1
                }
                if r < 0 { return -1 }
            }
            while true {
                let n = Glibc.read(fd, p, count)
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }

        /// Reads until at least `count` bytes are held or the file ends (detection).
        func readAhead(_ count: Int) {
            while have < count && !sawEOF && readError == 0 {
                let n = read(into: buffer.baseAddress! + have, buffer.count - have)
                if n < 0 {
                    readError = errno
                } else if n == 0 {
                    sawEOF = true
                } else {
                    have += n
                }
            }
        }

        /// Makes more bytes the decoder's (`pos < end` after, unless `done`): reads when what
        /// was read is used up, and lets the walker say how much of it belongs to the stream.
        func refill() {
            guard pos == end, !done else { return }
            let base = buffer.baseAddress!
            if pos > 0 {
                memmove(base, base + pos, have - pos)
                have -= pos
                end = 0
                pos = 0
            }
            // Held bytes not yet shown to the walker (the first read) are fed before reading.
            var mustRead = have == 0 || zstd == nil
            while true {
                if mustRead {
                    if sawEOF { return }
                    let n = read(into: base + have, buffer.count - have)
                    if n < 0 {
                        readError = errno
                        return
                    }
                    if n == 0 { sawEOF = true }
                    have += n
                }
                guard var walker = zstd else {
                    end = have
                    delivered += Int64(have)
                    return
                }
                let used = walker.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<have]), atEOF: sawEOF)
                zstd = walker
                if walker.stopped {
                    if used < have { afterFrame = true }
                } else if used == 0 && !sawEOF {
                    mustRead = true
                    continue  // the start of a frame magic: read what completes it
                }
                end = used
                delivered += Int64(used)
                return
            }
        }
    }

    private func finish(error: AirlockError?, cutFrameStart: UInt64? = nil) {
        lock.lock()
        if let error, failure == nil {
            failure = error
            cutFrame = cutFrameStart
        }
        finished = true
        lock.broadcast()
        lock.unlock()
    }

    /// The largest zstd window the decoder accepts, as a power of two: the frame walker's
    /// limit (docs/format.md, "The container"), enforced by libzstd too.
    static let maxWindowLog: Int32 = 23

    private enum Decoder {
        case zstd(OpaquePointer)
        case gzip(UnsafeMutablePointer<z_stream>)
        case none
    }

    /// Decompresses with libzstd or zlib directly, not through libarchive: libarchive bids its
    /// filters again on what a filter produced, so a zstd or gzip stream inside the bundle's
    /// would be decoded too (with zstd's own window limit of 128 MiB), and it offers no window
    /// limit for the outer one either.
    private func produce() {
        defer {
            lock.lock()
            producerDone = true
            lock.broadcast()
            lock.unlock()
        }
        let source = Source(fd: fd, feed: feed, timeout: readTimeout)
        func ioFailure() -> AirlockError? {
            if source.readError == ETIMEDOUT {
                return .io(
                    .streamStalled,
                    "the bundle stream sent nothing for \(Int(readTimeout)) s; nothing was installed: check the source (or raise --read-timeout)")
            }
            if source.readError != 0 { return .io(.readFailed, "cannot read the bundle", errno: source.readError) }
            return nil
        }
        func invalid(_ why: String) -> AirlockError {
            .verification(.compressionInvalid, "\(why); the bundle was altered or was not made by Airlock")
        }
        let trailing = AirlockError.verification(
            .trailingData, "data follows the compressed stream of the bundle; the bundle was altered or badly copied")

        source.readAhead(10)
        if let e = ioFailure() { return finish(error: e) }
        if source.have == 0 { return finish(error: .verification(.notABundle, "this is not an Airlock bundle: the file is empty")) }
        let head = Array(UnsafeRawBufferPointer(rebasing: source.buffer[0..<source.have]))
        let compression: Compression
        let decoder: Decoder
        if Self.isZstd(head) {
            compression = .zstd
            guard let d = ZSTD_createDCtx() else { return finish(error: AirlockError(.internal, .outOfMemory, "cannot set up zstd")) }
            guard ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, Self.maxWindowLog)) == 0 else {
                ZSTD_freeDCtx(d)
                return finish(error: AirlockError(.internal, .outOfMemory, "cannot limit zstd's window"))
            }
            decoder = .zstd(d)
            source.zstd = ZstdFrameWalker()
        } else if Self.isSkippable(head) {
            return finish(error: invalid("the bundle begins with a skippable zstd frame; a zstd bundle begins with a zstd frame"))
        } else if head.count >= 2 && head[0] == 0x1F && head[1] == 0x8B {
            compression = .gzip
            // A gzip header carries no extra field, file name or comment: nothing rides along.
            if head.count > 3 && head[3] & 0x1C != 0 {
                return finish(error: invalid("the bundle's gzip header carries an extra field, a file name or a comment; Airlock bundles carry none"))
            }
            let z = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            z.initialize(to: z_stream())
            guard airlock_inflate_init_gzip(z) == Z_OK else {
                z.deallocate()
                return finish(error: AirlockError(.internal, .outOfMemory, "cannot set up zlib"))
            }
            decoder = .gzip(z)
        } else {
            compression = .none
            decoder = .none
        }
        defer {
            switch decoder {
            case .zstd(let d): ZSTD_freeDCtx(d)
            case .gzip(let z):
                inflateEnd(z)
                z.deallocate()
            case .none: break
            }
        }
        if source.zstd == nil {
            source.end = source.have
            source.delivered = Int64(source.have)
        }
        lock.lock()
        detected = compression
        lock.unlock()

        /// 0 once the last zstd frame given ended (libzstd's hint); gzip: the member ended.
        var pendingFrame = 1
        var gzipEnded = false
        /// Decoded bytes so far, and where the frame being decoded began among them.
        var total: UInt64 = 0
        var frameStart: UInt64 = 0
        /// The first decoded bytes, until there are 4 to tell a compressed stream from a tar.
        var firstBytes: [UInt8]? = []
        while true {
            lock.lock()
            while free.isEmpty && !cancelled { lock.wait() }
            if cancelled {
                lock.unlock()
                return
            }
            let index = free.removeLast()
            lock.unlock()
            if buffers[index].baseAddress == nil {
                buffers[index] = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 64)
            }
            let buf = buffers[index]
            var filled = 0
            var failed: AirlockError?
            var atEnd = false
            while filled < buf.count {
                source.refill()
                if let e = ioFailure() {
                    failed = e
                    break
                }
                let inBase = source.buffer.baseAddress! + source.pos
                let inCount = source.end - source.pos
                var produced = 0
                switch decoder {
                case .none:
                    produced = min(inCount, buf.count - filled)
                    memcpy(buf.baseAddress! + filled, inBase, produced)
                    source.pos += produced
                case .zstd(let d):
                    var input = ZSTD_inBuffer(src: inBase, size: inCount, pos: 0)
                    var output = ZSTD_outBuffer(dst: buf.baseAddress! + filled, size: buf.count - filled, pos: 0)
                    let between = pendingFrame == 0
                    let r = ZSTD_decompressStream(d, &output, &input)
                    if ZSTD_isError(r) != 0 {
                        failed =
                            source.zstd?.failure.map(invalid) ?? invalid("the compressed stream is corrupt (zstd: \(String(cString: ZSTD_getErrorName(r))))")
                        break
                    }
                    // A call that took and gave nothing says only what the next frame needs.
                    if input.pos > 0 || output.pos > 0 { pendingFrame = r }
                    if between && input.pos > 0 { frameStart = total + UInt64(filled) }
                    source.pos += input.pos
                    produced = output.pos
                    if produced == 0 && input.pos == 0 && source.pos == source.end && source.done { atEnd = true }
                case .gzip(let z):
                    if gzipEnded {
                        atEnd = true
                        break
                    }
                    z.pointee.next_in = UnsafeMutablePointer(mutating: inBase.assumingMemoryBound(to: UInt8.self))
                    z.pointee.avail_in = UInt32(inCount)
                    z.pointee.next_out = (buf.baseAddress! + filled).assumingMemoryBound(to: UInt8.self)
                    z.pointee.avail_out = UInt32(buf.count - filled)
                    let r = inflate(z, Z_NO_FLUSH)
                    let taken = inCount - Int(z.pointee.avail_in)
                    source.pos += taken
                    produced = buf.count - filled - Int(z.pointee.avail_out)
                    if r == Z_STREAM_END {
                        gzipEnded = true
                    } else if r == Z_BUF_ERROR || r == Z_OK {
                        if produced == 0 && taken == 0 && source.done { atEnd = true }
                    } else if r == Z_MEM_ERROR {
                        failed = AirlockError(.internal, .outOfMemory, "zlib ran out of memory decompressing the bundle")
                    } else {
                        let msg = z.pointee.msg.map { String(cString: $0) } ?? "error \(r)"
                        failed = invalid("the compressed stream is corrupt (gzip: \(msg))")
                    }
                }
                if failed != nil { break }
                if compression != .none, produced > 0, var head = firstBytes {
                    head += UnsafeRawBufferPointer(rebasing: buf[filled..<filled + min(produced, 4 - head.count)])
                    firstBytes = head.count < 4 ? head : nil
                    if head.count == 4 && (Self.isZstd(head) || Self.isSkippable(head) || head.starts(with: [0x1F, 0x8B])) {
                        failed = invalid("the bundle is compressed more than once; a bundle is one tar stream compressed with zstd, gzip or nothing")
                        break
                    }
                }
                filled += produced
                if compression == .none && produced == 0 && source.done { atEnd = true }
                if atEnd { break }
            }
            // Hand over what was decoded: the consumer decides whether a failure came after a
            // complete tar stream (trailing data) or inside it.
            total += UInt64(filled)
            lock.lock()
            if filled > 0 { ready.append(Chunk(index: index, count: filled)) } else { free.append(index) }
            lock.broadcast()
            lock.unlock()
            if let failed { return finish(error: failed) }
            if atEnd { break }
        }
        if let e = ioFailure() { return finish(error: e) }
        switch compression {
        case .zstd:
            // Nothing may ride along after the last zstd frame, nor in a skippable frame.
            if let why = source.zstd?.failure { return finish(error: invalid(why)) }
            if pendingFrame != 0 {
                return finish(
                    error: .verification(.bundleTruncated, "the bundle is truncated (its last zstd frame is cut short); copy it again from the source medium"),
                    cutFrameStart: frameStart)
            }
        case .gzip:
            if !gzipEnded {
                return finish(
                    error: .verification(.bundleTruncated, "the bundle is truncated (its gzip stream is cut short); copy it again from the source medium"),
                    cutFrameStart: 0)
            }
            if source.pos < source.have { source.afterFrame = true }
        case .none:
            break
        }
        if !source.afterFrame && !source.sawEOF && compression != .none {
            var byte: UInt8 = 0
            source.afterFrame = source.read(into: &byte, 1) > 0
        }
        if source.afterFrame { return finish(error: trailing) }
        if total == 0 && compression != .none {
            return finish(error: .verification(.notABundle, "this is not an Airlock bundle: its compressed stream holds nothing"))
        }
        finish(error: nil)
    }

    static func isZstd(_ b: [UInt8]) -> Bool { b.count >= 4 && b[0] == 0x28 && b[1] == 0xB5 && b[2] == 0x2F && b[3] == 0xFD }
    static func isSkippable(_ b: [UInt8]) -> Bool { b.count >= 4 && b[0] & 0xF0 == 0x50 && b[1] == 0x2A && b[2] == 0x4D && b[3] == 0x18 }
}
