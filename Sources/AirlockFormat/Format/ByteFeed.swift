import Foundation

/// Bytes handed from one producer (a registry download) to a `BundleReader` in the same
/// process, in place of a pipe. The producer's buffers are queued as they are, not copied; the
/// reader copies each byte once, into its own read buffer. A pipe costs two copies and the
/// kernel's work on both ends (about 0.7 s of CPU for a 2 GiB layer, docs/benchmarks.md).
///
/// Bounded: `put` waits while `capacity` bytes are queued. A reader that stops early
/// (`BundleReader.close`) closes the feed: queued buffers are let go and every later `put`
/// returns false, as a write to a pipe whose reader is gone fails with EPIPE.
public final class ByteFeed: @unchecked Sendable {
    /// Bytes queued before `put` waits.
    public let capacity: Int
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [Data] = []
    /// Bytes of `queue[0]` already read.
    private var offset = 0
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

    /// Queues `data` (kept, not copied), waiting while the feed is full. Returns false once the
    /// reader is gone: nothing more will be read. Called by the producer only.
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
        queue.append(data)
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
        queued = 0
        offset = 0
        condition.broadcast()
        condition.unlock()
    }

    /// Copies up to `count` queued bytes to `p`, waiting until there are some; 0 at the end of
    /// the stream or once closed (read(2)'s contract, without errors).
    func read(into p: UnsafeMutableRawPointer, _ count: Int) -> Int {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !ended && !closed {
            readerWaits = true
            condition.wait()
        }
        readerWaits = false
        var n = 0
        while n < count, !queue.isEmpty {
            let first = queue[0]
            let take = min(count - n, first.count - offset)
            first.withUnsafeBytes { src in (p + n).copyMemory(from: src.baseAddress! + offset, byteCount: take) }
            n += take
            offset += take
            if offset == first.count {
                queue.removeFirst()
                offset = 0
            }
        }
        queued -= n
        // Woken at half, so that the producer puts several buffers per wake-up.
        if producerWaits && queued <= capacity / 2 { condition.broadcast() }
        return n
    }
}
