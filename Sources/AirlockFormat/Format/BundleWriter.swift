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
                chunk.append(contentsOf: Manifest.sumsLine(f))
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
