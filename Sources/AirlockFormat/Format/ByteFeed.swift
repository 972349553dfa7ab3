import Foundation

/// Bytes handed from one producer (a registry download) to a `BundleReader` in the same
/// process, in place of a pipe. The producer's buffers are queued as they are, not copied; the
/// reader copies each byte once, into its own read buffer. A pipe costs two copies and the
/// kernel's work on both ends (about 0.7 s of CPU for a 2 GiB layer, docs/benchmarks.md).
///
/// Bounded: `put` waits while `capacity` bytes are queued. A buffer kept as it is may keep a
/// larger one alive (a slice of a network read), so buffers under `smallBuffer` bytes are
/// copied into one of the feed's own instead: a sender cutting its stream into tiny pieces
/// pins neither many buffers nor many queue entries. A reader that stops early
/// (`BundleReader.close`) closes the feed: queued buffers are let go and every later `put`
/// returns false, as a write to a pipe whose reader is gone fails with EPIPE.
public final class ByteFeed: @unchecked Sendable {
    /// Bytes queued before `put` waits.
    public let capacity: Int
    /// Buffers shorter than this are copied into the feed's own (`coalesceSize` bytes each).
    static let smallBuffer = 16 << 10
    static let coalesceSize = 64 << 10

    private let condition = NSCondition()
    // Guarded by `condition`:
    /// The entries from `head` on are queued; the ones before it were read (let go).
    private var queue: [Data] = []
    private var head = 0
    /// Bytes of `queue[head]` already read.
    private var offset = 0
    /// The last entry is the feed's own copy of small buffers, with room for more.
    private var lastIsOwn = false
    private var queued = 0
    private var ended = false
    private var closed = false
    private var producerWaits = false
    private var readerWaits = false

    /// A feed that holds at most about `capacity` bytes (one buffer more at most). The default,
    /// 1 MiB, is what a pipe held before: more measured no faster and kept 2 MiB more memory.
    public init(capacity: Int = 1 << 20) {
        self.capacity = max(1, capacity)
    }

    /// Queues `data` (kept, not copied, unless it is small), waiting while the feed is full.
    /// Returns false once the reader is gone: nothing more will be read. Called by the producer
    /// only.
    public func put(_ data: Data) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queued >= capacity && !closed {
            producerWaits = true
            condition.wait()
        }
        producerWaits = false
        if closed { return false }
        if data.isEmpty { return true }
        if data.count < Self.smallBuffer {
            let last = queue.count - 1
            if lastIsOwn, last >= head, queue[last].count + data.count <= Self.coalesceSize {
                queue[last].append(data)
            } else {
                var own = Data(capacity: Self.coalesceSize)
                own.append(data)
                queue.append(own)
                lastIsOwn = true
            }
        } else {
            queue.append(data)
            lastIsOwn = false
        }
        queued += data.count
        if readerWaits { condition.broadcast() }
        return true
    }

    /// No more bytes will be put: the reader sees the end of the stream once it has read what
    /// is queued. Called by the producer only, once.
    public func end() {
        condition.lock()
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// The reader stops: queued bytes are let go, and `put` returns false from now on.
    public func close() {
        condition.lock()
        closed = true
        queue.removeAll()
        head = 0
        offset = 0
        queued = 0
        lastIsOwn = false
        condition.broadcast()
        condition.unlock()
    }

    /// Copies up to `count` queued bytes to `p`, waiting until there are some; 0 at the end of
    /// the stream or once closed (read(2)'s contract, without errors). Called by the reader only.
    public func read(into p: UnsafeMutableRawPointer, _ count: Int) -> Int {
        condition.lock()
        defer { condition.unlock() }
        while head == queue.count && !ended && !closed {
            readerWaits = true
            condition.wait()
        }
        readerWaits = false
        var n = 0
        while n < count, head < queue.count {
            let entry = queue[head]
            let take = min(count - n, entry.count - offset)
            entry.withUnsafeBytes { src in (p + n).copyMemory(from: src.baseAddress! + offset, byteCount: take) }
            n += take
            offset += take
            if offset == entry.count {
                // Let the buffer go now; the array itself is compacted once it is half read.
                queue[head] = Data()
                head += 1
                offset = 0
                if head == queue.count { lastIsOwn = false }
            }
        }
        if head >= 64 && head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
        queued -= n
        // Woken at half, so that the producer puts several buffers per wake-up.
        if producerWaits && queued <= capacity / 2 { condition.broadcast() }
        return n
    }

    // MARK: For the tests

    /// Bytes queued, and queue entries holding them.
    var state: (bytes: Int, entries: Int, producerWaits: Bool) {
        condition.lock()
        defer { condition.unlock() }
        return (queued, queue.count - head, producerWaits)
    }
}
