import AirlockFormat
import CAirlockSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One install's private area under `.staging/`: the release tree being built.
///
/// Nothing under it is reached by path (ADR 0007): the staging folder is created exclusively
/// and opened, and every folder and file of the tree is created relative to its parent's
/// descriptor (`mkdirat`, `openat` with O_CREAT|O_EXCL|O_NOFOLLOW, `linkat`). The site's own
/// paths (the store's objects, `<name>/releases/`) are named only at the commit, under the
/// site lock.
final class Staging {
    /// A file or folder of the staged tree: its folder's descriptor (valid until the next call
    /// that opens folders, see `Folders`) and its name there.
    struct Place {
        let folder: Int32
        let name: String
    }

    /// `.staging/<random>`, for messages.
    let path: String
    /// The staging folder, holding its flock for as long as the install lives.
    private let dirFD: Int32
    /// `release/` in it (renamed into `<name>/releases/` at the commit).
    private let releaseFD: Int32
    /// Open payload folders, by path below `payload/`.
    private var folders: Folders

    /// The name of the release tree in the staging folder.
    static let releaseName = "release"

    /// A folder of its own under `.staging/`, under a name nobody can predict, created by this
    /// process (mkdirat fails on any name that exists) and held with a flock for as long as it
    /// lives, so that the lock-time cleanup of another command leaves it alone.
    init(site: Site) throws {
        let staging = site.path(SiteLayout.staging)
        let parent = Sys.open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard parent >= 0 else { throw Self.failure("opening the staging folder \(staging)") }
        defer { close(parent) }
        var fd: Int32 = -1
        var name = ""
        while fd < 0 {
            name = Self.randomName()
            guard Sys.mkdirat(parent, name, 0o700) == 0 else {
                if errno == EEXIST { continue }
                throw Self.failure("creating a staging area in \(staging)")
            }
            fd = Sys.openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw AirlockError.io(.writeFailed, "cannot open the staging area \(staging)/\(name)", errno: errno) }
            flock(fd, LOCK_EX)
            // A cleanup that ran between the mkdirat and the flock removed it: take another.
            var mine = stat(), there = stat()
            if fstat(fd, &mine) != 0 || fstatat(parent, name, &there, AT_SYMLINK_NOFOLLOW) != 0 || mine.st_ino != there.st_ino
                || mine.st_dev != there.st_dev
            {
                close(fd)
                fd = -1
            }
        }
        dirFD = fd
        path = staging + "/" + name
        var release: Int32 = -1
        if Sys.mkdirat(fd, Self.releaseName, 0o700) == 0 {
            release = Sys.openat(fd, Self.releaseName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        if release >= 0, Sys.mkdirat(release, SiteLayout.releasePayload, SiteLayout.directoryMode) == 0 {
            let payload = Sys.openat(release, SiteLayout.releasePayload, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if payload >= 0 {
                releaseFD = release
                folders = Folders(payload: payload)
                return
            }
        }
        let err = errno
        if release >= 0 { close(release) }
        FileIO.removeTree(at: parent, name)
        close(fd)
        throw Self.failure("creating the staging area \(path)/\(Self.releaseName)", err)
    }

    deinit {
        folders.closeAll()
        folders.closePayload()
        close(releaseFD)
        close(dirFD)
    }

    /// 128 random bits, as hex.
    static func randomName() -> String {
        var rnd = SystemRandomNumberGenerator()
        return String(rnd.next() as UInt64, radix: 16) + String(rnd.next() as UInt64, radix: 16)
    }

    /// Claims an entry of the staging folder for removal: nil when a live install holds it (its
    /// flock is taken), else a descriptor holding its flock until the caller has removed it and
    /// closes it (-1 for an entry that is not a folder).
    static func claim(_ stagingFD: Int32, _ name: String) -> Int32? {
        let fd = Sys.openat(stagingFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return -1 }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    /// Removes what the staging folder still holds (the tree, when it was not renamed away,
    /// or the drifted tree a repair swapped out), relative to its descriptor.
    func remove() {
        folders.closeAll()
        FileIO.removeTree(at: dirFD, Self.releaseName)
        FileIO.removeEmptyFolder(path)
    }

    /// `what` is an action in -ing form ("creating X").
    static func failure(_ what: String, _ err: Int32 = errno) -> AirlockError {
        if err == ENOSPC || err == EDQUOT {
            return .io(.diskFull, "no space left on the site's file system while \(what); free some space and install again (nothing was changed)", errno: err)
        }
        if err == EROFS {
            return .io(.readOnly, "the site's file system is read-only (\(what)); remount it read-write and install again", errno: err)
        }
        if err == ENAMETOOLONG {
            return .io(
                .nameTooLong, "\(what) failed: a path is longer than this file system allows; install under a shorter site root (--root), nothing was changed",
                errno: err)
        }
        if err == EMLINK {
            return .io(.linkLimit, "\(what) failed: the file system's limit of hard links per file was reached", errno: err)
        }
        if err == EACCES || err == EPERM {
            return .io(.permissionDenied, "\(what) failed: permission denied; run as the site's owner and check the modes under the site root", errno: err)
        }
        return .io(.writeFailed, "\(what) failed; check the site's file system (nothing was changed)", errno: err)
    }

    /// Makes a staged file read-only. (One syncfs flushes every staged file later: a per-file
    /// fsync costs a disk flush each, minutes for an index of 100,000 files.)
    func finishFile(_ fd: Int32, executable: Bool) throws {
        try Self.finishFile(fd, executable: executable)
    }

    static func finishFile(_ fd: Int32, executable: Bool) throws {
        guard fchmod(fd, executable ? SiteLayout.executableFileMode : SiteLayout.fileMode) == 0 else {
            throw failure("making a staged file read-only")
        }
    }

    /// `payload/`'s descriptor (a `StagingWriter` resolves folders below it on its own).
    var payloadFD: Int32 { folders.payload }

    /// Takes the folders another writer of this tree made as made here too (`place(_:create:)`
    /// finds files in them).
    func adoptFolders(_ made: Set<String>) { folders.adopt(made) }

    /// The place of `rel` (a path below `payload/` that passed the path rules: relative, no
    /// `..`, NFC), with its folders made: each created with `mkdirat` under its parent's
    /// descriptor and opened with O_NOFOLLOW.
    func place(_ rel: String) throws -> Place {
        try place(rel, create: true)!
    }

    /// With `create` false: nil when a folder on the way was never made.
    func place(_ rel: String, create: Bool) throws -> Place? {
        let (folder, name) = PathRules.splitLast(rel)
        if !create && !folders.wasMade(folder) { return nil }
        return Place(folder: try folders.descriptor(folder), name: name)
    }

    /// Creates a new staged file, 0600 until `finishFile`.
    func create(_ place: Place) throws -> Int32 {
        try Self.create(place, what: "a staged file")
    }

    /// Creates the new file `place` (O_CREAT|O_EXCL|O_NOFOLLOW, 0600): every staged file is
    /// made here, by whichever thread. `what` names it in a failure.
    static func create(_ place: Place, what: String) throws -> Int32 {
        let fd = Sys.openat(place.folder, place.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("creating \(what)") }
        return fd
    }

    /// What `stageByComparing` did with a payload file.
    enum Compared {
        /// The stream matched the stored object: `dest` is a hardlink to it (or a copy).
        case linked
        /// The stream differed: `dest` holds the stream's content, which replaces the store's
        /// damaged copy.
        case written
        /// The object could not be opened (gc removed it meanwhile): nothing was read or made.
        case missing
    }

    /// Streams the next payload file while comparing it with the stored object. When they
    /// match to the end, `dest` becomes a hardlink to the object (or a copy, if the object has
    /// as many links as the file system allows). When they differ, it writes the object's
    /// matching prefix and the rest of the stream to `dest`: the store's copy is damaged and
    /// the fresh one replaces it.
    func stageByComparing(object: ObjectStore.Located, file: ManifestFile, reader: BundleReader, at dest: Place) throws -> Compared {
        let ofd = Sys.openat(object.folder, object.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard ofd >= 0 else { return .missing }
        defer { close(ofd) }
        // What is compared is what this descriptor reads: a regular file, or nothing to reuse.
        var opened = stat()
        guard fstat(ofd, &opened) == 0, (opened.st_mode & S_IFMT) == S_IFREG else { return .missing }
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
                    guard n > 0 else { throw Self.failure("re-reading \(object.path)") }
                    try FileIO.writeAll(out, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: dest.name)
                    copied += Int64(n)
                }
            }
            try FileIO.writeAll(out, part, path: dest.name)
            offset += Int64(part.count)
        }
        if out >= 0 {
            try finishFile(out, executable: file.executable)
            return .written
        }
        try linkOrCopy(object: object, ofd: ofd, opened: opened, file: file, to: dest, buffer: buffer)
        return .linked
    }

    /// Hardlinks a stored object at `dest`, or copies it when it has as many links as the file
    /// system allows (EMLINK). `ofd` is the object as it was checked (`opened`, its fstat): the
    /// link is made by name, so the file linked must be that one, or it is copied from `ofd`
    /// instead (another file renamed over the object's name meanwhile is never linked).
    private func linkOrCopy(
        object: ObjectStore.Located, ofd: Int32, opened: stat, file: ManifestFile, to dest: Place, buffer: UnsafeMutableRawBufferPointer
    ) throws {
        Sys.step("install.reuse")
        if Sys.linkat(object.folder, object.name, dest.folder, dest.name) == 0 {
            var linked = stat()
            if fstatat(dest.folder, dest.name, &linked, AT_SYMLINK_NOFOLLOW) == 0, linked.st_dev == opened.st_dev, linked.st_ino == opened.st_ino {
                return
            }
            guard Sys.unlinkat(dest.folder, dest.name) == 0 else { throw Self.failure("replacing \(dest.name) in the staged release") }
        } else {
            // EMLINK: the object has as many links as the file system allows. ENOENT: gc
            // removed its name after it was opened (the install stages without the site lock):
            // the open descriptor still reads it.
            guard errno == EMLINK || errno == ENOENT else { throw Self.failure("linking \(dest.name) in the staged release") }
        }
        let fd = try create(dest)
        defer { close(fd) }
        try Self.copy(from: ofd, to: fd, what: object.path, buffer: buffer)
        try finishFile(fd, executable: file.executable)
    }

    /// Takes a file a delta omits from the store: hashes the stored copy against the manifest,
    /// then links it at `dest`.
    func stageFromStore(object: ObjectStore.Located, file: ManifestFile, at dest: Place) throws {
        let ofd = Sys.openat(object.folder, object.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard ofd >= 0 else { throw Self.failure("opening \(object.path)") }
        defer { close(ofd) }
        var opened = stat()
        guard fstat(ofd, &opened) == 0 else { throw Self.failure("reading \(object.path)") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        let hasher = SHA256Hasher()
        var size: UInt64 = 0
        while true {
            let n = read(ofd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("reading \(object.path)")
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += UInt64(n)
        }
        guard (opened.st_mode & S_IFMT) == S_IFREG, size == file.size, hasher.finish() == file.sha256 else {
            throw AirlockError(
                .verification, .deltaBaseDamaged,
                "the site's stored copy of \(file.path), which this delta bundle omits, does not match the manifest; install the full bundle (it replaces the damaged copy)"
            )
        }
        try linkOrCopy(object: object, ofd: ofd, opened: opened, file: file, to: dest, buffer: buffer)
    }

    /// Hardlinks the staged file `from` at `to` (paths below `payload/`); when it has as many
    /// links as the file system allows (EMLINK: 65,000 on ext4), writes a copy instead, which
    /// the next files of the same content link to.
    static func linkOrCopy(_ from: String, _ to: String, executable: Bool, in folders: inout Folders) throws {
        let (toFolder, toName) = PathRules.splitLast(to)
        let dest = Place(folder: try folders.descriptor(toFolder), name: toName)
        // Opening the source's folders must not close the destination's.
        folders.pin(dest.folder)
        defer { folders.unpinAll() }
        let (fromFolder, fromName) = PathRules.splitLast(from)
        let source = Place(folder: try folders.descriptor(fromFolder), name: fromName)
        if Sys.linkat(source.folder, source.name, dest.folder, dest.name) == 0 { return }
        guard errno == EMLINK else { throw failure("linking \(to) in the staged release") }
        let src = Sys.openat(source.folder, source.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard src >= 0 else { throw failure("reading the staged \(from)") }
        defer { close(src) }
        let fd = try create(dest, what: "a staged file")
        defer { close(fd) }
        try copy(from: src, to: fd, what: from)
        try finishFile(fd, executable: executable)
    }

    /// Copies an open file's content from its start into an open descriptor.
    static func copy(from src: Int32, to fd: Int32, what: String, buffer given: UnsafeMutableRawBufferPointer? = nil) throws {
        let buffer = given ?? UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { if given == nil { buffer.deallocate() } }
        var offset: off_t = 0
        while true {
            let n = pread(src, buffer.baseAddress, buffer.count, offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("copying \(what)")
            }
            if n == 0 { break }
            try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: what)
            offset += off_t(n)
        }
    }

    /// A staged file to link into the store: its path below `payload/`, and the object's shard
    /// descriptor (`ObjectStore.shardCreating`) and name.
    struct StoreLink: Sendable {
        let rel: String
        let shard: Int32
        let name: String
    }

    /// What `linkIntoStore` did with one link.
    enum StoreLinkResult: Sendable {
        case linked
        /// `linkat` failed with this errno.
        case failed(Int32)
        /// The staged folder could not be opened.
        case folderFailed(AirlockError)
    }

    /// Links the verified staged files into the store, half of them on a thread of its own
    /// (each side resolves the staged folders with descriptors of its own; the store's side is
    /// the shard's descriptor), and says what happened to each: the caller takes EEXIST and
    /// EMLINK to `commitObject` and reports the rest. Called under the site lock.
    func linkIntoStore(_ links: [StoreLink]) -> [StoreLinkResult] {
        // The staged tree's own folder descriptors are not needed meanwhile.
        folders.closeAll()
        let payload = folders.payload
        @Sendable func linkAll(_ part: ArraySlice<StoreLink>) -> [StoreLinkResult] {
            var resolver = Folders(payload: payload, creating: false)
            defer { resolver.closeAll() }
            return part.map { l in
                let (folder, name) = PathRules.splitLast(l.rel)
                let dir: Int32
                do { dir = try resolver.descriptor(folder) } catch {
                    return .folderFailed(error as? AirlockError ?? Staging.failure("opening the staged folder \(folder)", EIO))
                }
                return Sys.linkat(dir, name, l.shard, l.name) == 0 ? .linked : .failed(errno)
            }
        }
        // Below a few hundred links a second thread costs more than it saves.
        guard links.count >= 256 else { return linkAll(links[...]) }
        let half = links.count / 2
        let second = links[half...]
        let other = BackgroundTask(name: "airlock-link") { linkAll(second) }
        let first = linkAll(links[..<half])
        return first + ((try? other.value()) ?? Array(repeating: .failed(EIO), count: second.count))
    }

    /// Adds the verified staged file `rel` (below `payload/`) to the store as `object`, when
    /// `linkIntoStore` could not link it: true when it created the object. An object already
    /// there that failed the reuse check (or any, in a repair) is replaced by the verified copy,
    /// atomically; when the staged file has as many links as the file system allows, the store
    /// gets a copy. Called under the site lock: the store's side is its shard's descriptor, the
    /// staged side its folder's.
    func commitObject(_ rel: String, to object: ObjectStore.Located) throws -> Bool {
        let staged = try place(rel)
        if Sys.linkat(staged.folder, staged.name, object.folder, object.name) == 0 { return true }
        guard errno == EEXIST || errno == EMLINK else { throw Self.failure("adding \(object.path) to the site's object store") }
        // Replacing a damaged object, or the staged file has as many links as the file system
        // allows (the same content many times in this release): the store gets a copy of its
        // own, under a temporary name that is then renamed into place.
        let existed = errno == EEXIST
        let tmp = SiteLayout.temporaryMarker + Self.randomName()
        if Sys.linkat(staged.folder, staged.name, object.folder, tmp) != 0 {
            guard errno == EMLINK else { throw Self.failure("replacing \(object.path) in the site's object store") }
            let fd = Sys.openat(object.folder, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Self.failure("adding \(object.path) to the site's object store") }
            do {
                let src = Sys.openat(staged.folder, staged.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard src >= 0 else { throw Self.failure("reading the staged \(rel)") }
                defer { close(src) }
                try Self.copy(from: src, to: fd, what: object.path)
                var st = stat()
                guard fstat(src, &st) == 0, fchmod(fd, st.st_mode & 0o7777) == 0, Sys.fsync(fd) == 0 else {
                    throw Self.failure("adding \(object.path) to the site's object store")
                }
            } catch {
                close(fd)
                _ = Sys.unlinkat(object.folder, tmp)
                throw error
            }
            close(fd)
        }
        guard Sys.renameat(object.folder, tmp, object.folder, object.name) == 0 else {
            let err = errno
            _ = Sys.unlinkat(object.folder, tmp)
            throw Self.failure("adding \(object.path) to the site's object store", err)
        }
        return !existed
    }

    /// When the store holds content that this install found absent as it staged (another
    /// install committed it meanwhile): the staged release takes the store's file in place of
    /// its own copy, so that the two releases share one inode, and true is returned. Only a
    /// regular file of the staged file's mode and bytes is taken (compared byte for byte with the
    /// verified staged file), and only the very file compared (the link is checked to be it);
    /// otherwise false, and the object is replaced as a damaged one is (`commitObject`). Called
    /// under the site lock, before the staged tree is flushed.
    func adoptStored(_ rel: String, object: ObjectStore.Located) throws -> Bool {
        let staged = try place(rel)
        // O_NONBLOCK: a FIFO put at the object's name does not block the open.
        let ofd = Sys.openat(object.folder, object.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard ofd >= 0 else { return false }
        defer { close(ofd) }
        let sfd = Sys.openat(staged.folder, staged.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard sfd >= 0 else { throw Self.failure("reading the staged \(rel)") }
        defer { close(sfd) }
        var stored = stat()
        var mine = stat()
        guard fstat(ofd, &stored) == 0, fstat(sfd, &mine) == 0 else { throw Self.failure("reading \(object.path)") }
        guard (stored.st_mode & S_IFMT) == S_IFREG, stored.st_mode & 0o7777 == mine.st_mode & 0o7777, stored.st_size == mine.st_size,
            try Self.sameBytes(stored: ofd, staged: sfd, rel: rel)
        else { return false }
        Sys.step("install.adopt")
        let tmp = SiteLayout.temporaryMarker + Self.randomName()
        guard Sys.linkat(object.folder, object.name, staged.folder, tmp) == 0 else {
            // EMLINK: as many links as the file system allows; ENOENT: gone meanwhile.
            guard errno == EMLINK || errno == ENOENT else { throw Self.failure("linking \(object.path) into the staged release") }
            return false
        }
        var linked = stat()
        guard fstatat(staged.folder, tmp, &linked, AT_SYMLINK_NOFOLLOW) == 0, linked.st_dev == stored.st_dev, linked.st_ino == stored.st_ino
        else {
            // Another file was renamed over the object's name after it was compared.
            _ = Sys.unlinkat(staged.folder, tmp)
            return false
        }
        guard Sys.renameat(staged.folder, tmp, staged.folder, staged.name) == 0 else {
            let err = errno
            _ = Sys.unlinkat(staged.folder, tmp)
            throw Self.failure("replacing the staged \(rel)", err)
        }
        return true
    }

    /// Whether the stored object `stored` holds the same bytes as the staged file `staged`
    /// (their sizes already compared equal). A stored copy that can not be read counts as
    /// different (it is replaced); a staged file that can not be read is an error.
    private static func sameBytes(stored: Int32, staged: Int32, rel: String) throws -> Bool {
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * chunk, alignment: 64)
        defer { buffer.deallocate() }
        let left = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<chunk])
        let right = UnsafeMutableRawBufferPointer(rebasing: buffer[chunk...])
        var offset: off_t = 0
        while true {
            guard let n = fill(stored, left, at: offset) else { return false }
            guard let m = fill(staged, right, at: offset) else { throw failure("reading the staged \(rel)") }
            guard n == m else { return false }
            if n == 0 { return true }
            guard memcmp(left.baseAddress!, right.baseAddress!, n) == 0 else { return false }
            offset += off_t(n)
        }
    }

    /// Reads from `offset` until `buffer` is full or the file ends: the bytes read, or nil on
    /// an error (errno set).
    private static func fill(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: off_t) -> Int? {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, offset + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Flushes the staging folder and the whole file system that holds it (ADR 0005).
    func syncFileSystem() throws {
        guard Sys.fsync(dirFD) == 0, Sys.syncfs(dirFD) == 0 else {
            throw AirlockError.io(.syncFailed, "cannot flush the staged release to disk (the disk may be failing); nothing was installed", errno: errno)
        }
    }

    /// The content of the staged file `rel` (below `payload/`), nil when there is none. Throws
    /// `file-too-large` past `limit` bytes.
    func readFile(_ rel: String, limit: Int) throws -> [UInt8]? {
        guard let at = try place(rel, create: false) else { return nil }
        let fd = Sys.openat(at.folder, at.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw Self.failure("reading the staged \(rel)")
        }
        defer { close(fd) }
        return try FileIO.read(fd: fd, limit: limit, what: "staged \(rel)")
    }

    /// Writes the signed manifest and the signatures beside `payload/`, read-only, and gives
    /// the tree its installed mode.
    func writeReleaseFiles(manifest: [UInt8], signatures: [(keyID: String, bytes: [UInt8])]) throws {
        try writeFile(Place(folder: releaseFD, name: SiteLayout.releaseManifest), manifest)
        guard Sys.mkdirat(releaseFD, SiteLayout.releaseSignatures, SiteLayout.directoryMode) == 0 else {
            throw Self.failure("creating the staged \(SiteLayout.releaseSignatures)/")
        }
        let sigs = Sys.openat(releaseFD, SiteLayout.releaseSignatures, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard sigs >= 0 else { throw Self.failure("opening the staged \(SiteLayout.releaseSignatures)/") }
        defer { close(sigs) }
        for (id, bytes) in signatures {
            try writeFile(Place(folder: sigs, name: id + BundleLayout.signatureSuffix), bytes)
        }
        guard fchmod(releaseFD, SiteLayout.directoryMode) == 0 else { throw Self.failure("setting the mode of the staged release") }
    }

    /// Moves the verified tree to `target` (`<name>/releases/<folder>`) in one rename; with
    /// `exchange`, swaps it with the tree there (a repair: the release never goes missing).
    /// Called under the site lock.
    func commitTree(to target: String, exchange: Bool) throws {
        if exchange {
            guard Sys.exchange(dirFD, Self.releaseName, AT_FDCWD, target) == 0 else { throw Self.failure("swapping the repaired release into \(target)") }
        } else {
            guard Sys.renameat(dirFD, Self.releaseName, AT_FDCWD, target) == 0 else { throw Self.failure("moving the verified release into \(target)") }
        }
    }

    /// Writes a small read-only file.
    private func writeFile(_ place: Place, _ bytes: [UInt8]) throws {
        let fd = try create(place)
        defer { close(fd) }
        try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: place.name) }
        guard fchmod(fd, SiteLayout.fileMode) == 0 else { throw Self.failure("making \(place.name) read-only") }
    }

    /// The payload folders the install has open, by path below `payload/` ("" is `payload/`
    /// itself). Files arrive sorted by path, so each folder is opened about once; at most
    /// `capacity` stay open, the least recently used closed first, and one closed is opened
    /// again from `payload/` down, segment by segment, with O_NOFOLLOW.
    struct Folders {
        static let capacity = 64
        let payload: Int32
        /// False: folders are only opened, never made (they all exist: `linkIntoStore`).
        private let creating: Bool
        private var open: [String: (fd: Int32, used: UInt64)] = [:]
        private var made: Set<String> = [""]
        private var clock: UInt64 = 0

        init(payload: Int32, creating: Bool = true) {
            self.payload = payload
            self.creating = creating
        }

        /// Closes `payload/` itself (when the install is done with the tree).
        func closePayload() { close(payload) }

        /// Closes every open folder below `payload/`.
        mutating func closeAll() {
            for (_, f) in open { close(f.fd) }
            open = [:]
        }

        /// Whether this install made the folder `rel` (it made every folder of the tree).
        func wasMade(_ rel: String) -> Bool { made.contains(rel) }

        /// The folders made through this resolver.
        var madeFolders: Set<String> { made }

        /// Counts `folders`, made by another resolver of the same tree, as made.
        mutating func adopt(_ folders: Set<String>) { made.formUnion(folders) }

        /// The descriptor of the folder `rel`, created (with its parents) when new.
        mutating func descriptor(_ rel: String) throws -> Int32 {
            if rel.isEmpty { return payload }
            clock += 1
            if let f = open[rel] {
                open[rel] = (f.fd, clock)
                return f.fd
            }
            let (parentPath, name) = PathRules.splitLast(rel)
            let parent = try descriptor(parentPath)
            if creating && !made.contains(rel) {
                if Sys.mkdirat(parent, name, SiteLayout.directoryMode) != 0 && errno != EEXIST {
                    throw Staging.failure("creating the staged folder \(rel)")
                }
                made.insert(rel)
            }
            let fd = Sys.openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw Staging.failure("opening the staged folder \(rel)") }
            if open.count >= Self.capacity { evict(keeping: parentPath) }
            clock += 1
            open[rel] = (fd, clock)
            return fd
        }

        private var pinned: Set<Int32> = []

        /// Keeps the folder `fd` open until `unpinAll`.
        mutating func pin(_ fd: Int32) { pinned.insert(fd) }
        mutating func unpinAll() { pinned = [] }

        /// Closes the least recently used folder (never `keeping`, which is about to be used).
        private mutating func evict(keeping: String) {
            guard let (rel, f) = open.filter({ $0.key != keeping && !pinned.contains($0.value.fd) }).min(by: { $0.value.used < $1.value.used })
            else { return }
            close(f.fd)
            open[rel] = nil
        }
    }
}
