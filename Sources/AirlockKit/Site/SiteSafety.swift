import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// What Airlock refuses to run on (docs/site.md, "Who may write the site root").
///
/// Everything under the root is written by Airlock alone, as the site's owner. Before a command
/// reads or writes the site, the folders and files Airlock keeps there are checked from the top
/// down: each must be of the kind Airlock made (a real folder, a regular file with one link, the
/// `current` symlink), owned by the owner of the root, and writable by nobody else. The folders
/// above the root must be owned by root or the owner and, when others may write them, sticky.
/// Once that holds, nobody but the owner can replace any path inside, so later path-based calls
/// reach what was checked; the calls that delete or create still refuse to follow a link.
///
/// Nothing is repaired: a site that fails is refused with `site-unsafe`, naming the path, what
/// it is and what was expected, so that the admin finds out who changed it.
enum SiteSafety {
    static func kind(_ mode: mode_t) -> String { FileIO.kind(mode) }

    static func unexpected(_ path: String, _ found: String, expected: String) -> AirlockError {
        AirlockError(
            .io, .siteUnsafe,
            "\(path) is \(found) where the site keeps \(expected); Airlock does not follow or use it. Only Airlock writes under the site root: find out who changed it, move it out of the root, and run the command again"
        )
    }

    /// Checks the site before a command uses it. `writing`: the command will write, so the root
    /// must belong to the user running it (files it creates would otherwise have another owner).
    static func check(_ site: Site, writing: Bool) throws {
        var st = stat()
        guard stat(site.root, &st) == 0 else {
            if errno == ENOENT && !writing { return }  // nothing installed yet: nothing to read
            throw AirlockError.io(.siteUnreadable, "cannot reach the site root \(site.root)", errno: errno)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw unexpected(site.root, kind(st.st_mode), expected: "the site root folder") }
        let owner = st.st_uid
        if writing && owner != geteuid() {
            throw AirlockError(
                .io, .siteOwner,
                "the site root \(site.root) belongs to uid \(owner) and this command runs as uid \(geteuid()); run it as the site's owner so that everything under the root keeps one owner"
            )
        }
        try checkOwnerAndMode(site.root, st, owner: owner)
        try checkAncestors(of: site.root, owner: owner)

        for dir in [SiteLayout.objects, SiteLayout.objects + "/" + SiteLayout.objectsAlgorithm, SiteLayout.staging, SiteLayout.approvals] {
            try expect(site.path(dir), S_IFDIR, owner: owner, what: "a folder of its own")
        }
        try expect(site.trustDirectory, S_IFDIR, owner: owner, what: "its trust store folder")
        try expect(site.trustDirectory + "/" + SiteLayout.approvers, S_IFDIR, owner: owner, what: "its approvers folder")
        for dir in [site.trustDirectory, site.trustDirectory + "/" + SiteLayout.approvers] {
            for entry in FileIO.entries(ofDirectory: dir) ?? [] where entry != SiteLayout.approvers {
                try expect(dir + "/" + entry, S_IFREG, owner: owner, what: "a key or policy file of its trust store")
            }
        }
        for file in [SiteLayout.lock, SiteLayout.history, SiteLayout.alerts] {
            try expect(site.path(file), S_IFREG, owner: owner, what: "a file of its own")
        }
        // The serve token is a secret: nobody but the owner may read it either.
        try expect(site.path(SiteLayout.serveToken), S_IFREG, owner: owner, what: "its serve token file")
        var token = stat()
        if lstat(site.path(SiteLayout.serveToken), &token) == 0, token.st_mode & 0o077 != 0 {
            throw AirlockError(
                .io, .siteUnsafe,
                "\(site.path(SiteLayout.serveToken)) is readable by other users (mode \(String(token.st_mode & 0o7777, radix: 8))); it is the secret of airlock serve's control endpoints: `chmod 600` it, or remove it (serve makes a new one) and run the command again"
            )
        }
        // The shards of the store: real folders with two-hex-digit names, nothing else.
        let objects = site.path(SiteLayout.objects, SiteLayout.objectsAlgorithm)
        for shard in FileIO.entries(ofDirectory: objects) ?? [] {
            guard isShardName(shard) else {
                throw unexpected(objects + "/" + shard, "an entry Airlock did not make", expected: "only two-hex-digit shard folders")
            }
            try expect(objects + "/" + shard, S_IFDIR, owner: owner, what: "a shard folder of its content store")
        }
        // The names: each a real folder holding `releases/`, `current` and `.state.json`.
        for entry in FileIO.entries(ofDirectory: site.root) ?? [] where !entry.hasPrefix(".") {
            var e = stat()
            guard lstat(site.path(entry), &e) == 0 else { continue }
            if (e.st_mode & S_IFMT) == S_IFLNK {
                throw unexpected(site.path(entry), kind(e.st_mode), expected: "only real folders of release names")
            }
            guard (e.st_mode & S_IFMT) == S_IFDIR, ReleaseNames.isValidName(entry) else { continue }
            try checkOwnerAndMode(site.path(entry), e, owner: owner)
            try checkName(site, entry, owner: owner)
        }
    }

    /// One name folder: `releases/` and every release in it real folders, `current` a symlink,
    /// `.state.json` a regular file.
    static func checkName(_ site: Site, _ name: String, owner: uid_t) throws {
        let releases = site.releasesDirectory(name)
        try expect(releases, S_IFDIR, owner: owner, what: "the folder of installed releases")
        for dir in FileIO.entries(ofDirectory: releases) ?? [] {
            try expect(releases + "/" + dir, S_IFDIR, owner: owner, what: "an installed release folder")
        }
        try expect(site.currentLink(name), S_IFLNK, owner: owner, what: "the current pointer (a symlink)")
        try expect(site.path(name, SiteLayout.state), S_IFREG, owner: owner, what: "the release state file")
        let serve = site.path(name, SiteLayout.serveState)
        try expect(serve, S_IFDIR, owner: owner, what: "the rollout state folder")
        for file in [SiteLayout.canaryFile, SiteLayout.breakersFile, SiteLayout.taskJournal, SiteLayout.serveLock] {
            try expect(serve + "/" + file, S_IFREG, owner: owner, what: "a rollout state file")
        }
    }

    static func isShardName(_ s: String) -> Bool {
        s.utf8.count == 2 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// When `path` exists: it is of `type`, has the owner, and nobody else may write it (a
    /// file: and no second link, which would let a write reach another file).
    static func expect(_ path: String, _ type: mode_t, owner: uid_t, what: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw AirlockError.io(.siteUnreadable, "cannot examine \(path)", errno: errno)
        }
        guard (st.st_mode & S_IFMT) == type else { throw unexpected(path, kind(st.st_mode), expected: what) }
        if type == S_IFLNK { return }
        try checkOwnerAndMode(path, st, owner: owner)
        if type == S_IFREG && st.st_nlink != 1 {
            throw unexpected(path, "a file with \(st.st_nlink) hard links", expected: "\(what) with no other name")
        }
    }

    static func checkOwnerAndMode(_ path: String, _ st: stat, owner: uid_t) throws {
        if st.st_uid != owner {
            throw AirlockError(
                .io, .siteUnsafe,
                "\(path) belongs to uid \(st.st_uid), not to the site's owner (uid \(owner)); only the owner may write under the site root: find out who made it, then `chown` it back or move it out of the root"
            )
        }
        if st.st_mode & 0o022 != 0 {
            throw AirlockError(
                .io, .siteUnsafe,
                "\(path) is writable by \((st.st_mode & 0o002) != 0 ? "every user" : "its group") (mode \(String(st.st_mode & 0o7777, radix: 8))); only the site's owner may write under the site root: `chmod go-w \(path)` and run the command again"
            )
        }
    }

    /// The folders above the root: another user who could write one could swap the root.
    static func checkAncestors(of root: String, owner: uid_t) throws {
        guard let real = realpath(root, nil) else { return }
        var path = String(cString: real)
        free(real)
        while let slash = path.lastIndex(of: "/") {
            path = slash == path.startIndex ? "/" : String(path[..<slash])
            var st = stat()
            guard stat(path, &st) == 0 else { break }
            let safeOwner = st.st_uid == 0 || st.st_uid == owner
            let othersWrite = st.st_mode & 0o022 != 0
            if !safeOwner || (othersWrite && st.st_mode & S_ISVTX == 0) {
                throw AirlockError(
                    .io, .siteUnsafe,
                    "\(path), a folder above the site root, can be changed by another user (owner uid \(st.st_uid), mode \(String(st.st_mode & 0o7777, radix: 8))), who could replace the site root; keep the root under folders owned by root or the site's owner and writable by nobody else"
                )
            }
            if path == "/" { break }
        }
    }
}

extension FileIO {
    /// Reads a file the site keeps (`siteFile`): never through a symbolic link, never blocking
    /// on a FIFO, and only a regular file (`site-unsafe` otherwise).
    static func read(_ path: String, limit: Int, what: String, siteFile: Bool) throws -> [UInt8] {
        try read(path, limit: limit, what: what, notRegular: siteFile ? { SiteSafety.unexpected(path, $0, expected: "a file") } : nil)
    }
}
