import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension SiteAdmin {
    /// What `gc` removed.
    public struct GCResult: Sendable {
        /// The releases removed, by name and release folder.
        public var removed: [(name: String, release: String)] = []
        /// How many content objects no release linked were removed from the store.
        public var objectsRemoved = 0
        /// The size of the content objects removed, in bytes.
        public var bytesFreed: UInt64 = 0
    }

    /// Keeps, per name, the `keep` newest releases (by sequence), `current`, the rollback target,
    /// an active canary's candidate and every pinned release; removes the rest, then every object no release links. Throws what
    /// `Site.lockForWriting` throws (`site-busy`, `site-unsafe`, `site-owner`, `site-unreadable`,
    /// `read-only`, `create-failed`, `lock-failed`); `name-unknown`; `state-corrupt` and read errors of
    /// a name's state (`site-unsafe`, `file-not-found`, `permission-denied`, `is-a-directory`,
    /// `open-failed`, `read-failed`, `file-too-large`); `read-failed` or `site-unsafe` for a content
    /// store it cannot open or that holds what Airlock did not make; and write errors (`write-failed`,
    /// `create-failed`, `disk-full`, `sync-failed`, `history-failed`).
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
            if let c = try CanaryStore.load(site: site, name: st.name), c.isActive { keepSet.insert(c.candidate) }
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
            try History.append(
                site, action: "gc", name: name,
                [
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
            throw AirlockError.io(.readFailed, "cannot open the content store \(objects)", errno: errno)
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
                throw AirlockError.io(.readFailed, "cannot open \(objects)/\(shard)", errno: errno)
            }
            for f in FileIO.entries(dir) where isLeftoverTemporary(f) {
                // A commit killed between its link and its rename (commits run under the lock
                // gc holds, so none is in progress): the name goes, the content stays wherever
                // else it is linked.
                var st = stat()
                if fstatat(dir, f, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG { _ = Sys.unlinkat(dir, f, 0) }
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

    /// `.tmp-<1 to 32 lowercase hex>`: the temporary name `Staging.commitObject` gives an object
    /// before it renames it into place.
    static func isLeftoverTemporary(_ name: String) -> Bool {
        guard name.hasPrefix(SiteLayout.temporaryMarker) else { return false }
        let rest = name.utf8.dropFirst(SiteLayout.temporaryMarker.utf8.count)
        return (1...32).contains(rest.count) && rest.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// `<64 lowercase hex>` or that with `.x`, starting with the shard's two digits.
    static func isObjectName(_ name: String, shard: String) -> Bool {
        var hex = Substring(name)
        if hex.hasSuffix(SiteLayout.executableSuffix) { hex = hex.dropLast(SiteLayout.executableSuffix.count) }
        return hex.utf8.count == 64 && hex.hasPrefix(shard) && SiteSafety.isShardName(String(hex.prefix(2)))
            && hex.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
