import AirlockFormat
import AirlockRollout

#if canImport(Glibc)
import Glibc
#endif

/// A name's task recording (docs/replay.md, "Recording"): opt-in, sampled by task, kept in
/// `<root>/<name>/.serve/recordings/` as gzip-compressed JSON lines, never past its size cap
/// nor its retention.
public struct RecordingSettings: Sendable, Equatable, Codable {
    /// The share of tasks recorded, 0 (exclusive) to 1.
    public var sample: Double
    /// The most the recordings of the name take on disk, compressed.
    public var maxBytes: Int64
    /// Recordings older than this many days are deleted.
    public var retentionDays: Int
    /// 32 random bytes in hex: which tasks are sampled, unpredictable from their ids.
    public var salt: String
    /// When recording was turned on.
    public var since: String
    /// Recording is on; off, the settings stay so that the retention is still enforced on what
    /// was recorded.
    public var enabled = true

    /// The defaults of `airlock record on`.
    public static let defaultMaxBytes: Int64 = 1 << 30
    /// The defaults of `airlock record on`.
    public static let defaultRetentionDays = 7

    enum CodingKeys: String, CodingKey {
        case sample, salt, since
        case maxBytes = "max_bytes"
        case retentionDays = "retention_days"
        case enabled = "on"
    }

    /// The settings given (on).
    public init(sample: Double, maxBytes: Int64, retentionDays: Int, salt: String, since: String, enabled: Bool = true) {
        self.sample = sample
        self.maxBytes = maxBytes
        self.retentionDays = retentionDays
        self.salt = salt
        self.since = since
        self.enabled = enabled
    }

    /// Decodes the settings file (`on` is true when absent).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sample = try c.decode(Double.self, forKey: .sample)
        maxBytes = try c.decode(Int64.self, forKey: .maxBytes)
        retentionDays = try c.decode(Int.self, forKey: .retentionDays)
        salt = try c.decode(String.self, forKey: .salt)
        since = try c.decode(String.self, forKey: .since)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
    }

    /// Whether `task` is recorded: the first 8 bytes of SHA-256(salt, task id) below the share
    /// (never the process-seeded `Hasher`), so the same task is sampled by every process.
    public func samples(_ task: String) -> Bool {
        guard enabled else { return false }
        if sample >= 1 { return true }
        let digest = SHA256Digest.of(Array(salt.utf8) + [0] + Array(task.utf8)).bytes
        let x = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(x) < sample * 18_446_744_073_709_551_616.0
    }
}

/// Turns a name's recording on and off, and deletes what it recorded.
public enum RecordingStore {
    /// `<root>/<name>/.serve/recording.json`: the settings while recording is on.
    public static let settingsFile = "recording.json"
    /// `<root>/<name>/.serve/recordings/`: the recorded segments.
    public static let folder = "recordings"

    /// The folder of the name's recordings.
    public static func directory(site: Site, name: String) -> String { CanaryStore.directory(site: site, name: name) + "/" + folder }

    /// The name's recording settings (`enabled` false once turned off), nil when recording was
    /// never turned on. Throws `site-unsafe` and `state-corrupt`.
    public static func load(site: Site, name: String) throws -> RecordingSettings? {
        let path = CanaryStore.directory(site: site, name: name) + "/" + settingsFile
        guard FileIO.exists(path) else { return nil }
        let bytes = try FileIO.read(path, limit: 1 << 16, what: "recording settings", siteFile: true)
        do {
            return try JSONCoding.decoder.decode(RecordingSettings.self, from: bytes)
        } catch {
            throw AirlockError(
                .io, .stateCorrupt, "\(path) is not recording settings Airlock wrote (\(error)); turn recording on again with `airlock record on`")
        }
    }

    /// Turns recording of `name` on (or changes its settings), under the site lock, logged in
    /// the history. Throws `name-unknown` and `record-invalid` for settings out of range.
    @discardableResult
    public static func on(
        site: Site, name: String, sample: Double, maxBytes: Int64 = RecordingSettings.defaultMaxBytes,
        retentionDays: Int = RecordingSettings.defaultRetentionDays, lockTimeout: Double = 30
    ) throws -> RecordingSettings {
        guard sample > 0, sample <= 1 else { throw AirlockError(.usage, .recordInvalid, "--sample must be above 0% and at most 100%") }
        guard maxBytes >= 1 << 20 else { throw AirlockError(.usage, .recordInvalid, "--max-mb must be at least 1") }
        guard (1...3650).contains(retentionDays) else { throw AirlockError(.usage, .recordInvalid, "--retention-days must be from 1 to 3650") }
        let lock = try site.lockForWriting(command: "record on", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        try site.requireInstalled(name)
        var random = SystemRandomNumberGenerator()
        let salt = SHA256Digest(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }).hex
        // Settings that do not read (damaged by hand) are replaced, and the history says so.
        let old: RecordingSettings?
        var replaced = false
        do { old = try load(site: site, name: name) } catch let e as AirlockError where e.code == ErrorCode.stateCorrupt.rawValue {
            old = nil
            replaced = true
        }
        let settings = RecordingSettings(
            sample: sample, maxBytes: maxBytes, retentionDays: retentionDays, salt: old?.salt ?? salt,
            since: old?.since ?? Timestamp.format(Timestamp.now()))
        let dir = CanaryStore.directory(site: site, name: name)
        try site.ensureDirectory(dir, what: "the rollout state folder of \(name)")
        try FileIO.writeAtomically(dir + "/" + settingsFile, JSONCoding.encoder.encode(settings), mode: 0o600)
        try History.append(
            site, action: "record-on", name: name,
            [
                "sample": .number(EvalAttestation.decimal(sample)), "max_bytes": .integer(Int(maxBytes)),
                "retention_days": .integer(retentionDays), "replaced_damaged_settings": .bool(replaced),
            ])
        return settings
    }

    /// Turns recording of `name` off, under the site lock; what was recorded stays until its
    /// retention (still enforced, by `serve` and by the readers) or `purge`. Settings that do
    /// not read are removed. Returns whether it was on.
    @discardableResult
    public static func off(site: Site, name: String, lockTimeout: Double = 30) throws -> Bool {
        let lock = try site.lockForWriting(command: "record off", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        try site.requireInstalled(name)
        let path = CanaryStore.directory(site: site, name: name) + "/" + settingsFile
        let current: RecordingSettings?
        do { current = try load(site: site, name: name) } catch let e as AirlockError where e.code == ErrorCode.stateCorrupt.rawValue {
            guard Sys.unlink(path) == 0 || errno == ENOENT else { throw AirlockError.io(.writeFailed, "cannot remove \(path)", errno: errno) }
            FileIO.syncParentDirectory(of: path)
            try History.append(site, action: "record-off", name: name, ["removed_damaged_settings": .bool(true)])
            return false
        }
        guard var settings = current, settings.enabled else { return false }
        settings.enabled = false
        try FileIO.writeAtomically(path, JSONCoding.encoder.encode(settings), mode: 0o600)
        try History.append(site, action: "record-off", name: name)
        return true
    }

    /// Deletes every recording of `name`, under the site lock (a running `serve` starts a new
    /// segment). Returns the segments and bytes deleted.
    public static func purge(site: Site, name: String, lockTimeout: Double = 30) throws -> (segments: Int, bytes: Int64) {
        let lock = try site.lockForWriting(command: "record purge", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        try site.requireInstalled(name)
        let dir = directory(site: site, name: name)
        // Never through a link: the folders must be the site owner's own.
        try SiteSafety.expect(CanaryStore.directory(site: site, name: name), S_IFDIR, owner: geteuid(), what: "the rollout state folder of \(name)")
        try SiteSafety.expect(dir, S_IFDIR, owner: geteuid(), what: "the recordings folder of \(name)")
        var segments = 0
        var bytes: Int64 = 0
        for s in RecordingWriter.segments(dir) {
            bytes += s.size
            if Sys.unlink(dir + "/" + s.file) == 0 { segments += 1 }
        }
        FileIO.syncParentDirectory(of: dir + "/x")
        try History.append(site, action: "record-purge", name: name, ["segments": .integer(segments), "bytes": .integer(Int(bytes))])
        return (segments, bytes)
    }
}

/// Appends a name's recorded events, each a JSON line compressed as a gzip member of its own,
/// to segment files of `RecordingSettings.maxBytes / 8` at most; deletes the oldest segments to
/// stay under the cap and the ones past the retention. Only `airlock serve` writes (holding
/// the name's serve lock), from one thread at a time; every process starts a segment of its
/// own, so a line a kill cut short is only ever at the end of a segment.
public final class RecordingWriter {
    /// A segment file: `<unix milliseconds>-<sequence>.jsonl.gz`.
    public struct Segment: Sendable, Equatable {
        /// Its file name in the folder.
        public var file: String
        /// Its size in bytes.
        public var size: Int64
        /// When it was started (unix seconds, from its name).
        public var started: Double
    }

    let directory: String
    private var settings: RecordingSettings
    private var current: (fd: Int32, segment: Segment)?
    private var others: [Segment]
    private var sequence = 0
    private var dirty = false

    /// Opens (creating, 0700) the folder of `name`'s recordings. Throws `site-unsafe` for a
    /// folder that is a link or another user's.
    public init(site: Site, name: String, settings: RecordingSettings) throws {
        directory = RecordingStore.directory(site: site, name: name)
        if Sys.mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw AirlockError.io(errno == ENOSPC ? .diskFull : .writeFailed, "cannot create \(directory)", errno: errno)
        }
        try SiteSafety.expect(directory, S_IFDIR, owner: geteuid(), what: "the recordings folder of \(name)")
        self.settings = settings
        others = Self.segments(directory)
    }

    deinit { closeCurrent() }

    /// The segments in `dir`, oldest first (files of other names are not Airlock's and are
    /// left alone).
    public static func segments(_ dir: String) -> [Segment] {
        (FileIO.entries(ofDirectory: dir) ?? []).compactMap { file -> Segment? in
            guard file.hasSuffix(".jsonl.gz"), let ms = Int64(file.prefix { $0 != "-" }) else { return nil }
            var st = stat()
            guard lstat(dir + "/" + file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            return Segment(file: file, size: Int64(st.st_size), started: Double(ms) / 1000)
        }.sorted { ($0.started, $0.file) < ($1.started, $1.file) }
    }

    /// The bytes all segments take.
    public var totalBytes: Int64 { others.reduce(0) { $0 + $1.size } + (current?.segment.size ?? 0) }

    /// New settings (a cap or a retention changed by `airlock record on`).
    public func adopt(_ s: RecordingSettings) {
        settings = s
        enforce(adding: 0)
    }

    private var segmentLimit: Int64 { max(64 << 10, settings.maxBytes / 8) }

    /// Appends one line (`line` without its newline). Throws `disk-full` and `write-failed`;
    /// a line cut short by a full disk is removed again.
    public func append(_ line: [UInt8]) throws {
        let member = Gzip.member(line + [0x0A])
        guard Int64(member.count) <= segmentLimit else {
            throw AirlockError(.io, .writeFailed, "a recorded event of \(member.count) bytes compressed is larger than a segment (\(segmentLimit)); dropped")
        }
        // `record purge` unlinked the open segment: a new one, so that nothing goes to a file
        // nobody can read.
        if let c = current {
            var st = stat()
            if fstat(c.fd, &st) != 0 || st.st_nlink == 0 {
                close(c.fd)
                current = nil
                others = Self.segments(directory)
            }
        }
        // A segment holds a day at most, so that the retention deletes by the day.
        if let c = current, c.segment.size + Int64(member.count) > segmentLimit || c.segment.started < Self.wallNow() - 86_400 { closeCurrent() }
        enforce(adding: Int64(member.count))
        if current == nil { try openSegment() }
        guard let c = current else { return }
        let path = directory + "/" + c.segment.file
        do {
            try member.withUnsafeBytes { try FileIO.writeAll(c.fd, $0, path: path) }
        } catch {
            _ = ftruncate(c.fd, off_t(c.segment.size))
            throw error
        }
        current!.segment.size += Int64(member.count)
        dirty = true
    }

    /// Deletes segments past the retention, then the oldest until `adding` more bytes fit
    /// under the cap (the current segment last).
    public func enforce(adding: Int64, now: Double = RecordingWriter.wallNow()) {
        let horizon = now - Double(settings.retentionDays) * 86_400
        while let oldest = others.first, oldest.started < horizon || totalBytes + adding > settings.maxBytes {
            _ = Sys.unlink(directory + "/" + oldest.file)
            others.removeFirst()
        }
        if let c = current, c.segment.started < horizon || totalBytes + adding > settings.maxBytes {
            closeCurrent()
            _ = Sys.unlink(directory + "/" + c.segment.file)
            others.removeAll { $0.file == c.segment.file }
        }
    }

    /// Makes the current segment durable, when something was written since the last time.
    public func sync() {
        guard dirty, let c = current else { return }
        _ = Sys.fsync(c.fd)
        dirty = false
    }

    /// Unix time in seconds, to the nanosecond the clock gives.
    public static func wallNow() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private func openSegment() throws {
        let now = Self.wallNow()
        sequence += 1
        let file = "\(Int64(now * 1000))-\(getpid())-\(sequence).jsonl.gz"
        let path = directory + "/" + file
        // A name nobody could have taken first: the folder is the site owner's alone (0700).
        let fd = Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_APPEND, 0o600)
        guard fd >= 0 else { throw AirlockError.io(errno == ENOSPC ? .diskFull : .createFailed, "cannot create \(path)", errno: errno) }
        FileIO.syncParentDirectory(of: path)
        current = (fd, Segment(file: file, size: 0, started: now))
    }

    private func closeCurrent() {
        guard let c = current else { return }
        _ = Sys.fsync(c.fd)
        close(c.fd)
        others.append(c.segment)
        current = nil
    }
}

/// A recorded task: its exchanges (requests and answers, with the tool calls made while
/// answering), in order, and its outcome once reported.
public struct RecordedTask: Sendable, Equatable {
    /// The task's id.
    public var task: String
    /// Each exchange as recorded: `{"at", "release", "request": {"method", "path",
    /// "content_type", "body" | "body_base64"}, "response": {"status", "content_type", "body" |
    /// "body_base64", "truncated"}, "tool_calls": [{"tool", "arguments", "status", "result",
    /// "error", "ms"}]}`.
    public var exchanges: [JSONValue]
    /// `{"success", "cost", "intervention", "release"}`, nil without a report.
    public var outcome: JSONValue?

    /// The release that served the task's first exchange.
    public var release: String? { exchanges.first?.objectValue?["release"]?.stringValue }

    /// One line of an exported task file (`airlock record export`).
    public var json: JSONValue {
        .object(["task": .string(task), "exchanges": .array(exchanges), "outcome": outcome ?? .null])
    }

    /// The tool calls of every exchange, in order.
    public var toolCalls: [[String: JSONValue]] {
        exchanges.flatMap { $0.objectValue?["tool_calls"]?.arrayValue ?? [] }.compactMap(\.objectValue)
    }
}

/// Reads recordings: the segments `airlock serve` wrote for a name, or a file of tasks
/// `airlock record export` wrote.
public enum RecordingReader {
    /// The longest line read (an exchange holds at most a 1 MiB request, a 1 MiB answer and
    /// the tool calls, each result at most 1 MiB, escaped).
    public static let maxLineBytes = 64 << 20

    /// What reading the site's recordings of a name found.
    public struct Read: Sendable {
        /// The tasks, in the order their first exchange was recorded.
        public var tasks: [RecordedTask]
        /// Lines a kill or a full disk cut short at the end of a segment (the task in flight
        /// then), dropped.
        public var dropped: Int
        /// The segments read.
        public var segments: Int
    }

    /// Reads every segment of `name`'s recordings, oldest first. A line cut short at the end
    /// of a segment is dropped and counted; any other damage throws `recording-damaged`
    /// naming the file and the line.
    /// With `last`, only the last `last` tasks (by their first exchange) are kept as it reads:
    /// memory holds those, and the ids of the tasks dropped.
    public static func read(site: Site, name: String, last: Int? = nil) throws -> Read {
        let dir = RecordingStore.directory(site: site, name: name)
        var builder = Builder(limit: last)
        var dropped = 0
        // Past the retention is not read, whether serve deleted it yet or not.
        let retention = (try? RecordingStore.load(site: site, name: name))??.retentionDays
        let horizon = retention.map { RecordingWriter.wallNow() - Double($0) * 86_400 } ?? -.infinity
        let segments = RecordingWriter.segments(dir).filter { $0.started >= horizon }
        for s in segments {
            let path = dir + "/" + s.file
            let fd = Sys.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                if errno == ENOENT { continue }  // deleted meanwhile (the cap, the retention)
                throw FileIO.openFailure(path, what: "recording", errno: errno)
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid() else {
                throw SiteSafety.unexpected(path, "not a regular file of the site's owner", expected: "a recording segment")
            }
            let damage = try Gzip.forEachLine(fd: fd, maxLineBytes: maxLineBytes) { number, line in
                try builder.event(line, at: "\(path):\(number)")
            }
            switch damage {
            case nil: break
            case .truncated: dropped += 1
            case .corrupt(let why): throw damaged("\(path): \(why)")
            }
        }
        return Read(tasks: builder.kept, dropped: dropped, segments: segments.count)
    }

    /// Reads a file of tasks (one JSON object a line, as `RecordedTask.json`; gzip-compressed
    /// or not), strictly: a line that is not a task, a line cut short, or bytes that are not
    /// gzip throw `recording-damaged` naming the line.
    public static func readTasks(file: String) throws -> [RecordedTask] {
        let fd = Sys.open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIO.openFailure(file, what: "recorded tasks", errno: errno) }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 2)
        let gz = pread(fd, &magic, 2, 0) == 2 && magic == [0x1F, 0x8B]
        var tasks: [RecordedTask] = []
        var seen: Set<String> = []
        var count = 0
        func take(_ number: Int, _ line: [UInt8]) throws {
            count = number
            if line.isEmpty { return }
            guard let v = try? JSONParser.parse(line), let o = v.objectValue, let t = try? task(o) else {
                throw damaged(
                    "\(file):\(number) is not a recorded task (an object with \"task\", \"exchanges\" and \"outcome\", as `airlock record export` writes)")
            }
            guard seen.insert(t.task).inserted else { throw damaged("\(file):\(number) repeats the task \(t.task)") }
            tasks.append(t)
        }
        if gz {
            switch try Gzip.forEachLine(fd: fd, maxLineBytes: maxLineBytes, take) {
            case nil: break
            case .truncated: throw damaged("\(file) is cut short after line \(count): the file is incomplete; export it again")
            case .corrupt(let why): throw damaged("\(file): \(why)")
            }
        } else {
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: FileIO.readBufferSize(fd, from: 0))
            var number = 0
            while true {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AirlockError.io(.readFailed, "cannot read \(file)", errno: errno)
                }
                if n == 0 { break }
                var from = 0
                while from < n {
                    let newline = chunk[from..<n].firstIndex(of: 0x0A)
                    let upTo = newline ?? n
                    if pending.count + (upTo - from) > maxLineBytes { throw damaged("\(file):\(number + 1) is longer than \(maxLineBytes) bytes") }
                    pending += chunk[from..<upTo]
                    from = upTo
                    if newline != nil {
                        number += 1
                        try take(number, pending)
                        pending.removeAll(keepingCapacity: true)
                        from += 1
                    }
                }
            }
            if !pending.isEmpty { throw damaged("\(file):\(number + 1) has no newline at its end: the file is cut short; export it again") }
        }
        return tasks
    }

    static func damaged(_ what: String) -> AirlockError { AirlockError(.io, .recordingDamaged, what) }

    /// A task line's task, or nil when it is not one.
    static func task(_ o: [String: JSONValue]) throws -> RecordedTask? {
        guard Set(o.keys) == ["task", "exchanges", "outcome"], let id = o["task"]?.stringValue, RecordingEvents.isTaskID(id),
            let exchanges = o["exchanges"]?.arrayValue, !exchanges.isEmpty, exchanges.allSatisfy(RecordingEvents.isExchange)
        else { return nil }
        let outcome = o["outcome"].flatMap { $0 == .null ? nil : $0 }
        return RecordedTask(task: id, exchanges: exchanges, outcome: outcome)
    }

    /// Groups events by task as they are read.
    struct Builder {
        /// Tasks at most (nil: all).
        var limit: Int?
        /// The tasks in the order of their first exchange; the first `start` were dropped.
        var tasks: [RecordedTask?] = []
        var start = 0
        var index: [String: Int] = [:]
        /// Tasks dropped for the limit: their later events are not tasks of their own.
        var gone: Set<String> = []

        init(limit: Int? = nil) { self.limit = limit }

        var kept: [RecordedTask] { tasks[start...].compactMap { $0 } }

        mutating func event(_ line: [UInt8], at place: String) throws {
            guard let v = try? JSONParser.parse(line), let o = v.objectValue, let kind = o["event"]?.stringValue,
                let id = o["task"]?.stringValue, RecordingEvents.isTaskID(id)
            else { throw RecordingReader.damaged("\(place) is not a recording event") }
            switch kind {
            case "exchange":
                guard let x = o["exchange"], RecordingEvents.isExchange(x) else {
                    throw RecordingReader.damaged("\(place) is an exchange without its request and response")
                }
                if let i = index[id] {
                    tasks[i]!.exchanges.append(x)
                } else if !gone.contains(id) {
                    index[id] = tasks.count
                    tasks.append(RecordedTask(task: id, exchanges: [x], outcome: nil))
                    if let limit, tasks.count - start > limit {
                        let old = tasks[start]!.task
                        tasks[start] = nil
                        index[old] = nil
                        gone.insert(old)
                        start += 1
                        // The dropped slots are given back now and then.
                        if start > 4096 && start * 2 > tasks.count {
                            tasks.removeFirst(start)
                            for (k, v) in index { index[k] = v - start }
                            start = 0
                        }
                    }
                }
            case "outcome":
                // An outcome of a task whose exchanges are gone (past the cap) is no task.
                guard let i = index[id], let outcome = o["outcome"], outcome.objectValue != nil else { return }
                tasks[i]!.outcome = outcome
            default:
                throw RecordingReader.damaged("\(place) is an event of an unknown kind \"\(kind)\"; was it written by a newer Airlock?")
            }
        }
    }
}

/// The event lines of a recording: `{"event": "exchange", "task", "exchange": {...}}` and
/// `{"event": "outcome", "task", "outcome": {...}}` (docs/replay.md, "Recording").
public enum RecordingEvents {
    /// The line of an exchange.
    public static func exchange(task: String, _ exchange: JSONValue) -> [UInt8] {
        CanonicalJSON.encode(.object(["event": .string("exchange"), "task": .string(task), "exchange": exchange]))
    }

    /// The line of an outcome.
    public static func outcome(task: String, release: String, _ outcome: TaskOutcome) -> [UInt8] {
        CanonicalJSON.encode(
            .object([
                "event": .string("outcome"), "task": .string(task),
                "outcome": .object([
                    "release": .string(release), "success": .bool(outcome.succeeded), "cost": .number(EvalAttestation.decimal(outcome.cost)),
                    "intervention": .bool(outcome.neededIntervention),
                ]),
            ]))
    }

    /// 1 to 128 printable ASCII characters, no space (as `X-Task-Id`).
    public static func isTaskID(_ s: String) -> Bool { (1...128).contains(s.utf8.count) && s.utf8.allSatisfy { (0x21...0x7E).contains($0) } }

    /// Whether `x` has the shape of an exchange: a request with a method and a path, a
    /// response with a status.
    public static func isExchange(_ x: JSONValue) -> Bool {
        guard let o = x.objectValue, let request = o["request"]?.objectValue, let response = o["response"]?.objectValue,
            request["method"]?.stringValue != nil, request["path"]?.stringValue != nil, response["status"]?.unsignedInteger(max: 999) != nil
        else { return false }
        if let calls = o["tool_calls"] { return calls.arrayValue?.allSatisfy { $0.objectValue?["tool"]?.stringValue != nil } ?? false }
        return true
    }
}

/// Writes a file of recorded tasks (`airlock record export`).
public enum RecordingExport {
    /// Writes `tasks`, one `RecordedTask.json` a line, to `path`, which must not exist (a name
    /// ending in `.gz`: each line a gzip member). Throws `create-failed` (it exists, or cannot
    /// be made), `disk-full` and `write-failed`; a file left half written is removed.
    public static func write(_ tasks: [RecordedTask], to path: String) throws {
        let fd = Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let why = errno == EEXIST ? "it exists; choose another name or remove it" : String(cString: strerror(errno))
            throw AirlockError(.io, .createFailed, "cannot create \(path): \(why)")
        }
        defer { close(fd) }
        let gz = path.hasSuffix(".gz")
        do {
            for t in tasks {
                var line = CanonicalJSON.encode(t.json)
                line.append(0x0A)
                if gz { line = Gzip.member(line) }
                try line.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
            }
            guard Sys.fsync(fd) == 0 else { throw AirlockError.io(.writeFailed, "cannot flush \(path)", errno: errno) }
        } catch {
            _ = Sys.unlink(path)
            throw error
        }
    }
}

/// The replays a site ran (`airlock replay`), by the candidate's bundle id, in
/// `<root>/<name>/.serve/replays/<bundle id hex>.json`: what `canary start` checks when the site
/// policy says `require_replay`.
public enum ReplayStore {
    /// The folder of a name's replay results.
    public static func directory(site: Site, name: String) -> String { CanaryStore.directory(site: site, name: name) + "/replays" }

    /// Keeps `summary` (the report's JSON without its tasks) for the candidate `bundle`, under
    /// the site lock, logged in the history.
    public static func save(site: Site, name: String, candidate bundle: SHA256Digest, summary: JSONValue, lockTimeout: Double = 30) throws {
        let lock = try site.lockForWriting(command: "replay", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let serve = CanaryStore.directory(site: site, name: name)
        try site.ensureDirectory(serve, what: "the rollout state folder of \(name)")
        let dir = directory(site: site, name: name)
        try site.ensureDirectory(dir, what: "the replay results of \(name)")
        try FileIO.writeAtomically(dir + "/" + bundle.hex + ".json", CanonicalJSON.encode(summary) + [0x0A], mode: 0o600)
        var fields: [String: JSONValue] = ["candidate": .string(bundle.prefixed)]
        if let o = summary.objectValue {
            for k in ["passed", "beyond_noise_rate", "threshold", "tasks"] { fields[k] = o[k] ?? .null }
            fields["baseline"] = o["baseline"]?.objectValue?["bundle_id"] ?? .null
        }
        try History.append(site, action: "replay", name: name, fields)
    }

    /// The replay kept for the candidate `bundle`, nil when there is none.
    public static func load(site: Site, name: String, candidate bundle: SHA256Digest) throws -> JSONValue? {
        let path = directory(site: site, name: name) + "/" + bundle.hex + ".json"
        guard FileIO.exists(path) else { return nil }
        let bytes = try FileIO.read(path, limit: 1 << 20, what: "replay result", siteFile: true)
        return try? JSONParser.parse(Array(bytes.prefix { $0 != 0x0A }))
    }

    /// Why `canary start` refuses `candidate` under a policy that requires a passing replay
    /// against `incumbent` within `threshold`; nil when a kept replay allows it.
    static func refusal(site: Site, name: String, candidate: String, incumbent: String, threshold: Double) throws -> String? {
        let candidateID = SHA256Digest.of(try site.manifestBytes(name, candidate))
        let incumbentID = SHA256Digest.of(try site.manifestBytes(name, incumbent))
        let how = "run `airlock replay \(name) \(candidate)` (against the current release) first"
        guard let r = try load(site: site, name: name, candidate: candidateID)?.objectValue else {
            return "the site requires a passing replay before a canary (require_replay) and \(candidate) has none; \(how)"
        }
        guard r["baseline"]?.objectValue?["bundle_id"]?.stringValue == incumbentID.prefixed else {
            return "the replay kept for \(candidate) compared it with another release than the current one (\(incumbent)); \(how)"
        }
        guard case .number(let text)? = r["beyond_noise_rate"], let rate = Double(text), rate <= threshold + 1e-12 else {
            return
                "the replay of \(candidate) diverged beyond the noise floor on more tasks than the site allows (replay_threshold \(EvalAttestation.decimal(threshold))); \(how) once it is fixed"
        }
        return nil
    }
}
