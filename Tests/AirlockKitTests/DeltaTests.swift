import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// Delta bundles (issue 4): the same release, shipped lighter.
@Suite struct DeltaTests {
    let v1 = Release()
    var v2: Release { v1.with(version: "2.4.0", sequence: 8) { $0[4].data = Array("You are a careful support agent.\n".utf8) } }

    private func pack(_ r: Release, in tmp: TempDir, as name: String, base: DeltaBase? = nil, fullManifest: Bool = false) throws -> PackResult {
        let dir = r.writeDirectory(in: tmp, at: "src-" + name)
        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file(name)
        o.sourceDateEpoch = 1_767_225_600
        o.base = base
        o.fullManifestDelta = fullManifest
        return try Packer.pack(directory: dir, options: o)
    }

    /// The entry names of the bundle at `path`, in order.
    private func entryNames(_ path: String) throws -> [String] {
        try run(["tar", "--zstd", "-tf", path]).stdout.split(separator: "\n").map(String.init)
    }

    @Test func deltaHasTheSameManifestAndCarriesOnlyNewContent() throws {
        let tmp = TempDir()
        let base = try pack(v1, in: tmp, as: "v1.airlock")
        let full = try pack(v2, in: tmp, as: "v2.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))
        #expect(delta.bundleID == full.bundleID)
        #expect(delta.delta?.base == base.bundleID)
        #expect(delta.delta?.omitted.count == v2.files.count - 1)
        #expect(delta.delta?.isPatched == true && delta.delta?.carried == [v2.files[4].path])
        #expect(delta.bundleBytes < full.bundleBytes)
        // The manifest travels as a patch against the base's; no SHA256SUMS (it is derived).
        let sig = BundleLayout.signaturesPrefix + TestKeys.vendor.id + BundleLayout.signatureSuffix
        #expect(try entryNames(delta.path) == [BundleLayout.deltaEntry, BundleLayout.manifestPatchEntry, sig, "payload/" + v2.files[4].path])
        // Built from an installed release's manifest, the same delta.
        tmp.write("base-manifest.json", base.manifest.encoded())
        let fromManifest = try pack(v2, in: tmp, as: "v2-delta2.airlock", base: .manifest(tmp.file("base-manifest.json")))
        #expect(FileManager.default.contents(atPath: fromManifest.path) == FileManager.default.contents(atPath: delta.path))

        let report = Verifier.verify(bundle: delta.path, trust: TestKeys.trust(), baseManifest: DeltaBase.bundle(base.path).lookup)
        #expect(report.ok, "\(report.error?.description ?? "")")
        #expect(report.bundleID == full.bundleID && report.delta?.base == base.bundleID)
        #expect(report.filesChecked == 1 && report.filesExpectedAtSite == v2.files.count - 1)
        let summary = try BundleSummary.read(path: delta.path, baseManifest: DeltaBase.manifest(tmp.file("base-manifest.json")).lookup)
        #expect(summary.delta?.omitted.count == v2.files.count - 1)
        #expect(summary.bundleID == full.bundleID)

        // Without its base, the delta names what it needs; with another base, which one it needs.
        let alone = Verifier.verify(bundle: delta.path, trust: TestKeys.trust())
        #expect(alone.error?.code == "delta-base-missing" && alone.error!.message.contains(base.bundleID.prefixed))
        let other = Verifier.verify(bundle: delta.path, trust: TestKeys.trust(), baseManifest: DeltaBase.bundle(full.path).lookup)
        #expect(other.error?.code == "delta-base-mismatch" && other.error!.message.contains(base.bundleID.prefixed))

        // The whole-manifest form (airlock.delta/v1) is still written on request, and read.
        let whole = try pack(v2, in: tmp, as: "v2-delta-whole.airlock", base: .bundle(base.path), fullManifest: true)
        #expect(whole.bundleID == full.bundleID && whole.delta?.isPatched == false && whole.bundleBytes > delta.bundleBytes)
        #expect(try entryNames(whole.path).prefix(4) == [BundleLayout.manifestEntry, sig, BundleLayout.sumsEntry, BundleLayout.deltaEntry])
        #expect(Verifier.verify(bundle: whole.path, trust: TestKeys.trust()).ok)
    }

    /// An auditor rebuilds the manifest with zstd alone (docs/audit.md): `zstd -d
    /// --patch-from=BASE_MANIFEST`, and its SHA-256 is the bundle id.
    @Test func theManifestPatchIsWhatZstdPatchFromReads() throws {
        let tmp = TempDir()
        let base = try pack(v1, in: tmp, as: "v1.airlock")
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path))
        let x = tmp.file("x")
        try FileManager.default.createDirectory(atPath: x, withIntermediateDirectories: true)
        #expect(try run(["tar", "--zstd", "-xf", delta.path, "-C", x]).status == 0)
        tmp.write("base.json", base.manifest.encoded())
        let r = try run(["zstd", "-q", "-d", "--patch-from=" + tmp.file("base.json"), x + "/" + BundleLayout.manifestPatchEntry, "-o", tmp.file("m.json")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(SHA256Digest.of(Array(FileManager.default.contents(atPath: tmp.file("m.json"))!)) == delta.bundleID)
        // And what zstd makes with --patch-from, Airlock reads.
        tmp.write("v2.json", v2.manifest.encoded())
        #expect(try run(["zstd", "-q", "-19", "--patch-from=" + tmp.file("base.json"), tmp.file("v2.json"), "-o", tmp.file("p.zst")]).status == 0)
        let made = Array(FileManager.default.contents(atPath: tmp.file("p.zst"))!)
        #expect(try ManifestPatch.apply(made, base: base.manifest.encoded()) == v2.manifest.encoded())
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
        // A delta whose manifest is a patch needs the base's manifest: not at this site.
        let patched = try pack(v2, in: tmp, as: "v2-patched.airlock", base: .bundle(base.path))
        let s = try TestSite()
        _ = try Installer.install(bundle: v1Bundle.path, site: s.site)
        #expect {
            try Installer.install(bundle: patched.path, site: s.site)
        } throws: { e in
            guard let e = e as? AirlockError else { return false }
            return e.code == "delta-base-missing" && e.message.contains(base.bundleID.prefixed)
        }
        #expect(s.stagingIsEmpty)
        // The whole-manifest delta needs only the content.
        let delta = try pack(v2, in: tmp, as: "v2-delta.airlock", base: .bundle(base.path), fullManifest: true)
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

    /// A format v2 delta is read before its signatures verify (the signed manifest must be
    /// rebuilt first): its hint and its patch are bounded and strict, and every hostile form is
    /// refused with nothing trusted.
    @Test func hostilePatchedDeltasAreRefused() throws {
        let baseBytes = v1.manifest.encoded()
        let baseID = SHA256Digest.of(baseBytes)
        let lookup: BaseManifestLookup = { id, _ in id == baseID ? baseBytes : nil }
        let mbytes = v2.manifest.encoded()
        let id = SHA256Digest.of(mbytes)
        let changed = v2.files[4].path
        let patch = try ManifestPatch.make(mbytes, base: baseBytes)
        let payload = v2.entries(signers: []).filter { $0.name == Array(("payload/" + changed).utf8) }
        #expect(payload.count == 1)
        let good: [String: JSONValue] = [
            "format": .string(DeltaInfo.formatV2), "base": .string(baseID.prefixed), "name": .string(v2.name), "bundle": .string(id.prefixed),
            "carried": .array([.string(changed)]),
        ]
        func hint(_ change: (inout [String: JSONValue]) -> Void = { _ in }) -> [UInt8] {
            var o = good
            change(&o)
            return CanonicalJSON.encode(.object(o))
        }
        func bundle(
            hint h: [UInt8]? = nil, patch p: [UInt8]? = nil, signer: PrivateKey = TestKeys.vendor, signed: [UInt8]? = nil,
            extra: [TarBuilder.Entry] = [], payload pl: [TarBuilder.Entry]? = nil, noPatch: Bool = false
        ) -> [UInt8] {
            var e = [TarBuilder.Entry(BundleLayout.deltaEntry, h ?? hint())]
            if !noPatch { e.append(TarBuilder.Entry(BundleLayout.manifestPatchEntry, p ?? patch)) }
            e.append(TarBuilder.Entry(BundleLayout.signaturesPrefix + signer.id + ".sig", try! signer.sign(signed ?? mbytes)))
            return TarBuilder.build(e + extra + (pl ?? payload))
        }
        func code(_ bytes: [UInt8], base: BaseManifestLookup? = lookup) -> String? { verify(bytes, base: base).error?.code }

        #expect(verify(bundle(), base: lookup).ok, "\(verify(bundle(), base: lookup).error?.description ?? "")")
        // The base: missing, or something else than it claims.
        #expect(code(bundle(), base: nil) == "delta-base-missing")
        #expect(code(bundle(), base: { _, _ in Array("{}".utf8) }) == "delta-base-missing")
        // The patch: not zstd, two frames or trailing bytes, cut short, a size past the limit
        // (declared in the frame header: refused before anything is allocated), no size at all.
        #expect(code(bundle(patch: Array("not a zstd frame".utf8))) == "manifest-patch-invalid")
        #expect(code(bundle(patch: patch + [0])) == "manifest-patch-invalid")
        #expect(code(bundle(patch: patch + patch)) == "manifest-patch-invalid")
        #expect(code(bundle(patch: Array(patch.dropLast(3)))) == "manifest-patch-invalid")
        let huge: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xE0] + withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init) + [0x01, 0x00, 0x00]
        #expect(code(bundle(patch: huge)) == "manifest-patch-invalid")
        let unsized: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x48, 0x01, 0x00, 0x00]
        #expect(code(bundle(patch: unsized)) == "manifest-patch-invalid")
        // A patch against another base (here the manifest itself with one byte in 50 changed: a
        // patch that copies most of its output from that base) does not rebuild the manifest.
        let otherBase = mbytes.enumerated().map { $0.offset % 50 == 25 ? $0.element ^ 0x20 : $0.element }
        let other = try ManifestPatch.make(mbytes, base: otherBase)
        #expect(other.count < mbytes.count / 4)
        #expect(code(bundle(patch: other)) == "manifest-patch-invalid")
        // The hint: a bundle id the patch does not give, a name that is not a release name or not
        // the manifest's, unknown fields, the v1 form in first place, carried paths that are not
        // the manifest's, unsorted, or that disagree with the payload.
        #expect(code(bundle(hint: hint { $0["bundle"] = .string(SHA256Digest.of([]).prefixed) })) == "manifest-patch-invalid")
        #expect(code(bundle(hint: hint { $0["name"] = .string("../../etc") })) == "delta-invalid")
        #expect(code(bundle(hint: hint { $0["name"] = .string("other-agent") })) == "delta-invalid")
        #expect(code(bundle(hint: hint { $0["omitted"] = .array([]) })) == "delta-invalid")
        #expect(code(bundle(hint: hint { $0["format"] = .string(DeltaInfo.format) })) == "delta-invalid")
        #expect(code(bundle(hint: hint { $0["carried"] = .array([.string("code/evil.sh")]) })) == "delta-invalid")
        #expect(code(bundle(hint: hint { $0["carried"] = .array([.string(changed), .string(v2.files[0].path)]) })) == "delta-invalid")
        #expect(code(bundle(hint: hint { $0["carried"] = .array([]) })) == "entry-unexpected")
        // Read before any signature: "carried" is streamed, and anything but a string stops it
        // at once (a hint of a million empty objects costs no memory).
        let objects =
            Array(#"{"base":"\#(baseID.prefixed)","bundle":"\#(id.prefixed)","carried":["#.utf8)
            + Array(repeating: Array("{},".utf8), count: 1_000_000).flatMap { $0 } + Array(#"{}],"format":"airlock.delta/v2","name":"support-agent"}"#.utf8)
        #expect(code(bundle(hint: objects)) == "delta-invalid")
        let later = v2.manifest.files.map(\.path).first { PathRules.precedes(changed, $0) }!
        #expect(code(bundle(hint: hint { $0["carried"] = .array([.string(changed), .string(later)]) })) == "payload-missing")
        // Entries a v2 delta does not have.
        #expect(code(bundle(noPatch: true)) == "entry-order")
        #expect(code(bundle(extra: [TarBuilder.Entry(BundleLayout.sumsEntry, v2.manifest.sumsBytes)])) == "entry-unexpected")
        #expect(code(bundle(extra: [TarBuilder.Entry(BundleLayout.manifestEntry, mbytes)])) == "entry-unexpected")
        // The signatures are over the rebuilt manifest: by a stranger, or over other bytes.
        #expect(code(bundle(signer: TestKeys.stranger)) == "signer-untrusted")
        #expect(code(bundle(signed: v2.with(version: "9.9.9", sequence: 99).manifest.encoded())) == "signature-invalid")
    }
}
