import AirlockFormat
import Foundation

/// What one tool may do: the network endpoints it reaches, the paths it reads, writes and runs.
public struct ToolPermissions: Equatable, Sendable {
    /// The endpoints the tool reaches.
    public var network: [Endpoint] = []
    /// The paths the tool reads: absolute (on the host) or relative (inside the release); a
    /// trailing `/` means the folder and everything under it.
    public var read: [String] = []
    /// The paths the tool writes, written as `read`'s are.
    public var write: [String] = []
    /// The paths the tool runs, written as `read`'s are.
    public var exec: [String] = []

    /// Permissions of nothing: no endpoint, no path.
    public init() {}

    static let kinds = ["network"] + pathKinds
    static let pathKinds = ["read", "write", "exec"]

    /// The path list of a path kind (`pathKinds`).
    func paths(_ kind: String) -> [String] {
        switch kind {
        case "read": return read
        case "write": return write
        default: return exec
        }
    }
}

/// `tools/tools.json`: the tools an agent may call and what each may reach (docs/release.md).
///
/// ```json
/// {"tools": [{"name": "search_kb", "description": "...", "parameters": {...},
///             "permissions": {"network": ["kb.internal:443"], "read": ["index/"], "write": [], "exec": []}}]}
/// ```
public struct ToolManifest: Equatable, Sendable {
    /// One tool the agent may call.
    public struct Tool: Equatable, Sendable {
        /// The tool's name, unique in the manifest: `^[A-Za-z][A-Za-z0-9_.-]{0,63}$`.
        public var name: String
        /// What the tool does, for the model: a non-empty string of at most 4,096 bytes.
        public var description: String
        /// What the tool may reach; nothing when the manifest gives no `permissions`.
        public var permissions: ToolPermissions
    }

    /// The tools, in the manifest's order.
    public var tools: [Tool]

    /// Where it lives in a release (relative to the payload).
    public static let path = "tools/tools.json"
    /// The largest tool manifest Airlock reads: 1 MiB.
    public static let maxBytes = 1 << 20
    static let maxTools = 1000

    static func invalid(_ source: String, _ what: String) -> AirlockError {
        AirlockError(.invalidRelease, .toolsInvalid, "\(source) is invalid: \(what) (see docs/release.md, \"Tools\")")
    }

    /// Parses a tool manifest. `hostile`: it comes from a bundle (whose packer would have
    /// refused it), so a problem is a verification failure rather than a release to fix. Throws
    /// `tools-invalid` (a verification failure when `hostile`).
    public static func parse(_ bytes: [UInt8], source: String, hostile: Bool) throws -> ToolManifest {
        do {
            return try parse(bytes, source: source)
        } catch let e as AirlockError where hostile && e.code == "tools-invalid" {
            throw AirlockError.verification(.toolsInvalid, e.message + "; the bundle was not made by a correct packer")
        }
    }

    /// Parses a tool manifest strictly by the rules of docs/release.md, "Tools"; `source` names
    /// it in errors. Throws `tools-invalid`.
    public static func parse(_ bytes: [UInt8], source: String) throws -> ToolManifest {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw invalid(source, "not strict JSON: \(error)") }
        guard case .object(let top) = v else { throw invalid(source, "the top level must be an object") }
        for key in top.keys where key != "tools" { throw invalid(source, "unknown field \"\(key)\"") }
        guard let list = top["tools"]?.arrayValue else { throw invalid(source, "\"tools\" must be a list ({\"tools\": []} declares none)") }
        guard list.count <= maxTools else { throw invalid(source, "more than \(maxTools) tools") }
        var tools: [Tool] = []
        for (k, tv) in list.enumerated() {
            guard case .object(let o) = tv else { throw invalid(source, "tools[\(k)] must be an object") }
            for key in o.keys where !["name", "description", "parameters", "permissions"].contains(key) {
                throw invalid(source, "tools[\(k)] has unknown field \"\(key)\"")
            }
            guard let name = o["name"]?.stringValue, isToolName(name) else {
                throw invalid(source, "tools[\(k)].name must match ^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
            }
            guard !tools.contains(where: { $0.name == name }) else { throw invalid(source, "tool \"\(name)\" is declared twice") }
            guard let description = o["description"]?.stringValue, !description.isEmpty, description.utf8.count <= 4096 else {
                throw invalid(source, "tool \"\(name)\": description must be a non-empty string of at most 4096 bytes")
            }
            if let p = o["parameters"], p.objectValue == nil { throw invalid(source, "tool \"\(name)\": parameters must be an object") }
            var perms = ToolPermissions()
            if let pv = o["permissions"] {
                guard case .object(let po) = pv else { throw invalid(source, "tool \"\(name)\": permissions must be an object") }
                for key in po.keys where !ToolPermissions.kinds.contains(key) {
                    throw invalid(source, "tool \"\(name)\": permissions has unknown field \"\(key)\" (network, read, write, exec)")
                }
                for kind in ToolPermissions.kinds {
                    guard let raw = po[kind] else { continue }
                    guard let items = raw.arrayValue, let strings = Optional(items.compactMap(\.stringValue)), strings.count == items.count else {
                        throw invalid(source, "tool \"\(name)\": permissions.\(kind) must be a list of strings")
                    }
                    guard Set(strings).count == strings.count else { throw invalid(source, "tool \"\(name)\": permissions.\(kind) lists an entry twice") }
                    if kind == "network" {
                        for s in strings {
                            guard let e = Endpoint.parse(s) else {
                                throw invalid(
                                    source, "tool \"\(name)\": network entry \"\(s)\" must be host:port (a lowercase DNS name, IPv4, or [IPv6], port 1-65535)")
                            }
                            perms.network.append(e)
                        }
                    } else {
                        for s in strings {
                            if let reason = pathProblem(s) { throw invalid(source, "tool \"\(name)\": \(kind) entry \"\(s)\": \(reason)") }
                        }
                        switch kind {
                        case "read": perms.read = strings
                        case "write": perms.write = strings
                        default: perms.exec = strings
                        }
                    }
                }
            }
            tools.append(Tool(name: name, description: description, permissions: perms))
        }
        return ToolManifest(tools: tools)
    }

    /// Whether `s` is a tool name: `^[A-Za-z][A-Za-z0-9_.-]{0,63}$`.
    public static func isToolName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...64).contains(u.count), (0x41...0x5A).contains(u[0]) || (0x61...0x7A).contains(u[0]) else { return false }
        return u.allSatisfy { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
    }

    /// A permission path: absolute (on the host) or relative (inside the release); a trailing
    /// `/` means the folder and everything under it.
    static func pathProblem(_ s: String) -> String? {
        if s.isEmpty { return "empty path" }
        if s.utf8.count > BundleLayout.maxPathBytes { return "longer than \(BundleLayout.maxPathBytes) bytes" }
        if s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return "control character" }
        if !PathRules.isNFC(s) { return "not in Unicode NFC form" }
        // Bytes, not Characters: "/" followed by a combining mark is one Character.
        var body = Array(s.utf8)[...]
        if body.first == UInt8(ascii: "/") { body = body.dropFirst() }
        if body.last == UInt8(ascii: "/") { body = body.dropLast() }
        if body.isEmpty { return nil }  // "/": the whole host, which a reviewer sees as such
        for seg in body.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        where seg.isEmpty || seg.elementsEqual(".".utf8) || seg.elementsEqual("..".utf8) {
            return "empty, '.' or '..' segment"
        }
        return nil
    }
}
