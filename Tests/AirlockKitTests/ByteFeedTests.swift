import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// `ByteFeed`: the in-process hand-over from a registry download to a `BundleReader`.
@Suite struct ByteFeedTests {
    /// Reads everything `feed` gives, `size` bytes at most per read, until the end.
    private func drain(_ feed: ByteFeed, size: Int) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: size)
        while true {
            let n = buffer.withUnsafeMutableBytes { feed.read(into: $0.baseAddress!, size) }
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    }

    @Test func bytesArriveInOrderAcrossBufferBoundariesAndTheEndIsSeen() {
        let feed = ByteFeed(capacity: 1 << 20)
        let pieces: [[UInt8]] = [[1, 2, 3], [], [4], Array(5...200).map { UInt8($0) }]
        for p in pieces { #expect(feed.put(Data(p))) }
        feed.end()
        // Reads of 7 bytes cut across the buffers; a read after the end returns 0 again.
        #expect(drain(feed, size: 7) == pieces.flatMap { $0 })
        var byte: UInt8 = 0
        #expect(feed.read(into: &byte, 1) == 0)
    }

    /// A full feed holds its producer until the reader makes room, so memory stays bounded
    /// whatever the producer's speed; every byte still arrives, in order.
    @Test func aFullFeedHoldsTheProducerUntilTheReaderMakesRoom() {
        let capacity = 64 << 10
        let feed = ByteFeed(capacity: capacity)
        let total = 4 << 20
        let piece = 20 << 10  // kept as it is (over ByteFeed.smallBuffer)
        let source = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let putDone = DispatchSemaphore(value: 0)
        let producer = Thread {
            var at = 0
            while at < total {
                let n = min(piece, total - at)
                _ = feed.put(Data(source[at..<at + n]))
                at += n
            }
            feed.end()
            putDone.signal()
        }
        producer.start()
        // The producer stops at the capacity (one buffer over at most) until something is read.
        let deadline = Date().addingTimeInterval(10)
        while !feed.state.producerWaits && Date() < deadline { usleep(1000) }
        #expect(feed.state.producerWaits)
        #expect(feed.state.bytes >= capacity && feed.state.bytes < capacity + piece)
        #expect(putDone.wait(timeout: .now()) == .timedOut)
        #expect(drain(feed, size: 100_000) == source)
        putDone.wait()
    }

    /// A sender that cuts its stream into tiny pieces (one byte per HTTP chunk, say) gets them
    /// copied into the feed's own buffers: a few queue entries, not one per piece, so a read
    /// stays linear and no network buffer is pinned per byte.
    @Test func tinyBuffersAreGatheredIntoFewEntries() {
        let feed = ByteFeed(capacity: 1 << 20)
        let source = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 % 251) }
        for b in source { #expect(feed.put(Data([b])), "put") }
        feed.end()
        #expect(feed.state.bytes == 1 << 20)
        #expect(feed.state.entries <= (1 << 20) / ByteFeed.coalesceSize + 1)
        #expect(drain(feed, size: 1 << 20) == source)
    }

    /// The reader going away (a bundle refused early) lets the producer go at once: a waiting
    /// `put` and every later one return false, and a read returns the end.
    @Test func closingReleasesAWaitingProducerAndRefusesMore() {
        let feed = ByteFeed(capacity: 8)
        #expect(feed.put(Data(repeating: 1, count: 8)))
        let refused = DispatchSemaphore(value: 0)
        let producer = Thread {
            if !feed.put(Data(repeating: 2, count: 8)) { refused.signal() }
        }
        producer.start()
        let deadline = Date().addingTimeInterval(10)
        while !feed.state.producerWaits && Date() < deadline { usleep(1000) }
        #expect(feed.state.producerWaits)
        feed.close()
        #expect(refused.wait(timeout: .now() + 10) == .success)
        #expect(!feed.put(Data([3])))
        var byte: UInt8 = 0
        #expect(feed.read(into: &byte, 1) == 0)
    }

    /// A reader closed while its decompressing thread waits on an empty feed (the producer
    /// silent) returns: closing the feed wakes that thread before it is waited for.
    @Test func closingAReaderWhoseFeedIsSilentReturns() {
        let feed = ByteFeed()
        let closed = DispatchSemaphore(value: 0)
        let closer = Thread {
            let reader = BundleReader(feed: feed, label: "silent")
            // Its decompressing thread is now waiting (or about to wait) on the empty feed.
            usleep(100_000)
            reader.close()
            closed.signal()
        }
        closer.start()
        #expect(closed.wait(timeout: .now() + 10) == .success)
        #expect(!feed.put(Data([1])))
    }

    /// A bundle fed in small, uneven buffers verifies as it does from its file; cut short, it
    /// is refused as truncated (the producer ended early), never reported verified.
    @Test func aBundleThroughAFeedVerifiesAndACutOneIsRefused() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file("b.airlock")
        o.sourceDateEpoch = 1_767_225_600
        let bundle = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try Packer.pack(directory: rel, options: o).path)))

        func verify(_ bytes: ArraySlice<UInt8>) -> VerificationReport {
            let feed = ByteFeed(capacity: 4096)
            let producer = Thread {
                var at = bytes.startIndex
                var step = 1
                while at < bytes.endIndex {
                    let n = min(step, bytes.endIndex - at)
                    guard feed.put(Data(bytes[at..<at + n])) else { break }
                    at += n
                    step = step % 5000 + 977
                }
                feed.end()
            }
            producer.start()
            return Verifier.verify(reader: BundleReader(feed: feed, label: "feed"), trust: TestKeys.trust())
        }
        let whole = verify(bundle[...])
        #expect(whole.ok, "\(whole.error?.description ?? "")")
        #expect(whole.filesChecked == Release.standardFiles.count)
        let cut = verify(bundle[0..<bundle.count - 100])
        #expect(!cut.ok)
        #expect(cut.error?.code == ErrorCode.bundleTruncated.rawValue, "\(cut.error?.description ?? "")")
    }
}
