import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// What a killed command can leave behind, put right by the next command that writes, once it
/// holds the lock: staging folders of installs that are gone, temporary pointers and state
/// files beside `current`, and a health check whose verdict never came (the name goes back to
/// where it was before that activation). The name state's own journal (`NameState.pending`)
/// is completed by the next command that loads it.
enum SiteRecovery {
    /// Runs every recovery step; called by `Site.lockForWriting` right after the lock is taken.
    static func recover(_ site: Site) {
        cleanStaging(site)
        Activation.recoverInterruptedChecks(site: site)
    }

    /// Removes what killed commands left in `.staging/`. An install that streams its bundle
    /// before it takes the lock holds a flock on its own staging folder: that one is in use and
    /// stays; anything else there belongs to a process that is gone. Nothing is followed: the
    /// folders were checked by `SiteSafety`, and entries are removed relative to their folder.
    static func cleanStaging(_ site: Site) {
        let staging = Sys.open(site.path(SiteLayout.staging), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if staging >= 0 {
            for name in FileIO.entries(staging) {
                guard let held = Staging.claim(staging, name) else { continue }
                FileIO.removeTree(at: staging, name)
                if held >= 0 { close(held) }
            }
            close(staging)
        }
        // Temporary pointers and state files a killed switch left beside `current`.
        for name in site.names() {
            let dir = Sys.open(site.nameDirectory(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dir >= 0 else { continue }
            for entry in FileIO.entries(dir) where entry.hasPrefix(".") && entry.contains(SiteLayout.temporaryMarker) {
                _ = Sys.unlinkat(dir, entry, 0)
            }
            close(dir)
        }
    }
}

extension Site {
    /// The start of every command that writes: the root's own folders made when missing, the
    /// root checked (`SiteSafety`, as its owner), the lock taken (`SiteLock`), then what a
    /// killed command left recovered (`SiteRecovery`). Throws what those throw: `site-unsafe`,
    /// `site-owner`, `site-busy`, `read-only`, `create-failed`, `lock-failed`.
    func lockForWriting(command: String, timeout: Double) throws -> SiteLock {
        try prepare()
        try SiteSafety.check(self, writing: true)
        let lock = try SiteLock(site: self, command: command, timeout: timeout)
        SiteRecovery.recover(self)
        return lock
    }
}
