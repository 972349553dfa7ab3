#if canImport(Glibc)
import Glibc
#endif
import Foundation

@_silgen_name("syncfs") private func c_syncfs(_ fd: Int32) -> Int32

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
}

/// Installs bundles on a site (site-layout.md): verifies the manifest's signatures first, then
/// extracts and hashes in one pass from one open descriptor into `.staging/`, commits the new
/// content objects, links the release tree to them and renames it into
/// `<name>/releases/<version>-<id12>/` only when every file matched.
public enum Installer {
    public static func install(bundle: String, site: Site, options: InstallOptions = InstallOptions()) throws -> InstallResult {
        let lock = try SiteLock(site: site, command: "install", timeout: options.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let trust = try TrustStore.load(directory: site.trustDirectory)
        var report = VerificationReport(path: bundle)
        do {
            var result = try installLocked(bundle: bundle, site: site, trust: trust, options: options, report: &report)
            if options.activate {
                try Activation.activateLocked(site: site, name: result.name, release: result.release, check: options.check)
                result.activated = true
            }
            return result
        } catch let e as AirlockError {
            var fields: [String: JSONValue] = ["bundle": .string(bundle), "reason": .string(e.code), "message": .string(e.message)]
            if let id = report.bundleID { fields["bundle_id"] = .string(id.prefixed) }
            if let v = report.manifest?.version { fields["version"] = .string(v) }
            if e.kind != .healthCheck {
                try? History.append(site, action: e.kind == .verification || e.kind == .policy ? "refuse" : "install-failed", name: report.manifest?.name, fields)
            }
            throw e
        }
    }

    private static func installLocked(
        bundle: String, site: Site, trust: TrustStore, options: InstallOptions, report: inout VerificationReport
    ) throws -> InstallResult {
        let reader = try BundleReader(path: bundle)
        let head = try Verifier.verifyHead(reader, trust: trust, detached: options.detached, now: options.now, report: &report)
        Sys.step("install.head-verified")
        let m = head.manifest
        let dir = SiteLayout.releaseDirectory(version: m.version, bundleID: head.bundleID)
        var result = InstallResult(name: m.name, release: dir, bundleID: head.bundleID, alreadyInstalled: false, activated: false)

        // Already installed: nothing new to check, nothing to copy.
        let target = site.releaseDirectory(m.name, dir)
        if FileIO.isDirectory(target) {
            let installed = try FileIO.read(target + "/" + SiteLayout.releaseManifest, limit: BundleLayout.maxManifestBytes, what: "installed manifest")
            guard installed == head.manifestBytes else {
                throw AirlockError(.policy, "release-collision", "\(target) holds another release with the same version and id prefix; remove it first")
            }
            result.alreadyInstalled = true
            if !options.repair { return result }
        } else {
            try checkSequence(site: site, manifest: m, bundleID: head.bundleID, allowDowngrade: options.allowDowngrade)
        }
        let repairing = result.alreadyInstalled

        let staging = try Staging(site: site)
        defer { staging.remove() }
        // The release tree is built in staging as the bundle streams: new content is written
        // straight at its payload path; content the site already holds is hardlinked from the
        // store. New content joins the store only after the whole bundle verified.
        let tree = staging.releasePath
        try staging.makeDirectory("\(tree)/\(SiteLayout.releasePayload)")
        var newObjects: [(staged: String, object: String)] = []
        var stagedByObject: [String: String] = [:]
        for file in m.files {
            let object = site.objectPath(file.sha256, executable: file.executable)
            let dest = try staging.payloadPath(file.path)
            if let first = stagedByObject[object] {
                // The same content twice in this release: one file.
                try reader.readPayload(file)
                try staging.link(first, dest)
                result.filesShared += 1
            } else if !repairing && Self.objectLooksIntact(object, file) {
                // The site already holds this content: hash the bundle's bytes all the same,
                // write nothing.
                try reader.readPayload(file)
                try staging.link(object, dest)
                result.filesShared += 1
            } else {
                let fd = try staging.create(dest)
                do {
                    try reader.readPayload(file) { part in
                        try FileIO.writeAll(fd, part, path: "the staging area of \(site.root)")
                    }
                    // One syncfs below flushes every staged file (a per-file fsync costs a disk
                    // flush each: minutes for an index of 100,000 files).
                    guard fchmod(fd, file.executable ? SiteLayout.executableFileMode : SiteLayout.fileMode) == 0 else {
                        throw AirlockError.io("write-failed", "cannot make a staged file read-only", errno: errno)
                    }
                } catch {
                    close(fd)
                    throw error
                }
                close(fd)
                stagedByObject[object] = dest
                newObjects.append((dest, object))
                result.bytesWritten += file.size
            }
            result.files += 1
        }
        try reader.finish()
        Sys.step("install.verified")

        // The new content reaches the disk before it becomes visible in the store.
        try staging.syncFileSystem()
        for (staged, object) in newObjects {
            try staging.commitObject(staged, to: object)
        }
        Sys.step("install.objects")
        if repairing {
            try relink(site: site, manifest: m, release: target, staging: staging)
            try History.append(site, action: "repair", name: m.name, [
                "release": .string(dir), "bundle_id": .string(head.bundleID.prefixed), "files": .integer(m.files.count),
            ])
            return result
        }

        // The rest of the release: the signed manifest and the signatures it was installed with.
        try staging.writeFile("\(tree)/\(SiteLayout.releaseManifest)", head.manifestBytes)
        try staging.makeDirectory("\(tree)/\(SiteLayout.releaseSignatures)")
        var signatureFiles: [String: [UInt8]] = [:]
        for s in head.embedded { signatureFiles[s.keyID] = s.bytes }
        for (sig, result) in zip(options.detached, head.signatures.results.suffix(options.detached.count)) {
            if let id = result.keyID, result.status == .verified, signatureFiles[id] == nil { signatureFiles[id] = sig.bytes }
        }
        for (id, bytes) in signatureFiles.sorted(by: { $0.key < $1.key }) {
            try staging.writeFile("\(tree)/\(SiteLayout.releaseSignatures)/\(id)\(BundleLayout.signatureSuffix)", bytes)
        }
        try staging.syncFileSystem()
        Sys.step("install.staged")

        guard chmod(tree, SiteLayout.directoryMode) == 0 else { throw AirlockError.io("write-failed", "cannot set the mode of \(tree)", errno: errno) }
        // Appear, complete, in one rename.
        for d in [site.nameDirectory(m.name), site.releasesDirectory(m.name)] where mkdir(d, 0o755) != 0 && errno != EEXIST {
            throw AirlockError.io("write-failed", "cannot create \(d)", errno: errno)
        }
        guard rename(tree, target) == 0 else {
            throw AirlockError.io("write-failed", "cannot move the verified release into \(target)", errno: errno)
        }
        try FileIO.fsyncPath(site.releasesDirectory(m.name))
        Sys.step("install.renamed")

        var state = try NameState.load(site, m.name)
        state.installedAt[dir] = Timestamp.format(Timestamp.now())
        state.health[dir] = HealthCheck(manifest: m)
        try state.save(site, m.name)
        try History.append(site, action: "install", name: m.name, [
            "release": .string(dir), "bundle_id": .string(head.bundleID.prefixed), "version": .string(m.version),
            "sequence": .integer(m.sequence), "files": .integer(result.files), "files_shared": .integer(result.filesShared),
            "bytes_written": .integer(result.bytesWritten),
        ])
        return result
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

    /// Repair: every payload file of an installed release is pointed again at its (verified)
    /// object: link to a temporary name, rename over the file. Folders that went missing are
    /// made again.
    private static func relink(site: Site, manifest m: Manifest, release target: String, staging: Staging) throws {
        for file in m.files {
            let dest = target + "/" + SiteLayout.releasePayload + "/" + file.path
            var dir = target + "/" + SiteLayout.releasePayload
            for seg in file.path.split(separator: "/").dropLast() {
                dir += "/" + seg
                try staging.makeDirectory(dir)
            }
            let tmp = dir + "/.repair.tmp-\(getpid())"
            unlink(tmp)
            guard link(site.objectPath(file.sha256, executable: file.executable), tmp) == 0, rename(tmp, dest) == 0 else {
                throw AirlockError.io("write-failed", "cannot restore \(dest)", errno: errno)
            }
        }
        // Anything the manifest does not list goes.
        let payload = target + "/" + SiteLayout.releasePayload
        let listed = Set(m.files.map(\.path))
        if let e = FileManager.default.enumerator(atPath: payload) {
            while let rel = e.nextObject() as? String {
                var st = stat()
                if lstat(payload + "/" + rel, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR, !listed.contains(rel) { unlink(payload + "/" + rel) }
            }
        }
        try staging.syncFileSystem()
    }

    /// Downgrade protection: a lower sequence than the highest installed for the name needs
    /// `allowDowngrade` (and is logged); the same sequence with other content is always refused.
    static func checkSequence(site: Site, manifest m: Manifest, bundleID: SHA256Digest, allowDowngrade: Bool) throws {
        var highest: (UInt64, String)?
        for dir in site.releases(m.name) {
            guard let bytes = try? FileIO.read(site.releaseDirectory(m.name, dir) + "/" + SiteLayout.releaseManifest, limit: BundleLayout.maxManifestBytes, what: "manifest"),
                let other = try? Manifest.parse(bytes)
            else { continue }
            if other.sequence == m.sequence && SHA256Digest.of(bytes) != bundleID {
                throw AirlockError(
                    .policy, "sequence-reused",
                    "\(m.name) sequence \(m.sequence) is already installed as \(dir) with other content; a vendor never reuses a sequence: ask for a bundle with a new sequence")
            }
            if highest == nil || other.sequence > highest!.0 { highest = (other.sequence, dir) }
        }
        if let (seq, dir) = highest, m.sequence < seq {
            guard allowDowngrade else {
                throw AirlockError(
                    .policy, "downgrade",
                    "\(m.name) \(m.version) has sequence \(m.sequence), lower than \(dir) (sequence \(seq)) already installed; pass --allow-downgrade if you mean to install an older release")
            }
            try History.append(site, action: "allow-downgrade", name: m.name, [
                "version": .string(m.version), "sequence": .integer(m.sequence), "highest_installed": .integer(seq),
            ])
        }
    }
}

/// One install's private area under `.staging/`: the release tree being built.
final class Staging {
    let path: String
    let releasePath: String
    private let dirFD: Int32
    private var made: Set<String> = []

    init(site: Site) throws {
        var rnd = SystemRandomNumberGenerator()
        path = site.path(SiteLayout.staging, String(rnd.next() as UInt64, radix: 16))
        releasePath = path + "/release"
        for d in [path, releasePath] where mkdir(d, 0o700) != 0 {
            throw AirlockError.io(errno == ENOSPC ? "disk-full" : "write-failed", "cannot create the staging area \(d)", errno: errno)
        }
        dirFD = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard dirFD >= 0 else { throw AirlockError.io("write-failed", "cannot open \(path)", errno: errno) }
    }

    deinit { close(dirFD) }

    func remove() { FileIO.removeTree(path) }

    static func failure(_ what: String, _ err: Int32 = errno) -> AirlockError {
        if err == ENOSPC || err == EDQUOT {
            return .io("disk-full", "no space left on the site's file system while \(what); free some space and install again (nothing was changed)", errno: err)
        }
        return .io("write-failed", "cannot \(what)", errno: err)
    }

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

    func link(_ from: String, _ to: String) throws {
        guard Glibc.link(from, to) == 0 else { throw Self.failure("linking \(to) in the staged release") }
    }

    /// Adds a verified staged file to the content store. An object already there that failed
    /// the reuse check (or any, in a repair) is replaced by the verified copy, atomically.
    func commitObject(_ staged: String, to object: String) throws {
        let parent = String(object[..<object.lastIndex(of: "/")!])
        if made.insert(parent).inserted, mkdir(parent, 0o755) != 0 && errno != EEXIST { throw Self.failure("creating \(parent)") }
        if Glibc.link(staged, object) == 0 { return }
        guard errno == EEXIST else { throw Self.failure("adding \(object) to the site's object store") }
        let tmp = parent + "/.tmp-\(getpid())"
        unlink(tmp)
        guard Glibc.link(staged, tmp) == 0, rename(tmp, object) == 0 else { throw Self.failure("replacing \(object) in the site's object store") }
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
