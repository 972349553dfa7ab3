import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// Where the site sends the tool calls of its releases (`tools` in the trust store's
/// `policy.json`, docs/replay.md, "The tool gateway"): per tool name, an `http://` URL inside the
/// perimeter or a local command. A release calls a tool through the gateway of `airlock serve`,
/// which refuses a tool the release's `tools/tools.json` does not declare and forwards a declared
/// one to the endpoint named here.
///
/// ```json
/// {"tools": {"endpoints": {"search_kb": {"url": "http://kb.corp.internal:8080/search"},
///                          "read_order": {"command": ["/usr/local/bin/order-lookup"]}},
///            "timeout_seconds": 10}}
/// ```
public struct ToolEndpoints: Sendable, Equatable {
    /// One tool's endpoint.
    public enum Target: Sendable, Equatable {
        /// POSTed the call's arguments as JSON; answers the result as JSON.
        case url(String)
        /// Started with the call's arguments as JSON on stdin; prints the result as JSON.
        case command([String])
    }

    /// The endpoint of each tool the site serves; a declared tool without one is answered
    /// "not available at this site".
    public var endpoints: [String: Target] = [:]
    /// Seconds a call may take (default 10, 1 to 300).
    public var timeoutSeconds: Double = 10

    /// No tool served.
    public init() {}

    /// Parses `tools`; every URL's host and port must be inside `perimeter`. Throws
    /// `policy-invalid` naming `path`.
    static func parse(_ value: JSONValue, perimeter: Perimeter, path: String) throws -> ToolEndpoints {
        guard let o = value.objectValue else { throw TrustPolicy.invalid(path, "\"tools\" must be an object (endpoints, timeout_seconds)") }
        var t = ToolEndpoints()
        for (key, v) in o.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "endpoints":
                guard let e = v.objectValue else { throw TrustPolicy.invalid(path, "tools.endpoints must be an object of tool names") }
                for (tool, x) in e.sorted(by: { $0.key < $1.key }) {
                    guard ToolManifest.isToolName(tool) else {
                        throw TrustPolicy.invalid(path, "tools.endpoints has \"\(tool)\", which is not a tool name (^[A-Za-z][A-Za-z0-9_.-]{0,63}$)")
                    }
                    t.endpoints[tool] = try target(x, tool: tool, perimeter: perimeter, path: path)
                }
            case "timeout_seconds":
                guard case .number(let n) = v, let s = Double(n), s >= 1, s <= 300 else {
                    throw TrustPolicy.invalid(path, "tools.timeout_seconds must be from 1 to 300")
                }
                t.timeoutSeconds = s
            default: throw TrustPolicy.invalid(path, "tools has unknown field \"\(key)\" (endpoints, timeout_seconds)")
            }
        }
        return t
    }

    private static func target(_ x: JSONValue, tool: String, perimeter: Perimeter, path: String) throws -> Target {
        let shape = "tools.endpoints.\(tool) must be {\"url\": \"http://host:port/path\"} or {\"command\": [\"/absolute/program\", \"arg\", ...]}"
        guard let o = x.objectValue, o.count == 1 else { throw TrustPolicy.invalid(path, shape) }
        if let u = o["url"] {
            guard let url = u.stringValue, url.hasPrefix("http://"), let e = Endpoint.parse(url: url) else { throw TrustPolicy.invalid(path, shape) }
            guard perimeter.allows(e) else {
                throw TrustPolicy.invalid(
                    path,
                    "tools.endpoints.\(tool) \(url) is outside the site's perimeter (\(e)); tool calls never leave it: add the host with `airlock trust allow` or use an endpoint inside"
                )
            }
            return .url(url)
        }
        if let c = o["command"] {
            guard let items = c.arrayValue, let argv = Optional(items.compactMap(\.stringValue)), argv.count == items.count,
                let first = argv.first, first.hasPrefix("/")
            else { throw TrustPolicy.invalid(path, shape) }
            return .command(argv)
        }
        throw TrustPolicy.invalid(path, shape)
    }

    /// The object as `policy.json` holds it.
    var fields: JSONValue {
        .object([
            "endpoints": .object(
                endpoints.mapValues { t in
                    switch t {
                    case .url(let u): return .object(["url": .string(u)])
                    case .command(let argv): return .object(["command": .array(argv.map { .string($0) })])
                    }
                }),
            "timeout_seconds": .number(EvalAttestation.decimal(timeoutSeconds)),
        ])
    }
}

/// Runs a tool the site maps to a local command (`ToolEndpoints.Target.command`).
public enum ToolCommand {
    /// What a tool command gave.
    public enum Result: Sendable, Equatable {
        /// It exited 0 and printed this (at most `maxOutputBytes`).
        case output([UInt8])
        /// It did not: how, with the end of what it printed.
        case failed(String)
        /// It ran out of time and was killed.
        case timedOut
    }

    /// The most a tool command may print.
    public static let maxOutputBytes = 1 << 20

    /// Runs `argv` (an absolute program path first) with `arguments` (the call's canonical
    /// JSON) on stdin, as every command is run (`AlertCommand.run`: from `/`, a clean
    /// environment, a process group of its own, no descriptor of Airlock's, as `nobody` when
    /// Airlock runs as root), and with the tool's name and the call's task, release and name in
    /// `AIRLOCK_TOOL`, `AIRLOCK_TASK_ID`, `AIRLOCK_RELEASE` and `AIRLOCK_NAME`. Blocks until it
    /// ends, at most `timeoutSeconds`. Throws `spawn-failed`, `create-failed` and `write-failed`
    /// when it cannot be run.
    public static func run(
        _ argv: [String], arguments: [UInt8], tool: String, task: String, name: String, release: String, timeoutSeconds: Double
    ) throws -> Result {
        let out = try Subprocess.anonymousFile("tool-output")
        defer { close(out) }
        let err = try Subprocess.anonymousFile("tool-errors")
        defer { close(err) }
        let (command, _) = Subprocess.asNobody(["/bin/sh", "-c", "cd / && unset OLDPWD && exec \"$0\" \"$@\""] + argv)
        let environment =
            AlertCommand.environment + ["AIRLOCK_TOOL=\(tool)", "AIRLOCK_TASK_ID=\(task)", "AIRLOCK_RELEASE=\(release)", "AIRLOCK_NAME=\(name)"]
        let outcome = try Subprocess.run(
            command, environment: environment, stdin: .bytes(arguments), stdout: .descriptor(out), stderr: .descriptor(err),
            timeoutSeconds: timeoutSeconds)
        if outcome == .timedOut { return .timedOut }
        guard outcome == .exited(0) else {
            let tail = Subprocess.tail(err)
            return .failed("\(outcome.how)" + (tail.isEmpty ? "" : ": \(tail)"))
        }
        let size = lseek(out, 0, SEEK_END)
        guard size >= 0, size <= off_t(maxOutputBytes) else { return .failed("printed more than \(maxOutputBytes) bytes") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = bytes.isEmpty ? 0 : pread(out, &bytes, bytes.count, 0)
        guard n == bytes.count else { return .failed("its output could not be read back") }
        return .output(bytes)
    }
}
