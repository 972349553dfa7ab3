import AirlockFormat
import Foundation

/// Everything a release is allowed to reach: its tools' permissions and the model's endpoint.
public struct Grants: Equatable, Sendable {
    /// Each tool's permissions, by tool name.
    public var tools: [String: ToolPermissions] = [:]
    /// The remote model the release calls instead of shipping weights (`model.endpoint`).
    public var modelEndpoint: Endpoint?

    /// Grants of nothing: no tool, no model endpoint.
    public init() {}

    /// The grants of a release: the tools of its tool manifest (nil: none) and the model endpoint
    /// in `manifest`. Throws `model-endpoint-invalid`.
    public init(tools: ToolManifest?, manifest: Manifest) throws {
        for t in tools?.tools ?? [] { self.tools[t.name] = t.permissions }
        modelEndpoint = try Self.modelEndpoint(manifest.components["model"]?.metadata["endpoint"])
    }

    /// The model's endpoint from its metadata. One that does not parse is refused, never read
    /// as "no endpoint": a signed manifest is still hostile input.
    static func modelEndpoint(_ url: String?) throws -> Endpoint? {
        guard let url else { return nil }
        guard let e = Endpoint.parse(url: url) else {
            throw AirlockError.verification(
                .modelEndpointInvalid,
                "the manifest's model endpoint \"\(url)\" is not a URL Airlock can check against the perimeter; the bundle was not made by a correct packer")
        }
        return e
    }

    /// Every endpoint the release reaches, with who reaches it ("tool search_kb", "the model").
    public var egress: [(who: String, endpoint: Endpoint)] {
        var out: [(String, Endpoint)] = []
        if let m = modelEndpoint { out.append(("the model", m)) }
        for name in tools.keys.sorted() {
            for e in tools[name]!.network { out.append(("tool \(name)", e)) }
        }
        return out
    }

    /// What `new` grants beyond `old`, in words a reviewer can sign off, one line each: new
    /// tools, new endpoints, wider paths, a new model endpoint. Empty when nothing widens.
    public static func escalations(from old: Grants, to new: Grants) -> [String] {
        var out: [String] = []
        if let m = new.modelEndpoint, m != old.modelEndpoint {
            out.append("the model reaches \(m)" + (old.modelEndpoint.map { " (was \($0))" } ?? " (it reached no endpoint before)"))
        }
        for name in new.tools.keys.sorted() {
            let p = new.tools[name]!
            guard let q = old.tools[name] else {
                out.append("new tool \(name)" + (describe(p).isEmpty ? " (no permissions)" : ": " + describe(p)))
                continue
            }
            let net = p.network.filter { !q.network.contains($0) }
            if !net.isEmpty { out.append("tool \(name) gains network access to \(net.map(\.description).joined(separator: ", "))") }
            for kind in ToolPermissions.pathKinds {
                let wider = p.paths(kind).filter { path in !q.paths(kind).contains { covers($0, path) } }
                if !wider.isEmpty { out.append("tool \(name) may now \(verb(kind)) \(wider.joined(separator: ", "))") }
            }
        }
        return out
    }

    /// What `new` no longer grants of `old`, in words.
    public static func reductions(from old: Grants, to new: Grants) -> [String] {
        var out: [String] = []
        if let m = old.modelEndpoint, new.modelEndpoint != m { out.append("the model no longer reaches \(m)") }
        for name in old.tools.keys.sorted() where new.tools[name] == nil { out.append("tool \(name) is removed") }
        for name in old.tools.keys.sorted() {
            guard let p = new.tools[name], let q = old.tools[name] else { continue }
            let net = q.network.filter { !p.network.contains($0) }
            if !net.isEmpty { out.append("tool \(name) loses network access to \(net.map(\.description).joined(separator: ", "))") }
            for kind in ToolPermissions.pathKinds {
                let narrower = q.paths(kind).filter { path in !p.paths(kind).contains { covers($0, path) } }
                if !narrower.isEmpty { out.append("tool \(name) may no longer \(verb(kind)) \(narrower.joined(separator: ", "))") }
            }
        }
        return out
    }

    /// `a` covers `b`: the same path, or `a` is a folder (`.../`) that holds `b`. Bytes are
    /// compared, never Unicode equivalence: `é` and `e` + U+0301 are two folders on Linux.
    static func covers(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8) || (a.utf8.last == UInt8(ascii: "/") && b.utf8.starts(with: a.utf8))
    }

    static func verb(_ kind: String) -> String { kind == "exec" ? "run" : kind }

    static func describe(_ p: ToolPermissions) -> String {
        var parts: [String] = []
        if !p.network.isEmpty { parts.append("network \(p.network.map(\.description).joined(separator: ", "))") }
        for kind in ToolPermissions.pathKinds where !p.paths(kind).isEmpty {
            parts.append("\(verb(kind)) \(p.paths(kind).joined(separator: ", "))")
        }
        return parts.joined(separator: "; ")
    }
}
