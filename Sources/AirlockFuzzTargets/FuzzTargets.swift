import AirlockFormat
import AirlockKit
import AirlockRollout
import CAirlockSystem
import Foundation

/// One parser of outside input, fed the way Airlock feeds it, with the invariants it must keep
/// beyond "no crash" (docs/fuzzing.md). `check` returns nil when the input was handled
/// correctly (accepted or refused), or what went wrong: a finding. The libFuzzer entry point
/// (`airlock-fuzz`) turns a finding into a crash; the test suite runs the committed corpus
/// through the same function.
public struct FuzzTarget: Sendable {
    /// The name `make fuzz` and `AIRLOCK_FUZZ_TARGET` use.
    public var name: String
    /// The largest input worth trying: the parser's own bound, or what is enough to reach every
    /// branch (libFuzzer's `-max_len`).
    public var maxLength: Int
    /// The most one allocation may take, in MiB (libFuzzer's `-malloc_limit_mb`): what the
    /// parser promises for any input it may meet.
    public var memoryMB: Int = 64
    /// What it checks, for docs/fuzzing.md and `airlock-fuzz --list`.
    public var summary: String
    /// The check itself.
    public var check: @Sendable ([UInt8]) -> String?
}

/// The fuzz targets, one per parser of bytes an attacker can shape.
public enum FuzzTargets {
    /// Every target, in the order `make fuzz` runs them.
    public static let all: [FuzzTarget] = [
        FuzzTarget(
            name: "json", maxLength: 64 << 10,
            summary: "JSONParser: an accepted document re-encodes canonically and parses back to the same value; canonical output is a fixed point",
            check: json),
        FuzzTarget(
            name: "manifest", maxLength: 1 << 20,
            summary:
                "Manifest.parse as the verifier calls it: an accepted manifest has rule-abiding, sorted, unique paths, sizes that add up within 2^53, summaries that match its files, and re-encodes to the same bytes' value",
            check: manifest),
        FuzzTarget(
            name: "delta", maxLength: 256 << 10,
            summary:
                "delta.json: DeltaInfo.parseHead (before signatures) and DeltaInfo.parse / resolved against a fixed manifest: accepted paths are files of the manifest, sorted, unique; carried and omitted partition the manifest",
            check: delta),
        FuzzTarget(
            name: "patch", maxLength: 256 << 10, memoryMB: 80,
            summary:
                "ManifestPatch.apply (the v2 delta's manifest patch) against a fixed base manifest: never more than its declared bound, and an applied patch's output is what the frame says",
            check: patch),
        FuzzTarget(
            name: "tar", maxLength: 256 << 10,
            summary:
                "TarReader over a decompressed stream cut into pieces at input-chosen places: every entry it returns has a path and a size, the data it hands out is exactly the declared size, and the total never exceeds the input",
            check: tar),
        FuzzTarget(
            name: "bundle", maxLength: 256 << 10, memoryMB: 80,
            summary:
                "the whole verifier on a bundle file (zstd frame walker, decompression, tar reader, head checks) with a fixed trust store: no input verifies without the trusted key's signature",
            check: bundle),
        FuzzTarget(
            name: "spec", maxLength: 64 << 10,
            summary: "ReleaseSpec.parse (airlock.yaml through Yams): an accepted spec has a valid name and version, components with safe relative paths",
            check: spec),
        FuzzTarget(
            name: "tools", maxLength: 64 << 10,
            summary: "ToolManifest.parse (tools.json from a bundle): accepted tool names are unique and every endpoint parses back the same",
            check: tools),
        FuzzTarget(
            name: "policy", maxLength: 64 << 10,
            summary: "TrustPolicy.parse (the trust store's policy.json): an accepted policy has a threshold of at least 1",
            check: policy),
        FuzzTarget(
            name: "state", maxLength: 64 << 10,
            summary: "a name's .state.json read by NameState.load from a site root: damaged JSON is state-corrupt, anything else loads",
            check: state),
        FuzzTarget(
            name: "history", maxLength: 64 << 10,
            summary:
                "the site's hash-chained .history.jsonl read by History.check and History.read: a chain it calls intact has lines that are JSON objects with seq 1, 2, 3, ...",
            check: history),
        FuzzTarget(
            name: "journal", maxLength: 4 << 10,
            summary: "a line of serve's task journal (TaskJournal.Event.parse): an accepted line's own encoding parses back, and encodes to the same line",
            check: journal),
        FuzzTarget(
            name: "recording", maxLength: 256 << 10,
            summary:
                "a file of recorded tasks read for replay (RecordingReader.readTasks, plain or gzip): accepted tasks have unique ids and each task's JSON reads back to the same task",
            check: recording),
        FuzzTarget(
            name: "outcome", maxLength: 4 << 10,
            summary:
                "an outcome report posted to airlock serve (OutcomeReport.parse): an accepted report has a task id of 1 to 128 printable characters and a finite cost from 0 to 1,000,000 kept to the micro-dollar",
            check: outcome),
    ]

    /// The target called `name`.
    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    // MARK: Targets

    static func json(_ data: [UInt8]) -> String? {
        guard let v = try? JSONParser.parse(data) else { return nil }
        let encoded = CanonicalJSON.encode(v)
        guard let again = try? JSONParser.parse(encoded) else { return "accepted, but its canonical encoding is refused" }
        guard again == v else { return "accepted, but its canonical encoding parses to another value" }
        guard CanonicalJSON.encode(again) == encoded else { return "the canonical encoding is not a fixed point" }
        return nil
    }

    static func manifest(_ data: [UInt8]) -> String? {
        guard let m = try? Manifest.parse(data) else { return nil }
        return manifestProblem(m)
    }

    /// What breaks the manifest target's invariants in a manifest the parser accepted.
    static func manifestProblem(_ m: Manifest) -> String? {
        var total: UInt64 = 0
        for (i, f) in m.files.enumerated() {
            if let reason = PathRules.problem(with: f.path) { return "accepted path \(f.path) breaks a rule: \(reason)" }
            if i > 0 && !PathRules.precedes(m.files[i - 1].path, f.path) { return "accepted files out of order at \(f.path)" }
            total += f.size
            if total > BundleLayout.maxInteger { return "accepted files add up past 2^53" }
        }
        if PathRules.setProblem(with: m.files.map(\.path)) != nil { return "accepted a set of paths the path rules refuse" }
        let sums = Manifest.summarize(m.files, metadata: m.components.mapValues(\.metadata))
        if sums.mapValues(\.digest) != m.components.mapValues(\.digest) { return "accepted component summaries that do not match the files" }
        guard let again = try? Manifest.parse(m.encoded()) else { return "accepted, but its own encoding is refused" }
        guard again == m else { return "accepted, but its encoding parses to another manifest" }
        return nil
    }

    /// A manifest of a few files, the base and the target of the delta targets.
    static let fixedManifest: Manifest = {
        let files = ["code/agent.py", "index/a.txt", "index/b.txt", "model/weights.bin", "prompts/system.md"].enumerated().map { i, p in
            ManifestFile(path: p, size: UInt64(i * 100), sha256: SHA256Digest.of(Array(p.utf8)), executable: i == 0)
        }
        return Manifest(
            name: "agent", version: "1", sequence: 1, created: "2026-01-01T00:00:00Z", expires: nil, componentMetadata: [:], files: files,
            attestations: nil, health: nil, serve: nil)
    }()

    static func delta(_ data: [UInt8]) -> String? {
        let m = fixedManifest
        let paths = Set(m.files.map(\.path))
        if let info = try? DeltaInfo.parse(data, manifest: m) {
            if info.omitted.contains(where: { !paths.contains($0) }) { return "v1 delta accepted an omitted path that is not in the manifest" }
            if info.omitted != info.omitted.sorted(by: PathRules.precedes) || Set(info.omitted).count != info.omitted.count {
                return "v1 delta accepted omitted paths out of order or twice"
            }
            guard (try? DeltaInfo.parse(info.encoded(), manifest: m)) == info else { return "v1 delta: its own encoding reads back differently" }
        }
        guard let head = try? DeltaInfo.parseHead(data) else { return nil }
        guard ReleaseNames.isValidName(head.name) else { return "v2 delta head accepted an invalid name" }
        guard let info = try? DeltaInfo.resolved(head, manifest: m) else { return nil }
        if Set(info.carried).union(info.omitted) != paths || !Set(info.carried).isDisjoint(with: info.omitted) {
            return "v2 delta: carried and omitted do not partition the manifest"
        }
        guard info.patched?.name == head.name, info.patched?.bundle == head.bundle, info.base == head.base else {
            return "v2 delta: the resolved hint differs from its head"
        }
        guard let again = try? DeltaInfo.parseHead(info.encoded()), (try? DeltaInfo.resolved(again, manifest: m)) == info else {
            return "v2 delta: its own encoding reads back differently"
        }
        return nil
    }

    static let fixedBase: [UInt8] = fixedManifest.encoded()

    static func patch(_ data: [UInt8]) -> String? {
        guard let out = try? ManifestPatch.apply(data, base: fixedBase) else { return nil }
        if out.count > ManifestPatch.maxBytes { return "a patch produced \(out.count) bytes, past the bound" }
        return nil
    }

    static func tar(_ data: [UInt8]) -> String? {
        // The first byte says where the pieces break (the decompressor hands out chunks of any
        // size); the rest is the decompressed stream.
        guard let first = data.first else { return nil }
        let body = Array(data.dropFirst())
        // At most 256 pieces: the breaks matter, not their number.
        let step = max(Int(first) * 37 + 1, body.count / 256)
        var pieces: [[UInt8]] = []
        var at = 0
        while at < body.count {
            pieces.append(Array(body[at..<min(body.count, at + step)]))
            at += step
        }
        let reader = TarReader(stream: DecompressedStream(pieces: pieces))
        defer { reader.close() }
        var total: UInt64 = 0
        do {
            while let e = try reader.nextEntry() {
                var got: UInt64 = 0
                try reader.readData { got += UInt64($0.count) }
                if got != e.size { return "entry data is \(got) bytes, the header said \(e.size)" }
                total += got
                if total > UInt64(body.count) { return "entries hold more bytes than the input" }
            }
            try reader.finish()
        } catch {
            return nil
        }
        return nil
    }

    /// The key the bundle target trusts: it signs nothing the fuzzer sees (the tests use it to
    /// show that the target reports a bundle that verifies).
    static let trustedKey: PrivateKey = {
        guard let key = try? PrivateKey.generate(.ed25519) else { fatalError("cannot make a key for the bundle target") }
        return key
    }()
    static let trust = TrustStore(keys: [trustedKey.publicKey])

    static func bundle(_ data: [UInt8]) -> String? {
        let fd = airlock_memfd("fuzz-bundle")
        guard fd >= 0 else { return "cannot make a memory file" }
        guard data.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == data.count, lseek(fd, 0, SEEK_SET) == 0 else {
            close(fd)
            return "cannot write the memory file"
        }
        // The reader owns the descriptor from here and closes it.
        let reader = BundleReader(fileDescriptor: fd, label: "fuzz")
        let report = Verifier.verify(reader: reader, trust: trust)
        reader.close()
        return report.ok ? "a bundle nobody trusted signed verified" : nil
    }

    static func spec(_ data: [UInt8]) -> String? {
        guard let text = String(validating: data, as: UTF8.self), let s = try? ReleaseSpec.parse(text) else { return nil }
        return specProblem(s)
    }

    static func specProblem(_ s: ReleaseSpec) -> String? {
        guard ReleaseNames.isValidName(s.name), ReleaseNames.isValidVersion(s.version) else { return "accepted an invalid name or version" }
        for c in s.components where c.path.hasPrefix("/") || c.path.split(separator: "/").contains("..") {
            return "accepted component path \(c.path)"
        }
        return nil
    }

    static func tools(_ data: [UInt8]) -> String? {
        guard let t = try? ToolManifest.parse(data, source: "fuzz", hostile: true) else { return nil }
        return toolsProblem(t)
    }

    static func toolsProblem(_ t: ToolManifest) -> String? {
        if Set(t.tools.map(\.name)).count != t.tools.count { return "accepted two tools of one name" }
        for tool in t.tools {
            for e in tool.permissions.network where Endpoint.parse(e.description) != e {
                return "endpoint \(e.description) does not parse back to itself"
            }
        }
        return nil
    }

    static func policy(_ data: [UInt8]) -> String? {
        guard let p = try? TrustPolicy.parse(data, path: "policy.json") else { return nil }
        return policyProblem(p)
    }

    static func policyProblem(_ p: TrustPolicy) -> String? {
        p.threshold >= 1 ? nil : "accepted a threshold of \(p.threshold)"
    }

    /// A site root of the process's own, made once, for the targets that read site files.
    static let scratch: String = {
        var template = Array("/tmp/airlock-fuzz-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { fatalError("cannot make a scratch folder for the site targets") }
        return String(cString: dir)
    }()

    /// Writes `data` to `path` (replacing it); false when it cannot.
    static func put(_ data: [UInt8], at path: String) -> Bool {
        let fd = Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == data.count
    }

    static func state(_ data: [UInt8]) -> String? {
        let site = Site(root: scratch)
        _ = Sys.mkdir(site.path("agent"), 0o755)
        guard put(data, at: site.path("agent", SiteLayout.state)) else { return "cannot write the state file" }
        do {
            _ = try NameState.load(site, "agent")
        } catch let e as AirlockError {
            return e.code == "state-corrupt" ? nil : "state file refused with \(e.code), not state-corrupt"
        } catch {
            return "unexpected error \(error)"
        }
        return nil
    }

    static func history(_ data: [UInt8]) -> String? {
        let site = Site(root: scratch)
        guard put(data, at: site.path(SiteLayout.history)) else { return "cannot write the history" }
        guard let c = try? History.check(site) else { return nil }
        _ = try? History.read(site)
        guard c.problem == nil else { return nil }
        var seq: UInt64 = 0
        var prev = History.genesis
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            seq += 1
            guard let o = (try? JSONParser.parse(Array(line)))?.objectValue, o["seq"]?.unsignedInteger(max: .max) == seq,
                o["prev"]?.stringValue == prev
            else {
                return "History.check called a chain intact whose line \(seq) is not the object with seq \(seq) chained to the line before"
            }
            prev = SHA256Digest.of(Array(line)).prefixed
        }
        return nil
    }

    static func journal(_ data: [UInt8]) -> String? {
        guard let e = TaskJournal.parse(data[...]) else { return nil }
        let line = TaskJournal.line(e)
        guard let again = TaskJournal.parse(line[...]) else { return "an accepted event's own line is refused" }
        guard TaskJournal.line(again) == line else { return "an accepted event's line is not a fixed point" }
        return nil
    }

    static func recording(_ data: [UInt8]) -> String? {
        let file = scratch + "/tasks.jsonl"
        guard put(data, at: file) else { return "cannot write the task file" }
        guard let tasks = try? RecordingReader.readTasks(file: file) else { return nil }
        return recordingProblem(tasks, file: file)
    }

    /// What breaks the recording target's invariants in tasks the reader accepted; `file` is
    /// scratch space.
    static func recordingProblem(_ tasks: [RecordedTask], file: String) -> String? {
        if Set(tasks.map(\.task)).count != tasks.count { return "accepted two tasks of one id" }
        var text: [UInt8] = []
        for t in tasks {
            text += CanonicalJSON.encode(t.json)
            text.append(0x0A)
        }
        guard put(text, at: file), let again = try? RecordingReader.readTasks(file: file) else { return "accepted tasks whose own JSON is refused" }
        guard again == tasks else { return "accepted tasks whose own JSON reads back differently" }
        return nil
    }

    static func outcome(_ data: [UInt8]) -> String? {
        guard case .success(let (task, o)) = OutcomeReport.parse(data) else { return nil }
        return outcomeProblem(task, o)
    }

    static func outcomeProblem(_ task: String, _ o: TaskOutcome) -> String? {
        guard (1...128).contains(task.utf8.count), task.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return "accepted the task id \(task)" }
        guard o.cost.isFinite, o.cost >= 0, o.cost <= TaskOutcome.maximumCost, (o.cost * 1_000_000).rounded() / 1_000_000 == o.cost else {
            return "accepted the cost \(o.cost)"
        }
        return nil
    }

    // MARK: Seeds

    /// Inputs each target starts from: valid documents of its format (a fuzzer mutates from
    /// there) and, for the bundle readers, bundles as `airlock pack` writes them.
    public static func seeds(for name: String) -> [[UInt8]] {
        let m = fixedManifest
        switch name {
        case "json":
            return [m.encoded(), Array(#"{"a":[1,2.5,-3e2,"x\u00e9\n",true,false,null,{}],"b":{"c":[]}}"#.utf8), Array("[]".utf8)]
        case "manifest":
            var withExtras = m
            withExtras.expires = "2030-01-01T00:00:00Z"
            return [m.encoded(), withExtras.encoded()]
        case "delta":
            let paths = m.files.map(\.path)
            return [
                DeltaInfo(base: SHA256Digest.of([1]), omitted: Array(paths.prefix(2))).encoded(),
                DeltaInfo(
                    base: SHA256Digest.of([1]), name: m.name, bundle: SHA256Digest.of(fixedBase), carried: Array(paths.suffix(3)),
                    omitted: Array(paths.prefix(2))
                )
                .encoded(),
            ]
        case "patch":
            var changed = m
            changed.version = "2"
            changed.files[1].size += 1
            return [(try? ManifestPatch.make(changed.encoded(), base: fixedBase)) ?? [], (try? ManifestPatch.make(fixedBase, base: fixedBase)) ?? []]
        case "tar":
            return [[0] + bundleBytes(.none), [3] + bundleBytes(.none)]
        case "bundle":
            return [bundleBytes(.zstd), bundleBytes(.gzip), bundleBytes(.none)]
        case "spec":
            return [
                Array(
                    """
                    name: example-agent
                    version: 1.0.0
                    sequence: 1
                    expires: 2030-01-01T00:00:00Z
                    components:
                      code: code/
                      model: { path: model/, name: tinyllama-1.1b-chat, snapshot: 2026-10-01 }
                      prompts: prompts/
                      tools: tools/
                      index: index/
                    health:
                      command: python3 code/agent.py --check
                      timeout: 10
                    eval:
                      command: python3 eval/run.py
                      threshold: 0.9
                      runs: 2
                      timeout: 120
                      files: [eval/]
                    serve:
                      command: python3 code/agent.py --serve
                      listen: port
                      ready: /healthz
                      start_timeout: 30

                    """.utf8)
            ]
        case "tools":
            return [
                Array(
                    #"{"tools":[{"name":"search_kb","description":"Search.","parameters":{"query":"string"},"permissions":{"network":["kb.internal:443","10.1.2.3:8080","[fd00::1]:443"],"read":["index/"],"write":[],"exec":[]}},{"name":"open_ticket","description":"Open.","parameters":{},"permissions":{"network":["tickets.internal:443"],"read":[],"write":["tmp/"],"exec":["/usr/bin/true"]}}]}"#
                        .utf8)
            ]
        case "policy":
            let id = String(repeating: "a", count: 64)
            return [
                Array(
                    #"{"threshold":2,"revoked":["\#(String(repeating: "b", count: 64))"],"keys":{"\#(id)":{"expires":"2027-06-01T00:00:00Z","label":"ci"}},"perimeter":{"hosts":["kb.internal:443","*.corp.internal"],"networks":["10.0.0.0/8"]},"require_eval":true,"approvals":{"threshold":1,"first_activation":false}}"#
                        .utf8)
            ]
        case "state":
            return [
                Array(
                    #"{"highest_sequence":3,"installed_at":{"agent-1":"2026-01-01T00:00:00Z"},"health":{"agent-1":{"command":"true","timeout_seconds":10}},"pending":["agent-2"],"pinned":["agent-1"],"stack":["agent-1"],"checking":{"release":"agent-2","process_group":123,"back":["agent-1"]}}"#
                        .utf8)
            ]
        case "history":
            var lines: [UInt8] = []
            var prev = "sha256:" + String(repeating: "0", count: 64)
            for seq in 1...3 {
                let line = Array(#"{"action":"install","name":"agent","prev":"\#(prev)","seq":\#(seq),"time":"2026-01-01T00:00:00Z"}"#.utf8)
                prev = SHA256Digest.of(line).prefixed
                lines += line + [0x0A]
            }
            return [lines]
        case "journal":
            return [
                Array("a task-1 agent-1.0.0 1f 2 1767225600.125".utf8), Array("o task-1 1 0.012500 0 1767225601.000".utf8),
                Array("x task-2 1767225602.500".utf8),
            ]
        case "recording":
            return [
                Array(
                    #"{"exchanges":[{"at":1767225600.5,"release":"agent-1","request":{"body":"{}","content_type":"application/json","method":"POST","path":"/task"},"response":{"body":"ok","content_type":"text/plain","status":200,"truncated":false},"tool_calls":[]}],"outcome":null,"task":"t-1"}"#
                        .utf8) + [0x0A]
            ]
        case "outcome":
            return [
                Array(#"{"task_id":"task-1","success":true,"cost":0.0125,"intervention":false}"#.utf8),
                Array(#"{"task_id":"t","success":false,"cost":1e2,"intervention":true,"error":"timeout"}"#.utf8),
            ]
        default:
            return []
        }
    }

    /// A bundle of the fixed manifest's release (every payload file of the right size, with
    /// its bytes), signed by `signer`, by default a new key the fuzz trust store does not hold.
    static func bundleBytes(_ compression: Compression, signedBy signer: PrivateKey? = nil) -> [UInt8] {
        let fd = airlock_memfd("fuzz-seed")
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        do {
            var m = fixedManifest
            let contents = m.files.map { f in [UInt8](repeating: UInt8(truncatingIfNeeded: f.path.utf8.count), count: Int(f.size)) }
            for i in m.files.indices { m.files[i].sha256 = SHA256Digest.of(contents[i]) }
            m = Manifest(
                name: m.name, version: m.version, sequence: m.sequence, created: m.created, expires: nil, componentMetadata: [:], files: m.files,
                attestations: nil, health: nil, serve: nil)
            let bytes = m.encoded()
            let key = try signer ?? PrivateKey.generate(.ed25519)
            let writer = try BundleWriter(fileDescriptor: fd, path: "seed", compression: compression, level: nil, threads: 1, mtime: 1_767_225_600)
            _ = try writer.writeManifest(m, length: UInt64(bytes.count))
            try writer.writeSignatures([(keyID: key.id, bytes: try key.sign(bytes))])
            try writer.writeSums(of: m)
            for (f, data) in zip(m.files, contents) {
                try writer.writePayload(f.path, size: f.size, executable: f.executable) { write in try data.withUnsafeBytes { try write($0) } }
            }
            try writer.close()
        } catch {
            return []
        }
        let size = Int(lseek(fd, 0, SEEK_END))
        var out = [UInt8](repeating: 0, count: max(size, 0))
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return n == size ? out : []
    }
}
