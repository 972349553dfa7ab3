import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// `start` extended by `/`-joined segments of `d` (each at most 255 bytes) to exactly `bytes`
/// bytes. `bytes` must exceed `start`'s length by at least 2.
func pathOfExactly(_ bytes: Int, from start: String) -> String {
    precondition(bytes - start.utf8.count >= 2)
    var p = start
    while bytes - p.utf8.count > 256 {
        // Never leave exactly one byte (an empty last segment).
        let n = bytes - p.utf8.count == 257 ? 254 : 255
        p += "/" + String(repeating: "d", count: n)
    }
    p += "/" + String(repeating: "d", count: bytes - p.utf8.count - 1)
    return p
}

/// The path bounds of format.md ("Path rules"): every path that verifies installs under a site
/// root of up to 1024 bytes.
@Suite struct PathBoundsTests {
    static let maxSiteRootBytes = 1024

    /// The arithmetic of format.md, from the layout's own names: the longest prefix install puts
    /// before a manifest path, plus a 1024-byte root and the longest path, fits in PATH_MAX.
    @Test func boundsFitUnderA1024ByteRoot() {
        #expect(ReleaseNames.isValidName(String(repeating: "n", count: 64)))
        #expect(!ReleaseNames.isValidName(String(repeating: "n", count: 65)))
        #expect(ReleaseNames.isValidVersion(String(repeating: "9", count: 64)))
        #expect(!ReleaseNames.isValidVersion(String(repeating: "9", count: 65)))
        let release = SiteLayout.releaseDirectory(version: String(repeating: "9", count: 64), bundleID: SHA256Digest.of([]))
        let final = "/" + String(repeating: "n", count: 64) + "/" + SiteLayout.releases + "/" + release + "/" + SiteLayout.releasePayload + "/"
        // The staging folder's random name: at most 128 bits as hex.
        let staging = "/" + SiteLayout.staging + "/" + String(repeating: "f", count: 32) + "/release/" + SiteLayout.releasePayload + "/"
        #expect(final.utf8.count == 161 && staging.utf8.count == 59)
        let longest = Self.maxSiteRootBytes + max(final.utf8.count, staging.utf8.count) + BundleLayout.maxBundlePathBytes
        #expect(longest <= Int(PATH_MAX) - 1, "\(longest) bytes do not fit in PATH_MAX")
        #expect(BundleLayout.maxPathSegmentBytes == Int(NAME_MAX))
    }

    @Test func reasonsNameTheLimits() {
        #expect(PathRules.problem(with: "code/" + String(repeating: "a", count: 255)) == nil)
        #expect(PathRules.problem(with: "code/" + String(repeating: "a", count: 256)) == "path segment longer than 255 bytes")
        #expect(PathRules.problem(with: String(repeating: "a", count: 256) + "/x") == "path segment longer than 255 bytes")
        #expect(PathRules.problem(with: pathOfExactly(2048, from: "code")) == nil)
        #expect(PathRules.problem(with: pathOfExactly(2049, from: "code")) == "path longer than 2048 bytes")
    }

    /// The worst case the bounds allow: a 64-byte name and version, a 255-byte file name and a
    /// 2048-byte path, packed from a folder, verified and installed under a 1024-byte site root.
    @Test func longestPathsPackVerifyAndInstallUnderA1024ByteRoot() throws {
        let tmp = TempDir()
        chmod(tmp.path, 0o755)
        var r = Release()
        r.name = String(repeating: "n", count: 64)
        r.version = "1" + String(repeating: "0", count: 63)
        let segment = "code/" + String(repeating: "s", count: BundleLayout.maxPathSegmentBytes)
        let longest = pathOfExactly(BundleLayout.maxBundlePathBytes, from: "index")
        r.files += [Release.File(path: segment, data: Array("at NAME_MAX\n".utf8)), Release.File(path: longest, data: Array("at the bound\n".utf8))]
        let dir = r.writeDirectory(in: tmp)

        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file("b.airlock")
        o.sourceDateEpoch = 1_767_225_600
        let packed = try Packer.pack(directory: dir, options: o)
        #expect(packed.manifest.files.contains { $0.path == segment } && packed.manifest.files.contains { $0.path == longest })
        let report = Verifier.verify(bundle: packed.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")

        let root = pathOfExactly(Self.maxSiteRootBytes, from: tmp.file("site"))
        #expect(root.utf8.count == 1024)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let site = Site(root: root)
        try site.prepare()
        tmp.write(String(site.trustDirectory.dropFirst(tmp.path.count + 1)) + "/\(TestKeys.vendor.id).pub", TestKeys.vendor.publicKey.pem)
        let installed = try Installer.install(bundle: packed.path, site: site)
        #expect(installed.files == r.files.count)
        let payload = site.releaseDirectory(r.name, installed.release) + "/" + SiteLayout.releasePayload + "/"
        #expect((payload + longest).utf8.count == 1024 + 161 + 2048)
        #expect(FileManager.default.contents(atPath: payload + longest) == Data("at the bound\n".utf8))
        #expect(FileManager.default.contents(atPath: payload + segment) == Data("at NAME_MAX\n".utf8))
    }

    /// The printable-ASCII fast path of the path rules gives exactly the general rules' answers.
    @Test func asciiFastPathAgreesWithTheGeneralRules() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [String] = ["a", "b", ".", "/", "\\", " ", "~", "Z", "\u{7}", "\u{E9}"]
        var checked = 0
        for _ in 0..<50_000 {
            let n = Int.random(in: 1...9, using: &rng)
            let path = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            if path.hasPrefix("/") { continue }
            #expect(PathRules.problem(with: path) == PathRules.problemInFull(path), "\(path.debugDescription)")
            checked += 1
        }
        let long = String(repeating: "a", count: 256)
        for path in [long, "x/" + long, long + "/x", "a/" + String(repeating: "b", count: 255), "...", "a/../b", "a/.../b", "a//b", "a/"] {
            #expect(PathRules.problem(with: path) == PathRules.problemInFull(path), "\(path)")
        }
        #expect(checked > 40_000)
    }

    /// Regression (review of issue 14): segments are split on the byte '/', not on Characters.
    /// "/" followed by a combining mark is one Character, which hid a ".." segment; a "Prepend"
    /// character before "/" joined it into the component's name.
    @Test func segmentsAreSplitOnBytesNotCharacters() {
        #expect(PathRules.problem(with: "code/../\u{301}x") == "'..' path segment")
        #expect(PathRules.problem(with: "code/./\u{301}x") == "'.' path segment")
        #expect(PathRules.splitLast("code/../\u{301}x") == (folder: "code/..", name: "\u{301}x"))
        let f = ManifestFile(path: "code\u{600}/x", size: 0, sha256: SHA256Digest.of([]), executable: false)
        #expect(f.component == "code\u{600}")
        #expect(ToolManifest.pathProblem("/srv/app/../\u{301}etc") != nil)
        #expect(ToolManifest.pathProblem("/srv/app/\u{301}etc") == nil)
    }
}
