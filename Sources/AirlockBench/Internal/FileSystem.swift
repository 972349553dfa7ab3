#if canImport(Glibc)
import Glibc
#endif

/// The file-system calls of the benchmark (its datasets, bundles and logs), each retried on
/// `EINTR` here and nowhere else, with the system's result returned as is (-1 and `errno` on
/// failure). The benchmark does not link Airlock's targets, so it has this small layer of its
/// own; code outside `Internal/` calls these, never the C functions.
package enum FileSystem {
    @inline(__always)
    static func retrying(_ body: () -> Int32) -> Int32 {
        while true {
            let r = body()
            if r != -1 || errno != EINTR { return r }
        }
    }

    package static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        retrying { Glibc.open(path, flags, mode) }
    }

    package static func unlink(_ path: String) -> Int32 {
        retrying { Glibc.unlink(path) }
    }

    package static func rename(_ from: String, _ to: String) -> Int32 {
        retrying { Glibc.rename(from, to) }
    }

    package static func mkdir(_ path: String, _ mode: mode_t) -> Int32 {
        retrying { Glibc.mkdir(path, mode) }
    }

    package static func link(_ from: String, _ to: String) -> Int32 {
        retrying { Glibc.link(from, to) }
    }
}
