import AirlockBench
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One process to run: its arguments (the first is looked up on PATH), extra environment, and
/// where its standard input and output go (`nil`: /dev/null in, the step's log out).
struct Command {
    var argv: [String]
    var environment: [String: String] = [:]
    var stdin: String? = nil
    var stdout: String? = nil

    init(_ argv: [String], environment: [String: String] = [:], stdin: String? = nil, stdout: String? = nil) {
        self.argv = argv
        self.environment = environment
        self.stdin = stdin
        self.stdout = stdout
    }
}

/// Commands whose standard output feeds the next one's standard input, like a shell pipeline.
typealias Pipeline = [Command]

/// How one process ended and what it used.
struct ProcessUsage {
    var command: String
    /// The exit status, or 128 + the signal that ended it.
    var status: Int32
    /// The largest resident set of the process or of any child it waited for, KiB.
    var peakKiB: Int
    /// User plus system CPU seconds, its waited-for children included.
    var cpuSeconds: Double
}

/// GNU time, which measures each timed process: it forks the process from its own small
/// memory. (The runner's own wait4 rusage would not do: a child starts in its parent's memory,
/// with posix_spawn as with fork, and Linux keeps that memory's peak in the child's ru_maxrss
/// across exec, so every child would seem to use at least as much as the runner.)
let gnuTime = "/usr/bin/time"
let gnuTimeFormat = "RSS %M CPU %U %S"

/// The peak RSS (KiB) and CPU seconds GNU time wrote (`RSS kib CPU user sys`), if it did.
func readGNUTime(_ path: String) -> (Int, Double)? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n").reversed() {
        let f = line.split(separator: " ")
        if f.count == 5, f[0] == "RSS", f[2] == "CPU", let kib = Int(f[1]), let u = Double(f[3]), let s = Double(f[4]) {
            return (kib, u + s)
        }
    }
    return nil
}

/// Why the benchmark could not go on: a command failed, or its output was not what it should be.
struct BenchError: Error, CustomStringConvertible {
    var description: String
}

/// Progress and errors, on standard error.
func log(_ message: String) {
    var t = time(nil)
    var tmv = tm()
    localtime_r(&t, &tmv)
    let stamp = String(format: "%02d:%02d:%02d", tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
    FileHandle.standardError.write(Data("[bench \(stamp)] \(message)\n".utf8))
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs processes with posix_spawn and reaps them with wait4, which gives each one's peak RSS
/// and CPU time without a wrapper process.
enum Spawner {
    /// Runs the pipeline to its end; the processes' standard error (and the last one's standard
    /// output, unless redirected) is appended to `log`. With `measure`, each process runs under
    /// GNU time, which writes its peak RSS and CPU time to `measure.N` (N: its place in the
    /// pipeline). Returns each process's status and usage; throws only when a process could
    /// not be started.
    static func run(
        _ pipeline: Pipeline, log: String, captureStdout: Bool = false, mergeStderr: Bool = false,
        measure: String? = nil
    ) throws -> (usage: [ProcessUsage], stdout: Data) {
        precondition(!pipeline.isEmpty)
        let logFD = FileSystem.open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard logFD >= 0 else { throw BenchError(description: "cannot open \(log): \(String(cString: strerror(errno)))") }
        defer { close(logFD) }
        var pids: [(pid_t, String)] = []
        var previousRead: Int32 = -1
        var captureRead: Int32 = -1
        var failure: BenchError?
        for (i, command) in pipeline.enumerated() {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            if i > 0 {
                posix_spawn_file_actions_adddup2(&actions, previousRead, 0)
            } else {
                posix_spawn_file_actions_addopen(&actions, 0, command.stdin ?? "/dev/null", O_RDONLY, 0)
            }
            var writeEnd: Int32 = -1, nextRead: Int32 = -1
            if i < pipeline.count - 1 || captureStdout {
                var fds: [Int32] = [0, 0]
                // The runner is single-threaded: no other spawn can inherit the ends before
                // they are marked close-on-exec.
                guard pipe(&fds) == 0 else { throw BenchError(description: "pipe: \(String(cString: strerror(errno)))") }
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
                nextRead = fds[0]
                writeEnd = fds[1]
                posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
            } else if let out = command.stdout {
                posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            } else {
                posix_spawn_file_actions_adddup2(&actions, logFD, 1)
            }
            if mergeStderr && writeEnd >= 0 {
                posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
            } else {
                posix_spawn_file_actions_adddup2(&actions, logFD, 2)
            }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var defaults = sigset_t()
            sigemptyset(&defaults)
            sigaddset(&defaults, SIGPIPE)
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

            var environment = ProcessInfo.processInfo.environment
            for (k, v) in command.environment { environment[k] = v }
            let wrapped = measure.map { [gnuTime, "-f", gnuTimeFormat, "-o", "\($0).\(i)", "--"] + command.argv } ?? command.argv
            let argv = wrapped.map { strdup($0) } + [nil]
            let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer {
                argv.forEach { free($0) }
                envp.forEach { free($0) }
            }
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, wrapped[0], &actions, &attributes, argv, envp)
            if writeEnd >= 0 { close(writeEnd) }
            if previousRead >= 0 { close(previousRead) }
            previousRead = nextRead
            if rc != 0 {
                failure = BenchError(description: "cannot start \(command.argv[0]): \(String(cString: strerror(rc)))")
                if previousRead >= 0 {
                    close(previousRead)
                    previousRead = -1
                }
                break
            }
            pids.append((pid, command.argv.joined(separator: " ")))
        }
        captureRead = previousRead
        var captured = Data()
        if captureRead >= 0 {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(captureRead, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                captured.append(contentsOf: buffer[0..<n])
            }
            close(captureRead)
        }
        var usage: [ProcessUsage] = []
        for (i, (pid, name)) in pids.enumerated() {
            var status: Int32 = 0
            var ru = rusage()
            while wait4(pid, &status, 0, &ru) < 0 {
                guard errno == EINTR else { throw BenchError(description: "wait4: \(String(cString: strerror(errno)))") }
            }
            let signal = status & 0x7F
            let code: Int32 = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
            let cpu =
                Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
                + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
            if let measure {
                let (kib, seconds) = readGNUTime("\(measure).\(i)") ?? (0, 0)
                usage.append(ProcessUsage(command: name, status: code, peakKiB: kib, cpuSeconds: seconds))
            } else {
                usage.append(ProcessUsage(command: name, status: code, peakKiB: ru.ru_maxrss, cpuSeconds: cpu))
            }
        }
        if let failure { throw failure }
        return (usage, captured)
    }
}

/// Runs the benchmark's commands: timed steps, untimed set-up, captured output; each logs to a file in `results`.
struct CommandRunner {
    /// The folder of per-run logs.
    let results: String

    /// The last lines of a log, for an error message.
    func tail(_ path: String, lines: Int = 30) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Runs `pipelines` one after the other; throws when a process fails. With `measure`, every
    /// process runs under GNU time (files `measure.P.N`).
    func run(_ pipelines: [Pipeline], log path: String, what: String, measure: String? = nil) throws -> [ProcessUsage] {
        var all: [ProcessUsage] = []
        for (k, p) in pipelines.enumerated() {
            let (usage, _) = try Spawner.run(p, log: path, measure: measure.map { "\($0).\(k)" })
            all += usage
            if let bad = usage.first(where: { $0.status != 0 }) {
                throw BenchError(description: "\(what): `\(bad.command)` exited with status \(bad.status); its log \(path) ends:\n\(tail(path))")
            }
        }
        return all
    }

    /// Runs one untimed command, its output to the setup log; throws when it fails.
    func check(_ argv: [String], environment: [String: String] = [:], stdout: String? = nil) throws {
        _ = try run([[Command(argv, environment: environment, stdout: stdout)]], log: results + "/setup.log", what: argv.prefix(3).joined(separator: " "))
    }

    /// The standard output of a pipeline (standard error too with `mergeStderr`); throws when
    /// a process fails, unless `tolerant`.
    func capture(_ pipeline: Pipeline, mergeStderr: Bool = false, tolerant: Bool = false) throws -> Data {
        let path = results + "/setup.log"
        let (usage, out) = try Spawner.run(pipeline, log: path, captureStdout: true, mergeStderr: mergeStderr)
        if !tolerant, let bad = usage.first(where: { $0.status != 0 }) {
            throw BenchError(description: "`\(bad.command)` exited with status \(bad.status); \(path) ends:\n\(tail(path))")
        }
        return out
    }

    /// `capture` as text.
    func text(_ argv: [String], mergeStderr: Bool = false, tolerant: Bool = false) throws -> String {
        String(decoding: try capture([Command(argv)], mergeStderr: mergeStderr, tolerant: tolerant), as: UTF8.self)
    }

    /// One timed run: sync, then the pipelines, timed together on the monotonic clock (GNU time's
    /// start-up, about a millisecond per process, is inside the window). The step's peak RSS is
    /// its largest process's; its CPU time is the sum over its processes.
    func time(_ name: String, run: Int, _ pipelines: [Pipeline]) throws -> RunSample {
        let path = "\(results)/\(name).\(run).log"
        sync()
        let t0 = monotonicSeconds()
        let usage = try self.run(pipelines, log: path, what: "\(name) run \(run)", measure: "\(results)/\(name).\(run).rss")
        let t1 = monotonicSeconds()
        let sample = RunSample(
            seconds: t1 - t0, peakRSSKiB: usage.map(\.peakKiB).max() ?? 0,
            cpuSeconds: usage.reduce(0) { $0 + $1.cpuSeconds })
        log("  \(name) run \(run): \(fixed(sample.seconds, 3)) s, peak RSS \(mib(kib: sample.peakRSSKiB)) MiB")
        return sample
    }
}
