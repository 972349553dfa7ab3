#if canImport(Glibc)
import Glibc
#endif
import Foundation

@_silgen_name("syncfs") private func c_syncfs(_ fd: Int32) -> Int32
@_silgen_name("renameat2") private func c_renameat2(_ olddirfd: Int32, _ oldpath: UnsafePointer<CChar>, _ newdirfd: Int32, _ newpath: UnsafePointer<CChar>, _ flags: UInt32) -> Int32

public struct InstallOptions: Sendable {
    public var activate = false
    public var detached: [DetachedSignature] = []
    public var allowDowngrade = false
    public var now: Int64 = Timestamp.now()
    public var lockTimeout: Double = 30
    /// A health check to run after activating (overrides the release's own).
    public var check: HealthCheck?
    /// For a release already installed: verify the whole bundle again and rewrite every file
    /// of the release (and its content objects) from it, healing what `audit` reported.
    public var repair = false
    /// Endpoints outside the site's perimeter that the admin allows for this release
    /// (`--allow-egress HOST:PORT`); each use is recorded in the history.
    public var allowEgress: [Endpoint] = []
    /// Seconds a read from a pipe or socket (`install -`) may wait for data; 0: no limit.
    public var readTimeout: Double = 60

    public init() {}
}

public struct InstallResult: Sendable {
    public var name: String
    public var release: String
    public var bundleID: SHA256Digest
    public var alreadyInstalled: Bool
    public var activated: Bool
    public var files = 0
    /// Files whose content the site already held (hardlinked, not written).
    public var filesShared = 0
    public var bytesWritten: UInt64 = 0
    /// Endpoints outside the perimeter the release reaches by the admin's allowance.
    public var allowances: [(who: String, endpoint: Endpoint)] = []
}

/// An activation that failed after a successful install (logged by the activation itself).
private struct ActivationFailed: Error {
    let error: AirlockError
    init(_ e: AirlockError) { error = e }
}

/// Installs bundles on a site (site-layout.md): verifies the manifest's signatures first, then
/// extracts and hashes in one pass from one open descriptor into `.staging/`, commits the new
/// content objects, links the release tree to them and renames it into
/// `<name>/releases/<version>-<id12>/` only when every file matched.
public enum Installer {
    /// The bundle is read, verified and staged before the site lock is taken: a stream that
    /// stalls (or never authenticates) blocks no rollback. The lock is held only to commit the
    /// staged release (and to activate it, or to write a refusal to the history).
    public static func install(bundle: String, site: Site, options: InstallOptions = InstallOptions()) throws -> InstallResult {
        try site.prepare()
        try SiteSafety.check(site, writing: true)
        var lock: SiteLock?
        defer { withExtendedLifetime(lock) {} }
        let trust = try TrustStore.load(directory: site.trustDirectory)
        var report = VerificationReport(path: bundle)
        do {
            var result = try installStaged(bundle: bundle, site: site, trust: trust, options: options, report: &report, lock: &lock)
            if options.activate {
                if lock == nil { lock = try SiteLock(site: site, command: "install", timeout: options.lockTimeout) }
                do {
                    try Activation.activateLocked(site: site, name: result.name, release: result.release, check: options.check, allowEgress: options.allowEgress)
                } catch let e as AirlockError {
                    // Installed, not activated: the activation wrote its own history line.
                    let done = result.alreadyInstalled ? "\(result.name) \(result.release) is installed" : "installed \(result.name) \(result.release)"
                    throw ActivationFailed(AirlockError(e.kind, e.code, "\(done), but not activated: \(e.message)", cause: e.cause))
                }
                result.activated = true
            }
            return result
        } catch let failed as ActivationFailed {
            throw failed.error
        } catch let e as AirlockError {
            var fields: [String: JSONValue] = ["bundle": .string(bundle), "reason": .string(e.code), "message": .string(e.message)]
            if let id = report.bundleID { fields["bundle_id"] = .string(id.prefixed) }
            if let v = report.manifest?.version { fields["version"] = .string(v) }
            if e.kind != .healthCheck && e.kind != .busy && e.code != "site-unsafe" {
                if lock == nil { lock = try? SiteLock(site: site, command: "install", timeout: options.lockTimeout) }
                if lock != nil {
                    try? History.append(site, action: e.kind == .verification || e.kind == .policy ? "refuse" : "install-failed", name: report.manifest?.name, fields)
                }
            }
            throw e
        }
    }

    private static func installStaged(
        bundle: String, site: Site, trust: TrustStore, options: InstallOptions, report: inout VerificationReport, lock: inout SiteLock?
    ) throws -> InstallResult {
        let reader = try BundleReader(path: bundle, readTimeout: options.readTimeout)
        let head = try Verifier.verifyHead(reader, trust: trust, detached: options.detached, now: options.now, report: &report)
        Sys.step("install.head-verified")
        let m = head.manifest
        let eval = try m.attestations?["eval"].map { try EvalAttestation(json: $0, source: "the manifest's attestations.eval") }
        let evalScore = eval.flatMap { $0.isPassing ? $0.score : nil }
        try Approvals.checkEval(policy: trust.policy, score: evalScore, attested: eval != nil, what: "this bundle")
        let dir = SiteLayout.releaseDirectory(version: m.version, bundleID: head.bundleID)
        var result = InstallResult(name: m.name, release: dir, bundleID: head.bundleID, alreadyInstalled: false, activated: false)

        // Already installed: nothing new to check, nothing to copy.
        let target = site.releaseDirectory(m.name, dir)
        if FileIO.isDirectory(target) {
            let installed = try site.manifestBytes(m.name, dir)
            guard installed == head.manifestBytes else {
                throw AirlockError(.policy, "release-collision", "\(target) holds another release with the same version and id prefix; remove it first")
            }
            result.alreadyInstalled = true
            if !options.allowEgress.isEmpty && !options.activate && !options.repair {
                throw AirlockError(
                    .usage, "already-installed",
                    "\(m.name) \(dir) is already installed, so --allow-egress has nothing to apply to; allow an endpoint for an installed release when you activate it: airlock activate \(m.name) \(dir) --allow-egress HOST:PORT")
            }
            if !options.repair { return result }
        }
        let repairing = result.alreadyInstalled
        var downgrade = repairing ? nil : try checkSequence(site: site, manifest: m, bundleID: head.bundleID, allowDowngrade: options.allowDowngrade)
        if let delta = reader.delta {
            // A delta takes the files it omits from the site's store: all of them must be there
            // before anything is written (their content is checked as they are taken).
            if repairing {
                throw AirlockError(.usage, "delta-repair", "a repair needs the full bundle of the release, not a delta bundle")
            }
            let missing = m.files.filter { reader.isOmitted($0) && !Self.objectLooksIntact(site.objectPath($0.sha256, executable: $0.executable), $0) }
            if let first = missing.first {
                throw AirlockError(
                    .policy, "delta-base-missing",
                    "this delta bundle omits \(delta.omitted.count) files and the site lacks \(missing.count) of them (e.g. \(first.path)): install its base release (bundle id \(delta.base.prefixed)) first, or install the full bundle")
            }
        }

        let staging = try Staging(site: site)
        defer { staging.remove() }
        // The release tree is built in staging as the bundle streams: new content is written
        // straight at its payload path; content the site already holds is compared byte for
        // byte with the stream and hardlinked from the store. New content joins the store only
        // after the whole bundle verified.
        let tree = staging.releasePath
        try staging.makeDirectory("\(tree)/\(SiteLayout.releasePayload)")
        // Indices into the manifest, not paths or hash tables: 100,000 files cost a few
        // integers each here.
        let previous = Self.previousWithSameContent(m.files)
        var fresh = [Bool](repeating: false, count: m.files.count)
        var newObjects: [Int] = []
        for (index, file) in m.files.enumerated() {
            let object = site.objectPath(file.sha256, executable: file.executable)
            let earlier = Int(previous[index])
            let dest = try staging.payloadPath(file.path)
            if reader.isOmitted(file) {
                // Omitted by a delta: the site's copy, hashed against the manifest first.
                reader.skipOmitted(file)
                try staging.stageFromStore(object: object, file: file, at: dest)
                result.filesShared += 1
            } else if earlier >= 0, fresh[earlier] {
                // The same content twice in this release, the first written here: one file.
                try reader.readPayload(file)
                try staging.linkOrCopy(staging.stagedPath(m.files[earlier].path), dest, executable: file.executable)
                fresh[index] = true
                result.filesShared += 1
            } else if !repairing, Self.objectLooksIntact(object, file), try staging.stageByComparing(object: object, file: file, reader: reader, at: dest) {
                result.filesShared += 1
            } else if FileIO.exists(dest) {
                // The stored copy differed from the stream: `stageByComparing` wrote a fresh
                // one, which replaces it in the store.
                fresh[index] = true
                newObjects.append(index)
                result.bytesWritten += file.size
            } else {
                let fd = try staging.create(dest)
                do {
                    try reader.readPayload(file) { part in
                        try FileIO.writeAll(fd, part, path: "the staging area of \(site.root)")
                    }
                    try staging.finishFile(fd, executable: file.executable)
                } catch {
                    close(fd)
                    throw error
                }
                close(fd)
                fresh[index] = true
                newObjects.append(index)
                result.bytesWritten += file.size
            }
            result.files += 1
        }
        try reader.finish()
        Sys.step("install.verified")

        // The perimeter: every endpoint the verified release reaches (its tools, its model)
        // must be inside the site's, or allowed by the admin for this install.
        let grants = try Grants.installed(releaseDirectory: tree, manifest: m)
        // A repair keeps the allowances the release was installed (or activated) with.
        let recorded = repairing ? Set(try NameState.load(site, m.name).allowances[dir] ?? []) : []
        result.allowances = try trust.policy.perimeter.check(
            grants, allowEgress: options.allowEgress, recorded: recorded, context: "", trustDirectory: site.trustDirectory)

        // The rest of the release: the signed manifest and the signatures it was installed with.
        try staging.writeFile("\(tree)/\(SiteLayout.releaseManifest)", head.manifestBytes)
        try staging.makeDirectory("\(tree)/\(SiteLayout.releaseSignatures)")
        var signatureFiles: [String: [UInt8]] = [:]
        for s in head.embedded { signatureFiles[s.keyID] = s.bytes }
        for (sig, result) in zip(options.detached, head.signatures.results.suffix(options.detached.count)) {
            if let id = result.keyID, result.status == .verified, signatureFiles[id] == nil { signatureFiles[id] = sig.bytes }
        }
        if repairing {
            // Keep every signature the release was installed with.
            for name in FileIO.entries(ofDirectory: target + "/" + SiteLayout.releaseSignatures) ?? [] {
                let id = String(name.dropLast(BundleLayout.signatureSuffix.count))
                if name.hasSuffix(BundleLayout.signatureSuffix), signatureFiles[id] == nil, SHA256Digest(hex: id) != nil,
                    let bytes = try? FileIO.read(target + "/" + SiteLayout.releaseSignatures + "/" + name, limit: BundleLayout.maxSignatureBytes, what: "signature", siteFile: true)
                {
                    signatureFiles[id] = bytes
                }
            }
        }
        for (id, bytes) in signatureFiles.sorted(by: { $0.key < $1.key }) {
            try staging.writeFile("\(tree)/\(SiteLayout.releaseSignatures)/\(id)\(BundleLayout.signatureSuffix)", bytes)
        }
        guard chmod(tree, SiteLayout.directoryMode) == 0 else { throw Staging.failure("setting the mode of \(tree)") }
        // Everything staged reaches the disk before any of it becomes visible.
        try staging.syncFileSystem()

        // Only now the site lock; what other commands did meanwhile is checked again under it.
        lock = try SiteLock(site: site, command: "install", timeout: options.lockTimeout)
        if !repairing {
            if FileIO.isDirectory(target) {
                // Installed by another command while this one staged: the same bytes, or refused.
                guard try site.manifestBytes(m.name, dir) == head.manifestBytes else {
                    throw AirlockError(.policy, "release-collision", "\(target) holds another release with the same version and id prefix; remove it first")
                }
                result.alreadyInstalled = true
                return result
            }
            downgrade = try checkSequence(site: site, manifest: m, bundleID: head.bundleID, allowDowngrade: options.allowDowngrade)
        }

        var created: [Int] = []
        do {
            for index in newObjects {
                let f = m.files[index]
                let staged = staging.stagedPath(f.path), object = site.objectPath(f.sha256, executable: f.executable)
                if try staging.commitObject(staged, to: object) { created.append(index) }
            }
            Sys.step("install.objects")
            for d in [site.nameDirectory(m.name), site.releasesDirectory(m.name)] {
                if mkdir(d, 0o755) == 0 {
                    try FileIO.fsyncPath(String(d[..<d.lastIndex(of: "/")!]))
                } else if errno != EEXIST {
                    throw Staging.failure("creating \(d)")
                }
            }
            try staging.syncFileSystem()
            Sys.step("install.staged")

            // The state knows the release (install time, declared check, highest sequence)
            // before it appears; entries for a release that never appeared are dropped later.
            var state = try NameState.load(site, m.name)
            if !repairing {
                state.installedAt[dir] = Timestamp.format(Timestamp.now())
                state.health[dir] = HealthCheck(manifest: m)
                state.modelEndpoint[dir] = m.components["model"]?.metadata["endpoint"] ?? ""
                state.allowances[dir] = result.allowances.map(\.endpoint.description)
                state.evalScore[dir] = evalScore.map(EvalAttestation.decimal) ?? (eval != nil ? "failed" : "")
            }
            if repairing {
                for a in result.allowances where !(state.allowances[dir] ?? []).contains(a.endpoint.description) {
                    state.allowances[dir, default: []].append(a.endpoint.description)
                }
            }
            state.highestSequence = max(state.highestSequence, m.sequence)
            try state.save(site, m.name)

            // Appear, complete, in one rename; a repair swaps the verified tree with the
            // drifted one in one exchange, so the release never goes missing.
            if repairing {
                try staging.exchange(tree, target)
            } else if rename(tree, target) != 0 {
                throw Staging.failure("moving the verified release into \(target)")
            }
            try FileIO.fsyncPath(site.releasesDirectory(m.name))
            Sys.step("install.renamed")
        } catch {
            // Content committed for a release that did not appear goes again.
            for i in created { unlink(site.objectPath(m.files[i].sha256, executable: m.files[i].executable)) }
            throw error
        }

        var fields: [String: JSONValue] = [
            "release": .string(dir), "bundle_id": .string(head.bundleID.prefixed), "version": .string(m.version),
            "sequence": .integer(m.sequence), "files": .integer(result.files), "files_shared": .integer(result.filesShared),
            "bytes_written": .integer(result.bytesWritten),
        ]
        if let downgrade { fields["downgrade_from_sequence"] = .integer(downgrade) }
        if !result.allowances.isEmpty {
            fields["allowed_egress"] = .array(result.allowances.map { .string("\($0.who) -> \($0.endpoint)") })
        }
        try History.append(site, action: repairing ? "repair" : "install", name: m.name, fields)
        for (who, endpoint) in result.allowances {
            try History.append(
                site, action: "allowance", name: m.name,
                ["release": .string(dir), "bundle_id": .string(head.bundleID.prefixed), "who": .string(who), "endpoint": .string(endpoint.description)])
        }
        return result
    }

    /// For each file, the index of the nearest earlier file with the same content (digest and
    /// mode), or -1. One sort of 4-byte indices: O(n log n) time, 4 bytes a file.
    static func previousWithSameContent(_ files: [ManifestFile]) -> [Int32] {
        var order = (0..<Int32(files.count)).map { $0 }
        order.sort { a, b in
            let x = files[Int(a)], y = files[Int(b)]
            if x.sha256 != y.sha256 { return x.sha256 < y.sha256 }
            if x.executable != y.executable { return !x.executable }
            return a < b
        }
        var previous = [Int32](repeating: -1, count: files.count)
        for k in order.indices.dropFirst() {
            let a = files[Int(order[k - 1])], b = files[Int(order[k])]
            if a.sha256 == b.sha256, a.executable == b.executable { previous[Int(order[k])] = order[k - 1] }
        }
        return previous
    }

    /// A cheap check of a stored object before it is reused: a regular file of the right size
    /// and read-only mode. (Its content is what `audit` checks; an object that fails here is
    /// rewritten from the bundle being installed.)
    static func objectLooksIntact(_ path: String, _ file: ManifestFile) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0 else { return false }
        let mode = file.executable ? SiteLayout.executableFileMode : SiteLayout.fileMode
        return (st.st_mode & S_IFMT) == S_IFREG && UInt64(st.st_size) == file.size && st.st_mode & 0o7777 == mode
    }

    /// Downgrade protection: a lower sequence than the highest installed for the name needs
    /// `allowDowngrade` (and is logged); the same sequence with other content is always refused.
    static func checkSequence(site: Site, manifest m: Manifest, bundleID: SHA256Digest, allowDowngrade: Bool) throws -> UInt64? {
        var highest: (UInt64, String)?
        for dir in site.releases(m.name) {
            guard let bytes = try? site.manifestBytes(m.name, dir),
                let other = try? Manifest.parse(bytes)
            else { continue }
            if other.sequence == m.sequence && SHA256Digest.of(bytes) != bundleID {
                throw AirlockError(
                    .policy, "sequence-reused",
                    "\(m.name) sequence \(m.sequence) is already installed as \(dir) with other content; a vendor never reuses a sequence: ask for a bundle with a new sequence")
            }
            if highest == nil || other.sequence > highest!.0 { highest = (other.sequence, dir) }
        }
        // Releases removed since still count: removing one does not open the door to a downgrade.
        let mark = (try? NameState.load(site, m.name))?.highestSequence ?? 0
        if mark > (highest?.0 ?? 0) { highest = (mark, "an earlier release (since removed)") }
        if let (seq, dir) = highest, m.sequence < seq {
            guard allowDowngrade else {
                throw AirlockError(
                    .policy, "downgrade",
                    "\(m.name) \(m.version) has sequence \(m.sequence), lower than \(dir) (sequence \(seq)) installed here; pass --allow-downgrade if you mean to install an older release")
            }
            return seq
        }
        return nil
    }
}

/// One install's private area under `.staging/`: the release tree being built.
final class Staging {
    let path: String
    let releasePath: String
    private let dirFD: Int32
    private var made: Set<String> = []

    /// A folder of its own under `.staging/`, under a name nobody can predict, created by this
    /// process (mkdir fails on any name that exists) and held with a flock for as long as it
    /// lives, so that the lock-time cleanup of another command leaves it alone.
    init(site: Site) throws {
        let staging = site.path(SiteLayout.staging)
        var fd: Int32 = -1
        var name = ""
        while fd < 0 {
            name = Self.randomName()
            guard mkdir(staging + "/" + name, 0o700) == 0 else {
                if errno == EEXIST { continue }
                throw Self.failure("creating a staging area in \(staging)")
            }
            fd = open(staging + "/" + name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw AirlockError.io("write-failed", "cannot open the staging area \(staging)/\(name)", errno: errno) }
            flock(fd, LOCK_EX)
            // A cleanup that ran between the mkdir and the flock removed it: take another.
            var mine = stat(), there = stat()
            if fstat(fd, &mine) != 0 || lstat(staging + "/" + name, &there) != 0 || mine.st_ino != there.st_ino || mine.st_dev != there.st_dev {
                close(fd)
                fd = -1
            }
        }
        dirFD = fd
        path = staging + "/" + name
        releasePath = path + "/release"
        guard mkdir(releasePath, 0o700) == 0 else {
            let err = errno
            FileIO.removeTree(path)
            close(fd)
            throw Self.failure("creating the staging area \(releasePath)", err)
        }
    }

    deinit { close(dirFD) }

    /// 128 random bits, as hex.
    static func randomName() -> String {
        var rnd = SystemRandomNumberGenerator()
        return String(rnd.next() as UInt64, radix: 16) + String(rnd.next() as UInt64, radix: 16)
    }

    /// Claims an entry of the staging folder for removal: nil when a live install holds it (its
    /// flock is taken), else a descriptor holding its flock until the caller has removed it and
    /// closes it (-1 for an entry that is not a folder).
    static func claim(_ stagingFD: Int32, _ name: String) -> Int32? {
        let fd = openat(stagingFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return -1 }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    func remove() { FileIO.removeTree(path) }

    /// `what` is an action in -ing form ("creating X").
    static func failure(_ what: String, _ err: Int32 = errno) -> AirlockError {
        if err == ENOSPC || err == EDQUOT {
            return .io("disk-full", "no space left on the site's file system while \(what); free some space and install again (nothing was changed)", errno: err)
        }
        if err == EROFS {
            return .io("read-only", "the site's file system is read-only (\(what)); remount it read-write and install again", errno: err)
        }
        if err == ENAMETOOLONG {
            return .io("name-too-long", "\(what) failed: a path is longer than this file system allows; install under a shorter site root (--root), nothing was changed", errno: err)
        }
        if err == EMLINK {
            return .io("link-limit", "\(what) failed: the file system's limit of hard links per file was reached", errno: err)
        }
        if err == EACCES || err == EPERM {
            return .io("permission-denied", "\(what) failed: permission denied; run as the site's owner and check the modes under the site root", errno: err)
        }
        return .io("write-failed", "\(what) failed; check the site's file system (nothing was changed)", errno: err)
    }

    /// Makes a staged file read-only. (One syncfs flushes every staged file later: a per-file
    /// fsync costs a disk flush each, minutes for an index of 100,000 files.)
    func finishFile(_ fd: Int32, executable: Bool) throws {
        guard fchmod(fd, executable ? SiteLayout.executableFileMode : SiteLayout.fileMode) == 0 else {
            throw Self.failure("making a staged file read-only")
        }
    }

    /// Streams the next payload file while comparing it with the stored object. When they
    /// match to the end, `dest` becomes a hardlink to the object (or a copy, if the object has
    /// as many links as the file system allows) and it returns true. When they differ, it writes
    /// the object's matching prefix and the rest of the stream to `dest` and returns false: the
    /// store's copy is damaged and the fresh one replaces it.
    func stageByComparing(object: String, file: ManifestFile, reader: BundleReader, at dest: String) throws -> Bool {
        let ofd = open(object, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard ofd >= 0 else { return false }
        defer { close(ofd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        var out: Int32 = -1
        defer { if out >= 0 { close(out) } }
        try reader.readPayload(file) { part in
            if out < 0 {
                var done = 0
                while done < part.count {
                    let n = pread(ofd, buffer.baseAddress, min(buffer.count, part.count - done), off_t(offset) + off_t(done))
                    if n <= 0 || memcmp(buffer.baseAddress!, part.baseAddress! + done, n) != 0 { break }
                    done += n
                }
                if done == part.count {
                    offset += Int64(part.count)
                    return
                }
                // Diverged: the stored copy is damaged. Write what matched, then carry on.
                out = try create(dest)
                var copied: Int64 = 0
                while copied < offset {
                    let n = pread(ofd, buffer.baseAddress, Int(min(Int64(buffer.count), offset - copied)), off_t(copied))
                    guard n > 0 else { throw Self.failure("re-reading \(object)") }
                    try FileIO.writeAll(out, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: dest)
                    copied += Int64(n)
                }
            }
            try FileIO.writeAll(out, part, path: dest)
            offset += Int64(part.count)
        }
        if out >= 0 {
            try finishFile(out, executable: file.executable)
            return false
        }
        try linkOrCopy(object: object, ofd: ofd, file: file, to: dest, buffer: buffer)
        return true
    }

    /// Hardlinks a stored object at `dest`, or copies it when it has as many links as the file
    /// system allows (EMLINK).
    private func linkOrCopy(object: String, ofd: Int32, file: ManifestFile, to dest: String, buffer: UnsafeMutableRawBufferPointer) throws {
        if Glibc.link(object, dest) == 0 { return }
        // EMLINK: the object has as many links as the file system allows. ENOENT: gc removed
        // its name after it was opened (the install stages without the site lock): the open
        // descriptor still reads it.
        guard errno == EMLINK || errno == ENOENT else { throw Self.failure("linking \(dest) in the staged release") }
        let fd = try create(dest)
        defer { close(fd) }
        var copied: off_t = 0
        while true {
            let n = pread(ofd, buffer.baseAddress, buffer.count, copied)
            if n < 0 { throw Self.failure("copying \(object)") }
            if n == 0 { break }
            try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: dest)
            copied += off_t(n)
        }
        try finishFile(fd, executable: file.executable)
    }

    /// Takes a file a delta omits from the store: hashes the stored copy against the manifest,
    /// then links it at `dest`.
    func stageFromStore(object: String, file: ManifestFile, at dest: String) throws {
        let ofd = open(object, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard ofd >= 0 else { throw Self.failure("opening \(object)") }
        defer { close(ofd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        let hasher = SHA256Hasher()
        var size: UInt64 = 0
        while true {
            let n = read(ofd, buffer.baseAddress, buffer.count)
            if n < 0 { throw Self.failure("reading \(object)") }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += UInt64(n)
        }
        guard size == file.size, hasher.finish() == file.sha256 else {
            throw AirlockError(
                .verification, "delta-base-damaged",
                "the site's stored copy of \(file.path), which this delta bundle omits, does not match the manifest; install the full bundle (it replaces the damaged copy)")
        }
        try linkOrCopy(object: object, ofd: ofd, file: file, to: dest, buffer: buffer)
    }

    /// Swaps two paths in one step (renameat2 RENAME_EXCHANGE).
    func exchange(_ a: String, _ b: String) throws {
        guard c_renameat2(AT_FDCWD, a, AT_FDCWD, b, 2) == 0 else { throw Self.failure("swapping the repaired release into \(b)") }
    }

    /// Where `payloadPath` put `rel`.
    func stagedPath(_ rel: String) -> String { releasePath + "/" + SiteLayout.releasePayload + "/" + rel }

    /// `release/payload/<rel>`, with its folders made. The path has passed the path rules
    /// (relative, no `..`, NFC) and the tree is ours alone: no folder on the way can be a
    /// symlink, and files are created with O_EXCL|O_NOFOLLOW all the same.
    func payloadPath(_ rel: String) throws -> String {
        var dir = releasePath + "/" + SiteLayout.releasePayload
        for seg in rel.split(separator: "/").dropLast() {
            dir += "/" + seg
            if made.insert(dir).inserted { try makeDirectory(dir) }
        }
        return releasePath + "/" + SiteLayout.releasePayload + "/" + rel
    }

    func create(_ p: String) throws -> Int32 {
        let fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.failure("creating a staged file") }
        return fd
    }

    /// Hardlinks a staged file at `to`; when it has as many links as the file system allows
    /// (EMLINK: 65,000 on ext4), writes a copy instead, which the next files of the same
    /// content link to.
    func linkOrCopy(_ from: String, _ to: String, executable: Bool) throws {
        if Glibc.link(from, to) == 0 { return }
        guard errno == EMLINK else { throw Self.failure("linking \(to) in the staged release") }
        let fd = try create(to)
        defer { close(fd) }
        try Self.copy(from: from, to: fd, path: to)
        try finishFile(fd, executable: executable)
    }

    /// Copies a file's content into an open descriptor.
    static func copy(from source: String, to fd: Int32, path: String) throws {
        let src = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard src >= 0 else { throw failure("reading \(source)") }
        defer { close(src) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(src, buffer.baseAddress, buffer.count)
            if n < 0 { throw failure("reading \(source)") }
            if n == 0 { break }
            try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: path)
        }
    }

    /// Adds a verified staged file to the content store; true when it created the object. An
    /// object already there that failed the reuse check (or any, in a repair) is replaced by the
    /// verified copy, atomically.
    func commitObject(_ staged: String, to object: String) throws -> Bool {
        let parent = String(object[..<object.lastIndex(of: "/")!])
        if made.insert(parent).inserted, mkdir(parent, 0o755) != 0 && errno != EEXIST { throw Self.failure("creating \(parent)") }
        if Glibc.link(staged, object) == 0 { return true }
        guard errno == EEXIST || errno == EMLINK else { throw Self.failure("adding \(object) to the site's object store") }
        // Replacing a damaged object, or the staged file has as many links as the file system
        // allows (the same content many times in this release): the store gets a copy of its
        // own, under a temporary name that is then renamed into place.
        let existed = errno == EEXIST
        let tmp = parent + "/.tmp-\(Self.randomName())"
        if Glibc.link(staged, tmp) != 0 {
            guard errno == EMLINK else { throw Self.failure("replacing \(object) in the site's object store") }
            let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Self.failure("adding \(object) to the site's object store") }
            do {
                try Self.copy(from: staged, to: fd, path: object)
                var st = stat()
                guard lstat(staged, &st) == 0, fchmod(fd, st.st_mode & 0o7777) == 0, Sys.fsync(fd) == 0 else { throw Self.failure("adding \(object) to the site's object store") }
            } catch {
                close(fd)
                unlink(tmp)
                throw error
            }
            close(fd)
        }
        guard rename(tmp, object) == 0 else {
            let err = errno
            unlink(tmp)
            throw Self.failure("adding \(object) to the site's object store", err)
        }
        return !existed
    }

    func syncFileSystem() throws {
        guard Sys.fsync(dirFD) == 0, c_syncfs(dirFD) == 0 else {
            throw AirlockError.io("sync-failed", "cannot flush the staged release to disk (the disk may be failing); nothing was installed", errno: errno)
        }
    }

    func makeDirectory(_ p: String) throws {
        if mkdir(p, SiteLayout.directoryMode) != 0 && errno != EEXIST { throw Self.failure("creating \(p)") }
    }

    /// Writes a small read-only file.
    func writeFile(_ p: String, _ bytes: [UInt8]) throws {
        let fd = try create(p)
        defer { close(fd) }
        try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: p) }
        guard fchmod(fd, SiteLayout.fileMode) == 0 else { throw Self.failure("making \(p) read-only") }
    }
}
