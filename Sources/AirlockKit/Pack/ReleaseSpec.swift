import AirlockFormat
import Yams

/// A release directory's `airlock.yaml`: what the vendor packs.
///
/// ```yaml
/// name: support-agent
/// version: 2.3.0
/// sequence: 7
/// expires: 2027-06-01T00:00:00Z   # optional
/// components:
///   code: code/
///   model: { path: model/, name: qwen2.5-7b-instruct, snapshot: 2026-10-01 }
///   prompts: prompts/
///   tools: tools/
///   index: index/
/// ```
/// Unknown keys, duplicate keys and wrong types are refused.
public struct ReleaseSpec: Equatable, Sendable {
    /// A component the release declares: its name, its folder and the metadata signed with it.
    public struct Component: Equatable, Sendable {
        /// One of `BundleLayout.components`: `code`, `model`, `prompts`, `tools`, `index`.
        public var name: String
        /// Relative to the release directory.
        public var path: String
        /// The keys given besides `path`: the model's `name`, `snapshot` and `endpoint`; none for
        /// another component.
        public var metadata: [String: String]
    }

    /// The release's name: `^[a-z0-9][a-z0-9._-]{0,63}$`.
    public var name: String
    /// The human label of the release: `^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`.
    public var version: String
    /// 1 to 2^53, strictly increasing per name (anti-downgrade).
    public var sequence: UInt64
    /// When the bundle stops verifying (RFC 3339 UTC); nil: never.
    public var expires: String?
    /// `health: { command: ..., timeout: 30 }`: run against `current` after each activation.
    public var health: HealthCheck?
    /// In the fixed component order.
    public var components: [Component]
    /// `eval: { command: ..., threshold: 0.9, runs: 3, timeout: 600, files: [eval/] }`: the
    /// gate `pack` runs before it writes a bundle.
    public var eval: EvalSpec?
    /// `serve: { command: ..., listen: port, ready: /healthz, start_timeout: 30 }`: how the
    /// release runs as a service under `airlock serve`; a release with it packs as format v2.
    public var serve: ServeSpec?

    /// Metadata keys a component may carry besides `path`.
    static let metadataKeys: [String: Set<String>] = ["model": ["name", "snapshot", "endpoint"]]

    static func invalid(_ file: String, _ what: String) -> AirlockError {
        AirlockError(.invalidRelease, .releaseSpecInvalid, "\(file): \(what)")
    }

    /// Reads and parses `directory`'s `airlock.yaml`. Throws `release-spec-missing` when there is
    /// none, `release-spec-invalid` when it is not UTF-8 or `parse` refuses it, and what reading
    /// the file throws (`permission-denied`, `is-a-directory`, `open-failed`, `read-failed`, and
    /// `file-too-large` past 1 MiB).
    public static func load(directory: String) throws -> ReleaseSpec {
        let file = directory + "/" + BundleLayout.releaseSpecFile
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(file, limit: 1 << 20, what: "release spec")
        } catch let e as AirlockError where e.code == "file-not-found" {
            throw AirlockError(.invalidRelease, .releaseSpecMissing, "\(file) does not exist; a release directory needs an airlock.yaml (see docs/release.md)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw invalid(file, "not UTF-8 text") }
        return try parse(text, file: file)
    }

    /// Parses the text of an `airlock.yaml` strictly; `file` names it in errors. Throws
    /// `release-spec-invalid`.
    public static func parse(_ text: String, file: String = BundleLayout.releaseSpecFile) throws -> ReleaseSpec {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw invalid(file, "not valid YAML: \(error)")
        }
        guard let top = try mapping(root, file: file, at: "the top level") else { throw invalid(file, "the top level must be a mapping") }
        var name: String?, version: String?, sequence: UInt64?, expires: String?, health: HealthCheck?, eval: EvalSpec?
        var serve: ServeSpec?
        var components: [Component] = []
        for (key, value) in top {
            switch key {
            case "name":
                let s = try scalar(value, file: file, at: key)
                guard ReleaseNames.isValidName(s) else {
                    throw invalid(file, "name \"\(s)\" must match ^[a-z0-9][a-z0-9._-]{0,63}$ (lowercase letters, digits, '.', '_', '-')")
                }
                name = s
            case "version":
                let s = try scalar(value, file: file, at: key)
                guard ReleaseNames.isValidVersion(s) else { throw invalid(file, "version \"\(s)\" must match ^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$") }
                version = s
            case "sequence":
                let s = try scalar(value, file: file, at: key)
                guard let v = JSONValue.number(s).unsignedInteger(), v >= 1 else {
                    throw invalid(file, "sequence \"\(s)\" must be an integer from 1 to 2^53, higher than every earlier release's")
                }
                sequence = v
            case "expires":
                let s = try scalar(value, file: file, at: key)
                guard Timestamp.parse(s) != nil else { throw invalid(file, "expires \"\(s)\" must be an RFC 3339 UTC time like 2027-06-01T00:00:00Z") }
                expires = s
            case "health":
                guard let m = try mapping(value, file: file, at: key) else { throw invalid(file, "health must be a mapping with command (and timeout)") }
                var command: String?
                var timeout: Double = 30
                for (k, v) in m {
                    switch k {
                    case "command": command = try scalar(v, file: file, at: "health.command")
                    case "timeout":
                        let s = try scalar(v, file: file, at: "health.timeout")
                        guard let t = JSONValue.number(s).unsignedInteger(max: 86400), t >= 1 else {
                            throw invalid(file, "health.timeout must be whole seconds from 1 to 86400")
                        }
                        timeout = Double(t)
                    default: throw invalid(file, "unknown key \"\(k)\" in health; allowed: command, timeout")
                    }
                }
                guard let command, !command.isEmpty else { throw invalid(file, "health needs a command") }
                health = HealthCheck(command: command, timeoutSeconds: timeout)
            case "eval":
                eval = try evalSpec(value, file: file)
            case "serve":
                serve = try serveSpec(value, file: file)
            case "components":
                guard let m = try mapping(value, file: file, at: key) else { throw invalid(file, "components must be a mapping") }
                var byName: [String: Component] = [:]
                for (cname, cvalue) in m {
                    guard BundleLayout.components.contains(cname) else {
                        throw invalid(file, "unknown component \"\(cname)\"; components are \(BundleLayout.components.joined(separator: ", "))")
                    }
                    byName[cname] = try component(cname, cvalue, file: file)
                }
                components = BundleLayout.components.compactMap { byName[$0] }
            default:
                throw invalid(file, "unknown key \"\(key)\"; allowed: name, version, sequence, expires, health, eval, serve, components")
            }
        }
        guard let name else { throw invalid(file, "missing \"name\"") }
        guard let version else { throw invalid(file, "missing \"version\"") }
        guard let sequence else { throw invalid(file, "missing \"sequence\"") }
        guard !components.isEmpty else { throw invalid(file, "\"components\" must name at least one of \(BundleLayout.components.joined(separator: ", "))") }
        if let endpoint = components.first(where: { $0.name == "model" })?.metadata["endpoint"], Endpoint.parse(url: endpoint) == nil {
            throw invalid(
                file,
                "components.model.endpoint \"\(endpoint)\" must be a URL such as https://llm.internal:8443/v1 (http, https, grpc, grpcs, ws, wss; no credentials)"
            )
        }
        var spec = ReleaseSpec(name: name, version: version, sequence: sequence, expires: expires, health: health, components: components, eval: eval)
        spec.serve = serve
        return spec
    }

    /// The `serve` mapping: `command` (required), `listen` (`port`, the default, or `socket`),
    /// `ready` (default `/healthz`) and `start_timeout` (seconds, default 30).
    private static func serveSpec(_ value: Node, file: String) throws -> ServeSpec {
        guard let m = try mapping(value, file: file, at: "serve") else {
            throw invalid(file, "serve must be a mapping with command (and listen, ready, start_timeout)")
        }
        var spec = ServeSpec(command: "")
        for (k, v) in m {
            let s = try scalar(v, file: file, at: "serve.\(k)")
            switch k {
            case "command": spec.command = s
            case "listen":
                guard let l = ServeSpec.Listen(rawValue: s) else { throw invalid(file, "serve.listen must be port or socket") }
                spec.listen = l
            case "ready": spec.readyPath = s
            case "start_timeout":
                guard let t = JSONValue.number(s).unsignedInteger(max: 3600), t >= 1 else {
                    throw invalid(file, "serve.start_timeout must be whole seconds from 1 to 3600")
                }
                spec.startTimeoutSeconds = Int(t)
            default: throw invalid(file, "unknown key \"\(k)\" in serve; allowed: command, listen, ready, start_timeout")
            }
        }
        if let why = spec.problem {
            throw invalid(
                file, why.replacingOccurrences(of: "ready_path", with: "ready").replacingOccurrences(of: "start_timeout_seconds", with: "start_timeout"))
        }
        return spec
    }

    private static func evalSpec(_ value: Node, file: String) throws -> EvalSpec {
        guard let m = try mapping(value, file: file, at: "eval") else { throw invalid(file, "eval must be a mapping with command and threshold") }
        var spec = EvalSpec(command: "", threshold: 0)
        var haveThreshold = false
        for (k, v) in m {
            switch k {
            case "command": spec.command = try scalar(v, file: file, at: "eval.command")
            case "threshold":
                let s = try scalar(v, file: file, at: "eval.threshold")
                guard let t = Double(s), t.isFinite, (0...1).contains(t) else { throw invalid(file, "eval.threshold must be a number from 0 to 1") }
                spec.threshold = t
                haveThreshold = true
            case "runs":
                let s = try scalar(v, file: file, at: "eval.runs")
                guard let r = JSONValue.number(s).unsignedInteger(max: 100), r >= 1 else {
                    throw invalid(file, "eval.runs must be a whole number from 1 to 100")
                }
                spec.runs = Int(r)
            case "timeout":
                let s = try scalar(v, file: file, at: "eval.timeout")
                guard let t = JSONValue.number(s).unsignedInteger(max: 86400), t >= 1 else {
                    throw invalid(file, "eval.timeout must be whole seconds from 1 to 86400")
                }
                spec.timeoutSeconds = Double(t)
            case "files":
                guard case .sequence(let items) = v else { throw invalid(file, "eval.files must be a list of files or folders of the release directory") }
                for item in items {
                    let f = try scalar(item, file: file, at: "eval.files")
                    var p = f
                    while p.hasSuffix("/") && p.count > 1 { p.removeLast() }
                    guard PathRules.problem(with: p) == nil else {
                        throw invalid(file, "eval.files \"\(f)\" must be a path inside the release directory (relative, no '..')")
                    }
                    spec.files.append(p)
                }
            default: throw invalid(file, "unknown key \"\(k)\" in eval; allowed: command, threshold, runs, timeout, files")
            }
        }
        guard !spec.command.isEmpty else { throw invalid(file, "eval needs a command") }
        guard haveThreshold else { throw invalid(file, "eval needs a threshold (0 to 1)") }
        return spec
    }

    private static func component(_ cname: String, _ value: Node, file: String) throws -> Component {
        if case .scalar = value {
            return Component(name: cname, path: try folder(try scalar(value, file: file, at: cname), cname, file), metadata: [:])
        }
        guard let m = try mapping(value, file: file, at: "components.\(cname)") else {
            throw invalid(file, "components.\(cname) must be a folder or a mapping with \"path\"")
        }
        var path: String?
        var meta: [String: String] = [:]
        let allowed = metadataKeys[cname] ?? []
        for (k, v) in m {
            if k == "path" {
                path = try folder(try scalar(v, file: file, at: "components.\(cname).path"), cname, file)
            } else if allowed.contains(k) {
                meta[k] = try scalar(v, file: file, at: "components.\(cname).\(k)")
            } else {
                let keys = (["path"] + allowed.sorted()).joined(separator: ", ")
                throw invalid(file, "unknown key \"\(k)\" in components.\(cname); allowed: \(keys)")
            }
        }
        guard let path else { throw invalid(file, "components.\(cname) needs a \"path\"") }
        return Component(name: cname, path: path, metadata: meta)
    }

    private static func folder(_ s: String, _ cname: String, _ file: String) throws -> String {
        var p = s
        while p.hasSuffix("/") && p.count > 1 { p.removeLast() }
        guard PathRules.problem(with: p) == nil else {
            throw invalid(file, "components.\(cname) \"\(s)\" must be a folder inside the release directory (relative, no '..')")
        }
        return p
    }

    private static func mapping(_ node: Node?, file: String, at: String) throws -> [(String, Node)]? {
        guard let node, case .mapping(let m) = node else { return nil }
        var seen = Set<String>()
        var out: [(String, Node)] = []
        for (k, v) in m {
            guard case .scalar(let ks) = k else { throw invalid(file, "a key in \(at) is not a plain string") }
            guard seen.insert(ks.string).inserted else { throw invalid(file, "key \"\(ks.string)\" appears twice in \(at)") }
            out.append((ks.string, v))
        }
        return out
    }

    private static func scalar(_ node: Node, file: String, at: String) throws -> String {
        guard case .scalar(let s) = node else { throw invalid(file, "\(at) must be a single value") }
        return s.string
    }
}
