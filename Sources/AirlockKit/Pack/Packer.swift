import AirlockFormat
import CAirlockSystem
import Foundation

/// A file found in a release directory, before hashing. 100,000 of them are held at once, so
/// no path is stored twice: a file's place on disk is its component's folder (one string shared
/// by all of the component's files) followed by its bundle path after the component's name.
struct SourceFile: Sendable {
    var path: String
    /// The component's folder in the release directory; for a followed symlink, its target.
    private var base: String
    /// How many bytes of `path` name the component; -1 when `base` is a symlink's target.
    private var nameBytes: Int32
    var executable: Bool
    var identity: FileIdentity

    init(path: String, folder: String, nameBytes: Int32, executable: Bool, identity: FileIdentity) {
        self.path = path
        self.base = folder
        self.nameBytes = nameBytes
        self.executable = executable
        self.identity = identity
    }

    var size: UInt64 { identity.size }
    /// True when `source` is the target of a followed symlink.
    var viaSymlink: Bool { nameBytes < 0 }
    /// The file to read: the file itself, or the target of a followed symlink.
    var source: String { nameBytes < 0 ? base : base + String(decoding: path.utf8.dropFirst(Int(nameBytes)), as: UTF8.self) }

    /// Reads `target` in place of the file (a followed symlink).
    mutating func follow(to target: String) {
        base = target
        nameBytes = -1
    }
}

/// What must not change between hashing a file and writing it into the bundle.
struct FileIdentity: Equatable, Sendable {
    var device: UInt64, inode: UInt64, size: UInt64
    var mtime: Int64, ctime: Int64
    var mtimeNanos: Int32, ctimeNanos: Int32

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = UInt64(st.st_size)
        mtime = Int64(st.st_mtim.tv_sec)
        mtimeNanos = Int32(truncatingIfNeeded: st.st_mtim.tv_nsec)
        ctime = Int64(st.st_ctim.tv_sec)
        ctimeNanos = Int32(truncatingIfNeeded: st.st_ctim.tv_nsec)
    }
}

/// Packs a release directory into a bundle (bundle-format.md): scans and checks every file,
/// hashes each as it is compressed (one pass, ADR 0011; the scan beside it, ADR 0013) or hashes
/// them all first (deltas, gzip, no compression), and writes the signed manifest, SHA256SUMS and
/// the payload to a temporary file that is renamed into place only when complete.
public enum Packer {
    /// Packs the release in `directory` (its `airlock.yaml` and the component folders it names)
    /// into a bundle signed by every key of `options.keys`, and returns what it wrote. The eval
    /// gate runs before anything is hashed; a release that fails it, the tool manifest's check or
    /// the scan never becomes a bundle (the scan may run beside the packing). The bundle is written
    /// to a temporary file beside the output and renamed into place only when complete, so a pack
    /// that fails leaves no bundle. `progress` is told every byte hashed and written.
    ///
    /// Throws, where "the errors of reading a file" are `file-not-found`, `permission-denied`,
    /// `is-a-directory`, `open-failed`, `read-failed` and `file-too-large`:
    ///
    /// - `key-missing` when `options.keys` is empty;
    /// - what `ReleaseSpec.load` throws: `release-spec-missing`, `release-spec-invalid` and the
    ///   other errors of reading a file;
    /// - from the scan: `file-not-found` (no release directory), `component-missing`,
    ///   `release-file-refused` (a file the path rules or its kind refuse, or one it can not read)
    ///   and `release-empty`;
    /// - `tools-missing`, `tools-invalid`, `file-too-large` (a `tools/tools.json` over 1 MiB),
    ///   and `release-changed` or `release-file-refused` when it can not be read as scanned;
    /// - what `EvalGate.run` throws: `eval-below-threshold`, `eval-failed`, `eval-output-invalid`,
    ///   `eval-file-missing`, `eval-file-unreadable`, `eval-file-refused`, `write-failed` (no
    ///   scratch folder), `wait-failed`, and the errors of reading a suite file (all but
    ///   `file-too-large`);
    /// - `release-changed` when a file changes between the scan, its hashing and its writing, and
    ///   `release-file-refused` when it can no longer be opened or read;
    /// - `release-expired` when the spec's `expires` is already past;
    /// - for a delta, what reading the base throws (`BundleSummary.read` for a bundle; the errors
    ///   of reading a file and `Manifest.parse` for a manifest), and `delta-base-mismatch` for a
    ///   base of another name;
    /// - `sign-failed` when a key can not sign;
    /// - `output-is-directory`, `output-is-source` and `output-in-release` for an output it refuses;
    /// - `create-failed`, `write-failed` and `disk-full` while writing the bundle, and
    ///   `out-of-memory` and `archive-setup-failed` when the compressor can not be set up;
    /// - `manifest-unstable` and `eval-attestation-invalid` only on a bug in Airlock.
    public static func pack(directory: String, options: PackOptions, progress: ProgressReporter? = nil) throws -> PackResult {
        guard !options.keys.isEmpty else {
            throw AirlockError(.usage, .keyMissing, "packing needs at least one signing key; add --key vendor.key (make one with `airlock key generate`)")
        }
        var dir = directory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        let spec = try ReleaseSpec.load(directory: dir)
        // One pass (zstd, a full bundle): every file is read once, hashed as it is compressed,
        // and the signed head is put in front of the payload afterwards. Otherwise (a delta,
        // which needs every digest to know what to carry, or gzip and no compression, which have
        // no frames to put a head in front of): hash everything, then write.
        let onePass = options.base == nil && options.compression == .zstd
        // A one-pass pack with no eval gate scans on a thread of its own while it packs the files
        // found so far (`ScanFeed`); the checks that need every file run when the scan ends, and
        // a release that fails them never becomes a bundle. An eval gate runs between the scan
        // and the first byte packed, as before.
        let streaming = onePass && spec.eval == nil
        var sources: [SourceFile] = []
        var attestations: [String: JSONValue]?
        if !streaming {
            sources = try scan(directory: dir, spec: spec, followInternalSymlinks: options.followInternalSymlinks)
            // The tool manifest is checked, and the eval gate run, before anything is hashed: a
            // release that fails either never becomes a bundle.
            try checkTools(spec: spec, sources: sources, directory: dir)
            if let eval = spec.eval {
                attestations = ["eval": try EvalGate.run(eval, directory: dir, progress: options.evalProgress).json]
            }
        }
        let epoch = options.sourceDateEpoch ?? Timestamp.now()
        if let expires = spec.expires, let t = Timestamp.parse(expires), t <= epoch {
            throw AirlockError(
                .invalidRelease, .releaseExpired, "airlock.yaml says the release expires at \(expires), which is already past; set a later expires")
        }
        let output = options.output ?? "\(spec.name)-\(spec.version).\(BundleLayout.fileExtension)"
        try checkOutput(output, directory: dir, spec: spec)
        if !streaming { try checkOutputIsNotSource(output, sources: sources) }
        var tmp = FileIO.temporarySibling(of: output)
        var fd = Sys.open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw AirlockError.io(.createFailed, "cannot create the bundle next to \(output); check that its folder exists and is writable", errno: errno)
        }
        var renamed = false
        defer {
            close(fd)
            if !renamed { _ = Sys.unlink(tmp) }
        }

        let follow = options.followInternalSymlinks
        let releaseDir = dir
        // The bundle being written exists while the scan runs: a scan that finds it (a hard
        // link, a component folder reached under another path) refuses it.
        var own = stat()
        guard fstat(fd, &own) == 0 else { throw AirlockError.io(.createFailed, "cannot read back the bundle being written at \(tmp)", errno: errno) }
        let ownID = (device: UInt64(own.st_dev), inode: UInt64(own.st_ino))
        let feed: ScanFeed? =
            streaming
            ? ScanFeed { emit, all in
                var total: UInt64 = 0
                try walkRelease(directory: releaseDir, spec: spec, follow: follow) { f in
                    if f.identity.device == ownID.device && f.identity.inode == ownID.inode { throw outputIsSource(output) }
                    // Refused before a byte of it is read: a file or a release over the format's limit.
                    let (sum, overflow) = total.addingReportingOverflow(f.size)
                    total = sum
                    guard !overflow, f.size <= BundleLayout.maxInteger, total <= BundleLayout.maxInteger else {
                        throw refuse(f.source, "the release is larger than 2^53 bytes, the format's limit")
                    }
                    try emit(f)
                }
                let found = try all()
                try checkScanned(found)
                try checkTools(spec: spec, sources: found, directory: releaseDir)
                try checkOutputIsNotSource(output, sources: found)
            } : nil
        // Whatever ends the pack ends the scan first.
        defer { feed?.cancel() }
        progress?.start(total: sources.reduce(0) { $0 + $1.size } * (onePass ? 1 : 2))
        var digests: [SHA256Digest]
        if onePass {
            var totalKnown = feed == nil
            let next: (Int) throws -> SourceFile? = { [sources] index in
                guard let feed else { return index < sources.count ? sources[index] : nil }
                if !totalKnown, let total = feed.completedTotal {
                    progress?.setTotal(total)
                    totalKnown = true
                }
                return try feed.file(index)
            }
            digests = try writePayloadHashing(
                fd: fd, output: output, options: options, mtime: epoch, progress: progress, stopIfFailed: { try feed?.throwIfFailed() }, next: next)
            if let feed { sources = try feed.complete() }
        } else {
            digests = try hashAll(sources, threads: options.threads, progress: progress)
        }
        guard digests.count == sources.count else {
            throw AirlockError(
                .internal, .manifestUnstable, "\(digests.count) digests for \(sources.count) files; this is a bug in airlock, please report it")
        }
        let files = zip(sources, digests).map { ManifestFile(path: $0.path, size: $0.size, sha256: $1, executable: $0.executable) }

        let metadata = Dictionary(uniqueKeysWithValues: spec.components.map { ($0.name, $0.metadata) })
        let manifest = Manifest(
            name: spec.name, version: spec.version, sequence: spec.sequence, created: Timestamp.format(epoch),
            expires: spec.expires, componentMetadata: metadata, files: files, attestations: attestations,
            health: spec.health.map { ["command": .string($0.command), "timeout_seconds": .integer(Int($0.timeoutSeconds))] },
            serve: spec.serve)
        // The manifest is held whole to hash and sign it, and in one pass to write it into the
        // head, which lets it go before its compressor starts; a bundle written in two passes
        // encodes it again from the records as it writes, so that it and the payload's
        // compressor are never held together.
        var manifestBytes = manifest.encoded()
        let manifestLength = UInt64(manifestBytes.count)
        let bundleID = SHA256Digest.of(manifestBytes)
        var delta: DeltaInfo?
        var patch: [UInt8] = []
        if let base = options.base {
            let (baseID, baseManifest, baseBytes) = try base.load()
            guard baseManifest.name == spec.name else {
                throw AirlockError(.usage, .deltaBaseMismatch, "the base is a release of \(baseManifest.name), not \(spec.name); give a base of the same name")
            }
            // Content the base holds with the same mode: what a site that has the base already stores.
            let held = Set(baseManifest.files.map(\.content))
            let omitted = files.filter { held.contains($0.content) }.map(\.path)
            if options.fullManifestDelta {
                delta = DeltaInfo(base: baseID, omitted: omitted)
            } else {
                delta = DeltaInfo(
                    base: baseID, name: spec.name, bundle: bundleID, carried: files.filter { !held.contains($0.content) }.map(\.path), omitted: omitted)
                patch = try ManifestPatch.make(manifestBytes, base: baseBytes)
            }
        }
        let omitted = Set(delta?.omitted ?? [])
        var signatures: [(String, [UInt8])] = []
        for key in options.keys {
            if signatures.contains(where: { $0.0 == key.id }) { continue }
            signatures.append((key.id, try key.sign(manifestBytes)))
        }
        if !onePass { manifestBytes = [] }
        signatures.sort { $0.0 < $1.0 }

        if onePass {
            let head = try BundleHead.make(
                manifestBytes: &manifestBytes, manifest: manifest, signatures: signatures.map { (keyID: $0.0, bytes: $0.1) }, mtime: epoch)
            if let copy = try putInFront(head, of: fd, tmp: tmp, output: output) {
                // The file system could not insert: the head and a copy of the payload are in a new file.
                close(fd)
                _ = Sys.unlink(tmp)
                (fd, tmp) = copy
            }
        } else {
            // The entry order is the format's (`BundleWriter`).
            let writer = try BundleWriter(
                fileDescriptor: fd, path: output, compression: options.compression, level: options.level, threads: options.compressionThreads,
                mtime: epoch)
            if let delta, delta.isPatched {
                try writer.writePatchedHead(delta, patch: patch)
                try writer.writeSignatures(signatures.map { (keyID: $0.0, bytes: $0.1) })
            } else {
                let written = try writer.writeManifest(manifest, length: manifestLength)
                guard written == bundleID else {
                    throw AirlockError(
                        .internal, .manifestUnstable, "the manifest encoded differently the second time; this is a bug in airlock, please report it")
                }
                try writer.writeSignatures(signatures.map { (keyID: $0.0, bytes: $0.1) })
                try writer.writeSums(of: manifest)
                if let delta { try writer.writeDelta(delta) }
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            for src in sources where !omitted.contains(src.path) {
                try writer.writePayload(src.path, size: src.size, executable: src.executable) { write in
                    try read(src, buffer: buffer) { part in
                        try write(part)
                        progress?.advance(by: part.count)
                    }
                }
            }
            try writer.close()
        }
        // No fsync: like tar and zstd, pack leaves write-back to the kernel. The rename makes a
        // bundle appear only complete while pack runs; one cut short by a power loss fails
        // verification (every byte is hashed), so nothing untrusted can pass for it.
        var size = stat()
        fstat(fd, &size)
        guard Sys.rename(tmp, output) == 0 else {
            throw AirlockError.io(.writeFailed, "cannot move the finished bundle into place at \(output)", errno: errno)
        }
        renamed = true
        progress?.done()
        return PackResult(
            bundleID: bundleID, path: output, manifest: manifest, bundleBytes: UInt64(size.st_size), delta: delta, signers: options.keys.map(\.id),
            compression: options.compression,
            eval: try manifest.attestations?["eval"].map { try EvalAttestation(json: $0, source: "the eval attestation") })
    }

    /// Refuses an output that is a folder, or inside a component folder (`output-is-source` when
    /// it is a file there already).
    static func checkOutput(_ output: String, directory dir: String, spec: ReleaseSpec) throws {
        var st = stat()
        if stat(output, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw AirlockError(
                .usage, .outputIsDirectory, "--out \(output) is a directory; give a file name such as \(output)/\(spec.name)-\(spec.version).airlock")
        }
        if let outDir = resolvedPath(output.contains("/") ? String(output[..<output.lastIndex(of: "/")!]) : "."),
            let root = resolvedPath(dir),
            spec.components.contains(where: { (outDir + "/").hasPrefix(root + "/" + $0.path + "/") })
        {
            // A file that is already there is one the scan takes in: a file of the release.
            if stat(output, &st) == 0 { throw outputIsSource(output) }
            throw AirlockError(
                .usage, .outputInRelease, "--out \(output) is inside a component folder, so the next pack would take the bundle in; write it somewhere else")
        }
    }

    static func outputIsSource(_ output: String) -> AirlockError {
        AirlockError(.usage, .outputIsSource, "--out \(output) is a file of the release itself; write the bundle somewhere else")
    }

    /// Refuses an output that is a file of the release (the target of a followed symlink, or a
    /// hard link of one).
    static func checkOutputIsNotSource(_ output: String, sources: [SourceFile]) throws {
        var st = stat()
        if stat(output, &st) == 0, sources.contains(where: { $0.identity.device == UInt64(st.st_dev) && $0.identity.inode == UInt64(st.st_ino) }) {
            throw outputIsSource(output)
        }
    }

    /// The tool manifest of a release with a tools component: there, and valid.
    static func checkTools(spec: ReleaseSpec, sources: [SourceFile], directory dir: String) throws {
        guard let tools = spec.components.first(where: { $0.name == "tools" }) else { return }
        guard let t = sources.first(where: { $0.path == ToolManifest.path }) else {
            throw AirlockError(
                .invalidRelease, .toolsMissing,
                "the tools component has no tools.json; declare the agent's tools in \(dir)/\(tools.path)/tools.json ({\"tools\": []} declares none; see docs/release.md)"
            )
        }
        // Read as the payload is (`read`): the file the scan saw, unchanged since, never a FIFO
        // put in its place, so that the bytes checked are the bytes packed.
        guard t.size <= UInt64(ToolManifest.maxBytes) else {
            throw AirlockError(.usage, .fileTooLarge, "tool manifest \(t.source) is larger than \(ToolManifest.maxBytes) bytes; is it the right file?")
        }
        var bytes: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ToolManifest.maxBytes + 1, alignment: 16)
        defer { buffer.deallocate() }
        try read(t, buffer: buffer) { bytes += $0 }
        _ = try ToolManifest.parse(bytes, source: t.source)
    }

    // MARK: One pass

    /// Writes the payload entries of every file, in manifest order, as one zstd-compressed tar
    /// stream that ends with the end-of-archive marker (the head goes in front of it later),
    /// hashing each byte as it goes to the compressor. Returns the digests, in order.
    /// `next` gives the file at an index in manifest order, nil after the last; `stopIfFailed`
    /// is asked between the chunks of a large file, so that a refusal found meanwhile stops it.
    static func writePayloadHashing(
        fd: Int32, output: String, options: PackOptions, mtime: Int64, progress: ProgressReporter?, stopIfFailed: () throws -> Void = {},
        next: (Int) throws -> SourceFile?
    ) throws -> [SHA256Digest] {
        // Four stages on two cores: this thread reads every file straight into the tar stream's
        // next slot (`FramedPayloadWriter`), which one thread hashes and the zstd workers
        // compress, a frame per slot; the frames are written from a thread of their own.
        let payload = try FramedPayloadWriter(
            fileDescriptor: fd, path: output, level: options.level ?? BundleLayout.defaultZstdLevel, workers: options.compressionThreads)
        let digests: [SHA256Digest?]
        do {
            let archive = try ArchiveWriter(output: { try payload.emit($0) }, path: output)
            var index = 0
            while let src = try next(index) {
                defer { index += 1 }
                let mode = src.executable ? BundleLayout.executableMode : BundleLayout.regularMode
                try archive.addFile(path: BundleLayout.payloadPrefix + src.path, size: src.size, mode: mode, mtime: mtime) { write in
                    try readChunks(src, buffer: { _ in try payload.room() }) { part, last in
                        if part.count >= readSize { try stopIfFailed() }
                        payload.fileData(count: part.count, file: index, last: last)
                        try write(part)
                        progress?.advance(by: part.count)
                    }
                }
            }
            try archive.close()
            digests = try payload.finish()
        } catch {
            payload.abandon()
            throw error
        }
        return digests.map { $0! }
    }

    /// The most one read of a file asks for.
    static let readSize = 1 << 20

    /// Reads exactly the file's recorded size, each chunk into the buffer `buffer` gives (told
    /// how many bytes the read would like: what is left and one more), failing if the file
    /// changed since it was scanned; `body` learns which chunk is the last (a file of no bytes
    /// is one empty chunk).
    static func readChunks(
        _ f: SourceFile, buffer: (Int) throws -> UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer, Bool) throws -> Void
    ) throws {
        // O_NONBLOCK: a FIFO or terminal put in the file's place does not block the open or a
        // read; the identity check refuses it before anything is read.
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (f.viaSymlink ? 0 : O_NOFOLLOW)
        let fd = Sys.open(f.source, flags)
        guard fd >= 0 else { throw refuse(f.source, "cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        // Checked before the first read: what was opened is the regular file the scan saw (not
        // something put in its place, through a symlink or otherwise); and after the last read:
        // it did not change meanwhile (every write moves the ctime).
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, FileIdentity(st) == f.identity else { throw changed(f) }
        if f.size == 0 {
            try body(UnsafeRawBufferPointer(start: nil, count: 0), true)
        }
        if f.size > UInt64(readSize) { posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
        var left = f.size
        // Whether the end of the file was seen: the last read asks for one byte more than is
        // left when the buffer has room, so that a small file takes one read, not two.
        var atEnd = false
        while left > 0 {
            var b = try buffer(Int(min(left + 1, UInt64(readSize))))
            if b.count > readSize { b = UnsafeMutableRawBufferPointer(rebasing: b[0..<readSize]) }
            let probe = UInt64(b.count) > left
            var n: Int
            repeat { n = Glibc.read(fd, b.baseAddress, Int(probe ? left + 1 : UInt64(b.count))) } while n < 0 && errno == EINTR
            if n < 0 { throw refuse(f.source, "read failed (\(String(cString: strerror(errno))))") }
            if n == 0 || UInt64(n) > left { throw changed(f) }
            left -= UInt64(n)
            atEnd = probe && left == 0
            try body(UnsafeRawBufferPointer(rebasing: b[0..<n]), left == 0)
        }
        // Nothing more, and the same file as scanned: one that grew or changed is refused.
        var extra: UInt8 = 0
        guard atEnd || Glibc.read(fd, &extra, 1) == 0, fstat(fd, &st) == 0, FileIdentity(st) == f.identity else { throw changed(f) }
    }

    /// Puts the head in front of the payload in `fd`: the file system inserts room for it at the
    /// front without moving a byte (ext4, XFS), or, where it cannot, the head and a kernel copy
    /// of the payload go to a new file beside the output, whose descriptor and path are returned
    /// (nil when the head was inserted). Either way the bytes are the same.
    static func putInFront(_ head: BundleHead, of fd: Int32, tmp: String, output: String) throws -> (Int32, String)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AirlockError.io(.writeFailed, "cannot read the size of the bundle being written", errno: errno) }
        let payload = Int64(st.st_size)
        func writeHead(_ to: Int32) throws {
            try head.bytes.withUnsafeBytes { b in
                var done = 0
                while done < b.count {
                    let n = pwrite(to, b.baseAddress! + done, b.count - done, off_t(done))
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else {
                        throw AirlockError.io(errno == ENOSPC ? .diskFull : .writeFailed, "cannot write the bundle head to \(output)", errno: errno)
                    }
                    done += n
                }
            }
        }
        if airlock_insert_range(fd, Int64(head.total)) == 0 {
            // The inserted range reads as zeros: the padding frame's content is already there.
            try writeHead(fd)
            return nil
        }
        guard errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS else {
            throw AirlockError.io(errno == ENOSPC ? .diskFull : .writeFailed, "cannot make room for the bundle head in \(output)", errno: errno)
        }
        let copyPath = FileIO.temporarySibling(of: output)
        let out = Sys.open(copyPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard out >= 0 else {
            throw AirlockError.io(.createFailed, "cannot create the bundle next to \(output); check that its folder exists and is writable", errno: errno)
        }
        do {
            try writeHead(out)
            guard ftruncate(out, off_t(head.total)) == 0, lseek(out, off_t(head.total), SEEK_SET) == off_t(head.total) else {
                throw AirlockError.io(.writeFailed, "cannot pad the bundle head in \(output)", errno: errno)
            }
            var copied: Int64 = 0
            var kernelCopy = true
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while copied < payload {
                var n: Int64
                if kernelCopy {
                    n = airlock_copy_file_range(fd, copied, out, payload - copied)
                    if n < 0 && [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(errno) {
                        kernelCopy = false
                        continue
                    }
                } else {
                    n = Int64(pread(fd, buffer.baseAddress, min(buffer.count, Int(payload - copied)), off_t(copied)))
                    if n > 0 { try FileIO.writeAll(out, UnsafeRawBufferPointer(rebasing: buffer[0..<Int(n)]), path: output) }
                }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw AirlockError.io(
                        errno == ENOSPC ? .diskFull : .writeFailed, "cannot copy the payload behind the bundle head in \(output)", errno: errno)
                }
                copied += n
            }
        } catch {
            close(out)
            _ = Sys.unlink(copyPath)
            throw error
        }
        return (out, copyPath)
    }

    // MARK: Scanning

    static func refuse(_ path: String, _ why: String) -> AirlockError {
        AirlockError(.invalidRelease, .releaseFileRefused, "\(path): \(why)")
    }

    /// Every file of the release's components, checked against the path rules, in bundle order
    /// (sorted by the UTF-8 bytes of its bundle path).
    static func scan(directory: String, spec: ReleaseSpec, followInternalSymlinks: Bool) throws -> [SourceFile] {
        var out: [SourceFile] = []
        try walkRelease(directory: directory, spec: spec, follow: followInternalSymlinks) { out.append($0) }
        try checkScanned(out)
        // The table lives until the bundle is written: give back what growing it left spare.
        return out.withUnsafeBufferPointer { Array($0) }
    }

    /// Hands every file of the release's components to `emit`, in bundle order: the components
    /// sorted as their paths in the bundle are, and each folder walked in that order (`walk`).
    static func walkRelease(directory: String, spec: ReleaseSpec, follow: Bool, emit: (SourceFile) throws -> Void) throws {
        guard let realRoot = resolvedPath(directory) else {
            throw AirlockError.io(.fileNotFound, "release directory \(directory) does not exist", errno: errno)
        }
        for c in spec.components.sorted(by: { PathRules.precedes($0.name + "/", $1.name + "/") }) {
            let folder = directory + "/" + c.path
            var st = stat()
            guard lstat(folder, &st) == 0 else {
                throw AirlockError(
                    .invalidRelease, .componentMissing, "component \(c.name): folder \(folder) does not exist; create it or remove \(c.name) from airlock.yaml")
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw AirlockError(.invalidRelease, .componentMissing, "component \(c.name): \(folder) is not a folder (symlinked folders are refused)")
            }
            // No symlink anywhere on the way: the folder must be where its path says, inside the release.
            guard resolvedPath(folder) == realRoot + "/" + c.path else {
                throw AirlockError(
                    .invalidRelease, .releaseFileRefused,
                    "component \(c.name): the path \(c.path) goes through a symlink; components must be real folders inside the release")
            }
            let fd = Sys.open(folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw refuse(folder, "cannot read this folder (\(String(cString: strerror(errno)))); fix its permissions")
            }
            try walk(
                folder, folder: fd, bundlePrefix: c.name, component: (folder, Int32(c.name.utf8.count)), root: realRoot, follow: follow,
                emit: emit)
        }
    }

    /// The checks of a scan that need every file: at least one, at most 2^53 bytes, in bundle
    /// order, and a set of paths the path rules accept (no two that differ only by letter case,
    /// no file that is also a folder).
    static func checkScanned(_ files: [SourceFile]) throws {
        guard !files.isEmpty else {
            throw AirlockError(.invalidRelease, .releaseEmpty, "the release's component folders hold no file; a release needs at least one")
        }
        var total: UInt64 = 0
        for (i, f) in files.enumerated() {
            total += f.size
            guard f.size <= BundleLayout.maxInteger, total <= BundleLayout.maxInteger else {
                throw refuse(f.source, "the release is larger than 2^53 bytes, the format's limit")
            }
            guard i == 0 || PathRules.precedes(files[i - 1].path, f.path) else {
                throw AirlockError(
                    .internal, .manifestUnstable, "the scan found \(f.path) after \(files[i - 1].path), out of the bundle's order; this is a bug in airlock")
            }
        }
        if let (path, reason) = PathRules.setProblem(with: files.map(\.path)) {
            throw refuse(path, "refused: \(reason)")
        }
    }

    /// Hands the files under `dir` to `emit` in the format's order: a folder's entries are
    /// visited sorted by name, a folder's name counting
    /// as if it ended with "/" (so "a-b" comes before the folder "a", whose paths all start
    /// "a/"). Each entry is looked up relative to its open folder (no path walk per file).
    ///
    /// `folder` is the open descriptor of `dir` (taken over: closed at the end). A subfolder is
    /// opened from its parent's descriptor without following a symlink, so a folder replaced by
    /// a symlink after it was looked at is refused, never walked.
    private static func walk(
        _ dir: String, folder: Int32, bundlePrefix: String, component: (folder: String, nameBytes: Int32), root: String, follow: Bool,
        emit: (SourceFile) throws -> Void
    ) throws {
        guard let d = fdopendir(folder) else {
            close(folder)
            throw refuse(dir, "cannot read this folder (\(String(cString: strerror(errno)))); fix its permissions")
        }
        defer { closedir(d) }
        let dfd = dirfd(d)
        // The names, end to end in one buffer (a folder's with "/" after it), sorted by index.
        var pool: [UInt8] = []
        var names: [(start: Int, count: Int)] = []
        while let ent = readdir(d) {
            let start = pool.count
            withUnsafeBytes(of: ent.pointee.d_name) { raw in pool.append(contentsOf: raw.prefix(while: { $0 != 0 })) }
            let count = pool.count - start
            if (count == 1 && pool[start] == 0x2E) || (count == 2 && pool[start] == 0x2E && pool[start + 1] == 0x2E) {
                pool.removeLast(count)
                continue
            }
            var isDir = ent.pointee.d_type == UInt8(DT_DIR)
            if ent.pointee.d_type == UInt8(DT_UNKNOWN) {
                var st = stat()
                let found = withUnsafePointer(to: &ent.pointee.d_name) { p in
                    p.withMemoryRebound(to: CChar.self, capacity: count + 1) { fstatat(dfd, $0, &st, AT_SYMLINK_NOFOLLOW) }
                }
                isDir = found == 0 && (st.st_mode & S_IFMT) == S_IFDIR
            }
            if isDir { pool.append(0x2F) }
            names.append((start, pool.count - start))
        }
        pool.withUnsafeBufferPointer { p in
            names.sort { a, b in
                let n = min(a.count, b.count)
                let c = memcmp(p.baseAddress! + a.start, p.baseAddress! + b.start, n)
                return c != 0 ? c < 0 : a.count < b.count
            }
        }
        for entry in names {
            var key = pool[entry.start..<(entry.start + entry.count)]
            let sortedAsFolder = key.last == 0x2F
            if sortedAsFolder { key = key.dropLast() }
            guard let name = String(validating: key, as: UTF8.self) else {
                throw refuse(dir + "/" + TarReader.show(Array(key)), "refused: the name is not valid UTF-8; rename it")
            }
            let fsPath = dir + "/" + name
            var st = stat()
            guard fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw refuse(fsPath, "cannot stat it (\(String(cString: strerror(errno))))")
            }
            // Placed in the order as what the folder listing said it was: something else now
            // (a file replaced by a folder, or the reverse) would land out of order.
            guard ((st.st_mode & S_IFMT) == S_IFDIR) == sortedAsFolder else {
                throw refuse(fsPath, "it changed while the release was scanned; stop whatever writes to the release directory and pack again")
            }
            let bundlePath = bundlePrefix + "/" + name
            if let reason = PathRules.problem(with: bundlePath) {
                throw refuse(fsPath, "refused: \(reason); rename it")
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let sub = Sys.openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw refuse(fsPath, "cannot read this folder (\(String(cString: strerror(errno)))); fix its permissions") }
                var again = stat()
                guard fstat(sub, &again) == 0, again.st_dev == st.st_dev, again.st_ino == st.st_ino else {
                    close(sub)
                    throw refuse(fsPath, "the folder changed while it was scanned; stop whatever writes to the release directory and pack again")
                }
                try walk(fsPath, folder: sub, bundlePrefix: bundlePath, component: component, root: root, follow: follow, emit: emit)
            case S_IFREG:
                try emit(regular(fsPath, bundlePath: bundlePath, st: st, component: component))
            case S_IFLNK:
                guard follow else {
                    throw refuse(
                        fsPath,
                        "refused: symlinks are not packed; replace it with the file, or pass --follow-internal-symlinks to store the content of a target inside the release"
                    )
                }
                guard let target = resolvedPath(fsPath) else {
                    throw refuse(fsPath, "refused: the symlink is broken")
                }
                guard target.hasPrefix(root + "/") else {
                    throw refuse(fsPath, "refused: the symlink points outside the release directory, to \(target)")
                }
                var tst = stat()
                guard stat(target, &tst) == 0, (tst.st_mode & S_IFMT) == S_IFREG else {
                    throw refuse(fsPath, "refused: the symlink's target \(target) is not a regular file")
                }
                var f = try regular(target, bundlePath: bundlePath, st: tst, component: component)
                f.follow(to: target)
                try emit(f)
            case S_IFIFO: throw refuse(fsPath, "refused: a FIFO is not a regular file")
            case S_IFSOCK: throw refuse(fsPath, "refused: a socket is not a regular file")
            case S_IFCHR, S_IFBLK: throw refuse(fsPath, "refused: a device is not a regular file")
            default: throw refuse(fsPath, "refused: not a regular file")
            }
        }
    }

    /// A regular file of the release. Whether it can be read is asked of the kernel only when
    /// its mode does not let owner, group and others all read it: reading it later is the check
    /// that counts (an access control list can still refuse it, and is then reported when it
    /// is opened).
    private static func regular(_ fsPath: String, bundlePath: String, st: stat, component: (folder: String, nameBytes: Int32)) throws -> SourceFile {
        guard st.st_mode & 0o444 == 0o444 || access(fsPath, R_OK) == 0 else {
            throw refuse(fsPath, "cannot be read (permission denied); fix its permissions")
        }
        return SourceFile(
            path: bundlePath, folder: component.folder, nameBytes: component.nameBytes, executable: st.st_mode & 0o111 != 0,
            identity: FileIdentity(st))
    }

    // MARK: Hashing and streaming

    private final class Shared: @unchecked Sendable {
        let lock = NSLock()
        var next = 0
        var digests: [SHA256Digest?]
        var error: Error?
        let progress: ProgressReporter?
        init(count: Int, progress: ProgressReporter?) {
            digests = Array(repeating: nil, count: count)
            self.progress = progress
        }
    }

    /// SHA-256 of every file, on `threads` threads, largest files first.
    static func hashAll(_ files: [SourceFile], threads: Int?, progress: ProgressReporter?) throws -> [SHA256Digest] {
        let order = files.indices.sorted { files[$0].size > files[$1].size }
        let shared = Shared(count: files.count, progress: progress)
        let workers = max(1, min(threads ?? ProcessInfo.processInfo.activeProcessorCount, max(files.count, 1)))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let hasher = SHA256Hasher()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                shared.lock.lock()
                if shared.error != nil || shared.next >= order.count {
                    shared.lock.unlock()
                    return
                }
                let i = order[shared.next]
                shared.next += 1
                shared.lock.unlock()
                do {
                    try read(files[i], buffer: buffer) { part in
                        hasher.update(part)
                        if let p = shared.progress {
                            shared.lock.lock()
                            p.advance(by: part.count)
                            shared.lock.unlock()
                        }
                    }
                    let d = hasher.finish()
                    shared.lock.lock()
                    shared.digests[i] = d
                    shared.lock.unlock()
                } catch {
                    shared.lock.lock()
                    if shared.error == nil { shared.error = error }
                    shared.lock.unlock()
                }
            }
        }
        if let e = shared.error { throw e }
        return shared.digests.map { $0! }
    }

    /// Reads exactly the file's recorded size, failing if the file changed since it was scanned.
    static func read(_ f: SourceFile, buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try readChunks(f, buffer: { _ in buffer }, { part, _ in try body(part) })
    }

    static func resolvedPath(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    static func changed(_ f: SourceFile) -> AirlockError {
        AirlockError(
            .invalidRelease, .releaseChanged, "\(f.source) changed while it was being packed; stop whatever writes to the release directory and pack again")
    }

}
