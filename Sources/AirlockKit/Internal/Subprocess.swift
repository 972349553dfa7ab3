import AirlockFormat
import CAirlockSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command from a bundle or a release (a health check, an eval) or one the site
/// configured (an alert command) the one way Airlock does: posix_spawn with an explicit
/// environment, stdin from /dev/null or from bytes given, stdout and stderr to files, no other
/// descriptor, in a process group of its own that is killed, whatever it left running, when the
/// command ends or its time is up.
enum Subprocess {
    enum Outcome: Equatable {
        case exited(Int32)
        case signaled(Int32)
        case timedOut

        /// "exited with status 3", "was killed by signal 9", "timed out".
        var how: String {
            switch self {
            case .exited(let code): return "exited with status \(code)"
            case .signaled(let signal): return "was killed by signal \(signal)"
            case .timedOut: return "timed out"
            }
        }
    }

    /// Where a command's output goes.
    enum Output: Equatable {
        /// A file the child creates (in a folder of the caller's own, never a shared one).
        case file(String)
        /// A descriptor the caller opened (created exclusively, without following a link).
        case descriptor(Int32)
    }

    /// Where a command's stdin comes from.
    enum Input: Equatable {
        /// `/dev/null`: the command reads nothing.
        case null
        /// These bytes, from an anonymous file in memory (`anonymousFile`): the command reads
        /// them to their end whenever it likes, and Airlock never blocks writing them.
        case bytes([UInt8])
    }

    /// Whether process `pid` (a process group leader Airlock started, found again after a
    /// kill) still carries every one of `entries` in its environment: process ids are reused,
    /// so its environment is what tells Airlock's process from another.
    static func carries(_ pid: pid_t, environment entries: [String]) -> Bool {
        guard pid > 1, let env = try? FileIO.read("/proc/\(pid)/environ", limit: 1 << 20, what: "environment") else { return false }
        let vars = env.split(separator: 0)
        return entries.allSatisfy { entry in vars.contains { $0.elementsEqual(entry.utf8) } }
    }

    /// Starts `argv` (an absolute path first) with exactly `environment`, stdin as given
    /// (/dev/null unless told), stdout and stderr as given (the same output for both sends both
    /// to one file), no other descriptor, as the leader of a new process group. Returns its
    /// pid, which is also its process group id. Throws `spawn-failed` and, for `.bytes` input,
    /// `write-failed`.
    static func spawn(_ argv: [String], environment: [String], stdin: Input = .null, stdout: Output, stderr: Output) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var input: Int32 = -1
        defer { if input >= 0 { close(input) } }
        switch stdin {
        case .null:
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        case .bytes(let bytes):
            input = try anonymousFile("stdin")
            try bytes.withUnsafeBytes { try FileIO.writeAll(input, $0, path: "the command's input") }
            guard lseek(input, 0, SEEK_SET) == 0 else { throw AirlockError.io(.writeFailed, "cannot rewind the command's input", errno: errno) }
            posix_spawn_file_actions_adddup2(&actions, input, 0)
        }
        for (target, output) in [(Int32(1), stdout), (2, stderr)] {
            switch output {
            case _ where target == 2 && stderr == stdout: posix_spawn_file_actions_adddup2(&actions, 1, 2)
            case .file(let path): posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600)
            case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        // Nothing else of Airlock's reaches the command: not the site lock, not the bundle,
        // not a pipe of whoever started Airlock (which would keep it waiting for the command).
        _ = airlock_spawn_addclosefrom(&actions, 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The child starts with no signal blocked and every signal at its default action,
        // whatever the spawning thread had: a thread of Swift's concurrency pool or of the
        // HTTP server blocks SIGTERM and SIGINT, and serve ignores SIGPIPE; inherited, they would
        // leave a runtime deaf to its SIGTERM (stopped only by the SIGKILL after the grace
        // period) and a health check's pipeline unlike the same line in a shell.
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attr, &unblocked)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Int32(1)..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgs, cEnv)
        guard rc == 0 else { throw AirlockError(.internal, .spawnFailed, "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Runs `argv` as `spawn` starts it and waits for it, at most `timeoutSeconds`. `started`
    /// learns the process group before the wait. Throws `spawn-failed`, `wait-failed` and, for
    /// `.bytes` input, `write-failed`.
    static func run(
        _ argv: [String], environment: [String], stdin: Input = .null, stdout: Output, stderr: Output, timeoutSeconds: Double,
        started: (Int32) throws -> Void = { _ in }
    ) throws -> Outcome {
        let pid = try spawn(argv, environment: environment, stdin: stdin, stdout: stdout, stderr: stderr)
        defer { kill(-pid, SIGKILL) }  // whatever it left running goes with it
        try started(pid)
        let deadline = Timestamp.monotonicSeconds() + timeoutSeconds
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw AirlockError(.internal, .waitFailed, "cannot wait for \(argv[0]): \(String(cString: strerror(errno)))") }
            if Timestamp.monotonicSeconds() >= deadline {
                kill(-pid, SIGKILL)
                waitpid(pid, &status, 0)
                return .timedOut
            }
            usleep(10_000)
        }
        return (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
    }

    /// An anonymous file in memory (memfd, close-on-exec), read and written through the
    /// descriptor returned, which the caller closes: it has no name in any folder, so nobody
    /// can open, replace or read it but through that descriptor (and the command it is handed
    /// to). `name` shows only in /proc. Throws `create-failed`.
    static func anonymousFile(_ name: String) throws -> Int32 {
        let fd = airlock_memfd("airlock-" + name)
        guard fd >= 0 else { throw AirlockError.io(.createFailed, "cannot create an anonymous file for a command's \(name)", errno: errno) }
        return fd
    }

    /// The last `bytes` bytes written to the file `fd` (a command's output), as text with the
    /// surrounding white space removed; "" when there is none or it cannot be read.
    static func tail(_ fd: Int32, bytes: Int = 200) -> String {
        var output = [UInt8](repeating: 0, count: bytes)
        let size = lseek(fd, 0, SEEK_END)
        let n = size > 0 ? pread(fd, &output, output.count, max(0, size - off_t(output.count))) : 0
        return String(decoding: output.prefix(max(0, n)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `argv` run as `nobody` (uid and gid 65534, no supplementary groups) through
    /// `/usr/bin/setpriv` when Airlock runs as root and setpriv is there, else as it is; and
    /// whether it drops to `nobody`.
    static func asNobody(_ argv: [String]) -> (argv: [String], dropped: Bool) {
        guard geteuid() == 0, FileIO.exists("/usr/bin/setpriv") else { return (argv, false) }
        return (["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv, true)
    }
}
