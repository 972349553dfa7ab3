import CArchive
import Foundation

/// libarchive needs a UTF-8 locale to write non-ASCII names (in the "C" locale 3.6.2 crashes).
package let utf8LocaleReady: Bool = {
    setlocale(LC_CTYPE, "C.UTF-8") != nil || setlocale(LC_CTYPE, "en_US.UTF-8") != nil
}()

/// Writes a reproducible pax-restricted tar stream, compressed, to a file descriptor (fixed
/// mtime, uid/gid 0, no owner names, the modes given; gzip without a timestamp, zstd at a pinned
/// level with multi-threaded framing: identical output for any thread count >= 1), or
/// uncompressed to a closure (`init(output:path:)`, a one-pass pack's payload).
package final class ArchiveWriter {
    private let archive: OpaquePointer
    private let entry: OpaquePointer
    private let path: String
    private var closed = false

    package convenience init(fileDescriptor fd: Int32, path: String, compression: Compression, level: Int?, threads: Int) throws {
        // zstd above 19 asks for windows over 8 MiB, which readers refuse (docs/format.md).
        if let level, compression == .zstd && !(1...19).contains(level) || compression == .gzip && !(1...9).contains(level) {
            throw AirlockError(.usage, .archiveSetupFailed, "compression level \(level) is out of range (zstd 1-19, gzip 1-9)")
        }
        try self.init(path: path, output: nil)
        switch compression {
        case .zstd:
            try check(archive_write_add_filter_zstd(archive), "zstd")
            try check(archive_write_set_filter_option(archive, "zstd", "compression-level", String(level ?? BundleLayout.defaultZstdLevel)), "zstd level")
            // Any worker count >= 1 gives the same bytes (0 would give others): never 0.
            try check(archive_write_set_filter_option(archive, "zstd", "threads", String(max(1, threads))), "zstd threads")
        case .gzip:
            try check(archive_write_add_filter_gzip(archive), "gzip")
            try check(archive_write_set_filter_option(archive, "gzip", "compression-level", String(level ?? 6)), "gzip level")
            try check(archive_write_set_filter_option(archive, "gzip", "timestamp", nil), "gzip timestamp")
        case .none:
            try check(archive_write_add_filter_none(archive), "no compression")
        }
        try check(archive_write_set_format_pax_restricted(archive), "pax format")
        // Large output writes (the default 10 KiB record means one write(2) per 10 KiB), and no
        // padding after the end-of-archive marker: the stream ends with its two zero blocks.
        try check(archive_write_set_bytes_per_block(archive, 1 << 20), "block size")
        try check(archive_write_set_bytes_in_last_block(archive, 1), "last block")
        try check(archive_write_open_fd(archive, fd), "open")
    }

    /// The receiver of an uncompressed stream (`init(output:path:)`), and what it threw.
    private final class Output {
        let body: (UnsafeRawBufferPointer) throws -> Void
        var error: (any Error)?
        init(_ body: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.body = body }
    }
    private let output: Output?

    /// Writes the tar stream uncompressed to `output`, in the pieces libarchive makes: a file's
    /// data is handed on as the very bytes given to `addFile`'s writer (no blocks, no copy).
    /// What `output` throws, `addFile` and `close` throw.
    package convenience init(output body: @escaping (UnsafeRawBufferPointer) throws -> Void, path: String) throws {
        let receiver = Output(body)
        try self.init(path: path, output: receiver)
        try check(archive_write_add_filter_none(archive), "no compression")
        try check(archive_write_set_format_pax_restricted(archive), "pax format")
        try check(archive_write_set_bytes_per_block(archive, 0), "block size")
        try check(archive_write_set_bytes_in_last_block(archive, 1), "last block")
        let ctx = Unmanaged.passUnretained(receiver).toOpaque()
        try check(
            archive_write_open2(
                archive, ctx, nil,
                { _, ctx, buffer, length in
                    let receiver = Unmanaged<Output>.fromOpaque(ctx!).takeUnretainedValue()
                    do {
                        try receiver.body(UnsafeRawBufferPointer(start: buffer, count: length))
                        return length
                    } catch {
                        receiver.error = error
                        return -1
                    }
                }, nil, nil), "open")
    }

    /// The writer and its entry, allocated together: one that can not be allocated frees the
    /// other. Every stored property is set here, so that a throw from the set-up that follows
    /// runs `deinit`, which frees both.
    private init(path: String, output: Output?) throws {
        _ = utf8LocaleReady
        guard let a = archive_write_new() else { throw AirlockError(.internal, .outOfMemory, "libarchive could not allocate a writer") }
        guard let e = archive_entry_new() else {
            archive_write_free(a)
            throw AirlockError(.internal, .outOfMemory, "libarchive could not allocate a writer")
        }
        archive = a
        entry = e
        self.path = path
        self.output = output
    }

    /// Throws `archive-setup-failed` with libarchive's message unless `r` is ARCHIVE_OK.
    private func check(_ r: Int32, _ what: String) throws {
        guard r == ARCHIVE_OK else {
            let msg = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            throw AirlockError(.internal, .archiveSetupFailed, "cannot set up the bundle writer (\(what)): \(msg)")
        }
    }

    deinit {
        if !closed { archive_write_fail(archive) }
        archive_write_free(archive)
        archive_entry_free(entry)
    }

    private func failure(_ what: String) -> any Error {
        if let e = output?.error { return e }
        let err = archive_errno(archive)
        let msg = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        if err == ENOSPC || err == EDQUOT {
            return AirlockError.io(.diskFull, "no space left writing \(path); free some space and pack again")
        }
        return AirlockError(.io, .writeFailed, "cannot write \(path) (\(what))", cause: msg)
    }

    /// Writes one regular file entry; `produce` must hand exactly `size` bytes to its argument.
    package func addFile(
        path name: String, size: UInt64, mode: UInt32, mtime: Int64,
        produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        archive_entry_clear(entry)
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_size(entry, la_int64_t(size))
        archive_entry_set_filetype(entry, airlock_AE_IFREG)
        archive_entry_set_perm(entry, mode_t(mode))
        archive_entry_set_mtime(entry, time_t(mtime), 0)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw failure("header of \(name)") }
        var written: UInt64 = 0
        try produce { part in
            var off = 0
            while off < part.count {
                let n = archive_write_data(archive, part.baseAddress! + off, part.count - off)
                guard n > 0 else { throw failure("data of \(name)") }
                off += n
            }
            written += UInt64(part.count)
        }
        precondition(written == size, "ArchiveWriter.addFile: \(name) produced \(written) bytes, declared \(size)")
        guard archive_write_finish_entry(archive) == ARCHIVE_OK else { throw failure("end of \(name)") }
    }

    package func addFile(path name: String, bytes: [UInt8], mode: UInt32, mtime: Int64) throws {
        try addFile(path: name, size: UInt64(bytes.count), mode: mode, mtime: mtime) { write in
            try bytes.withUnsafeBytes { try write($0) }
        }
    }

    /// Flushes the end-of-archive marker and the compressor.
    package func close() throws {
        closed = true
        guard archive_write_close(archive) == ARCHIVE_OK else { throw failure("end of archive") }
    }
}
