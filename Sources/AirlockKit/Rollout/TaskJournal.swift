import AirlockFormat
import AirlockRollout

#if canImport(Glibc)
import Glibc
#endif

/// The append-only journal of a name's tasks, `<root>/<name>/.serve/tasks.log`, in a line
/// format of its own (task ids are printable ASCII without spaces, so a space separates
/// fields), one line per event:
///
/// ```
/// a <task> <release> <canary id or -> <step> <unix seconds>     first request: the assignment
/// o <task> <1|0 success> <cost> <1|0 intervention> <unix seconds>   the outcome reported
/// x <task> <unix seconds>                                        no outcome by the deadline: a failure
/// ```
///
/// Only `airlock serve` writes it, holding a flock on `.serve/serve.lock` (a second `serve` of
/// the same name is refused). Each line is one `write(2)` with `O_APPEND`, so a `kill -9` loses
/// nothing written and can cut at most the last line, which the next reader drops; `sync()`
/// (each supervision tick) makes them durable against a power loss.
public final class TaskJournal {
    /// One event.
    public enum Event: Sendable, Equatable {
        /// The first request of `task` went to `release`, under canary `canary` (its id as a
        /// number, 0: none) at `step`.
        case assigned(task: String, release: String, canary: UInt64, step: Int, at: Double)
        /// `task` reported `outcome`.
        case reported(task: String, outcome: TaskOutcome, at: Double)
        /// `task` had no outcome by its deadline.
        case expired(task: String, at: Double)
    }

    let path: String
    private var fd: Int32
    private let lockFD: Int32
    private var unsynced = false

    /// Opens (creating) the journal of `name` for appending, after taking the name's serve
    /// lock. Throws `site-busy` when another `airlock serve` holds it, `site-unsafe` for a link
    /// or a file of another owner, and write errors.
    public init(site: Site, name: String) throws {
        let dir = CanaryStore.directory(site: site, name: name)
        try site.ensureDirectory(dir, what: "the rollout state folder of \(name)")
        lockFD = try Self.openSiteFile(dir + "/" + SiteLayout.serveLock, flags: O_RDWR)
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            close(lockFD)
            throw AirlockError(
                .io, .siteBusy, "another airlock serve is serving \(name) on this site (it holds \(dir)/\(SiteLayout.serveLock)); stop it first")
        }
        path = dir + "/" + SiteLayout.taskJournal
        do {
            fd = try Self.openSiteFile(path, flags: O_RDWR | O_APPEND)
        } catch {
            close(lockFD)
            throw error
        }
        // A line a kill cut short is dropped, so that the next line starts on its own.
        let size = lseek(fd, 0, SEEK_END)
        if size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, size - 1) == 1, last != 0x0A { _ = ftruncate(fd, Self.endOfLastLine(fd, size: size)) }
        }
    }

    /// The offset just after the last newline of the first `size` bytes (0 without one),
    /// found by reading backwards 64 KiB at a time.
    static func endOfLastLine(_ fd: Int32, size: off_t) -> off_t {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var end = size
        while end > 0 {
            let start = max(0, end - off_t(chunk.count))
            let want = Int(end - start)
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, start) }
            if n < 0 && errno == EINTR { continue }
            guard n == want else { return 0 }
            if let i = chunk[0..<want].lastIndex(of: 0x0A) { return start + off_t(i) + 1 }
            end = start
        }
        return 0
    }

    deinit {
        _ = Sys.fsync(fd)
        close(fd)
        close(lockFD)
    }

    static func openSiteFile(_ path: String, flags: Int32) throws -> Int32 {
        let fd = Sys.open(path, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            if errno == ELOOP { throw SiteSafety.unexpected(path, "a symbolic link", expected: "a file of its own") }
            throw AirlockError.io(errno == ENOSPC ? .diskFull : .createFailed, "cannot open \(path)", errno: errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1, st.st_uid == geteuid() else {
            close(fd)
            throw SiteSafety.unexpected(path, "not a regular file of the site's owner with one name", expected: "a file of its own")
        }
        return fd
    }

    /// Appends one event (one write). Throws `disk-full` and `write-failed`.
    public func append(_ event: Event) throws {
        var line = Self.line(event)
        line.append(0x0A)
        let size = lseek(fd, 0, SEEK_END)
        do {
            try line.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
        } catch {
            // A short write (a full disk) is cut off again, so that the next line starts on
            // its own and the event, refused to its caller, is not half there.
            if size >= 0 { _ = ftruncate(fd, size) }
            throw error
        }
        unsynced = true
    }

    /// Compacts the journal in one streaming pass: the events `keep` accepts go to a temporary
    /// file beside it, which replaces it (flushed, renamed, mode 0600) when it keeps less than
    /// half of them; otherwise the journal stays as it is. Memory does not grow with the
    /// journal. Returns how many events were kept and read, and whether the journal was
    /// replaced. The serve lock is held throughout.
    public func compact(keep: (Event) -> Bool) throws -> (kept: Int, total: Int, replaced: Bool) {
        let tmp = FileIO.temporarySibling(of: path)
        let out = Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else {
            throw AirlockError.io(errno == ENOSPC ? .diskFull : .createFailed, "cannot create a file beside \(path) to compact it", errno: errno)
        }
        var renamed = false
        defer {
            close(out)
            if !renamed { _ = Sys.unlink(tmp) }
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        var kept = 0
        let (total, _) = try Self.forEach(fd: fd, what: path) { e in
            guard keep(e) else { return }
            kept += 1
            buffer += Self.line(e)
            buffer.append(0x0A)
            if buffer.count >= 1 << 20 {
                try buffer.withUnsafeBytes { try FileIO.writeAll(out, $0, path: tmp) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        guard kept * 2 < total else { return (kept, total, false) }
        try buffer.withUnsafeBytes { try FileIO.writeAll(out, $0, path: tmp) }
        guard Sys.fsync(out) == 0 else { throw AirlockError.io(.writeFailed, "cannot flush \(tmp)", errno: errno) }
        guard Sys.rename(tmp, path) == 0 else { throw AirlockError.io(.writeFailed, "cannot move the compacted journal into place at \(path)", errno: errno) }
        renamed = true
        FileIO.syncParentDirectory(of: path)
        let new = try Self.openSiteFile(path, flags: O_RDWR | O_APPEND)
        close(fd)
        fd = new
        unsynced = false
        return (kept, total, true)
    }

    /// The descriptor to flush when lines were written since the last flush (they count as
    /// flushed from now on; `flushFailed()` says otherwise), nil when there is nothing to flush.
    /// For a caller that flushes off its own thread with `flush(_:)`.
    public func takeUnflushed() -> Int32? {
        guard unsynced else { return nil }
        unsynced = false
        return fd
    }

    /// A flush of `takeUnflushed()`'s descriptor failed: the lines are flushed again next time.
    public func flushFailed() { unsynced = true }

    /// `fsync` of a journal's descriptor; false when it failed.
    public static func flush(_ fd: Int32) -> Bool { Sys.fsync(fd) == 0 }

    /// Makes the lines written so far durable; false when `fsync` failed (they stay to be
    /// flushed again).
    @discardableResult
    public func sync() -> Bool {
        guard unsynced else { return true }
        guard Sys.fsync(fd) == 0 else { return false }
        unsynced = false
        return true
    }

    /// The events of `name`'s journal in order (a last line cut short is dropped; a line that
    /// does not parse is skipped and counted). Reads without the serve lock: `canary status`
    /// reads while `serve` writes.
    public static func read(site: Site, name: String) throws -> (events: [Event], skipped: Int) {
        var events: [Event] = []
        let (_, skipped) = try forEach(site: site, name: name) { events.append($0) }
        return (events, skipped)
    }

    /// Calls `body` with each event of `name`'s journal in order, reading it 1 MiB at a time,
    /// so that memory does not grow with the journal (a replay at start, `canary status`).
    /// Returns the events read and the lines skipped (as `read`). Never follows a link, never
    /// opens anything but a regular file (`site-unsafe`).
    @discardableResult
    public static func forEach(site: Site, name: String, _ body: (Event) throws -> Void) throws -> (events: Int, skipped: Int) {
        let path = CanaryStore.directory(site: site, name: name) + "/" + SiteLayout.taskJournal
        let fd = Sys.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            switch errno {
            case ENOENT: return (0, 0)
            case ELOOP: throw SiteSafety.unexpected(path, FileIO.kind(S_IFLNK), expected: "a file")
            default: throw FileIO.openFailure(path, what: "task journal", errno: errno)
            }
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AirlockError.io(.readFailed, "cannot stat \(path)", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SiteSafety.unexpected(path, FileIO.kind(st.st_mode), expected: "a file") }
        return try forEach(fd: fd, what: path, body)
    }

    /// The longest line the journal can hold (a task id is at most 128 bytes): a longer one is
    /// not a line of this journal, and is skipped without being kept in memory.
    static let maxLineBytes = 4096

    /// Reads the journal open at `fd` from its start with `pread` (its offset untouched), one
    /// event at a time; a last line without its newline (cut by a kill) is dropped.
    static func forEach(fd: Int32, what: String, _ body: (Event) throws -> Void) throws -> (events: Int, skipped: Int) {
        var events = 0
        var skipped = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var carry: [UInt8] = []
        var dropping = false
        var offset: off_t = 0
        func line(_ bytes: ArraySlice<UInt8>) throws {
            if let e = parse(bytes) {
                events += 1
                try body(e)
            } else {
                skipped += 1
            }
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AirlockError.io(.readFailed, "cannot read the task journal \(what)", errno: errno)
            }
            if n == 0 { break }
            offset += off_t(n)
            var start = 0
            while let newline = chunk[start..<n].firstIndex(of: 0x0A) {
                if dropping {
                    dropping = false
                    skipped += 1
                } else if carry.isEmpty {
                    try line(chunk[start..<newline])
                } else {
                    carry += chunk[start..<newline]
                    try line(carry[...])
                }
                carry.removeAll(keepingCapacity: true)
                start = newline + 1
            }
            if !dropping { carry += chunk[start..<n] }
            if carry.count > maxLineBytes {
                carry.removeAll()
                dropping = true
            }
        }
        return (events, skipped)
    }

    package static func line(_ e: Event) -> [UInt8] {
        func t(_ x: Double) -> String { String(format: "%.3f", x) }
        switch e {
        case .assigned(let task, let release, let canary, let step, let at):
            return Array("a \(task) \(release) \(canary == 0 ? "-" : String(canary, radix: 16)) \(step) \(t(at))".utf8)
        case .reported(let task, let o, let at):
            return Array("o \(task) \(o.succeeded ? 1 : 0) \(String(format: "%.6f", o.cost)) \(o.neededIntervention ? 1 : 0) \(t(at))".utf8)
        case .expired(let task, let at):
            return Array("x \(task) \(t(at))".utf8)
        }
    }

    package static func parse(_ bytes: ArraySlice<UInt8>) -> Event? {
        let f = bytes.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard let kind = f.first, f.count >= 3, let at = Double(f[f.count - 1]), at.isFinite else { return nil }
        switch (kind, f.count) {
        case ("a", 6):
            guard let step = Int(f[4]), step >= 0 else { return nil }
            let canary = f[3] == "-" ? 0 : UInt64(f[3], radix: 16)
            guard let canary else { return nil }
            return .assigned(task: f[1], release: f[2], canary: canary, step: step, at: at)
        case ("o", 6):
            guard let cost = Double(f[3]), ["0", "1"].contains(f[2]), ["0", "1"].contains(f[4]) else { return nil }
            return .reported(task: f[1], outcome: TaskOutcome(succeeded: f[2] == "1", cost: cost, neededIntervention: f[4] == "1"), at: at)
        case ("x", 3):
            return .expired(task: f[1], at: at)
        default:
            return nil
        }
    }
}
