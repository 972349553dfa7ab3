import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX file helpers that report failures as `AirlockError`s naming the file.
package enum FileIO {
    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// A read buffer's size for `fd` read from `offset` (nil: its current offset) to its end:
    /// `limit`, or less for a regular file with fewer bytes left (at least 4 KiB, and one byte
    /// more than is left: a file that grew by a byte since still fits one read). A file that
    /// grows more is still read whole, in more reads.
    package static func readBufferSize(_ fd: Int32, from offset: Int? = nil, limit: Int = 1 << 20) -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return limit }
        let at = offset ?? max(Int(lseek(fd, 0, SEEK_CUR)), 0)
        return min(max(Int(st.st_size) - at + 1, 4096), limit)
    }

    /// What a file of mode `mode` is, in words.
    package static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a folder"
        case S_IFREG: return "a file"
        case S_IFSOCK: return "a socket"
        case S_IFCHR, S_IFBLK: return "a device"
        default: return "an unknown kind of file"
        }
    }

    package static func openFailure(_ path: String, what: String, errno err: Int32) -> AirlockError {
        switch err {
        case ENOENT: return .io(.fileNotFound, "\(what) \(path) does not exist; check the path", errno: err)
        case EACCES, EPERM: return .io(.permissionDenied, "cannot read \(what) \(path): permission denied; check its owner and mode", errno: err)
        case EISDIR: return .io(.isADirectory, "\(what) \(path) is a directory; give a file", errno: err)
        default: return .io(.openFailed, "cannot open \(what) \(path)", errno: err)
        }
    }

    /// Reads a whole (small) file, refusing one larger than `limit` bytes. With `notRegular`,
    /// the file is opened without following a symlink and without blocking on a FIFO, and
    /// must be a regular file: otherwise the error `notRegular` makes of what was found ("a
    /// symbolic link", "a FIFO", ...; see `kind`) is thrown.
    package static func read(_ path: String, limit: Int, what: String, notRegular: ((String) -> AirlockError)? = nil) throws -> [UInt8] {
        let strict = notRegular != nil
        let fd = open(path, O_RDONLY | O_CLOEXEC | (strict ? O_NOFOLLOW | O_NONBLOCK : 0))
        guard fd >= 0 else {
            if let notRegular, errno == ELOOP { throw notRegular(kind(S_IFLNK)) }
            throw openFailure(path, what: what, errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AirlockError.io(.readFailed, "cannot stat \(path)", errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw openFailure(path, what: what, errno: EISDIR) }
        if let notRegular, (st.st_mode & S_IFMT) != S_IFREG { throw notRegular(kind(st.st_mode)) }
        return try read(fd: fd, limit: limit, what: "\(what) \(path)")
    }

    /// Reads an open file to its end, refusing more than `limit` bytes (`file-too-large`);
    /// `what` names it in errors.
    package static func read(fd: Int32, limit: Int, what: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AirlockError.io(.readFailed, "cannot read \(what)", errno: errno)
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > limit {
                throw AirlockError(.usage, .fileTooLarge, "\(what) is larger than \(limit) bytes; is it the right file?")
            }
        }
        return out
    }

    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var off = 0
        while off < bytes.count {
            let n = Sys.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                let err = errno
                if err == ENOSPC || err == EDQUOT {
                    throw AirlockError.io(.diskFull, "no space left writing \(path); free some space and run the command again", errno: err)
                }
                throw AirlockError.io(.writeFailed, "cannot write \(path)", errno: err)
            }
            off += n
        }
    }

    /// What every temporary name Airlock makes contains (`.<name>.tmp-<pid>-<random>`), so that
    /// a later command can tell a leftover from a file of its own.
    package static let temporaryMarker = ".tmp-"

    /// A path beside `path` for a temporary file that will be renamed over it.
    package static func temporarySibling(of path: String) -> String {
        let dir: String, base: String
        if let slash = path.lastIndex(of: "/") {
            dir = String(path[...slash])
            base = String(path[path.index(after: slash)...])
        } else {
            dir = ""
            base = path
        }
        return "\(dir).\(base)\(temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it over `path`.
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let tmp = temporarySibling(of: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            let err = errno
            throw AirlockError.io(.createFailed, "cannot create a file in the folder of \(path); check that the folder exists and is writable", errno: err)
        }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
                let err = errno
                close(fd)
                throw AirlockError.io(.writeFailed, "cannot write \(path)", errno: err)
            }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            throw AirlockError.io(.writeFailed, "cannot move the new file into place at \(path)", errno: errno)
        }
        ok = true
        syncParentDirectory(of: path)
    }

    package static func syncParentDirectory(of path: String) {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}

extension FileIO {
    /// SHA-256 of a file's content, streamed (regular files only, no symlink followed).
    package static func sha256(of path: String) throws -> SHA256Digest {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw openFailure(path, what: "file", errno: errno) }
        defer { close(fd) }
        let h = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw AirlockError.io(.readFailed, "cannot read \(path)", errno: errno) }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return h.finish()
    }

    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    package static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package static func fsyncPath(_ path: String, directory: Bool = true) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0))
        guard fd >= 0 else { throw AirlockError.io(.syncFailed, "cannot open \(path) to flush it", errno: errno) }
        defer { close(fd) }
        guard Sys.fsync(fd) == 0 else {
            throw AirlockError.io(.syncFailed, "cannot flush \(path) to disk (the disk may be failing); nothing was switched", errno: errno)
        }
    }

    /// Removes a tree, making read-only folders writable first, without following a symlink
    /// anywhere: every folder is opened relative to its parent with O_NOFOLLOW, so a link
    /// planted inside the tree (or the tree itself replaced by one) is removed, never entered.
    /// Best effort.
    package static func removeTree(_ path: String) {
        let (dir, base) = split(path)
        let parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parent >= 0 else { return }
        defer { close(parent) }
        removeTree(at: parent, base)
    }

    /// Removes the folder `path` when it is empty, relative to its parent opened without
    /// following a link (`rmdir` of the last component only).
    package static func removeEmptyFolder(_ path: String) {
        let (dir, base) = split(path)
        let parent = Sys.open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard parent >= 0 else { return }
        defer { close(parent) }
        _ = Sys.unlinkat(parent, base, AT_REMOVEDIR)
    }

    package static func removeTree(at parent: Int32, _ name: String) {
        removeTree(at: parent, raw: Array(name.utf8CString))
    }

    private static func removeTree(at parent: Int32, raw name: [CChar]) {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                fchmod(fd, 0o700)
                for entry in rawEntries(fd) { removeTree(at: fd, raw: entry) }
                close(fd)
            }
            unlinkat(parent, name, AT_REMOVEDIR)
        } else {
            unlinkat(parent, name, 0)
        }
    }

    /// The names in an open folder (not `.` and `..`); the descriptor stays open and usable.
    package static func entries(_ dirFD: Int32) -> [String] {
        rawEntries(dirFD).map { String(decoding: $0.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    /// The same, as NUL-terminated bytes (a name that is not UTF-8 is still removable).
    private static func rawEntries(_ dirFD: Int32) -> [[CChar]] {
        let dup = fcntl(dirFD, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0, let d = fdopendir(dup) else {
            if dup >= 0 { close(dup) }
            return []
        }
        defer { closedir(d) }
        rewinddir(d)
        var out: [[CChar]] = []
        while let e = readdir(d) {
            let name: [CChar] = withUnsafeBytes(of: e.pointee.d_name) { raw in
                raw.prefix { $0 != 0 }.map { CChar(bitPattern: $0) } + [0]
            }
            if name != [46, 0] && name != [46, 46, 0] { out.append(name) }
        }
        return out
    }

    /// The names in a folder that is not a symlink, or nil when it is missing or not a folder.
    package static func entries(ofDirectory path: String) -> [String]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return entries(fd)
    }

    /// `("/a/b", "c")` for `/a/b/c`.
    package static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }
}

/// Opens files below one folder without following a symlink anywhere below it: each folder on
/// the way is opened relative to its parent with O_NOFOLLOW. The last folder opened is kept,
/// so that a sorted list of paths opens each folder about once.
package final class BeneathOpener {
    private let baseFD: Int32
    private var lastDir = ""
    private var lastFD: Int32 = -1

    package init?(_ base: String) {
        baseFD = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if baseFD < 0 { return nil }
    }

    deinit {
        if lastFD >= 0 && lastFD != baseFD { close(lastFD) }
        close(baseFD)
    }

    /// A read-only descriptor for `rel` (a relative path that passed the path rules), or -1
    /// with errno set (ELOOP or ENOTDIR when a link or a file stands where a folder should).
    package func openFile(_ rel: String) -> Int32 {
        let (dir, name) = rel.contains("/") ? FileIO.split(rel) : ("", rel)
        if dir != lastDir || lastFD < 0 {
            if lastFD >= 0 && lastFD != baseFD { close(lastFD) }
            lastFD = -1
            var fd = baseFD
            for seg in dir.split(separator: "/") {
                let next = openat(fd, String(seg), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                let err = errno
                if fd != baseFD { close(fd) }
                guard next >= 0 else {
                    errno = err
                    return -1
                }
                fd = next
            }
            lastDir = dir
            lastFD = fd
        }
        return openat(lastFD, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    }
}
