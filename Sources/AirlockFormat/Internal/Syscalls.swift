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

    nonisolated(unsafe) private static var written = 0

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
            if written >= limit {
                errno = ENOSPC
                return -1
            }
            let n = Glibc.write(fd, buf, min(count, limit - written))
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
