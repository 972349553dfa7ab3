import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The site's one write lock: `flock(LOCK_EX)` on `<root>/.lock`, held by every command that
/// writes. The holder writes its pid and command into the file so that a waiting command can
/// say who holds it. The lock belongs to the open file description: a killed holder releases it.
public final class SiteLock {
    private let fd: Int32
    /// The site whose lock this is.
    public let site: Site

    /// Waits up to `timeout` seconds for the lock, then fails naming the holder (`site-busy`).
    /// It only locks: a writing command starts with `Site.lockForWriting`, which also checks the
    /// root and recovers what a killed command left. Throws `site-busy`, `site-unsafe` (the
    /// lock file is a link, a FIFO or has other names), `read-only` and `lock-failed`.
    public init(site: Site, command: String, timeout: Double = 30) throws {
        self.site = site
        let path = site.path(SiteLayout.lock)
        // The lock file is truncated and written: never through a link, never a FIFO's reader.
        let fd = Sys.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            if errno == ELOOP { throw SiteSafety.unexpected(path, "a symbolic link", expected: "its lock file") }
            if errno == EROFS {
                throw AirlockError.io(
                    .readOnly, "the site root \(site.root) is on a read-only file system; nothing was changed: remount it read-write and run the command again",
                    errno: errno)
            }
            throw AirlockError.io(.lockFailed, "cannot open the site lock \(path); check that \(site.root) is writable", errno: errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else {
            close(fd)
            throw SiteSafety.unexpected(
                path, (st.st_mode & S_IFMT) == S_IFREG ? "a file with \(st.st_nlink) hard links" : SiteSafety.kind(st.st_mode), expected: "its lock file")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let err = errno
                close(fd)
                throw AirlockError.io(.lockFailed, "cannot lock \(path)", errno: err)
            }
            if Date() >= deadline {
                var buf = [UInt8](repeating: 0, count: 512)
                let n = pread(fd, &buf, buf.count, 0)
                let holder = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "another airlock process"
                close(fd)
                throw AirlockError(
                    .busy, .siteBusy,
                    "the site \(site.root) is in use by \(holder); waited \(timeout < 10 ? String(format: "%.1f", timeout) : String(Int(timeout))) s: try again when it is done (or raise --lock-timeout)"
                )
            }
            usleep(50_000)
        }
        self.fd = fd
        let info = Array("pid \(getpid()) (airlock \(command)) since \(Timestamp.format(Timestamp.now()))\n".utf8)
        ftruncate(fd, 0)
        _ = info.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit {
        ftruncate(fd, 0)
        close(fd)  // releases the flock
    }
}
