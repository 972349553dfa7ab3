import AirlockFormat
import Testing

@testable import AirlockRegistry

@Suite struct ReferenceTests {
    @Test func parsesTheFormsSitesWrite() throws {
        let a = try RegistryReference.parse("oci://registry.site:5000/agents/support-bot:1.4.0")
        #expect(a.host == "registry.site:5000" && a.repository == "agents/support-bot" && a.tag == "1.4.0" && a.digest == nil)
        #expect(a.description == "oci://registry.site:5000/agents/support-bot:1.4.0")
        #expect(!a.isLoopback)
        let hex = String(repeating: "ab", count: 32)
        let b = try RegistryReference.parse("127.0.0.1:5000/a/b@sha256:\(hex)")
        #expect(b.digest?.hex == hex && b.tag == nil && b.reference == "sha256:" + hex && b.isLoopback)
        let c = try RegistryReference.parse("[::1]:5000/x:v1@sha256:\(hex)")
        #expect(c.hostName == "::1" && c.isLoopback && c.tag == "v1" && c.digest != nil)
        #expect(try RegistryReference.parse("localhost/x").isLoopback)
        #expect(try RegistryReference.parse("localhost/x").reference == nil)
    }

    @Test(arguments: [
        "oci://registry.site", "oci:///repo:tag", "oci://host:0/r", "oci://host:99999/r", "oci://user@host/r", "oci://host/Upper",
        "oci://host/a//b", "oci://host/a-/b", "oci://host/r:-tag", "oci://host/r:" + String(repeating: "t", count: 129),
        "oci://host/r@sha256:abc", "oci://host/r@sha512:" + String(repeating: "a", count: 128), "oci://ho st/r",
        "oci://host/r@SHA256:"
            + String(repeating: "A", count: 64),
    ])
    func refusesWhatIsNotAReference(_ text: String) {
        #expect(throws: AirlockError.self) { try RegistryReference.parse(text) }
        do { _ = try RegistryReference.parse(text) } catch { #expect(error.code == "registry-reference-invalid") }
    }

    @Test func repositoryGrammar() {
        for ok in ["a", "a/b", "a.b_c__d--e/f", "agents/support-bot", "x0/1y"] { #expect(RegistryReference.isValidRepository(ok), "\(ok)") }
        for bad in ["", "A", "a_", "_a", "a___b", "a..b", "a/", "/a", "a/-b", "a b"] { #expect(!RegistryReference.isValidRepository(bad), "\(bad)") }
    }

    @Test func defaultTags() {
        #expect(Registry.defaultTag(version: "1.4.0", deltaBase: nil) == "1.4.0")
        #expect(RegistryReference.tag(forVersion: "1.4.0+build.7") == "1.4.0_build.7")
        let base = SHA256Digest.of(Array("base".utf8))
        #expect(Registry.defaultTag(version: "2.0.0", deltaBase: base) == "2.0.0-delta-" + base.hex.prefix(12))
        #expect(RegistryReference.isValidTag(Registry.defaultTag(version: String(repeating: "9", count: 200), deltaBase: base)))
    }

    @Test func challenges() {
        let (scheme, p) = RegistryClient.parseChallenge(#"Bearer realm="https://auth.site/token",service="registry.site",scope="repository:a/b:pull""#)
        #expect(scheme == "bearer")
        #expect(p == ["realm": "https://auth.site/token", "service": "registry.site", "scope": "repository:a/b:pull"])
        let (basic, q) = RegistryClient.parseChallenge(#"Basic realm="Registry Realm""#)
        #expect(basic == "basic" && q["realm"] == "Registry Realm")
        let (s3, r) = RegistryClient.parseChallenge(#"Bearer realm=x, error="insufficient_scope", quoted="a\"b""#)
        #expect(s3 == "bearer" && r["realm"] == "x" && r["error"] == "insufficient_scope" && r["quoted"] == "a\"b")
    }

    static let id = SHA256Digest.of(Array("manifest".utf8))
    static let layer = SHA256Digest.of(Array("bundle".utf8))

    static func manifest(config: String = OCIArtifact.configMediaType, layer: String = OCIArtifact.layerMediaType(.zstd), layers: Int = 1) -> [UInt8] {
        let l = #"{"mediaType":"\#(layer)","digest":"\#(Self.layer.prefixed)","size":12}"#
        return Array(
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"\#(config)","digest":"\#(id.prefixed)","size":5},"layers":[\#(Array(repeating: l, count: layers).joined(separator: ","))]}"#
                .utf8)
    }

    @Test func manifestsRoundTripAndStrangersAreRefused() throws {
        let built = OCIBundleManifest(
            config: OCIDescriptor(mediaType: OCIArtifact.configMediaType, digest: Self.id, size: 5),
            layer: OCIDescriptor(
                mediaType: OCIArtifact.layerMediaType(.gzip), digest: Self.layer, size: 12, annotations: ["org.opencontainers.image.title": "b.airlock"]),
            annotations: [OCIArtifact.Annotation.name: "agent"])
        let parsed = try OCIBundleManifest.parse(built.encoded(), contentType: OCIArtifact.manifestMediaType, source: "t")
        #expect(parsed == built)
        #expect(try OCIBundleManifest.parse(Self.manifest(), contentType: nil, source: "t").layer.size == 12)

        func refused(_ bytes: [UInt8], _ type: String? = OCIArtifact.manifestMediaType, _ says: String) {
            do {
                _ = try OCIBundleManifest.parse(bytes, contentType: type, source: "t")
                Issue.record("accepted: \(says)")
            } catch {
                #expect(error.code == "registry-manifest-invalid")
                #expect(error.message.contains(says), "\(error.message)")
            }
        }
        refused(Self.manifest(), "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.index.v1+json")
        refused(Self.manifest(), "application/vnd.docker.distribution.manifest.v2+json", "docker")
        refused(Self.manifest(config: "application/vnd.oci.image.config.v1+json"), OCIArtifact.manifestMediaType, "an image or another artifact")
        refused(Self.manifest(layer: "application/vnd.oci.image.layer.v1.tar+gzip"), OCIArtifact.manifestMediaType, "not a bundle")
        refused(Self.manifest(layers: 2), OCIArtifact.manifestMediaType, "2 layers")
        refused(Array("[]".utf8), OCIArtifact.manifestMediaType, "not a JSON object")
        refused(Array(repeating: 0x20, count: OCIArtifact.maxManifestBytes + 1), OCIArtifact.manifestMediaType, "more than")
        refused(
            Array(String(decoding: Self.manifest(), as: UTF8.self).replacingOccurrences(of: Self.layer.prefixed, with: "sha256:XYZ").utf8),
            OCIArtifact.manifestMediaType, "digest")
    }
}

extension Error {
    var code: String { (self as? AirlockError)?.code ?? "\(self)" }
    var message: String { (self as? AirlockError)?.message ?? "\(self)" }
}
