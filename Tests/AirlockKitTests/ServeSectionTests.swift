import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// The `serve` section (issue 11): signed into the manifest, which then says format v2; bundles
/// without it stay v1; a reader refuses what it does not know, and says to upgrade.
@Suite struct ServeSectionTests {
    private let serve = ServeSpec(command: "python3 code/agent.py --serve", listen: .port, readyPath: "/healthz", startTimeoutSeconds: 20)

    private func bytes(_ m: Manifest, edit: (inout [String: JSONValue]) -> Void) -> [UInt8] {
        guard case .object(var o) = m.json else { return [] }
        edit(&o)
        return CanonicalJSON.encode(.object(o))
    }

    @Test func theReleaseSpecDeclaresIt() throws {
        let spec = try ReleaseSpec.parse(
            """
            name: a
            version: 1.0.0
            sequence: 1
            components: { code: code/ }
            serve: { command: python3 code/agent.py --serve, listen: socket, ready: /ready, start_timeout: 45 }
            """)
        #expect(spec.serve == ServeSpec(command: "python3 code/agent.py --serve", listen: .socket, readyPath: "/ready", startTimeoutSeconds: 45))
        let defaults = try ReleaseSpec.parse("name: a\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/ }\nserve: { command: ./run }\n")
        #expect(defaults.serve == ServeSpec(command: "./run", listen: .port, readyPath: "/healthz", startTimeoutSeconds: 30))
        #expect(try ReleaseSpec.parse("name: a\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/ }\n").serve == nil)
        for (bad, message) in [
            ("serve: { listen: port }", "serve.command"),
            ("serve: { command: x, listen: tcp }", "serve.listen must be port or socket"),
            ("serve: { command: x, ready: healthz }", "serve.ready must start with /"),
            ("serve: { command: x, ready: '/a b' }", "serve.ready must start with /"),
            ("serve: { command: x, start_timeout: 0 }", "serve.start_timeout"),
            ("serve: { command: x, start_timeout: 3601 }", "serve.start_timeout"),
            ("serve: { command: x, port: 80 }", "unknown key \"port\" in serve"),
            ("serve: x", "serve must be a mapping"),
        ] {
            #expect {
                try ReleaseSpec.parse("name: a\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/ }\n\(bad)\n")
            } throws: { e in
                guard let e = e as? AirlockError else { return false }
                return e.code == "release-spec-invalid" && e.message.contains(message)
            }
        }
    }

    @Test func aPackedReleaseWithItIsFormatV2AndVerifiesAndInstalls() throws {
        let tmp = TempDir()
        let dir = Release().writeDirectory(in: tmp)
        tmp.write(
            "release/airlock.yaml", try String(contentsOfFile: dir + "/airlock.yaml", encoding: .utf8) + "serve:\n  command: python3 code/agent.py --serve\n")
        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file("v2.airlock")
        o.sourceDateEpoch = 1_767_225_600
        let r = try Packer.pack(directory: dir, options: o)
        #expect(r.manifest.format == BundleLayout.formatV2)
        #expect(r.manifest.serve?.command == "python3 code/agent.py --serve")
        let report = Verifier.verify(bundle: r.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")
        #expect(report.manifest?.serve == r.manifest.serve)
        let summary = try BundleSummary.read(path: r.path)
        #expect(summary.json.objectValue?["format"]?.stringValue == BundleLayout.formatV2)
        #expect(summary.json.objectValue?["serve"]?.objectValue?["listen"]?.stringValue == "port")

        let site = Site(root: tmp.file("root"))
        try FileManager.default.createDirectory(atPath: site.trustDirectory, withIntermediateDirectories: true)
        tmp.write("root/.trust/vendor.pub", TestKeys.vendor.publicKey.pem)
        let installed = try Installer.install(bundle: r.path, site: site)
        #expect(try site.manifest(installed.name, installed.release).serve == r.manifest.serve)

        // Without the section the same release packs as v1, byte for byte what it always was.
        let plain = Release().writeDirectory(in: tmp, at: "plain")
        o.output = tmp.file("v1.airlock")
        #expect(try Packer.pack(directory: plain, options: o).manifest.format == BundleLayout.format)
        #expect(try BundleSummary.read(path: tmp.file("v1.airlock")).manifest.json.objectValue?["serve"] == nil)
    }

    @Test func readersRefuseWhatTheyDoNotKnow() throws {
        var m = Release().manifest
        m.serve = serve
        #expect(try Manifest.parse(m.encoded()).serve == serve)
        // `serve` in a v1 manifest: a v1 reader knows every v1 field, and this is not one.
        #expect {
            try Manifest.parse(bytes(m) { $0["format"] = .string(BundleLayout.format) })
        } throws: { ($0 as? AirlockError)?.code == "manifest-invalid" }
        // v2 without `serve`: a manifest says the lowest version that describes it.
        #expect {
            try Manifest.parse(bytes(Release().manifest) { $0["format"] = .string(BundleLayout.formatV2) })
        } throws: { ($0 as? AirlockError)?.code == "manifest-invalid" }
        // A later format: refused with a message that says to upgrade.
        #expect {
            try Manifest.parse(bytes(m) { $0["format"] = .string("airlock.bundle/v3") })
        } throws: { e in
            guard let e = e as? AirlockError else { return false }
            return e.code == "format-unsupported" && e.message.contains("upgrade Airlock") && e.message.contains("airlock.bundle/v2")
        }
        for bad: JSONValue in [
            .object(["command": .string("x"), "listen": .string("port"), "ready_path": .string("/h")]),
            .object(["command": .string("x"), "listen": .string("tcp"), "ready_path": .string("/h"), "start_timeout_seconds": .integer(5)]),
            .object(["command": .string(""), "listen": .string("port"), "ready_path": .string("/h"), "start_timeout_seconds": .integer(5)]),
            .object(["command": .string("x"), "listen": .string("port"), "ready_path": .string("h"), "start_timeout_seconds": .integer(5)]),
            .object(["command": .string("x"), "listen": .string("port"), "ready_path": .string("/h"), "start_timeout_seconds": .integer(0)]),
            .object([
                "command": .string("x"), "listen": .string("port"), "ready_path": .string("/h"), "start_timeout_seconds": .integer(5), "user": .string("root"),
            ]),
            .string("python3 agent.py"),
        ] {
            #expect("\(bad)") {
                try Manifest.parse(bytes(m) { $0["serve"] = bad })
            } throws: { ($0 as? AirlockError)?.code == "manifest-invalid" }
        }
    }
}
