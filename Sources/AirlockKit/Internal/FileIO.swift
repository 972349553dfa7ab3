import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX file helpers that report failures as `AirlockError`s naming the file.
enum FileIO {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func openFailure(_ path: String, what: String, errno err: Int32) -> AirlockError {
        switch err {
        case ENOENT: return .io("file-not-found", "\(what) \(path) does not exist; check the path", errno: err)
        case EACCES, EPERM: return .io("permission-denied", "cannot read \(what) \(path): permission denied; check its owner and mode", errno: err)
        case EISDIR: return .io("is-a-directory", "\(what) \(path) is a directory; give a file", errno: err)
        default: return .io("open-failed", "cannot open \(what) \(path)", errno: err)
        }
    }

    /// Reads a whole (small) file, refusing one larger than `limit` bytes.
    static func read(_ path: String, limit: Int, what: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw openFailure(path, what: what, errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AirlockError.io("read-failed", "cannot stat \(path)", errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw openFailure(path, what: what, errno: EISDIR) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AirlockError.io("read-failed", "cannot read \(what) \(path)", errno: errno)
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > limit {
                throw AirlockError(.usage, "file-too-large", "\(what) \(path) is larger than \(limit) bytes; is it the right file?")
            }
        }
        return out
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var off = 0
        while off < bytes.count {
            let n = Sys.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                let err = errno
                if err == ENOSPC || err == EDQUOT {
                    throw AirlockError.io("disk-full", "no space left writing \(path); free some space and run the command again", errno: err)
                }
                throw AirlockError.io("write-failed", "cannot write \(path)", errno: err)
            }
            off += n
        }
    }

    /// A path beside `path` for a temporary file that will be renamed over it.
    static func temporarySibling(of path: String) -> String {
        let dir: String, base: String
        if let slash = path.lastIndex(of: "/") {
            dir = String(path[...slash])
            base = String(path[path.index(after: slash)...])
        } else {
            dir = ""
            base = path
        }
        return "\(dir).\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it over `path`.
    static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let tmp = temporarySibling(of: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            let err = errno
            throw AirlockError.io("create-failed", "cannot create a file in the folder of \(path); check that the folder exists and is writable", errno: err)
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
                throw AirlockError.io("write-failed", "cannot write \(path)", errno: err)
            }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            throw AirlockError.io("write-failed", "cannot move the new file into place at \(path)", errno: errno)
        }
        ok = true
        syncParentDirectory(of: path)
    }

    static func syncParentDirectory(of path: String) {
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
    static func sha256(of path: String) throws -> SHA256Digest {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw openFailure(path, what: "file", errno: errno) }
        defer { close(fd) }
        let h = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw AirlockError.io("read-failed", "cannot read \(path)", errno: errno) }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return h.finish()
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func fsyncPath(_ path: String, directory: Bool = true) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0))
        guard fd >= 0 else { throw AirlockError.io("sync-failed", "cannot open \(path) to flush it", errno: errno) }
        defer { close(fd) }
        guard Sys.fsync(fd) == 0 else {
            throw AirlockError.io("sync-failed", "cannot flush \(path) to disk (the disk may be failing); nothing was switched", errno: errno)
        }
    }

    /// Removes a tree, making read-only folders writable first. Best effort.
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o755)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                removeTree(path + "/" + name)
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
