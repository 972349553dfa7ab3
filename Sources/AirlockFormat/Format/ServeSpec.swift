/// How a release runs as a service (`serve` in `airlock.yaml`, `serve` in the manifest of a
/// format v2 bundle; docs/release.md): the command that starts the agent's runtime from the
/// release's `payload/` folder, how Airlock reaches it, the path that answers when it is ready
/// and how long it may take to start.
///
/// ```json
/// {"command": "python3 code/agent.py --serve", "listen": "port", "ready_path": "/healthz",
///  "start_timeout_seconds": 30}
/// ```
public struct ServeSpec: Equatable, Sendable {
    /// How Airlock reaches the runtime.
    public enum Listen: String, Sendable, CaseIterable {
        /// A loopback TCP port Airlock chooses, given to the runtime in `PORT`.
        case port
        /// A unix socket path Airlock chooses, given to the runtime in `AIRLOCK_SOCKET`.
        case socket
    }

    /// The command, run by `/bin/sh -c` in the release's `payload/` folder.
    public var command: String
    /// How Airlock reaches the runtime.
    public var listen: Listen
    /// The HTTP path that answers 200 once the runtime is ready (`GET`).
    public var readyPath: String
    /// Seconds the runtime may take to answer ready, from 1 to 3600.
    public var startTimeoutSeconds: Int

    /// Longest command, in bytes.
    public static let maxCommandBytes = 4096
    /// Longest ready path, in bytes.
    public static let maxReadyPathBytes = 256

    /// A serve section; `readyPath` defaults to `/healthz` and the timeout to 30 seconds.
    public init(command: String, listen: Listen = .port, readyPath: String = "/healthz", startTimeoutSeconds: Int = 30) {
        self.command = command
        self.listen = listen
        self.readyPath = readyPath
        self.startTimeoutSeconds = startTimeoutSeconds
    }

    /// Why `command`, `readyPath` or the timeout break the rules, or nil: a command of 1 to
    /// 4,096 bytes without NUL; a path that starts with `/`, of printable ASCII without spaces,
    /// at most 256 bytes; a timeout from 1 to 3600 seconds.
    public var problem: String? {
        if command.isEmpty || command.utf8.count > Self.maxCommandBytes || command.utf8.contains(0) {
            return "serve.command must be 1 to \(Self.maxCommandBytes) bytes"
        }
        let path = Array(readyPath.utf8)
        if path.first != UInt8(ascii: "/") || path.count > Self.maxReadyPathBytes || !path.allSatisfy({ (0x21...0x7E).contains($0) }) {
            return "serve.ready_path must start with / and be at most \(Self.maxReadyPathBytes) printable ASCII characters without spaces"
        }
        if !(1...3600).contains(startTimeoutSeconds) { return "serve.start_timeout_seconds must be from 1 to 3600" }
        return nil
    }

    /// The section as the manifest holds it.
    public var json: JSONValue {
        .object([
            "command": .string(command), "listen": .string(listen.rawValue), "ready_path": .string(readyPath),
            "start_timeout_seconds": .integer(startTimeoutSeconds),
        ])
    }

    /// Parses the manifest's `serve` object strictly: every field present, none unknown.
    /// Throws `manifest-invalid`.
    public static func parse(_ value: JSONValue) throws -> ServeSpec {
        let shape = "\"serve\" must be {\"command\": string, \"listen\": \"port\" or \"socket\", \"ready_path\": string, \"start_timeout_seconds\": integer}"
        guard case .object(let o) = value, o.count == 4, let command = o["command"]?.stringValue,
            let listen = o["listen"]?.stringValue.flatMap(Listen.init(rawValue:)), let ready = o["ready_path"]?.stringValue,
            let timeout = o["start_timeout_seconds"]?.unsignedInteger(max: 3600)
        else { throw Manifest.invalid(shape) }
        let spec = ServeSpec(command: command, listen: listen, readyPath: ready, startTimeoutSeconds: Int(timeout))
        if let why = spec.problem { throw Manifest.invalid(why) }
        return spec
    }
}
