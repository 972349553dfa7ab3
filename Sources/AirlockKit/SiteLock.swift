#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The site's one write lock: `flock(LOCK_EX)` on `<root>/.lock`, held by every command that
/// writes. The holder writes its pid and command into the file so that a waiting command can
/// say who holds it. The lock belongs to the open file description: a killed holder releases it.
public final class SiteLock {
    private let fd: Int32
    public let site: Site

    /// Waits up to `timeout` seconds for the lock, then fails naming the holder.
    public init(site: Site, command: String, timeout: Double = 30) throws {
        self.site = site
        try site.prepare()
        try SiteSafety.check(site, writing: true)
        let path = site.path(SiteLayout.lock)
        // The lock file is truncated and written: never through a link, never a FIFO's reader.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            if errno == ELOOP { throw SiteSafety.unexpected(path, "a symbolic link", expected: "its lock file") }
            if errno == EROFS {
                throw AirlockError.io("read-only", "the site root \(site.root) is on a read-only file system; nothing was changed: remount it read-write and run the command again", errno: errno)
            }
            throw AirlockError.io("lock-failed", "cannot open the site lock \(path); check that \(site.root) is writable", errno: errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else {
            close(fd)
            throw SiteSafety.unexpected(path, (st.st_mode & S_IFMT) == S_IFREG ? "a file with \(st.st_nlink) hard links" : SiteSafety.kind(st.st_mode), expected: "its lock file")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let err = errno
                close(fd)
                throw AirlockError.io("lock-failed", "cannot lock \(path)", errno: err)
            }
            if Date() >= deadline {
                var buf = [UInt8](repeating: 0, count: 512)
                let n = pread(fd, &buf, buf.count, 0)
                let holder = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "another airlock process"
                close(fd)
                throw AirlockError(
                    .busy, "site-busy",
                    "the site \(site.root) is in use by \(holder); waited \(timeout < 10 ? String(format: "%.1f", timeout) : String(Int(timeout))) s: try again when it is done (or raise --lock-timeout)")
            }
            usleep(50_000)
        }
        self.fd = fd
        let info = Array("pid \(getpid()) (airlock \(command)) since \(Timestamp.format(Timestamp.now()))\n".utf8)
        ftruncate(fd, 0)
        _ = info.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        cleanStaging()
        Activation.recoverInterruptedChecks(site: site)
    }

    deinit {
        ftruncate(fd, 0)
        close(fd)  // releases the flock
    }

    /// Removes what killed commands left in `.staging/`. An install that streams its bundle
    /// before it takes the lock holds a flock on its own staging folder: that one is in use and
    /// stays; anything else there belongs to a process that is gone. Nothing is followed: the
    /// folders were checked by `SiteSafety`, and entries are removed relative to their folder.
    private func cleanStaging() {
        let staging = open(site.path(SiteLayout.staging), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
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
            let dir = open(site.nameDirectory(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dir >= 0 else { continue }
            for entry in FileIO.entries(dir) where entry.hasPrefix(".") && entry.contains(".tmp-") {
                unlinkat(dir, entry, 0)
            }
            close(dir)
        }
    }
}
