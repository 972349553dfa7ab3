import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// Delta bundles (issue 4): the same release, shipped lighter.
@Suite struct DeltaTests {
    let v1 = Release()
    var v2: Release { v1.with(version: "2.4.0", sequence: 8) { $0[4].data = Array("You are a careful support agent.\n".utf8) } }

    private func pack(_ r: Release, in tmp: TempDir, as name: String, base: DeltaBase? = nil) throws -> PackResult {
        let dir = r.writeDirectory(in: tmp, at: "src-" + name)
        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file(name)
        o.sourceDateEpoch = 1_767_225_600
        o.base = base
        return try Packer.pack(directory: dir, options: o)
    }

    @Test func deltaHasTheSameManifestAndCarriesOnlyNewContent() throws {
        let tmp = TempDir()
        let base = try pack(v1, in: tmp, as: "v1.airlock")
        let full = try pack(v2, in: tmp, as: "v2.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))
        #expect(delta.bundleID == full.bundleID)
        #expect(delta.delta?.base == base.bundleID)
        #expect(delta.delta?.omitted.count == v2.files.count - 1)
        #expect(delta.bundleBytes < full.bundleBytes)
        // Built from an installed release's manifest, the same delta.
        tmp.write("base-manifest.json", base.manifest.encoded())
        let fromManifest = try pack(v2, in: tmp, as: "v2-delta2.airlock", base: .manifest(tmp.file("base-manifest.json")))
        #expect(FileManager.default.contents(atPath: fromManifest.path) == FileManager.default.contents(atPath: delta.path))

        let report = Verifier.verify(bundle: delta.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")
        #expect(report.delta?.base == base.bundleID)
        #expect(report.filesChecked == 1 && report.filesExpectedAtSite == v2.files.count - 1)
        let summary = try BundleSummary.read(path: delta.path)
        #expect(summary.delta?.omitted.count == v2.files.count - 1)
    }

    @Test func deltaInstallsTheSameReleaseAsTheFullBundle() throws {
        let tmp = TempDir()
        let base = try pack(v1, in: tmp, as: "v1.airlock")
        let full = try pack(v2, in: tmp, as: "v2.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))

        let a = try TestSite(), b = try TestSite()
        for t in [a, b] { _ = try Installer.install(bundle: base.path, site: t.site) }
        let viaFull = try Installer.install(bundle: full.path, site: a.site)
        let viaDelta = try Installer.install(bundle: delta.path, site: b.site)
        #expect(viaFull.release == viaDelta.release && viaFull.bundleID == viaDelta.bundleID)
        #expect(viaDelta.bytesWritten == UInt64(v2.files[4].data.count))
        let snapA = a.snapshot().filter { $0.key.hasPrefix("support-agent/releases/") }
        let snapB = b.snapshot().filter { $0.key.hasPrefix("support-agent/releases/") }
        #expect(snapA == snapB)
        #expect(try SiteAdmin.audit(site: b.site, name: "support-agent", release: viaDelta.release).clean)
    }

    @Test func deltaWithoutItsContentIsRefusedNamingTheBase() throws {
        let tmp = TempDir()
        let base = try pack(v1, in: tmp, as: "v1.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))
        let t = try TestSite()
        let before = t.snapshot()
        #expect {
            try Installer.install(bundle: delta.path, site: t.site)
        } throws: { e in
            guard let e = e as? AirlockError else { return false }
            return e.code == "delta-base-missing" && e.message.contains(base.bundleID.prefixed)
        }
        #expect(t.snapshot() == before && t.stagingIsEmpty)
    }

    /// A site holding the content from any earlier release takes the delta, even when that
    /// exact base was never installed or was removed.
    @Test func contentFromAnyEarlierReleaseIsEnough() throws {
        let tmp = TempDir()
        let base = try pack(v1.with(version: "2.3.0-rc1", sequence: 6), in: tmp, as: "rc1.airlock")
        let v1Bundle = try pack(v1, in: tmp, as: "v1.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))
        // The base was never installed here; a release with the same content was.
        let t = try TestSite()
        _ = try Installer.install(bundle: v1Bundle.path, site: t.site)
        #expect(try Installer.install(bundle: delta.path, site: t.site).bytesWritten == UInt64(v2.files[4].data.count))
        // The base was installed, then removed; the content lives on in another release.
        let u = try TestSite()
        let rb = try Installer.install(bundle: base.path, site: u.site)
        _ = try Installer.install(
            bundle: v1Bundle.path, site: u.site,
            options: {
                var o = InstallOptions()
                o.activate = true
                return o
            }())
        _ = try SiteAdmin.remove(site: u.site, name: "support-agent", release: rb.release)
        _ = try SiteAdmin.gc(site: u.site, keep: 0)
        #expect(!u.site.releases("support-agent").contains(rb.release))
        #expect(try SiteAdmin.audit(site: u.site, name: "support-agent", release: try Installer.install(bundle: delta.path, site: u.site).release).clean)
    }

    /// The delta hint is unsigned, so nothing in it is trusted: a stored copy that does not
    /// match the manifest is refused, and so is a hint that omits files the manifest lacks.
    @Test func damagedStoreAndHostileHintsAreRefused() throws {
        let tmp = TempDir()
        let base = try pack(v1, in: tmp, as: "v1.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))
        let t = try TestSite()
        let r1 = try Installer.install(bundle: base.path, site: t.site)
        let weights = t.site.releaseDirectory("support-agent", r1.release) + "/payload/model/weights.bin"
        chmod(weights, 0o644)
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: weights))
        try fh.seek(toOffset: 10)
        try fh.write(contentsOf: Data([0xFF]))
        try fh.close()
        chmod(weights, 0o444)
        #expect { try Installer.install(bundle: delta.path, site: t.site) } throws: { ($0 as? AirlockError)?.code == "delta-base-damaged" }
        #expect(t.stagingIsEmpty)

        // Hostile hints, with the trusted manifest and signature.
        let m = v2.manifest
        for (hint, code) in [
            (#"{"format":"airlock.delta/v1","base":"sha256:\#(String(repeating: "0", count: 64))","omitted":["code/evil.sh"]}"#, "delta-invalid"),
            (#"{"format":"airlock.delta/v9","base":"sha256:\#(String(repeating: "0", count: 64))","omitted":[]}"#, "delta-invalid"),
            (
                #"{"format":"airlock.delta/v1","base":"sha256:\#(String(repeating: "0", count: 64))","omitted":["tools/tools.json","code/agent.py"]}"#,
                "delta-invalid"
            ),
        ] {
            var e = v2.entries(signers: [TestKeys.vendor])
            e.insert(TarBuilder.Entry(BundleLayout.deltaEntry, Array(hint.utf8)), at: 3)
            #expect(verify(TarBuilder.build(e)).error?.code == code, "\(hint)")
        }
        // A hint that omits a file the bundle still carries.
        var e = v2.entries(signers: [TestKeys.vendor])
        let hint = DeltaInfo(base: SHA256Digest.of([]), omitted: [m.files[0].path]).encoded()
        e.insert(TarBuilder.Entry(BundleLayout.deltaEntry, hint), at: 3)
        #expect(verify(TarBuilder.build(e)).error?.code == "entry-unexpected")
    }
}
