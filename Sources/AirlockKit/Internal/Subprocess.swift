import AirlockFormat
import CAirlockSystem

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command from a bundle or a release (a health check, an eval) the one way Airlock
/// does: posix_spawn with an explicit environment, stdin from /dev/null, stdout and stderr to
/// files, no other descriptor, in a process group of its own that is killed, whatever it left running, when the
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

    /// Starts `argv` (an absolute path first) with exactly `environment`, stdin from /dev/null,
    /// stdout and stderr as given (the same output for both sends both to one file), no other
    /// descriptor, as the leader of a new process group. Returns its
    /// pid, which is also its process group id. Throws `spawn-failed`.
    static func spawn(_ argv: [String], environment: [String], stdout: Output, stderr: Output) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
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
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
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
    /// learns the process group before the wait. Throws `spawn-failed` and `wait-failed`.
    static func run(
        _ argv: [String], environment: [String], stdout: Output, stderr: Output, timeoutSeconds: Double,
        started: (Int32) throws -> Void = { _ in }
    ) throws -> Outcome {
        let pid = try spawn(argv, environment: environment, stdout: stdout, stderr: stderr)
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
}
