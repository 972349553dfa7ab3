#if canImport(Glibc)
import Glibc
#endif
import Foundation
import AirlockFormat

/// One installed release as `status` shows it.
public struct InstalledRelease: Sendable {
    public var directory: String
    public var version: String
    public var sequence: UInt64
    public var bundleID: SHA256Digest
    public var bytes: UInt64
    public var files: Int
    public var installedAt: String?
    public var pinned: Bool

    var json: JSONValue {
        .object([
            "release": .string(directory), "version": .string(version), "sequence": .integer(sequence),
            "bundle_id": .string(bundleID.prefixed), "bytes": .integer(bytes), "files": .integer(files),
            "installed_at": installedAt.map { .string($0) } ?? .null, "pinned": .bool(pinned),
        ])
    }
}

/// The state of one release name on a site.
public struct NameStatus: Sendable {
    public var name: String
    public var current: String?
    public var rollbackTarget: String?
    public var releases: [InstalledRelease]

    public var currentRelease: InstalledRelease? { releases.first { $0.directory == current } }

    public var json: JSONValue {
        .object([
            "name": .string(name),
            "current": current.map { .string($0) } ?? .null,
            "bundle_id": currentRelease.map { .string($0.bundleID.prefixed) } ?? .null,
            "rollback_target": rollbackTarget.map { .string($0) } ?? .null,
            "releases": .array(releases.map(\.json)),
        ])
    }
}

/// What `audit` found in one installed release.
public struct AuditReport: Sendable {
    public var name: String
    public var release: String
    public var modified: [String] = []
    public var missing: [String] = []
    public var extra: [String] = []
    public var modeChanged: [String] = []
    public var filesChecked = 0

    public var clean: Bool { modified.isEmpty && missing.isEmpty && extra.isEmpty && modeChanged.isEmpty }

    public var json: JSONValue {
        .object([
            "name": .string(name), "release": .string(release), "clean": .bool(clean), "files_checked": .integer(filesChecked),
            "modified": .array(modified.map { .string($0) }), "missing": .array(missing.map { .string($0) }),
            "extra": .array(extra.map { .string($0) }), "mode_changed": .array(modeChanged.map { .string($0) }),
        ])
    }
}

/// Read-only views of a site, and the writing commands besides install, activate, rollback.
public enum SiteAdmin {
    // MARK: Read-only (no lock, nothing written)

    public static func status(site: Site, name: String? = nil) throws -> [NameStatus] {
        let names = name.map { [$0] } ?? site.names()
        if let name { try site.requireInstalled(name) }
        return try names.map { n in
            let state = try NameState.load(site, n).reconciled(installed: site.releases(n), current: site.current(n))
            let releases = site.releases(n).compactMap { dir -> InstalledRelease? in
                guard let bytes = try? site.manifestBytes(n, dir),
                    let m = try? Manifest.parse(bytes)
                else { return nil }
                return InstalledRelease(
                    directory: dir, version: m.version, sequence: m.sequence, bundleID: SHA256Digest.of(bytes), bytes: m.totalBytes,
                    files: m.files.count, installedAt: state.installedAt[dir], pinned: state.pinned.contains(dir))
            }.sorted { $0.sequence < $1.sequence || ($0.sequence == $1.sequence && $0.directory < $1.directory) }
            return NameStatus(name: n, current: site.current(n), rollbackTarget: state.rollbackTarget, releases: releases)
        }
    }

    /// Re-hashes an installed release against its installed manifest.
    public static func audit(site: Site, name: String, release ref: String? = nil) throws -> AuditReport {
        try site.requireInstalled(name)
        let dir: String
        if let ref {
            dir = try Activation.resolve(site: site, name: name, ref)
        } else {
            guard let c = site.current(name) else {
                throw AirlockError(.usage, "no-current", "\(name) has no current release; name the release to audit")
            }
            dir = c
        }
        let base = site.releaseDirectory(name, dir)
        let bytes = try site.manifestBytes(name, dir)
        let m = try Manifest.parse(bytes)
        var report = AuditReport(name: name, release: dir)
        let hasher = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var listed = Set<String>()
        // No link is followed below the release: a folder replaced by a symlink makes its files
        // modified, never read from elsewhere.
        let payload = BeneathOpener(base + "/" + SiteLayout.releasePayload)
        for f in m.files {
            listed.insert(f.path)
            let fd = payload?.openFile(f.path) ?? -1
            guard fd >= 0 else {
                if errno == ELOOP || errno == ENOTDIR { report.modified.append(f.path) } else { report.missing.append(f.path) }
                continue
            }
            defer { close(fd) }
            var st = stat()
            fstat(fd, &st)
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                report.modified.append(f.path)
                continue
            }
            let want = f.executable ? SiteLayout.executableFileMode : SiteLayout.fileMode
            if st.st_mode & 0o7777 != want { report.modeChanged.append(f.path) }
            hasher.reset()
            var size: UInt64 = 0
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n <= 0 { break }
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                size += UInt64(n)
            }
            if size != f.size || hasher.finish() != f.sha256 { report.modified.append(f.path) }
            report.filesChecked += 1
        }
        // Anything in payload/ the manifest does not list.
        if let e = FileManager.default.enumerator(atPath: base + "/" + SiteLayout.releasePayload) {
            while let rel = e.nextObject() as? String {
                var st = stat()
                guard lstat(base + "/" + SiteLayout.releasePayload + "/" + rel, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) != S_IFDIR && !listed.contains(rel) { report.extra.append(rel) }
            }
        }
        report.extra.sort()
        return report
    }

    // MARK: Writing (under the lock, logged)

    public static func setPinned(_ pinned: Bool, site: Site, name: String, release ref: String, lockTimeout: Double = 30) throws -> String {
        let lock = try site.lockForWriting(command: pinned ? "pin" : "unpin", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let dir = try Activation.resolve(site: site, name: name, ref)
        var state = try Activation.loadState(site, name)
        if pinned { state.pinned.insert(dir) } else { state.pinned.remove(dir) }
        try state.save(site, name)
        try History.append(site, action: pinned ? "pin" : "unpin", name: name, ["release": .string(dir)])
        return dir
    }

    public static func remove(site: Site, name: String, release ref: String, lockTimeout: Double = 30) throws -> String {
        let lock = try site.lockForWriting(command: "remove", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let dir = try Activation.resolve(site: site, name: name, ref)
        let state = try Activation.loadState(site, name)
        do {
            try checkRemovable(site: site, name: name, dir: dir, state: state)
        } catch let e as AirlockError {
            try? History.append(site, action: "refuse-remove", name: name, ["release": .string(dir), "reason": .string(e.code)])
            throw e
        }
        try removeLocked(site: site, name: name, dirs: [dir], state: state)
        try History.append(site, action: "remove", name: name, ["release": .string(dir)])
        return dir
    }

    private static func checkRemovable(site: Site, name: String, dir: String, state: NameState) throws {
        if dir == site.current(name) {
            throw AirlockError(.policy, "release-in-use", "\(dir) is the current release of \(name); activate another one first")
        }
        if dir == state.rollbackTarget {
            throw AirlockError(.policy, "release-in-use", "\(dir) is the rollback target of \(name); it is kept so that rollback always works")
        }
        if state.pinned.contains(dir) {
            throw AirlockError(.policy, "release-pinned", "\(dir) is pinned; `airlock unpin \(name) \(dir)` first")
        }
    }

    /// Moves releases out of `releases/` in one rename each (so none is ever seen half
    /// removed), then deletes them.
    static func removeLocked(site: Site, name: String, dirs: [String], state: NameState) throws {
        var s = state
        for dir in dirs {
            let trash = site.path(SiteLayout.staging, "removed-\(UInt64.random(in: 0...UInt64.max))")
            guard Sys.rename(site.releaseDirectory(name, dir), trash) == 0 else {
                throw AirlockError.io("write-failed", "cannot remove \(site.releaseDirectory(name, dir))", errno: errno)
            }
            s.stack.removeAll { $0 == dir }
            s.installedAt[dir] = nil
            s.health[dir] = nil
            s.modelEndpoint[dir] = nil
            s.allowances[dir] = nil
            s.evalScore[dir] = nil
            FileIO.removeTree(trash)
        }
        try FileIO.fsyncPath(site.releasesDirectory(name))
        try s.save(site, name)
    }

    public struct GCResult: Sendable {
        public var removed: [(name: String, release: String)] = []
        public var objectsRemoved = 0
        public var bytesFreed: UInt64 = 0
    }

    /// Keeps, per name, the `keep` newest releases (by sequence), `current`, the rollback target
    /// and every pinned release; removes the rest, then every object no release links.
    public static func gc(site: Site, name: String? = nil, keep: Int = 3, lockTimeout: Double = 30) throws -> GCResult {
        let lock = try site.lockForWriting(command: "gc", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        var result = GCResult()
        for st in try status(site: site, name: name) {
            let state = try Activation.loadState(site, st.name)
            var keepSet = Set(st.releases.sorted { $0.sequence > $1.sequence }.prefix(keep).map(\.directory))
            if let c = st.current { keepSet.insert(c) }
            if let r = state.rollbackTarget { keepSet.insert(r) }
            keepSet.formUnion(state.pinned)
            let doomed = st.releases.map(\.directory).filter { !keepSet.contains($0) }
            if doomed.isEmpty { continue }
            Sys.step("gc.releases")
            try removeLocked(site: site, name: st.name, dirs: doomed, state: state)
            for d in doomed {
                result.removed.append((st.name, d))
                try History.append(site, action: "gc-remove", name: st.name, ["release": .string(d)])
            }
        }
        // An object that only the store links (st_nlink == 1) belongs to no release.
        Sys.step("gc.objects")
        try sweepObjects(site: site, into: &result)
        if !result.removed.isEmpty || result.objectsRemoved > 0 {
            try History.append(site, action: "gc", name: name, [
                "releases_removed": .integer(result.removed.count), "objects_removed": .integer(result.objectsRemoved),
                "bytes_freed": .integer(result.bytesFreed),
            ])
        }
        return result
    }

    /// Removes every object no release links. Only what has the object form is a candidate: a
    /// real two-hex-digit shard folder, opened without following a link, and in it a regular
    /// file named `<64 hex>` or `<64 hex>.x` whose name starts with the shard's; everything is
    /// removed relative to the shard's descriptor. Anything else is refused (`SiteSafety`
    /// refused it already under the lock; this holds on its own).
    static func sweepObjects(site: Site, into result: inout GCResult) throws {
        let objects = site.path(SiteLayout.objects, SiteLayout.objectsAlgorithm)
        let store = Sys.open(objects, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard store >= 0 else {
            if errno == ENOENT { return }
            throw AirlockError.io("read-failed", "cannot open the content store \(objects)", errno: errno)
        }
        defer { close(store) }
        for shard in FileIO.entries(store) {
            guard SiteSafety.isShardName(shard) else {
                throw SiteSafety.unexpected(objects + "/" + shard, "an entry Airlock did not make", expected: "only two-hex-digit shard folders")
            }
            let dir = Sys.openat(store, shard, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dir >= 0 else {
                if errno == ENOTDIR || errno == ELOOP {
                    throw SiteSafety.unexpected(objects + "/" + shard, "not a real folder", expected: "a shard folder of its content store")
                }
                throw AirlockError.io("read-failed", "cannot open \(objects)/\(shard)", errno: errno)
            }
            for f in FileIO.entries(dir) where isObjectName(f, shard: shard) {
                var st = stat()
                if fstatat(dir, f, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1, Sys.unlinkat(dir, f, 0) == 0 {
                    result.objectsRemoved += 1
                    result.bytesFreed += UInt64(st.st_size)
                }
            }
            close(dir)
            _ = Sys.unlinkat(store, shard, AT_REMOVEDIR)  // only succeeds when empty
        }
    }

    /// `<64 lowercase hex>` or that with `.x`, starting with the shard's two digits.
    static func isObjectName(_ name: String, shard: String) -> Bool {
        var hex = Substring(name)
        if hex.hasSuffix(SiteLayout.executableSuffix) { hex = hex.dropLast(SiteLayout.executableSuffix.count) }
        return hex.utf8.count == 64 && hex.hasPrefix(shard) && SiteSafety.isShardName(String(hex.prefix(2)))
            && hex.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    // MARK: Trust store

    /// Trusts a signer's key; with `approver`, makes it a site approver instead (`approvers/`),
    /// which approves activations and never counts as a bundle's signer.
    public static func trustAdd(site: Site, keyFile: String, approver: Bool = false, lockTimeout: Double = 30) throws -> PublicKey {
        let key = try PublicKey.load(path: keyFile)
        let lock = try site.lockForWriting(command: "trust add", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        // One key, one role: a vendor who could approve would approve its own releases.
        if let store = try? TrustStore.load(directory: site.trustDirectory) {
            if approver, store.keys[key.id] != nil {
                throw AirlockError(.key, "key-role-conflict", "\(key.id) signs bundles on this site; an approver key must be another key")
            }
            if !approver, store.approvers[key.id] != nil {
                throw AirlockError(.key, "key-role-conflict", "\(key.id) is one of the site's approvers; a signing key must be another key")
            }
        }
        var dir = site.trustDirectory
        if approver {
            dir += "/" + TrustStore.approversFolder
            if Sys.mkdir(dir, 0o755) != 0 && errno != EEXIST { throw AirlockError.io("write-failed", "cannot create \(dir)", errno: errno) }
        }
        try FileIO.writeAtomically(dir + "/" + key.id + ".pub", key.pem, mode: 0o644)
        try History.append(site, action: approver ? "approver-add" : "trust-add", ["key_id": .string(key.id), "algorithm": .string(key.algorithm.rawValue)])
        return key
    }

    /// Adds hosts (`kb.internal:443`, `*.corp.internal`) or networks (`10.0.0.0/8`) to the
    /// site's perimeter, or removes them (`remove`), rewriting `policy.json` atomically.
    public static func perimeter(site: Site, entries: [String], remove: Bool = false, lockTimeout: Double = 30) throws -> Perimeter {
        let lock = try site.lockForWriting(command: "trust perimeter", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let path = site.trustDirectory + "/" + SiteLayout.policy
        var file = FileIO.exists(path) ? try TrustPolicy.parse(FileIO.read(path, limit: 1 << 20, what: "trust policy", siteFile: true), path: path) : TrustPolicy()
        var policy = try SitePolicy.parse(file.siteFields, path: path)
        for e in entries {
            let isNetwork = e.contains("/")
            if let why = isNetwork ? Perimeter.networkProblem(e) : Perimeter.hostRuleProblem(e) {
                throw AirlockError(.usage, "perimeter-entry-invalid", "\(e) \(why)")
            }
            if remove {
                guard policy.perimeter.hosts.contains(e) || policy.perimeter.networks.contains(e) else {
                    throw AirlockError(.usage, "perimeter-entry-unknown", "\(e) is not in the perimeter; `airlock trust list` shows it")
                }
                policy.perimeter.hosts.removeAll { $0 == e }
                policy.perimeter.networks.removeAll { $0 == e }
            } else if isNetwork {
                if !policy.perimeter.networks.contains(e) { policy.perimeter.networks.append(e) }
            } else if !policy.perimeter.hosts.contains(e) {
                policy.perimeter.hosts.append(e)
            }
        }
        file.siteFields = policy.fields
        try FileIO.writeAtomically(path, Array(CanonicalJSON.pretty(file.json).utf8) + [0x0A], mode: 0o644)
        try History.append(site, action: remove ? "perimeter-remove" : "perimeter-add", ["entries": .array(entries.map { .string($0) })])
        return policy.perimeter
    }

    /// Stops trusting a signing key or an approver key (by id or unique id prefix).
    public static func trustRemove(site: Site, keyID prefix: String, lockTimeout: Double = 30) throws -> String {
        let lock = try site.lockForWriting(command: "trust remove", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let store = try TrustStore.load(directory: site.trustDirectory)
        let all = Array(store.keys.keys) + Array(store.approvers.keys)
        let matches = Set(all.filter { $0.hasPrefix(prefix.lowercased()) })
        guard matches.count == 1, let id = matches.first else {
            throw AirlockError(.usage, "key-unknown", matches.isEmpty ? "no trusted or approver key id starts with \(prefix); `airlock trust list` shows them" : "\(prefix) matches \(matches.count) keys; give more of the id")
        }
        let isApprover = store.approvers[id] != nil
        let dir = isApprover ? site.trustDirectory + "/" + TrustStore.approversFolder : site.trustDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasSuffix(".pub") {
            let p = dir + "/" + name
            if (try? PublicKey.load(path: p))?.id == id { _ = Sys.unlink(p) }
        }
        FileIO.syncParentDirectory(of: dir + "/x")
        try History.append(site, action: isApprover ? "approver-remove" : "trust-remove", ["key_id": .string(id)])
        return id
    }

}
