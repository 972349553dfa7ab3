#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the manifest of a delta bundle's base release: given the base's bundle id and the
/// release name the bundle's unsigned hint gives, the exact manifest bytes, or nil.
public typealias BaseManifestLookup = (_ base: SHA256Digest, _ name: String) throws -> [UInt8]?

/// A signature entry found in a bundle: `airlock/signatures/<keyid>.sig`.
public struct EmbeddedSignature: Sendable, Equatable {
    /// The key id the entry's name gives (64 lowercase hex); no key is checked here.
    public var keyID: String
    /// The raw signature bytes, at most `BundleLayout.maxSignatureBytes`.
    public var bytes: [UInt8]
}

/// Reads a bundle in one forward pass from one open file descriptor, enforcing the entry order
/// of the format: manifest, signatures, SHA256SUMS, payload in manifest order, end.
///
/// It checks structure and content; it does not decide trust (that is `Verifier`'s job, which
/// calls `readSignatures` before it parses the manifest). Not thread-safe.
public final class BundleReader {
    /// The bundle's path as given (`-` for standard input).
    public let path: String
    private let fd: Int32
    private let ownsFD: Bool
    private let feed: ByteFeed?
    private let tar: TarReader
    private var pending: TarEntry?
    /// Entries `readAhead` took from the stream before the manifest was parsed, handed out by
    /// `next` before anything else; `aheadError`: what stopped it, thrown once they are out.
    private var ahead: [Ahead] = []
    private var aheadIndex = 0
    private var aheadError: Error?
    /// The entry `next` returned last, when it came from `ahead`.
    private var lastAhead: Ahead?
    /// SHA256SUMS as `readAhead` found it: its size and digest, checked by `readSums`.
    /// (`failure`: reading its data failed; thrown by `readSums` after the size check.)
    private var sumsAhead: (size: UInt64, digest: SHA256Digest?, failure: Error?)?
    /// Ids of the files given to `pipeline`, in the order they come.
    private var nextHashID = 0

    /// An entry read ahead. A payload file's data went to the pipeline as file `hashID`, or
    /// reading it failed with `dataError` (thrown when the file is read).
    private struct Ahead {
        /// (With neither `hashID` nor `dataError`: its data is not read yet; only the last
        /// entry read ahead can be such.)
        var entry: TarEntry
        var hashID: Int?
        var dataError: Error?
    }

    /// Limits of `readAhead`: entries, and bytes of their names.
    static let maxAheadEntries = 4096
    static let maxAheadNameBytes = 1 << 20
    /// ... and bytes of data: an entry whose declared size would pass it is not read ahead (a
    /// size the manifest may refuse is never read before it is checked, past this budget).
    static let maxAheadBytes: UInt64 = 256 << 20
    /// The size of the manifest `readManifest` read (SHA256SUMS is always shorter: each of its
    /// lines is shorter than the file's entry in the manifest).
    private var manifestLength = 0
    /// The end-of-archive marker was read (a peek may have met it).
    private var atEnd = false
    private var stage = Stage.start
    /// The folders whose directory entry was seen, each as (index of the first manifest path
    /// under it, its length): a folder costs 8 bytes, however deep it is.
    private var seenFolders: Set<FolderKey> = []
    private struct FolderKey: Hashable { var first: Int32, length: Int32 }
    private var nextFileIndex = 0
    private var manifestFiles: [ManifestFile] = []
    /// Set when the bundle is a delta: what it omits (checked against the manifest).
    public private(set) var delta: DeltaInfo?
    private var omitted: Set<String> = []
    /// A format v2 delta: its hint, read before the manifest it rebuilds.
    private var deltaHead: DeltaInfo.Head?
    /// Finds the manifest of a delta bundle's base release (format v2 deltas carry their manifest
    /// as a patch against it): given the base's bundle id and the release name the unsigned hint
    /// gives (checked: the name rule), the base manifest's exact bytes, or nil when it has none.
    /// What it returns is used only when it hashes to the base's bundle id.
    public var baseManifest: BaseManifestLookup?
    private let hasher = SHA256Hasher()
    /// Set by `hashInBackground()`: payload digests are computed on a thread of their own and
    /// checked at `finish`.
    private var pipeline: HashPipeline?
    /// Called by `finish` once the whole bundle was read and checked (see `init(fileDescriptor:)`).
    private let completion: (() throws -> Void)?

    private enum Stage { case start, manifest, signatures, sums, payload, finished }

    /// Opens `path` (`-` reads standard input). `readTimeout`: seconds a read from a pipe or
    /// socket may wait for data before the bundle fails (`stream-stalled`); 0 waits forever. Throws
    /// `file-not-found`, `permission-denied`, `is-a-directory` and `open-failed`.
    public init(path: String, readTimeout: Double = 0) throws {
        self.path = path
        if path == "-" {
            fd = 0
            ownsFD = false
        } else {
            let fd = Sys.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FileIO.openFailure(path, what: "bundle", errno: errno) }
            var st = stat()
            if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                Glibc.close(fd)
                throw FileIO.openFailure(path, what: "bundle", errno: EISDIR)
            }
            self.fd = fd
            ownsFD = true
        }
        feed = nil
        completion = nil
        tar = TarReader(stream: DecompressedStream(fileDescriptor: fd, readTimeout: readTimeout))
    }

    /// Reads the bundle from `fd`, an open descriptor (a pipe fed by a download, for example),
    /// which the reader closes when it goes away. `label` names the bundle in messages.
    /// `completion` runs at the end of `finish`, after the last check of the stream: a source
    /// that has checks of its own (a registry layer's digest) throws there, so that a bundle is
    /// never reported complete before its source agrees.
    public init(fileDescriptor fd: Int32, label: String, readTimeout: Double = 0, completion: (() throws -> Void)? = nil) {
        path = label
        self.fd = fd
        ownsFD = true
        feed = nil
        self.completion = completion
        tar = TarReader(stream: DecompressedStream(fileDescriptor: fd, readTimeout: readTimeout))
    }

    /// Reads the bundle from `feed`, which a producer in this process fills (a registry
    /// download), with no pipe between them; `label` and `completion` as for
    /// `init(fileDescriptor:label:readTimeout:completion:)`. The reader closes the feed when it
    /// goes away, so that the producer stops.
    public init(feed: ByteFeed, label: String, completion: (() throws -> Void)? = nil) {
        path = label
        fd = -1
        ownsFD = false
        self.feed = feed
        self.completion = completion
        tar = TarReader(stream: DecompressedStream(feed: feed))
    }

    deinit { close() }

    private var closed = false

    /// Stops reading: the decompressing and hashing threads end and the descriptor or feed is
    /// closed (a download writing to a pipe then gets EPIPE at once, one putting into a
    /// `ByteFeed` false). Call it when done with a reader whose source waits for it; it also
    /// runs when the reader goes away. Nothing can be read after.
    public func close() {
        if closed { return }
        closed = true
        _ = pipeline?.finish()
        pipeline = nil
        // A feed is closed first: its producer stops at once, and a read waiting on it returns.
        feed?.close()
        // The tar reader stops its producer thread before the descriptor is closed.
        tar.close()
        if ownsFD { Glibc.close(fd) }
    }

    /// Decompressed bytes of the bundle read so far (the tests' measure of work).
    var bytesDecompressed: UInt64 { tar.offset }

    /// The compression detected (after the first read).
    public var compression: Compression? { tar.compression }

    private func next() throws -> TarEntry? {
        lastAhead = nil
        if aheadIndex < ahead.count {
            let a = ahead[aheadIndex]
            aheadIndex += 1
            if aheadIndex == ahead.count {
                ahead = []
                aheadIndex = 0
            }
            lastAhead = a
            return a.entry
        }
        if let e = aheadError {
            aheadError = nil
            throw e
        }
        return try nextInStream()
    }

    /// The entry a step put back (`pending`), else the stream's next.
    private func nextInStream() throws -> TarEntry? {
        if let p = pending {
            pending = nil
            return p
        }
        if atEnd { return nil }
        guard let e = try tar.nextEntry() else {
            atEnd = true
            return nil
        }
        return e
    }

    private static func name(_ e: TarEntry) -> String { TarReader.show(e.path) }

    private func readSmall(_ e: TarEntry, limit: Int, what: String) throws -> [UInt8] {
        guard e.kind == .file else { throw AirlockError.verification(.entryType, "\(what) is not a regular file") }
        guard e.size <= UInt64(limit) else {
            throw AirlockError.verification(.entryTooLarge, "\(what) is \(e.size) bytes, more than the \(limit) allowed")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(e.size))
        try tar.readData { out.append(contentsOf: $0) }
        return out
    }

    /// The exact bytes of the signed manifest: `airlock/manifest.json`, which must be the first
    /// entry; or, in a format v2 delta bundle, rebuilt from `airlock/manifest.patch` and the base
    /// release's manifest (`baseManifest`), after the first entry `airlock/delta.json`. Throws,
    /// for a v2 delta, `delta-invalid`, `delta-base-missing` (no `baseManifest`, or it found
    /// nothing), `entry-order` (no patch after the hint) and `manifest-patch-invalid`. Throws `not-a-bundle`
    /// (an empty archive, or not a tar stream compressed with zstd, gzip or nothing),
    /// `manifest-not-first`, `entry-type`, `entry-too-large` and `out-of-memory` (libarchive cannot
    /// start); and what the tar and compressed stream throw (`bundle-truncated`, `tar-invalid`,
    /// `entry-type`, `entry-mode`, `entry-owner`, `pax-record`, `compression-invalid`, `trailing-data`,
    /// `read-failed`, `stream-stalled`).
    public func readManifest() throws -> [UInt8] {
        precondition(stage == .start, "readManifest must come first")
        stage = .manifest
        guard let e = try next() else {
            throw AirlockError.verification(.notABundle, "this is not an Airlock bundle: the archive is empty")
        }
        if e.path.elementsEqual(BundleLayout.deltaEntry.utf8) { return try readPatchedManifest(e) }
        guard e.path.elementsEqual(BundleLayout.manifestEntry.utf8) else {
            throw AirlockError.verification(
                .manifestNotFirst, "the first entry is \(Self.name(e)), not \(BundleLayout.manifestEntry); this is not a valid Airlock bundle")
        }
        let bytes = try readSmall(e, limit: BundleLayout.maxManifestBytes, what: BundleLayout.manifestEntry)
        manifestLength = bytes.count
        return bytes
    }

    /// A format v2 delta: the hint `e`, then the patch, applied to the base's manifest. Nothing
    /// here is trusted yet: the rebuilt bytes are what the signatures must verify over.
    private func readPatchedManifest(_ e: TarEntry) throws -> [UInt8] {
        let head = try DeltaInfo.parseHead(readSmall(e, limit: DeltaInfo.maxBytes, what: BundleLayout.deltaEntry))
        guard let p = try next(), p.path.elementsEqual(BundleLayout.manifestPatchEntry.utf8) else {
            throw AirlockError.verification(
                .entryOrder, "a delta bundle that begins with \(BundleLayout.deltaEntry) must follow it with \(BundleLayout.manifestPatchEntry)")
        }
        let patch = try readSmall(p, limit: ManifestPatch.maxBytes, what: BundleLayout.manifestPatchEntry)
        guard let found = try baseManifest?(head.base, head.name), SHA256Digest.of(found) == head.base else {
            throw AirlockError(
                .policy, .deltaBaseMissing,
                "this delta bundle carries its manifest as a patch against release \(head.base.prefixed) of \(head.name), which is not at hand: install that release first (a site keeps its manifest), give it with --base BUNDLE or --base-manifest FILE, or use the full bundle"
            )
        }
        let manifest = try ManifestPatch.apply(patch, base: found)
        guard SHA256Digest.of(manifest) == head.bundle else {
            throw ManifestPatch.invalid("rebuilds a manifest whose bundle id is not the \(head.bundle.prefixed) its \(BundleLayout.deltaEntry) names")
        }
        deltaHead = head
        return manifest
    }

    /// Every `airlock/signatures/<keyid>.sig` entry, which must directly follow the manifest. Throws
    /// `signature-entry-invalid`, `signature-entry-duplicate`, `entry-type` and `entry-too-large`;
    /// `sums-missing` or `entry-order` for what follows the signatures; and what the tar and compressed
    /// stream throw (`bundle-truncated`, `tar-invalid`, `entry-type`, `entry-mode`, `entry-owner`,
    /// `pax-record`, `compression-invalid`, `trailing-data`, `read-failed`, `stream-stalled`).
    public func readSignatures() throws -> [EmbeddedSignature] {
        precondition(stage == .manifest, "readSignatures follows readManifest")
        stage = .signatures
        var out: [EmbeddedSignature] = []
        while let e = try next() {
            guard e.path.starts(with: BundleLayout.signaturesPrefix.utf8) else {
                pending = e
                break
            }
            let name = String(decoding: e.path.dropFirst(BundleLayout.signaturesPrefix.utf8.count), as: UTF8.self)
            guard name.hasSuffix(BundleLayout.signatureSuffix),
                let id = SHA256Digest(hex: String(name.dropLast(BundleLayout.signatureSuffix.count)))?.hex
            else {
                throw AirlockError.verification(
                    .signatureEntryInvalid, "signature entry \(Self.name(e)) is not named airlock/signatures/<64 lowercase hex key id>.sig")
            }
            if out.contains(where: { $0.keyID == id }) {
                throw AirlockError.verification(.signatureEntryDuplicate, "the bundle holds two signature entries for key \(id)")
            }
            guard out.count < BundleLayout.maxSignatures else {
                throw AirlockError.verification(.signatureEntryInvalid, "the bundle holds more than \(BundleLayout.maxSignatures) signatures")
            }
            out.append(EmbeddedSignature(keyID: id, bytes: try readSmall(e, limit: BundleLayout.maxSignatureBytes, what: "signature entry \(Self.name(e))")))
        }
        if deltaHead != nil {
            // A v2 delta carries no SHA256SUMS (it is derived from the manifest) and no second hint.
            if let p = pending, p.path.elementsEqual(BundleLayout.sumsEntry.utf8) || p.path.starts(with: "airlock/".utf8) {
                throw AirlockError.verification(
                    .entryUnexpected, "the bundle holds \(Self.name(p)), which a delta bundle whose manifest is a patch does not carry")
            }
            return out
        }
        if let p = pending, !p.path.elementsEqual(BundleLayout.sumsEntry.utf8) {
            if p.path.starts(with: BundleLayout.payloadPrefix.utf8) {
                throw AirlockError.verification(.sumsMissing, "the bundle has no \(BundleLayout.sumsEntry) before its payload")
            }
            throw AirlockError.verification(
                .entryOrder,
                "expected signatures and then \(BundleLayout.sumsEntry) after the manifest, found \(Self.name(p)); the airlock/ entries are out of order or missing"
            )
        }
        return out
    }

    /// Reads `airlock/SHA256SUMS` and checks it is exactly what `manifest` gives (a format v2
    /// delta has none: its hint is checked against the manifest instead). Throws
    /// `sums-missing`, `entry-order` and `sums-mismatch`; for a delta bundle's `airlock/delta.json`,
    /// `entry-type`, `entry-too-large` and `delta-invalid`; and what the tar and compressed stream
    /// throw (`bundle-truncated`, `tar-invalid`, `entry-type`, `entry-mode`, `entry-owner`,
    /// `pax-record`, `compression-invalid`, `trailing-data`, `read-failed`, `stream-stalled`).
    public func readSums(for manifest: Manifest) throws {
        precondition(stage == .signatures, "readSums follows readSignatures")
        stage = .sums
        if let head = deltaHead {
            let info = try DeltaInfo.resolved(head, manifest: manifest)
            manifestFiles = manifest.files
            delta = info
            omitted = Set(info.omitted)
            stage = .payload
            return
        }
        if let found = sumsAhead {
            // Read ahead, hashed: the manifest's "sums" is the digest of the SHA256SUMS its files
            // give (Manifest.parse checked it), so equal digests are equal texts.
            guard found.size == manifest.sumsLength else {
                throw AirlockError.verification(
                    .sumsMismatch, "\(BundleLayout.sumsEntry) disagrees with the manifest (size \(found.size), expected \(manifest.sumsLength))")
            }
            if let e = found.failure { throw e }
            guard found.digest == manifest.sums else {
                throw AirlockError.verification(.sumsMismatch, "\(BundleLayout.sumsEntry) disagrees with the manifest")
            }
            manifestFiles = manifest.files
            try readDeltaHint(manifest)
            stage = .payload
            return
        }
        guard let e = try next() else {
            throw AirlockError.verification(.sumsMissing, "the bundle has no \(BundleLayout.sumsEntry) after its signatures")
        }
        guard e.path.elementsEqual(BundleLayout.sumsEntry.utf8) else {
            if e.path.elementsEqual(BundleLayout.manifestEntry.utf8) || e.path.starts(with: BundleLayout.signaturesPrefix.utf8) {
                throw AirlockError.verification(.entryOrder, "entry \(Self.name(e)) is out of order (airlock/ entries come first, in a fixed order)")
            }
            throw AirlockError.verification(.sumsMissing, "expected \(BundleLayout.sumsEntry) after the signatures, found \(Self.name(e))")
        }
        let length = manifest.sumsLength
        guard e.kind == .file, e.size == length else {
            throw AirlockError.verification(.sumsMismatch, "\(BundleLayout.sumsEntry) disagrees with the manifest (size \(e.size), expected \(length))")
        }
        // Compared line by line with the text the manifest gives, never holding all of it.
        var fileIndex = 0
        var line: [UInt8] = []
        var linePos = 0
        var same = true
        try tar.readData { part in
            var pos = 0
            while same && pos < part.count {
                if linePos == line.count {
                    guard fileIndex < manifest.files.count else {
                        same = false
                        return
                    }
                    line.removeAll(keepingCapacity: true)
                    Manifest.appendSumsLine(manifest.files[fileIndex], to: &line)
                    fileIndex += 1
                    linePos = 0
                }
                let n = min(line.count - linePos, part.count - pos)
                if line.withUnsafeBytes({ memcmp($0.baseAddress! + linePos, part.baseAddress! + pos, n) }) != 0 { same = false }
                linePos += n
                pos += n
            }
        }
        guard same, fileIndex == manifest.files.count, linePos == line.count else {
            throw AirlockError.verification(.sumsMismatch, "\(BundleLayout.sumsEntry) disagrees with the manifest")
        }
        manifestFiles = manifest.files
        try readDeltaHint(manifest)
        stage = .payload
    }

    /// A format v1 delta's `airlock/delta.json`, which follows SHA256SUMS; any other entry is
    /// left for the payload.
    private func readDeltaHint(_ manifest: Manifest) throws {
        if aheadIndex < ahead.count {
            // Read ahead: the hint, if any, is the first entry (its data not read yet: reading
            // ahead stops at the first entry outside payload/).
            guard ahead[aheadIndex].entry.path.elementsEqual(BundleLayout.deltaEntry.utf8) else { return }
            guard let d = try next() else { return }
            try takeDeltaHint(d, manifest)
            return
        }
        if let d = try next() {
            if d.path.elementsEqual(BundleLayout.deltaEntry.utf8) {
                try takeDeltaHint(d, manifest)
            } else {
                pending = d
            }
        }
    }

    private func takeDeltaHint(_ d: TarEntry, _ manifest: Manifest) throws {
        let bytes = try readSmall(d, limit: DeltaInfo.maxBytes, what: BundleLayout.deltaEntry)
        let info = try DeltaInfo.parse(bytes, manifest: manifest)
        delta = info
        omitted = Set(info.omitted)
    }

    /// Reads on while the manifest is parsed elsewhere (`airlock verify`), after the signatures
    /// verified and before `readSums`: SHA256SUMS is hashed, then payload entries are taken and
    /// their files hashed on the pipeline (`hashInBackground`) until `done()` says the manifest
    /// is parsed, an entry outside `payload/` comes, `maxAheadEntries` entries or
    /// `maxAheadNameBytes` bytes of names were taken, or the next file would take the data read
    /// past `maxAheadBytes` (it is left to be read after its checks). SHA256SUMS is read ahead
    /// only when shorter than the manifest. A hostile entry size, which the manifest would
    /// refuse before any of its data is read, thus costs at most that budget. Nothing is checked against the manifest
    /// here and nothing is thrown: every entry goes through the same checks, and every failure
    /// is thrown, when `readSums`, `readPayload` and `finish` come to it, in the order they
    /// would have met it. `progress` gets the count of each part of a payload file's data.
    public func readAhead(until done: () -> Bool, progress: (Int) -> Void = { _ in }) {
        precondition(stage == .signatures && ahead.isEmpty && sumsAhead == nil && aheadError == nil, "readAhead follows readSignatures, once")
        hashInBackground()
        guard let pipeline else { return }
        do {
            if deltaHead == nil {
                // SHA256SUMS, checked later by its size and digest; anything else is for readSums.
                // The entry readSignatures stopped at (its data not read yet).
                guard let e = try nextInStream() else { return }
                guard e.kind == .file, e.path.elementsEqual(BundleLayout.sumsEntry.utf8), e.size < UInt64(manifestLength) else {
                    pending = e
                    return
                }
                hasher.reset()
                do {
                    try tar.readData { hasher.update($0) }
                    sumsAhead = (e.size, hasher.finish(), nil)
                } catch {
                    sumsAhead = (e.size, nil, error)
                    return
                }
            }
            var nameBytes = 0
            var dataLeft = Self.maxAheadBytes
            while !done() && ahead.count < Self.maxAheadEntries && nameBytes < Self.maxAheadNameBytes {
                guard let e = try nextInStream() else { return }
                nameBytes += e.path.count
                guard e.kind == .file, e.path.starts(with: BundleLayout.payloadPrefix.utf8) else {
                    // A directory (no data), or an entry readSums or finish must see as it is.
                    ahead.append(Ahead(entry: e))
                    if !e.path.starts(with: BundleLayout.payloadPrefix.utf8) { return }
                    continue
                }
                guard e.size <= dataLeft else {
                    // Its data is read when its turn comes, after its name and size are checked.
                    ahead.append(Ahead(entry: e))
                    return
                }
                dataLeft -= e.size
                let id = nextHashID
                nextHashID += 1
                do {
                    try tar.readDataChunks { part, chunk, endsChunk in
                        pipeline.add(part, chunk: chunk, endsChunk: endsChunk, file: id)
                        progress(part.count)
                    }
                } catch {
                    ahead.append(Ahead(entry: e, dataError: error))
                    return
                }
                pipeline.endUnmatched(file: id)
                ahead.append(Ahead(entry: e, hashID: id))
            }
        } catch {
            aheadError = error
        }
    }

    /// Hashes the payload on a thread of its own from now on, so that decompressing, parsing
    /// and hashing run side by side: `readPayload` then returns before its file's digest is
    /// known, and `finish` checks every digest, in manifest order, before anything else. For a
    /// reader whose consumer keeps nothing it has not checked (`airlock verify`).
    public func hashInBackground() {
        if pipeline == nil { pipeline = HashPipeline(stream: tar.stream) }
    }

    /// True when this (delta) bundle does not carry `file`: the site must already hold it.
    public func isOmitted(_ file: ManifestFile) -> Bool { !omitted.isEmpty && omitted.contains(file.path) }

    /// Steps past a file the delta omits, in manifest order.
    public func skipOmitted(_ file: ManifestFile) {
        precondition(isOmitted(file), "skipOmitted takes an omitted file")
        nextFileIndex += 1
    }

    /// Streams the next payload file, which must be `file`: same path, a regular file, the
    /// manifest's size and mode. `consume` sees every byte; the SHA-256 is checked after the last
    /// one, and a mismatch throws (so a consumer must not trust what it got until this returns).
    /// Throws `payload-missing`, `entry-unexpected`, `entry-duplicate`, `entry-order`, `path-invalid`,
    /// `payload-size-mismatch`, `payload-mode-mismatch` and `payload-hash-mismatch`; what the tar
    /// and compressed stream throw (`bundle-truncated`, `tar-invalid`, `entry-type`, `entry-mode`,
    /// `entry-owner`, `pax-record`, `compression-invalid`, `read-failed`, `stream-stalled`); and
    /// whatever `consume` throws.
    public func readPayload(_ file: ManifestFile, consume: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws {
        precondition(stage == .payload, "readPayload follows readSums")
        guard let entry = try nextPayloadFile(expecting: file) else {
            throw AirlockError.verification(.payloadMissing, "the bundle lacks \(file.path), which the manifest lists")
        }
        let rel = entry.path.dropFirst(BundleLayout.payloadPrefix.utf8.count)
        if !rel.elementsEqual(file.path.utf8) {
            throw unexpected(entry, rel: Array(rel), expecting: file)
        }
        guard entry.size == file.size else {
            throw AirlockError.verification(
                .payloadSizeMismatch, "\(file.path) is \(entry.size) bytes in the bundle but \(file.size) in the manifest")
        }
        guard entry.mode == file.mode else {
            throw AirlockError.verification(
                .payloadModeMismatch, "\(file.path) has mode \(String(entry.mode, radix: 8)) in the bundle but \(file.modeString) in the manifest")
        }
        if let a = lastAhead, a.hashID != nil || a.dataError != nil {
            // Read ahead: its data was hashed (or failed to read) then.
            lastAhead = nil
            if let e = a.dataError { throw e }
            guard let id = a.hashID, let pipeline else { preconditionFailure("a file read ahead went to the pipeline") }
            pipeline.expect(file: id, index: nextFileIndex, expected: file.sha256)
            nextFileIndex += 1
            return
        }
        // Else the entry was read, not its data (the last one read ahead, past the budget): the
        // tar reader is still at its data.
        lastAhead = nil
        if let pipeline {
            let id = nextHashID
            nextHashID += 1
            try tar.readDataChunks { part, chunk, endsChunk in
                pipeline.add(part, chunk: chunk, endsChunk: endsChunk, file: id)
                try consume(part)
            }
            pipeline.end(file: id, index: nextFileIndex, expected: file.sha256)
            nextFileIndex += 1
            return
        }
        hasher.reset()
        try tar.readData { part in
            hasher.update(part)
            try consume(part)
        }
        try Self.check(hasher.finish(), file)
        nextFileIndex += 1
    }

    private static func check(_ got: SHA256Digest, _ file: ManifestFile) throws {
        guard got == file.sha256 else {
            throw AirlockError.verification(
                .payloadHashMismatch,
                "\(file.path) does not match the manifest (sha256 \(got.hex), expected \(file.sha256.hex)); the bundle was altered or damaged")
        }
    }

    /// The next payload entry that is a file, past the directory entries (checked and taken);
    /// nil at the end of the archive.
    private func nextPayloadFile(expecting file: ManifestFile? = nil) throws -> TarEntry? {
        while let e = try next() {
            // The expected file's name passed the path rules with the manifest: an entry of
            // exactly that name needs no second look.
            let expected =
                file.map {
                    e.kind == .file && e.path.count == BundleLayout.payloadPrefix.utf8.count + $0.path.utf8.count
                        && e.path.starts(with: BundleLayout.payloadPrefix.utf8)
                        && e.path.dropFirst(BundleLayout.payloadPrefix.utf8.count).elementsEqual($0.path.utf8)
                } ?? false
            if !expected { try checkPayloadName(e) }
            guard e.kind == .directory else { return e }
            var p = e.path
            if p.last == UInt8(ascii: "/") { p.removeLast() }
            try takeDirectory(p, e)
        }
        return nil
    }

    /// A directory entry may stand once for each folder of a listed path (`payload/` included),
    /// and means nothing. `p` is the entry name without its trailing slash; it has passed the
    /// path rules, so it is NFC and string equality is byte equality.
    private func takeDirectory(_ p: [UInt8], _ e: TarEntry) throws {
        let rel = String(decoding: p.dropFirst(BundleLayout.payloadPrefix.utf8.count - 1), as: UTF8.self)
        guard let key = folderKey(Array(rel.drop(while: { $0 == "/" }).utf8)) else {
            throw AirlockError.verification(.entryUnexpected, "the bundle holds directory \(Self.name(e)), which holds no file of the manifest")
        }
        if !seenFolders.insert(key).inserted {
            throw AirlockError.verification(.entryDuplicate, "the bundle holds directory \(Self.name(e)) twice")
        }
    }

    /// The folder `rel` (`[]` is `payload/` itself) when some manifest path lies under it. The
    /// manifest is sorted by path bytes, so the paths under `rel/` are one run: a binary search
    /// finds its first, in O(log n) time and no memory per file.
    private func folderKey(_ rel: [UInt8]) -> FolderKey? {
        if rel.isEmpty { return FolderKey(first: 0, length: 0) }
        let prefix = rel + [UInt8(ascii: "/")]
        var lo = 0, hi = manifestFiles.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if manifestFiles[mid].path.utf8.lexicographicallyPrecedes(prefix) { lo = mid + 1 } else { hi = mid }
        }
        guard lo < manifestFiles.count, manifestFiles[lo].path.utf8.starts(with: prefix) else { return nil }
        return FolderKey(first: Int32(lo), length: Int32(prefix.count))
    }

    private func checkPayloadName(_ e: TarEntry) throws {
        guard e.path.starts(with: BundleLayout.payloadPrefix.utf8) else {
            if e.path.starts(with: "airlock/".utf8) {
                throw AirlockError.verification(.entryOrder, "entry \(Self.name(e)) is out of order (airlock/ entries come before the payload)")
            }
            throw AirlockError.verification(.entryUnexpected, "the bundle holds \(Self.name(e)), outside airlock/ and payload/")
        }
        var rel = Array(e.path.dropFirst(BundleLayout.payloadPrefix.utf8.count))
        if e.kind == .directory {
            if rel.isEmpty { return }
            if rel.last == UInt8(ascii: "/") { rel.removeLast() }
        }
        guard let s = PathRules.decode(rel) else {
            throw AirlockError.verification(.pathInvalid, "entry \(Self.name(e)) has a name that is not valid UTF-8")
        }
        if let reason = PathRules.problem(with: s) {
            throw AirlockError.verification(.pathInvalid, "entry \(Self.name(e)) has an unsafe name: \(reason)")
        }
    }

    private func unexpected(_ e: TarEntry, rel: [UInt8], expecting file: ManifestFile) -> AirlockError {
        if let s = PathRules.decode(rel), omitted.contains(s) {
            return .verification(.entryUnexpected, "the bundle carries \(Self.name(e)), which its delta.json says it omits")
        }
        if nextFileIndex > 0, rel.elementsEqual(manifestFiles[nextFileIndex - 1].path.utf8) {
            return .verification(.entryDuplicate, "the bundle holds \(Self.name(e)) twice")
        }
        if let s = PathRules.decode(rel), manifestFiles[nextFileIndex...].contains(where: { $0.path == s }) {
            return .verification(.payloadMissing, "the bundle lacks \(file.path) (found \(Self.name(e)) in its place)")
        }
        if let s = PathRules.decode(rel), manifestFiles.contains(where: { PathRules.foldKey($0.path) == PathRules.foldKey(s) }) {
            return .verification(.entryUnexpected, "the bundle holds \(Self.name(e)), which is not in the manifest (a twin of a listed path)")
        }
        return .verification(.entryUnexpected, "the bundle holds \(Self.name(e)), which is not in the manifest")
    }

    /// After the last payload file: no further entry, the end-of-archive marker, only zero
    /// padding, and nothing after the compressed stream. Throws `entry-duplicate`, `entry-unexpected`,
    /// `entry-order` and `path-invalid` for an entry after the last payload file; `trailing-data` for
    /// anything but zero padding (at most 1 MiB) after the archive, or any byte after the compressed
    /// stream; and what the tar and compressed stream throw (`bundle-truncated`, `tar-invalid`,
    /// `entry-type`, `entry-mode`, `entry-owner`, `pax-record`, `compression-invalid`, `trailing-data`,
    /// `read-failed`, `stream-stalled`).
    public func finish() throws {
        precondition(stage == .payload, "finish follows the payload")
        stage = .finished
        var complete = true
        if let pipeline {
            self.pipeline = nil
            let outcome = pipeline.finish()
            if let wrong = outcome.mismatch { try Self.check(wrong.got, manifestFiles[wrong.file]) }
            complete = outcome.complete
        }
        if let e = try nextPayloadFile() {
            let rel = Array(e.path.dropFirst(BundleLayout.payloadPrefix.utf8.count))
            if let last = manifestFiles.last, rel.elementsEqual(last.path.utf8) {
                throw AirlockError.verification(.entryDuplicate, "the bundle holds \(Self.name(e)) twice")
            }
            throw AirlockError.verification(.entryUnexpected, "the bundle holds \(Self.name(e)), which is not in the manifest")
        }
        // Checked after the entries: a file read ahead beyond the manifest's is reported above.
        guard complete else {
            throw AirlockError(.internal, .`internal`, "a file was read but never hashed; this is a bug in airlock, please report it")
        }
        try tar.finish()
        try completion?()
    }
}
