import CArchive
import Foundation

/// The compression of a bundle, as detected on reading or chosen on writing.
public enum Compression: String, Sendable, CaseIterable {
    case zstd, gzip, none
}

/// The decompressed bytes of one open file descriptor, produced on a background thread so that
/// decompression overlaps the consumer's hashing and writing.
///
/// libarchive is used only to undo the compression (its `raw` format with the zstd and gzip
/// filters, nothing else enabled); the tar stream itself is parsed by `TarReader`. Memory is
/// bounded: `depth` chunks of `chunkSize` bytes. At the end it checks that nothing follows the
/// compressed stream. Not thread-safe: one consumer.
package final class DecompressedStream: @unchecked Sendable {
    package struct Chunk {
        let index: Int
        let count: Int
    }

    package static let chunkSize = 1 << 20
    private static let depth = 4

    private let fd: Int32
    /// `depth` slots (one per piece for `init(pieces:)`). The producer allocates a slot's
    /// buffer the first time it takes the slot, so a small bundle uses one buffer, not `depth`;
    /// a slot is written only by whoever holds its index (free: the producer; ready: the
    /// consumer), and handed over under `lock`.
    private let buffers: UnsafeMutableBufferPointer<UnsafeMutableRawBufferPointer>
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var free: [Int]
    private var ready: [Chunk] = []
    private var finished = false
    private var failure: AirlockError?
    private var cancelled = false
    private var producerDone = false
    private var detected: Compression?
    private var producerError: AirlockError?

    /// Starts decompressing `fd`; the stream does not close `fd`.
    /// Seconds a read from a pipe, socket or terminal may wait for data before the stream
    /// fails (`stream-stalled`); a regular file never waits.
    private let readTimeout: Double

    package init(fileDescriptor fd: Int32, readTimeout: Double = 0) {
        self.fd = fd
        self.readTimeout = readTimeout
        buffers = .allocate(capacity: Self.depth)
        buffers.initialize(repeating: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        // Taken from the end and given back at the end: the buffers in use are reused first.
        free = Array((0..<Self.depth).reversed())
        let thread = Thread { [self] in self.produce() }
        thread.name = "airlock-decompress"
        thread.start()
    }

    /// A stream of bytes already decompressed and in memory, handed out in `pieces` (empty ones
    /// left out), with no thread: the fuzz targets feed the tar reader this way, with piece
    /// boundaries anywhere.
    package init(pieces: [[UInt8]]) {
        fd = -1
        readTimeout = 0
        let kept = pieces.filter { !$0.isEmpty }
        buffers = .allocate(capacity: kept.count)
        for (i, piece) in kept.enumerated() {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: piece.count, alignment: 64)
            b.copyBytes(from: piece)
            (buffers.baseAddress! + i).initialize(to: b)
        }
        free = []
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

    /// The compression found, once the first chunk arrived (or the stream ended).
    package var compression: Compression? {
        lock.lock()
        defer { lock.unlock() }
        return detected
    }

    /// The next chunk of decompressed bytes, nil at the end of the stream. Give it back with
    /// `recycle` before asking for more than `depth - 1` further chunks.
    package func next() throws(AirlockError) -> (Chunk, UnsafeRawBufferPointer)? {
        lock.lock()
        defer { lock.unlock() }
        while ready.isEmpty && !finished { lock.wait() }
        if !ready.isEmpty {
            let c = ready.removeFirst()
            return (c, UnsafeRawBufferPointer(rebasing: buffers[c.index][0..<c.count]))
        }
        if let failure { throw failure }
        return nil
    }

    package func recycle(_ chunk: Chunk) {
        lock.lock()
        free.append(chunk.index)
        lock.broadcast()
        lock.unlock()
    }

    // MARK: Producer

    private final class Source {
        let fd: Int32
        /// 1 MiB, or less for a regular file smaller than that (at least 4 KiB).
        let buffer: UnsafeMutableRawBufferPointer
        var delivered: Int64 = 0
        var readError: Int32 = 0
        var sawEOF = false
        var zstd = ZstdFrameWalker()
        /// Set when bytes follow the last zstd frame (they are never given to libarchive).
        var afterFrame = false
        /// Bytes held back at `carryFrom` in `buffer` (the start of a frame magic, not complete
        /// yet), given again at the front of the next read.
        var carry = 0
        var carryFrom = 0
        var head: [UInt8] = []
        /// Milliseconds a read may wait on a stream (0: no limit).
        var timeoutMillis: Int32 = 0

        init(fd: Int32, timeout: Double) {
            self.fd = fd
            var st = stat()
            if timeout > 0, fstat(fd, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG && (st.st_mode & S_IFMT) != S_IFBLK {
                timeoutMillis = Int32(min(timeout * 1000, Double(Int32.max)))
            }
            buffer = .allocate(byteCount: FileIO.readBufferSize(fd), alignment: 64)
        }
        deinit { buffer.deallocate() }

        /// read(2), waiting at most the timeout for a stream to have data (ETIMEDOUT after).
        func read(into p: UnsafeMutableRawPointer?, _ count: Int) -> Int {
            if timeoutMillis > 0 {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&pfd, 1, timeoutMillis)
                if r == 0 {
                    errno = ETIMEDOUT
                    return -1
                }
                if r < 0 { return -1 }
            }
            return Glibc.read(fd, p, count)
        }
    }

    private func finish(error: AirlockError?) {
        lock.lock()
        if let error, failure == nil { failure = error }
        finished = true
        lock.broadcast()
        lock.unlock()
    }

    private func produce() {
        defer {
            lock.lock()
            producerDone = true
            lock.broadcast()
            lock.unlock()
        }
        let source = Source(fd: fd, timeout: readTimeout)
        // libarchive holds an unretained pointer to `source` until archive_read_free (the
        // defer below, which runs first): keep it alive until then.
        defer { withExtendedLifetime(source) {} }
        guard let a = archive_read_new() else {
            finish(error: AirlockError(.internal, .outOfMemory, "libarchive could not allocate a reader"))
            return
        }
        defer { archive_read_free(a) }
        archive_read_support_filter_zstd(a)
        archive_read_support_filter_gzip(a)
        archive_read_support_format_raw(a)
        let ctx = Unmanaged.passUnretained(source).toOpaque()
        func libarchiveFailure(_ what: String) -> AirlockError {
            if source.readError == ETIMEDOUT {
                return .io(
                    .streamStalled,
                    "the bundle stream sent nothing for \(Int(readTimeout)) s; nothing was installed: check the source (or raise --read-timeout)")
            }
            if source.readError != 0 {
                return .io(.readFailed, "cannot read the bundle", errno: source.readError)
            }
            if let why = source.zstd.failure {
                return .verification(.compressionInvalid, "\(why); the bundle was altered or was not made by Airlock")
            }
            if source.afterFrame {
                return .verification(.trailingData, "data follows the compressed stream of the bundle; the bundle was altered or badly copied")
            }
            let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
            if source.delivered == 0 {
                return .verification(.notABundle, "this is not an Airlock bundle: the file is empty")
            }
            if msg.lowercased().contains("truncated") || msg.lowercased().contains("premature") {
                return .verification(.bundleTruncated, "the bundle is truncated (\(msg)); copy it again from the source medium")
            }
            return .verification(.compressionInvalid, "\(what): \(msg); the bundle is damaged or is not an Airlock bundle")
        }
        let opened = archive_read_open(
            a, ctx, nil,
            { _, ctx, out in
                let s = Unmanaged<Source>.fromOpaque(ctx!).takeUnretainedValue()
                // After the last zstd frame libarchive gets nothing more: it sees the frames and
                // their end; any byte after them is trailing data.
                if s.zstd.stopped { return 0 }
                let base = s.buffer.baseAddress!
                if s.carry > 0 { memmove(base, base + s.carryFrom, s.carry) }
                var have = s.carry
                s.carry = 0
                while true {
                    let n = s.read(into: base + have, s.buffer.count - have)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 {
                        s.readError = errno
                        return -1
                    }
                    if n == 0 { s.sawEOF = true }
                    have += n
                    if s.delivered == 0 && s.head.count < 16 { s.head = Array(UnsafeRawBufferPointer(rebasing: s.buffer[0..<min(have, 16)])) }
                    let used = s.zstd.feed(UnsafeRawBufferPointer(rebasing: s.buffer[0..<have]), atEOF: n == 0)
                    if s.zstd.stopped {
                        if used < have || n > 0 { s.afterFrame = true }
                    } else if used == 0 && n > 0 {
                        continue  // the start of a frame magic: read what completes it
                    } else {
                        s.carry = have - used
                        s.carryFrom = used
                    }
                    s.delivered += Int64(used)
                    out?.pointee = UnsafeRawPointer(base)
                    return used
                }
            }, nil)
        guard opened == ARCHIVE_OK else {
            finish(error: libarchiveFailure("cannot decompress the bundle"))
            return
        }
        var entry: OpaquePointer?
        guard archive_read_next_header(a, &entry) == ARCHIVE_OK else {
            finish(error: libarchiveFailure("cannot decompress the bundle"))
            return
        }
        guard archive_filter_count(a) <= 2 else {
            finish(
                error: .verification(
                    .compressionInvalid, "the bundle is compressed more than once; a bundle is one tar stream compressed with zstd, gzip or nothing"))
            return
        }
        let compression: Compression
        switch archive_filter_code(a, 0) {
        case ARCHIVE_FILTER_ZSTD: compression = .zstd
        case ARCHIVE_FILTER_GZIP: compression = .gzip
        default: compression = .none
        }
        // A gzip header carries no extra field, file name or comment: nothing rides along.
        if compression == .gzip, source.head.count > 3, source.head[3] & 0x1C != 0 {
            finish(
                error: .verification(
                    .compressionInvalid, "the bundle's gzip header carries an extra field, a file name or a comment; Airlock bundles carry none"))
            return
        }
        lock.lock()
        detected = compression
        lock.unlock()

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
            var atEnd = false
            while filled < buf.count {
                let n = archive_read_data(a, buf.baseAddress! + filled, buf.count - filled)
                if n < 0 {
                    // Hand over what was decoded: the consumer decides whether the failure
                    // came after a complete tar stream (trailing data) or inside it.
                    lock.lock()
                    if filled > 0 { ready.append(Chunk(index: index, count: filled)) } else { free.append(index) }
                    lock.unlock()
                    finish(error: libarchiveFailure("the compressed stream is corrupt"))
                    return
                }
                if n == 0 {
                    atEnd = true
                    break
                }
                filled += n
            }
            lock.lock()
            if filled > 0 { ready.append(Chunk(index: index, count: filled)) } else { free.append(index) }
            lock.broadcast()
            lock.unlock()
            if atEnd { break }
        }
        // Nothing may ride along after the last zstd frame, nor in a skippable frame.
        if compression == .zstd {
            if let why = source.zstd.failure {
                finish(error: .verification(.compressionInvalid, "\(why); the bundle was altered or was not made by Airlock"))
                return
            }
            if !source.afterFrame && !source.sawEOF {
                var byte: UInt8 = 0
                source.afterFrame = source.read(into: &byte, 1) > 0
            }
            if source.afterFrame {
                finish(
                    error: .verification(
                        .trailingData, "data follows the compressed stream of the bundle; the bundle was altered or badly copied"))
                return
            }
        }
        // Nothing may follow the compressed stream: libarchive must have consumed every byte
        // read so far, and the file must end there.
        if compression == .gzip {
            let consumed = archive_filter_bytes(a, -1)
            var extra = consumed < source.delivered
            if !extra && !source.sawEOF {
                var byte: UInt8 = 0
                let n = source.read(into: &byte, 1)
                extra = n > 0
            }
            if extra {
                finish(
                    error: .verification(
                        .trailingData, "data follows the compressed stream of the bundle; the bundle was altered or badly copied"))
                return
            }
        }
        finish(error: nil)
    }
}
