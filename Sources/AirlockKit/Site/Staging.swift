#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CSystem
import AirlockFormat

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
        guard airlock_rename_exchange(AT_FDCWD, a, AT_FDCWD, b) == 0 else { throw Self.failure("swapping the repaired release into \(b)") }
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
        guard Sys.fsync(dirFD) == 0, airlock_syncfs(dirFD) == 0 else {
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
