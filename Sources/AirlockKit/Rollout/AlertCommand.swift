import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// Hands an alert to the command the site configured (`rollout.alerts.command` in its
/// policy): a pager, a chat hook, a script of the admin's.
public enum AlertCommand {
    /// The environment the command runs in: nothing of Airlock's caller, only what a script needs.
    static let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "LANG=C.UTF-8"]

    /// Runs `argv` (an absolute program path first) with the alert's canonical JSON
    /// (`CanonicalJSON.encode`, no newline after it) on its stdin, and waits for it at most
    /// `timeoutSeconds`. It runs as `Subprocess` starts every command: in `/`, with a clean
    /// environment (PATH, HOME=/, LANG), stdout and stderr to an anonymous file, no other descriptor of Airlock's
    /// (not the site lock, not a socket of `airlock serve`), in a process group of its own that is
    /// killed when it ends or its time is up, and as `nobody` when Airlock runs as root. Throws
    /// `alert-command-failed` when `argv` is empty or not absolute, or when the command exits with
    /// another status than 0, is killed or times out (the message names the command and ends with
    /// the last of its output); `spawn-failed` when it cannot be started; `wait-failed`,
    /// `create-failed` and `write-failed` when Airlock cannot run it.
    public static func run(_ argv: [String], alert: JSONValue, timeoutSeconds: Double) throws {
        guard let program = argv.first, program.hasPrefix("/") else {
            throw AirlockError(
                .usage, .alertCommandFailed,
                "the alert command \(describe(argv)) does not start with an absolute program path; give it as [\"/path/to/program\", \"arg\", ...] in rollout.alerts.command of the site's policy.json"
            )
        }
        let log = try Subprocess.anonymousFile("alert-output")
        defer { close(log) }
        // Started from `/`, not from wherever Airlock was started (which OLDPWD would tell).
        let (command, asNobody) = Subprocess.asNobody(["/bin/sh", "-c", "cd / && unset OLDPWD && exec \"$0\" \"$@\""] + argv)
        let outcome: Subprocess.Outcome
        do {
            outcome = try Subprocess.run(
                command, environment: environment, stdin: .bytes(CanonicalJSON.encode(alert)), stdout: .descriptor(log), stderr: .descriptor(log),
                timeoutSeconds: timeoutSeconds)
        } catch let e as AirlockError where e.code == ErrorCode.spawnFailed.rawValue {
            throw AirlockError(e.kind, .spawnFailed, "cannot start the alert command \(describe(argv)): \(e.message)")
        }
        if outcome == .exited(0) { return }
        let how = outcome == .timedOut ? "did not finish within \(formatSeconds(timeoutSeconds)) s and was killed" : outcome.how
        // One line, whatever the command printed (escape sequences and newlines included).
        let tail = oneLine(Subprocess.tail(log))
        throw AirlockError(
            .io, .alertCommandFailed,
            "the alert command \(describe(argv)) \(how)"
                + (asNobody ? " (it ran as nobody: its program and what it writes must be reachable by that user)" : "")
                + (tail.isEmpty ? "; it printed nothing" : ": \(tail)") + "; the alert is kept in the site's \(SiteLayout.alerts)")
    }

    /// `s` on one line: every control character (newlines, escape sequences) a space. For what
    /// a command or an endpoint printed, quoted in a message.
    public static func oneLine(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
    }

    /// The command as a person reads it: its arguments quoted as JSON strings (no control
    /// character of a configured argument reaches the message as is), the first few only.
    static func describe(_ argv: [String]) -> String {
        let shown = argv.prefix(4).map { CanonicalJSON.string(.string($0)) }
        return "[" + shown.joined(separator: ", ") + (argv.count > shown.count ? ", ..." : "") + "]"
    }

    private static func formatSeconds(_ s: Double) -> String {
        s == s.rounded() && abs(s) < 1e15 ? String(Int(s)) : String(s)
    }
}
