import Foundation

@testable import AirlockFormat
@testable import AirlockKit

/// A scratch directory removed when the value goes away.
final class TempDir {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "/airlock-test-XXXXXX").utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ rel: String) -> String { path + "/" + rel }

    @discardableResult
    func write(_ rel: String, _ bytes: [UInt8], mode: Int = 0o644) -> String {
        let p = file(rel)
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        chmod(p, mode_t(mode))
        return p
    }

    func write(_ rel: String, _ text: String, mode: Int = 0o644) { write(rel, Array(text.utf8), mode: mode) }
}

/// A small release in memory: the files and the manifest they give.
struct Release {
    struct File {
        var path: String
        var data: [UInt8]
        var executable = false
    }

    var name = "support-agent"
    var version = "2.3.0"
    var sequence: UInt64 = 7
    var expires: String?
    var files: [File] = Release.standardFiles
    var modelMetadata = ["name": "qwen2.5-7b-instruct", "snapshot": "2026-10-01"]
    var attestations: [String: JSONValue]?

    static let standardFiles: [File] = [
        File(path: "code/agent.py", data: Array("#!/usr/bin/env python3\nprint('hello')\n".utf8), executable: true),
        File(path: "model/weights.bin", data: (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }),
        File(path: "prompts/empty.txt", data: []),
        File(path: "prompts/r\u{E9}ponse.md", data: Array("R\u{E9}ponds poliment.\n".utf8)),
        File(path: "prompts/system.md", data: Array("You are a support agent.\n".utf8)),
        File(path: "tools/tools.json", data: Array(#"{"tools": []}"#.utf8)),
    ]

    var manifestFiles: [ManifestFile] {
        files.sorted { PathRules.precedes($0.path, $1.path) }.map {
            ManifestFile(path: $0.path, size: UInt64($0.data.count), sha256: SHA256Digest.of($0.data), executable: $0.executable)
        }
    }

    var manifest: Manifest {
        Manifest(
            name: name, version: version, sequence: sequence, created: "2026-11-26T00:00:00Z", expires: expires,
            componentMetadata: ["model": modelMetadata], files: manifestFiles, attestations: attestations)
    }

    /// The entries of a well-formed bundle of this release with `manifest` signed by `signers`.
    func entries(manifest bytes: [UInt8]? = nil, signers: [PrivateKey]) -> [TarBuilder.Entry] {
        let m = manifest
        let mbytes = bytes ?? m.encoded()
        var out = [TarBuilder.Entry(BundleLayout.manifestEntry, mbytes)]
        for k in signers {
            out.append(TarBuilder.Entry(BundleLayout.signaturesPrefix + k.id + ".sig", try! k.sign(mbytes)))
        }
        out.append(TarBuilder.Entry(BundleLayout.sumsEntry, m.sumsBytes))
        for f in files.sorted(by: { PathRules.precedes($0.path, $1.path) }) {
            out.append(TarBuilder.Entry("payload/" + f.path, f.data, mode: f.executable ? 0o755 : 0o644))
        }
        return out
    }

    /// Writes the release as a directory with an airlock.yaml.
    func writeDirectory(in dir: TempDir, at rel: String = "release") -> String {
        var yaml = "name: \(name)\nversion: \(version)\nsequence: \(sequence)\n"
        if let expires { yaml += "expires: \(expires)\n" }
        yaml += "components:\n"
        let comps = Set(files.map { String($0.path.prefix(while: { $0 != "/" })) })
        for c in BundleLayout.components where comps.contains(c) {
            yaml += c == "model" ? "  model: { path: model/, name: qwen2.5-7b-instruct, snapshot: 2026-10-01 }\n" : "  \(c): \(c)/\n"
        }
        dir.write(rel + "/airlock.yaml", yaml)
        for f in files { dir.write(rel + "/" + f.path, f.data, mode: f.executable ? 0o755 : 0o644) }
        return dir.file(rel)
    }
}

/// Keys made once per test process (key generation is cheap, but this keeps tests short).
enum TestKeys {
    static let vendor = try! PrivateKey.generate(.ed25519)
    static let second = try! PrivateKey.generate(.ed25519)
    static let ecdsa = try! PrivateKey.generate(.p256)
    static let stranger = try! PrivateKey.generate(.ed25519)

    static func trust(_ keys: [PrivateKey] = [vendor], policy: TrustPolicy = TrustPolicy()) -> TrustStore {
        TrustStore(keys: keys.map(\.publicKey), policy: policy)
    }
}

/// Runs a command and returns its exit status and output.
@discardableResult
func run(_ argv: [String], cwd: String? = nil, env: [String: String] = [:], stdin: [UInt8]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let input = Pipe()
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin)) }
    try? input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Verifies bundle bytes written to a temporary file.
func verify(
    _ bytes: [UInt8], trust: TrustStore = TestKeys.trust(), detached: [DetachedSignature] = [], now: Int64 = Timestamp.now(),
    base: BaseManifestLookup? = nil
) -> VerificationReport {
    let dir = TempDir()
    let path = dir.write("bundle.airlock", bytes)
    return Verifier.verify(bundle: path, trust: trust, detached: detached, now: now, baseManifest: base)
}

func zstdCompress(_ bytes: [UInt8]) throws -> [UInt8] {
    let dir = TempDir()
    let p = dir.write("in.tar", bytes)
    try run(["zstd", "-q", "-f", p, "-o", p + ".zst"])
    return Array(FileManager.default.contents(atPath: p + ".zst")!)
}

/// The bytes as `gzip` compresses them: one member, with no name and no time in its header,
/// unless `name` asks for the file name to be stored (`gzip -N`).
func gzipCompress(_ bytes: [UInt8], name: Bool = false) throws -> [UInt8] {
    let dir = TempDir()
    let p = dir.write("bundle.tar", bytes)
    try run(["gzip", name ? "-N" : "-n", "-k", p])
    return Array(FileManager.default.contents(atPath: p + ".gz")!)
}
