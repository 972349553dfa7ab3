import CAirlockSystem
import CZstd

#if canImport(Glibc)
import Glibc
#endif

/// Writes a bundle in the one order the format has (bundle-format.md), the order
/// `BundleReader` enforces when it reads one:
///
/// 1. `airlock/manifest.json` (`writeManifest`);
/// 2. `airlock/signatures/<key id>.sig`, one per key, sorted by key id (`writeSignatures`);
/// 3. `airlock/SHA256SUMS`, derived from the manifest (`writeSums`);
/// 4. `airlock/delta.json`, in a delta bundle only (`writeDelta`);
/// 5. `payload/<path>` for every file the bundle carries, in manifest order (`writePayload`).
///
/// A delta bundle whose manifest is a patch (`airlock.delta/v2`) begins instead with
/// `airlock/delta.json` and `airlock/manifest.patch` (`writePatchedHead`), then the signatures
/// and the payload: no manifest entry, no SHA256SUMS.
///
/// Every entry is a regular file owned by 0:0 with the format's normalised mode and one mtime.
/// A step out of order is a bug in the caller and stops the process.
package final class BundleWriter {
    private enum Stage: Int { case start, patchedHead, manifest, signatures, sums, delta, payload, closed }

    private let archive: ArchiveWriter
    private let mtime: Int64
    private var stage = Stage.start

    /// Writes to `fd` (`path` names it in errors) with `compression` at `level` (nil: the
    /// default), `threads` compressor workers, and `mtime` on every entry.
    package init(fileDescriptor fd: Int32, path: String, compression: Compression, level: Int?, threads: Int, mtime: Int64) throws {
        archive = try ArchiveWriter(fileDescriptor: fd, path: path, compression: compression, level: level, threads: threads)
        self.mtime = mtime
    }

    private func advance(to next: Stage) {
        precondition(next.rawValue > stage.rawValue || (next == .payload && stage == .payload), "BundleWriter: \(next) after \(stage)")
        stage = next
    }

    /// 1. The manifest, encoded again as it is written (`length` bytes: the encoding's
    /// length). Returns the SHA-256 of what was written: the bundle id, when the encoding is
    /// stable.
    package func writeManifest(_ manifest: Manifest, length: UInt64) throws -> SHA256Digest {
        advance(to: .manifest)
        let hasher = SHA256Hasher()
        try archive.addFile(path: BundleLayout.manifestEntry, size: length, mode: BundleLayout.regularMode, mtime: mtime) { write in
            try manifest.encode { chunk in
                hasher.update(chunk)
                try chunk.withUnsafeBytes { try write($0) }
            }
        }
        return hasher.finish()
    }

    /// 1. The manifest as it was encoded, signed and hashed (the bundle id).
    package func writeManifest(bytes: [UInt8]) throws {
        advance(to: .manifest)
        try archive.addFile(path: BundleLayout.manifestEntry, bytes: bytes, mode: BundleLayout.regularMode, mtime: mtime)
    }

    /// 1'. For a format v2 delta bundle, in place of the manifest: the hint, then the patch
    /// that rebuilds the manifest from the base's (`ManifestPatch.make`).
    package func writePatchedHead(_ delta: DeltaInfo, patch: [UInt8]) throws {
        precondition(delta.isPatched, "writePatchedHead takes a v2 delta hint")
        advance(to: .patchedHead)
        try archive.addFile(path: BundleLayout.deltaEntry, bytes: delta.encoded(), mode: BundleLayout.regularMode, mtime: mtime)
        try archive.addFile(path: BundleLayout.manifestPatchEntry, bytes: patch, mode: BundleLayout.regularMode, mtime: mtime)
    }

    /// 2. The signatures over the manifest, one per key id, sorted by key id.
    package func writeSignatures(_ signatures: [(keyID: String, bytes: [UInt8])]) throws {
        advance(to: .signatures)
        for (id, bytes) in signatures.sorted(by: { $0.keyID < $1.keyID }) {
            try archive.addFile(
                path: BundleLayout.signaturesPrefix + id + BundleLayout.signatureSuffix, bytes: bytes, mode: BundleLayout.regularMode, mtime: mtime)
        }
    }

    /// 3. `SHA256SUMS` of `manifest`, written line by line (100,000 files make 10 MB of it).
    package func writeSums(of manifest: Manifest) throws {
        advance(to: .sums)
        try archive.addFile(path: BundleLayout.sumsEntry, size: manifest.sumsLength, mode: BundleLayout.regularMode, mtime: mtime) { write in
            var chunk: [UInt8] = []
            chunk.reserveCapacity(1 << 16)
            for f in manifest.files {
                Manifest.appendSumsLine(f, to: &chunk)
                if chunk.count >= 60 << 10 {
                    try chunk.withUnsafeBytes { try write($0) }
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            try chunk.withUnsafeBytes { try write($0) }
        }
    }

    /// 4. `delta.json`, for a delta bundle.
    package func writeDelta(_ delta: DeltaInfo) throws {
        advance(to: .delta)
        try archive.addFile(path: BundleLayout.deltaEntry, bytes: delta.encoded(), mode: BundleLayout.regularMode, mtime: mtime)
    }

    /// 5. One payload file (the next the bundle carries, in manifest order): `size` bytes
    /// handed out by `produce`.
    package func writePayload(
        _ file: String, size: UInt64, executable: Bool, produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        advance(to: .payload)
        let mode = executable ? BundleLayout.executableMode : BundleLayout.regularMode
        try archive.addFile(path: BundleLayout.payloadPrefix + file, size: size, mode: mode, mtime: mtime, produce: produce)
    }

    /// Ends the archive and flushes the compressor.
    package func close() throws {
        advance(to: .closed)
        try archive.close()
    }
}

/// The head of a bundle packed in one pass (`airlock pack` with zstd): the payload is written
/// first, hashed as it is compressed, and the head (manifest, signatures, SHA256SUMS) is put in
/// front of it afterwards as its own zstd frame, padded by a skippable frame of zeros to a
/// multiple of `alignment` bytes (docs/format.md, "The container"). The tar stream runs on from
/// the head frame into the payload frame: the head is a tar fragment with no end-of-archive
/// marker.
package struct BundleHead {
    /// The head frame and the padding frame's 8-byte header, to be followed by `zeros` zero bytes.
    package var bytes: [UInt8]
    /// Zero bytes that end the padding frame.
    package var zeros: Int
    /// The head's size in the bundle, padding included: a multiple of `alignment`.
    package var total: Int { bytes.count + zeros }

    /// What the head frame and its padding are aligned to: the page size, a multiple of the block
    /// size of common file systems, so that the head can be inserted in front of the payload
    /// without copying it.
    package static let alignment = 4096
    /// The zstd level of the head. The manifest and SHA256SUMS repeat every digest, which the
    /// window and the hash table below reach; level 1 (one probe per position) with them finds
    /// those repeats: on 20,303 files, 4.85 MB of head became 0.94 MB in 21 ms, against 1.12 MB
    /// in 53 ms at level 9 with the same window and tables and 1.50 MB at plain level 1.
    package static let level: Int32 = 1

    /// Writes the head's entries as `BundleWriter` does (`manifestBytes`, the manifest as
    /// encoded and signed, then the signatures and `manifest`'s SHA256SUMS), compresses them and
    /// pads them. `manifestBytes` is emptied once written, before the compressor starts, so that
    /// the two are never held together. Throws `out-of-memory`, `archive-setup-failed` and
    /// `write-failed`.
    package static func make(
        manifestBytes: inout [UInt8], manifest: Manifest, signatures: [(keyID: String, bytes: [UInt8])], mtime: Int64
    ) throws -> BundleHead {
        let fd = airlock_memfd("airlock-head")
        guard fd >= 0 else { throw AirlockError.io(.writeFailed, "cannot make a memory file for the bundle head", errno: errno) }
        defer { close(fd) }
        let writer = try BundleWriter(fileDescriptor: fd, path: "the bundle head", compression: .none, level: nil, threads: 1, mtime: mtime)
        try writer.writeManifest(bytes: manifestBytes)
        manifestBytes = []
        try writer.writeSignatures(signatures)
        try writer.writeSums(of: manifest)
        try writer.close()
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 1024 else { throw AirlockError.io(.writeFailed, "cannot read back the bundle head", errno: errno) }
        // The fragment: everything but the end-of-archive marker (two zero blocks), compressed
        // as it is read back, 1 MiB at a time: 100,000 files make 25 MB of head, never held.
        let length = Int(st.st_size) - 1024
        var marker = [UInt8](repeating: 1, count: 1024)
        guard marker.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, 1024, off_t(length)) }) == 1024, marker.allSatisfy({ $0 == 0 }) else {
            throw AirlockError(.internal, .archiveSetupFailed, "the bundle head did not end with the tar end-of-archive marker; this is a bug in airlock")
        }
        marker = []
        var frame = try compress(fd: fd, length: length)
        let total = (frame.count + 8 + alignment - 1) / alignment * alignment
        let zeros = total - frame.count - 8
        frame += [0x50, 0x2A, 0x4D, 0x18] + withUnsafeBytes(of: UInt32(zeros).littleEndian, Array.init)
        return BundleHead(bytes: frame, zeros: zeros)
    }

    /// zstd's window and match tables for the head, as powers of two: 4 MiB of window reaches
    /// from a file's line in SHA256SUMS back to its entry in the manifest for about 25,000
    /// files, and keeps both ends of the stream small (a reader's window, the packer's tables).
    static let windowLog: Int32 = 22
    static let tableLog: Int32 = 20

    /// The first `length` bytes of `fd`, compressed as one frame, read and compressed 1 MiB at a
    /// time.
    private static func compress(fd: Int32, length: Int) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw AirlockError(.internal, .outOfMemory, "cannot set up zstd for the bundle head") }
        defer { ZSTD_freeCCtx(cctx) }
        var window: Int32 = 10
        while (1 << Int(window)) < length && window < windowLog { window += 1 }
        for (p, v) in [
            (ZSTD_c_compressionLevel, level), (ZSTD_c_windowLog, window), (ZSTD_c_hashLog, min(tableLog, window + 1)),
            (ZSTD_c_chainLog, min(tableLog, window + 1)), (ZSTD_c_checksumFlag, 0), (ZSTD_c_contentSizeFlag, 1),
        ] {
            let r = ZSTD_CCtx_setParameter(cctx, p, v)
            if ZSTD_isError(r) != 0 { throw AirlockError(.internal, .archiveSetupFailed, "cannot set up zstd for the bundle head") }
        }
        _ = ZSTD_CCtx_setPledgedSrcSize(cctx, UInt64(length))
        let chunk = 1 << 20
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 64)
        defer {
            input.deallocate()
            output.deallocate()
        }
        var out: [UInt8] = []
        var offset = 0
        var finished = false
        while !finished {
            let n = min(chunk, length - offset)
            if n > 0 {
                guard pread(fd, input.baseAddress, n, off_t(offset)) == n else {
                    throw AirlockError.io(.writeFailed, "cannot read back the bundle head", errno: errno)
                }
            }
            offset += n
            let last = offset == length
            var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: n, pos: 0)
            repeat {
                var outBuf = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                let r = ZSTD_compressStream2(cctx, &outBuf, &inBuf, last ? ZSTD_e_end : ZSTD_e_continue)
                if ZSTD_isError(r) != 0 { throw AirlockError(.internal, .outOfMemory, "cannot compress the bundle head") }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: output[0..<outBuf.pos]))
                finished = last && r == 0
            } while inBuf.pos < inBuf.size || (last && !finished)
        }
        return out
    }
}
