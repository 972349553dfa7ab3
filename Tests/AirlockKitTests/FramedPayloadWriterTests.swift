import CZstd
import Foundation
import Testing

@testable import AirlockFormat

/// The one-pass pack's payload writer on its own: bytes read into its room and handed back in
/// place, and bytes copied in, come out as one stream of 2 MiB frames, hashed per file.
@Suite struct FramedPayloadWriterTests {
    /// The declared content size of every zstd frame in `bytes`, in order (skippable frames
    /// left out; nil for a frame that does not declare it).
    static func frameSizes(_ bytes: [UInt8]) throws -> [UInt64?] {
        var sizes: [UInt64?] = []
        try bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let p = raw.baseAddress! + off
                let n = ZSTD_findFrameCompressedSize(p, raw.count - off)
                guard ZSTD_isError(n) == 0, n > 0 else { throw AirlockError(.internal, .writeFailed, "not a zstd frame at \(off)") }
                let magic = raw.loadUnaligned(fromByteOffset: off, as: UInt32.self)
                if magic & 0xFFFF_FFF0 != 0x184D_2A50 {
                    let size = ZSTD_getFrameContentSize(p, raw.count - off)
                    sizes.append(size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ? nil : UInt64(size))
                }
                off += n
            }
        }
        return sizes
    }

    @Test(arguments: [1, 2, 5, 9])
    func streamsInPlaceAndCopiedBytesIntoFramesAndHashesEachFile(workers: Int) throws {
        let tmp = TempDir()
        let path = tmp.file("payload.zst")
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        defer { close(fd) }
        let writer = try FramedPayloadWriter(fileDescriptor: fd, path: path, level: 1, workers: workers)
        var expected: [UInt8] = []
        var files: [[UInt8]] = []
        var seed: UInt32 = 7
        func bytes(_ n: Int) -> [UInt8] {
            (0..<n).map { _ in
                seed = seed &* 1_664_525 &+ 1_013_904_223
                return UInt8(truncatingIfNeeded: seed >> 24)
            }
        }
        // Sizes around the frame's: empty, small, exactly one frame, over several frames.
        let sizes = [0, 1, 511, 3000, FramedPayloadWriter.frameSize, 5 * FramedPayloadWriter.frameSize / 2, 100, 0, 70_000]
        for (index, size) in sizes.enumerated() {
            // A header, copied in, then the file: read into the room, handed back in place.
            let header = bytes(512)
            try header.withUnsafeBytes { try writer.emit($0) }
            expected += header
            let data = bytes(size)
            files.append(data)
            var done = 0
            repeat {
                let room = try writer.room()
                let n = min(room.count, data.count - done, 300_000)
                data.withUnsafeBytes { room.baseAddress!.copyMemory(from: $0.baseAddress! + done, byteCount: n) }
                writer.fileData(count: n, file: index, last: done + n == data.count)
                try writer.emit(UnsafeRawBufferPointer(rebasing: room[0..<n]))
                done += n
            } while done < data.count
            expected += data
        }
        let digests = try writer.finish()
        #expect(digests == files.map { SHA256Digest.of($0) })
        let out = Array(try #require(FileManager.default.contents(atPath: path)))
        let sizesOut = try Self.frameSizes(out)
        #expect(sizesOut.count == (expected.count + FramedPayloadWriter.frameSize - 1) / FramedPayloadWriter.frameSize)
        #expect(sizesOut.dropLast().allSatisfy { $0 == UInt64(FramedPayloadWriter.frameSize) })
        let back = try run(["sh", "-c", "zstd -dc '\(path)' | sha256sum | cut -c1-64"]).stdout
        #expect(back == SHA256Digest.of(expected).hex + "\n")
    }

    /// A writer abandoned half-way (a pack that failed elsewhere) stops its threads and leaves
    /// the file as it was written so far; nothing hangs.
    @Test func abandonedHalfWayStops() throws {
        let tmp = TempDir()
        let path = tmp.file("payload.zst")
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        defer { close(fd) }
        let writer = try FramedPayloadWriter(fileDescriptor: fd, path: path, level: 1, workers: 2)
        let chunk = [UInt8](repeating: 0x61, count: 3 * FramedPayloadWriter.frameSize + 17)
        try chunk.withUnsafeBytes { try writer.emit($0) }
        writer.abandon()
        #expect(throws: AirlockError.self) { _ = try writer.finish() }
    }

    @Test func refusesALevelOutOfRange() {
        #expect(throws: AirlockError.self) { try FramedPayloadWriter(fileDescriptor: -1, path: "x", level: 20, workers: 2) }
    }
}
