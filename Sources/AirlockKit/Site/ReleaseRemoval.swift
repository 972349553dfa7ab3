import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension SiteAdmin {
    /// Pins (`pinned`) or unpins the release `ref` names under the site lock and returns its
    /// folder name: `gc` keeps a pinned release and `remove` refuses it. Throws what
    /// `Site.lockForWriting` throws (`site-busy`, `site-unsafe`, `site-owner`, ...);
    /// `name-unknown`, `release-unknown` and `release-ambiguous`; `state-corrupt`; and write
    /// errors (`write-failed`, `create-failed`, `disk-full`, `history-failed`).
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

    /// Removes the release `ref` names under the site lock and returns its folder name; its
    /// content objects stay until `gc`. The current release, the rollback target, an active canary's candidate and a
    /// pinned release are refused, with a `refuse-remove` line in the history. Throws what
    /// `Site.lockForWriting` throws (`site-busy`, `site-unsafe`, `site-owner`, ...);
    /// `name-unknown`, `release-unknown` and `release-ambiguous`; `release-in-use` and
    /// `release-pinned`; `state-corrupt`; and write errors (`write-failed`, `sync-failed`,
    /// `create-failed`, `disk-full`, `history-failed`).
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
            throw AirlockError(.policy, .releaseInUse, "\(dir) is the current release of \(name); activate another one first")
        }
        if dir == state.rollbackTarget {
            throw AirlockError(.policy, .releaseInUse, "\(dir) is the rollback target of \(name); it is kept so that rollback always works")
        }
        if let c = try CanaryStore.load(site: site, name: name), c.isActive, c.candidate == dir {
            throw AirlockError(
                .policy, .releaseInUse, "\(dir) is the candidate of \(name)'s \(c.status.rawValue) canary; `airlock canary abort \(name)` first")
        }
        if state.pinned.contains(dir) {
            throw AirlockError(.policy, .releasePinned, "\(dir) is pinned; `airlock unpin \(name) \(dir)` first")
        }
    }

    /// Moves releases out of `releases/` in one rename each (so none is ever seen half
    /// removed), then deletes them.
    static func removeLocked(site: Site, name: String, dirs: [String], state: NameState) throws {
        var s = state
        for dir in dirs {
            let trash = site.path(SiteLayout.staging, "removed-\(UInt64.random(in: 0...UInt64.max))")
            guard Sys.rename(site.releaseDirectory(name, dir), trash) == 0 else {
                throw AirlockError.io(.writeFailed, "cannot remove \(site.releaseDirectory(name, dir))", errno: errno)
            }
            s.stack.removeAll { $0 == dir }
            s.installedAt[dir] = nil
            s.health[dir] = nil
            s.policy[dir] = nil
            FileIO.removeTree(trash)
        }
        try FileIO.fsyncPath(site.releasesDirectory(name))
        try s.save(site, name)
    }
}
