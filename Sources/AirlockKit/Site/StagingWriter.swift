import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Creates and writes the staged release's new files on a thread of its own, in the order they
/// are given, while the installing thread decompresses and hashes the next ones. For a release
/// of many small files the installing thread spent most of its time in the file system
/// (creating a file, writing it, making it read-only, closing it); here that work runs beside
/// the stream instead of after each file's bytes.
///
/// The installing thread fills a batch (a 512 KiB buffer of file bytes and the operations on
/// them) and hands it over when it is full; `depth` batches at most are in flight, so memory
/// does not grow with the release. The writer resolves the staged folders with descriptors of
/// its own (`Staging.Folders`, O_NOFOLLOW all the way, folders made as needed) and creates
/// each file as `Staging.create` does (O_CREAT|O_EXCL|O_NOFOLLOW, 0600, read-only once
/// written). Its first failure stops it and is thrown at the installing thread's next call.
/// Nothing it writes is durable or visible before the caller drains it, syncs and commits.
/// One producer.
final class StagingWriter: @unchecked Sendable {
    private enum Op {
        /// A new file at `rel` (below `payload/`); the data that follows is its content.
        case create(rel: String, executable: Bool)
        /// Bytes of the open file in the batch's buffer.
        case data(offset: Int, count: Int)
        /// The open file is complete: read-only, closed.
        case finish
        /// The staged file `from` (given earlier) hardlinked, or copied, at `to`.
        case hardlink(from: String, to: String, executable: Bool)
    }

    private final class Batch {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: StagingWriter.batchBytes, alignment: 64)
        var used = 0
        var ops: [Op] = []

        init() { ops.reserveCapacity(StagingWriter.maxOps) }
        deinit { buffer.deallocate() }
    }

    static let batchBytes = 512 << 10
    static let maxOps = 512
    private static let depth = 4

    /// For messages: where the files go.
    private let what: String
    /// The batch being filled (the installing thread's).
    private var current: Batch
    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Batch] = []
    private var free: [Batch]
    private var writing = false
    private var stopping = false
    private var exited = false
    private var failure: Error?
    // The writing thread's own until it exits (read by others only after `drain` or `stop`):
    private var folders: Staging.Folders
    private var fd: Int32 = -1
    private var executable = false
    /// The file open (below `payload/`), for messages.
    private var rel = ""

    /// Writes below `payload` (the staged `payload/` folder's descriptor, which the caller keeps
    /// open). `what` names the place in messages.
    init(payload: Int32, what: String) {
        self.what = what
        folders = Staging.Folders(payload: payload)
        current = Batch()
        free = (1..<Self.depth).map { _ in Batch() }
        let thread = Thread { [self] in self.run() }
        thread.name = "airlock-stage"
        thread.start()
    }

    // MARK: The installing thread

    /// Starts a new file at `rel`.
    func create(_ rel: String, executable: Bool) throws {
        try add(.create(rel: rel, executable: executable))
    }

    /// Appends bytes to the file started last.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            // Room for the bytes and their operation in the same batch.
            if current.used == Self.batchBytes || current.ops.count == Self.maxOps { try submit() }
            let n = min(Self.batchBytes - current.used, bytes.count - off)
            (current.buffer.baseAddress! + current.used).copyMemory(from: bytes.baseAddress! + off, byteCount: n)
            current.ops.append(.data(offset: current.used, count: n))
            current.used += n
            off += n
        }
    }

    /// Ends the file started last.
    func finish() throws { try add(.finish) }

    /// Links `to` to the staged file `from`, which was given to this writer (or staged before).
    func link(from: String, to: String, executable: Bool) throws {
        try add(.hardlink(from: from, to: to, executable: executable))
    }

    /// Throws the writer's failure, if it failed (the installing thread asks before each file,
    /// so that a full disk stops the stream soon, whichever writer met it).
    func check() throws {
        lock.lock()
        let failed = failure
        lock.unlock()
        if let failed { throw failed }
    }

    /// Waits until everything given was written, and returns the folders the writer made.
    /// Throws the writer's failure.
    func drain() throws -> Set<String> {
        try submit()
        lock.lock()
        while (!queue.isEmpty || writing) && failure == nil { lock.wait() }
        let failed = failure
        lock.unlock()
        if let failed { throw failed }
        return folders.madeFolders
    }

    /// Stops the writer, dropping what it was not given time to write, and waits for it to
    /// exit. Called once the caller is done with it, on success or failure.
    func stop() {
        lock.lock()
        stopping = true
        queue.removeAll()
        lock.broadcast()
        while !exited { lock.wait() }
        lock.unlock()
    }

    private func add(_ op: Op) throws {
        if current.ops.count == Self.maxOps { try submit() }
        current.ops.append(op)
    }

    /// Hands the current batch over (when it holds anything) and takes a free one.
    private func submit() throws {
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw failure }
        guard !current.ops.isEmpty else { return }
        queue.append(current)
        lock.broadcast()
        while free.isEmpty && failure == nil { lock.wait() }
        if let failure { throw failure }
        current = free.removeLast()
        current.used = 0
        current.ops.removeAll(keepingCapacity: true)
    }

    // MARK: The writing thread

    private func run() {
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if stopping {
                exited = true
                lock.broadcast()
                lock.unlock()
                break
            }
            let batch = queue.removeFirst()
            writing = true
            let failed = failure != nil
            lock.unlock()
            var error: Error?
            if !failed {
                do { try perform(batch) } catch let e { error = e }
            }
            lock.lock()
            if let error, failure == nil { failure = error }
            writing = false
            free.append(batch)
            lock.broadcast()
            lock.unlock()
        }
        if fd >= 0 { close(fd) }
        fd = -1
        folders.closeAll()
    }

    private func perform(_ batch: Batch) throws {
        do {
            for op in batch.ops {
                switch op {
                case .create(let rel, let executable):
                    let (folder, name) = PathRules.splitLast(rel)
                    fd = try Staging.create(Staging.Place(folder: try folders.descriptor(folder), name: name), what: "the staged \(rel) in \(what)")
                    self.rel = rel
                    self.executable = executable
                case .data(let offset, let count):
                    try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: batch.buffer[offset..<(offset + count)]), path: "the staged \(rel) in \(what)")
                case .finish:
                    try Staging.finishFile(fd, executable: executable)
                    close(fd)
                    fd = -1
                case .hardlink(let from, let to, let executable):
                    try Staging.linkOrCopy(from, to, executable: executable, in: &folders)
                }
            }
        } catch {
            if fd >= 0 { close(fd) }
            fd = -1
            throw error
        }
    }
}

/// The staged release's new files spread over one `StagingWriter` per core (two at most): all
/// the files of a folder go to the same writer, in order, so that two writers never contend for
/// one folder, and a link goes to the writer that made its source file (which therefore exists
/// when the link is made). Same contract as `StagingWriter`.
final class StagingWriters {
    private let writers: [StagingWriter]
    /// The writer of the file being given (`create` ... `finish`).
    private var open = 0

    init(payload: Int32, what: String) {
        let count = ProcessInfo.processInfo.activeProcessorCount >= 2 ? 2 : 1
        writers = (0..<count).map { _ in StagingWriter(payload: payload, what: what) }
    }

    /// The writer of the folder of `rel`: FNV-1a of the folder's bytes, so that the split is
    /// the same on every run.
    private func writer(of rel: String) -> Int {
        guard writers.count > 1 else { return 0 }
        var h: UInt32 = 2_166_136_261
        for b in PathRules.splitLast(rel).folder.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        // The high bits: the low bit of FNV-1a is only the parity of the bytes' low bits.
        return Int((h >> 16) % UInt32(writers.count))
    }

    /// Starts a new file at `rel`; returns the writer that makes it.
    @discardableResult
    func create(_ rel: String, executable: Bool) throws -> Int {
        for w in writers { try w.check() }
        open = writer(of: rel)
        try writers[open].create(rel, executable: executable)
        return open
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try writers[open].write(bytes) }

    func finish() throws { try writers[open].finish() }

    /// Links `to` to `from`, by `madeBy`, the writer that made `from` (`create` or `link` said
    /// which), or by any when this thread staged it; returns the writer that makes `to`.
    @discardableResult
    func link(from: String, to: String, executable: Bool, madeBy: Int?) throws -> Int {
        let w = madeBy ?? writer(of: to)
        try writers[w].link(from: from, to: to, executable: executable)
        return w
    }

    /// Waits for every writer; the folders they made.
    func drain() throws -> Set<String> {
        var made: Set<String> = []
        for w in writers { made.formUnion(try w.drain()) }
        return made
    }

    func stop() { for w in writers { w.stop() } }
}
