import CAirlockSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The system calls the installer's durability depends on, behind one layer so that tests can
/// inject faults into the real binary: `AIRLOCK_TEST_FAULT` holds comma-separated rules
///
/// - `crash:<step>`: SIGKILL the process when it reaches the named step (see `Sys.step`);
/// - `stop:<step>`: SIGSTOP it there (the test changes something, then sends SIGCONT);
/// - `enospc-after:<bytes>`: `write` fails with ENOSPC once that many bytes were written;
/// - `eio:fsync`: every `fsync` fails with EIO.
///
/// Without the variable every call goes straight to the system.
package enum Sys {
    package struct Faults {
        var crashAt: Set<String> = []
        var stopAt: Set<String> = []
        var enospcAfter: Int?
        var fsyncEIO = false
    }

    package nonisolated(unsafe) static var faults: Faults = {
        var f = Faults()
        guard let raw = getenv("AIRLOCK_TEST_FAULT") else { return f }
        for rule in String(cString: raw).split(separator: ",") {
            let parts = rule.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "crash": f.crashAt.insert(parts[1])
            case "stop": f.stopAt.insert(parts[1])
            case "enospc-after": f.enospcAfter = Int(parts[1])
            case "eio" where parts[1] == "fsync": f.fsyncEIO = true
            default: continue
            }
        }
        return f
    }()

    /// Bytes written so far under `enospc-after` (install writes from more than one thread).
    nonisolated(unsafe) private static var written = 0
    private static let writtenLock = NSLock()

    /// Marks a step of a multi-step operation; a test can kill the process exactly here.
    package static func step(_ name: String) {
        if !faults.crashAt.isEmpty && faults.crashAt.contains(name) {
            kill(getpid(), SIGKILL)
        }
        if !faults.stopAt.isEmpty && faults.stopAt.contains(name) {
            kill(getpid(), SIGSTOP)
        }
    }

    package static func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
        if let limit = faults.enospcAfter {
            writtenLock.lock()
            defer { writtenLock.unlock() }
            if written >= limit {
                errno = ENOSPC
                return -1
            }
            // A short write stops on a 4 KiB boundary, as a file system's would, so that a
            // direct-I/O write (which must stay aligned) meets ENOSPC, not EINVAL.
            let allowed = count <= limit - written ? count : (limit - written) / 4096 * 4096
            if allowed == 0 {
                errno = ENOSPC
                return -1
            }
            let n = Glibc.write(fd, buf, allowed)
            if n > 0 { written += n }
            return n
        }
        return Glibc.write(fd, buf, count)
    }

    package static func fsync(_ fd: Int32) -> Int32 {
        if faults.fsyncEIO {
            errno = EIO
            return -1
        }
        return Glibc.fsync(fd)
    }
}

/// The file-system calls Airlock makes, each retried on `EINTR` here and nowhere else (as
/// swift-system's wrappers do), with the system's result returned as is: -1 and `errno` on
/// failure. Code outside `Internal/` calls these, never the C functions.
extension Sys {
    /// Calls `body` again while it fails with EINTR.
    @inline(__always)
    package static func retryingInterrupts<T: FixedWidthInteger>(_ body: () -> T) -> T {
        while true {
            let r = body()
            if r != -1 || errno != EINTR { return r }
        }
    }

    package static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        retryingInterrupts { Glibc.open(path, flags, mode) }
    }

    package static func openat(_ dir: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        retryingInterrupts { Glibc.openat(dir, name, flags, mode) }
    }

    package static func mkdir(_ path: String, _ mode: mode_t) -> Int32 {
        retryingInterrupts { Glibc.mkdir(path, mode) }
    }

    package static func mkdirat(_ dir: Int32, _ name: String, _ mode: mode_t) -> Int32 {
        retryingInterrupts { Glibc.mkdirat(dir, name, mode) }
    }

    package static func link(_ from: String, _ to: String) -> Int32 {
        retryingInterrupts { Glibc.link(from, to) }
    }

    /// `linkat` without AT_SYMLINK_FOLLOW: a symlink is linked as itself, never followed.
    package static func linkat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) -> Int32 {
        retryingInterrupts { Glibc.linkat(fromDir, from, toDir, to, 0) }
    }

    package static func rename(_ from: String, _ to: String) -> Int32 {
        retryingInterrupts { Glibc.rename(from, to) }
    }

    package static func renameat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) -> Int32 {
        retryingInterrupts { Glibc.renameat(fromDir, from, toDir, to) }
    }

    /// Swaps two names in one step (renameat2 with RENAME_EXCHANGE).
    package static func exchange(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) -> Int32 {
        retryingInterrupts { airlock_rename_exchange(fromDir, from, toDir, to) }
    }

    package static func symlink(_ target: String, _ path: String) -> Int32 {
        retryingInterrupts { Glibc.symlink(target, path) }
    }

    package static func symlinkat(_ target: String, _ dir: Int32, _ name: String) -> Int32 {
        retryingInterrupts { Glibc.symlinkat(target, dir, name) }
    }

    package static func unlink(_ path: String) -> Int32 {
        retryingInterrupts { Glibc.unlink(path) }
    }

    /// `flags`: 0 for a file, AT_REMOVEDIR for an empty folder.
    package static func unlinkat(_ dir: Int32, _ name: String, _ flags: Int32 = 0) -> Int32 {
        retryingInterrupts { Glibc.unlinkat(dir, name, flags) }
    }

    /// Flushes the whole file system that holds `fd` (syncfs).
    package static func syncfs(_ fd: Int32) -> Int32 {
        retryingInterrupts { airlock_syncfs(fd) }
    }
}
