import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// `<root>/.alerts.jsonl` (`SiteLayout.alerts`): every alert the site raised, one canonical JSON
/// object a line, appended whatever else happens to the alert (a webhook or command that fails
/// does not lose it).
///
/// Each line is written by one `write` to a file opened with O_APPEND, so concurrent writers do
/// not interleave their lines, and flushed before `append` returns. The file is not
/// hash-chained (the history is the site's record; this is a log for people and their tools),
/// but it is one of the site's files: a regular file of the site's owner, with one name, never
/// followed through a link (`SiteSafety` checks it too).
public enum AlertLog {
    /// Appends `alert` as one line: `CanonicalJSON.encode(alert)` and a newline. Creates the file
    /// (0640) when it is missing; refuses (`site-unsafe`) a symbolic link, a FIFO or anything but
    /// a regular file at its path, and a file of another owner, writable by others or with a
    /// second name, without writing to it. When the file does not end with a newline (a write
    /// cut short by a full disk), the line starts with one, so that it stays a line of its own.
    /// Throws `site-unsafe`, `write-failed`, `disk-full` and `sync-failed`.
    public static func append(site: Site, _ alert: JSONValue) throws {
        let path = site.path(SiteLayout.alerts)
        // Read-write only to look at the last byte; O_NONBLOCK so that a FIFO planted there
        // can not keep the caller waiting (it is refused below).
        let fd = Sys.open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o640)
        guard fd >= 0 else {
            let err = errno
            switch err {
            case ELOOP: throw SiteSafety.unexpected(path, FileIO.kind(S_IFLNK), expected: "its alert log (a file)")
            case ENXIO: throw SiteSafety.unexpected(path, "a socket or a FIFO", expected: "its alert log (a file)")
            case ENOSPC, EDQUOT: throw AirlockError.io(.diskFull, "no space left to create the site's alert log \(path); free some space", errno: err)
            default:
                throw AirlockError.io(
                    .writeFailed, "cannot open the site's alert log \(path); check that the site root exists and that this user owns it", errno: err)
            }
        }
        defer { close(fd) }
        let st = try checked(fd, path: path, owner: geteuid())
        var line: [UInt8] = []
        if st.st_size > 0 {
            var last: UInt8 = 0
            guard pread(fd, &last, 1, st.st_size - 1) == 1 else {
                throw AirlockError.io(.writeFailed, "cannot read the end of the site's alert log \(path)", errno: errno)
            }
            if last != 0x0A { line.append(0x0A) }
        }
        line += CanonicalJSON.encode(alert)
        line.append(0x0A)
        try line.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
        guard Sys.fsync(fd) == 0 else {
            throw AirlockError.io(.syncFailed, "cannot flush the site's alert log \(path) to disk (the disk may be failing)", errno: errno)
        }
        // The file may be new: its name must survive a power loss too.
        if st.st_size == 0 { FileIO.syncParentDirectory(of: path) }
    }

    /// The last `limit` alerts, oldest first (none when the log does not exist or `limit` is not
    /// positive). The file is read from its end, only as far back as needed. A line that is not
    /// JSON (a write cut short) is skipped, a torn last line included. Throws `site-unsafe` (the
    /// path is a link, a FIFO or anything but a regular file), `open-failed`,
    /// `permission-denied` and `read-failed`.
    public static func read(site: Site, limit: Int) throws -> [JSONValue] {
        guard limit > 0 else { return [] }
        let path = site.path(SiteLayout.alerts)
        let fd = Sys.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT { return [] }
            if err == ELOOP { throw SiteSafety.unexpected(path, FileIO.kind(S_IFLNK), expected: "its alert log (a file)") }
            throw FileIO.openFailure(path, what: "the site's alert log", errno: err)
        }
        defer { close(fd) }
        let st = try checked(fd, path: path, owner: nil)
        // Chunks from the end, each twice the last, until `limit` alerts are in hand. `bytes`
        // holds the file from `start` to its end; the text before its first newline may be the
        // end of an earlier line, and is not used unless `start` is 0.
        var bytes: [UInt8] = []
        var start = off_t(st.st_size)
        var chunk: off_t = 64 << 10
        var alerts: [JSONValue] = []
        while start > 0 {
            let from = max(0, start - chunk)
            var buf = [UInt8](repeating: 0, count: Int(start - from))
            var done = 0
            while done < buf.count {
                let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, from + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw AirlockError.io(.readFailed, "cannot read the site's alert log \(path)", errno: n < 0 ? errno : EIO) }
                done += n
            }
            bytes = buf + bytes
            start = from
            chunk *= 2
            var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: true)
            if start > 0 && !lines.isEmpty { lines.removeFirst() }
            alerts = lines.compactMap { try? JSONParser.parse(Array($0)) }
            if alerts.count >= limit { break }
        }
        return Array(alerts.suffix(limit))
    }

    /// The open log's status, after checking that it is a regular file with one name, not
    /// writable by others, and (`owner`) of that owner.
    private static func checked(_ fd: Int32, path: String, owner: uid_t?) throws -> stat {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AirlockError.io(.readFailed, "cannot examine the site's alert log \(path)", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SiteSafety.unexpected(path, FileIO.kind(st.st_mode), expected: "its alert log (a file)") }
        if let owner {
            try SiteSafety.checkOwnerAndMode(path, st, owner: owner)
            if st.st_nlink != 1 {
                throw SiteSafety.unexpected(path, "a file with \(st.st_nlink) hard links", expected: "its alert log with no other name")
            }
        }
        return st
    }
}
