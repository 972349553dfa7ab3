import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// A site root in a scratch folder, a sentinel file beside it, and helpers to install crafted
/// bundles and to see everything that changed.
final class TestSite {
    let tmp = TempDir()
    let site: Site
    let sentinel: String

    init(trusting keys: [PrivateKey] = [TestKeys.vendor], policy: String? = nil) throws {
        chmod(tmp.path, 0o755)  // health checks run as nobody when the tests run as root
        site = Site(root: tmp.file("root"))
        try site.prepare()
        for k in keys { tmp.write("root/.trust/\(k.id).pub", k.publicKey.pem) }
        if let policy { tmp.write("root/.trust/policy.json", policy) }
        sentinel = tmp.write("sentinel", Array("do not touch".utf8))
    }

    @discardableResult
    func install(_ bytes: [UInt8], activate: Bool = false, configure: (inout InstallOptions) -> Void = { _ in }) throws -> InstallResult {
        let path = tmp.write("bundle-\(UInt32.random(in: 0...UInt32.max)).airlock", bytes)
        var o = InstallOptions()
        o.activate = activate
        configure(&o)
        return try Installer.install(bundle: path, site: site, options: o)
    }

    /// Every path under the root (but the history and the lock) with what it is: content hash
    /// and mode for files, target for links.
    func snapshot() -> [String: String] {
        var out: [String: String] = [:]
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: site.root) else { return out }
        while let rel = e.nextObject() as? String {
            if rel == SiteLayout.history || rel == SiteLayout.lock { continue }
            let p = site.root + "/" + rel
            var st = stat()
            lstat(p, &st)
            switch st.st_mode & S_IFMT {
            case S_IFLNK: out[rel] = "-> " + ((try? fm.destinationOfSymbolicLink(atPath: p)) ?? "?")
            case S_IFDIR: out[rel] = "dir"
            default: out[rel] = "\(String(st.st_mode & 0o7777, radix: 8)) \(SHA256Digest.of(Array(fm.contents(atPath: p) ?? Data())).hex)"
            }
        }
        return out
    }

    var stagingIsEmpty: Bool { ((try? FileManager.default.contentsOfDirectory(atPath: site.path(SiteLayout.staging))) ?? []).isEmpty }
    var sentinelIntact: Bool { FileManager.default.contents(atPath: sentinel) == Data("do not touch".utf8) }
    func history() throws -> [HistoryEntry] { try History.read(site) }
}

func releaseBundle(_ r: Release, signers: [PrivateKey] = [TestKeys.vendor]) -> [UInt8] {
    TarBuilder.build(r.entries(signers: signers))
}

extension Release {
    func with(version: String, sequence: UInt64, edit: (inout [Release.File]) -> Void = { _ in }) -> Release {
        var r = self
        r.version = version
        r.sequence = sequence
        edit(&r.files)
        return r
    }
}

@Suite struct InstallerTests {
    let v1 = Release()
    var v2: Release { v1.with(version: "2.4.0", sequence: 8) { $0[4].data = Array("You are a careful support agent.\n".utf8) } }

    @Test func installsSideBySideReadOnlyAndSharesContent() throws {
        let t = try TestSite()
        let r1 = try t.install(releaseBundle(v1), activate: true)
        #expect(r1.release == "2.3.0-" + r1.bundleID.hex.prefix(12) && !r1.alreadyInstalled && r1.activated)
        let dir1 = t.site.releaseDirectory("support-agent", r1.release)
        #expect(t.site.current("support-agent") == r1.release)
        #expect(FileIO.readLink(t.site.currentLink("support-agent")) == "releases/" + r1.release)
        #expect(FileManager.default.contents(atPath: dir1 + "/manifest.json") == Data(v1.manifest.encoded()))
        #expect(FileManager.default.fileExists(atPath: dir1 + "/signatures/\(TestKeys.vendor.id).sig"))
        var st = stat()
        stat(dir1 + "/payload/code/agent.py", &st)
        #expect(st.st_mode & 0o7777 == 0o555)
        stat(dir1 + "/payload/prompts/r\u{E9}ponse.md", &st)
        #expect(st.st_mode & 0o7777 == 0o444)
        #expect(st.st_nlink == 2)  // the release and the object store

        let r2 = try t.install(releaseBundle(v2))
        #expect(r2.filesShared == v1.files.count - 1)
        #expect(r2.bytesWritten == UInt64(v2.files[4].data.count))
        var a = stat(), b = stat()
        stat(dir1 + "/payload/model/weights.bin", &a)
        stat(t.site.releaseDirectory("support-agent", r2.release) + "/payload/model/weights.bin", &b)
        #expect(a.st_ino == b.st_ino)  // one copy on disk
        #expect(t.site.current("support-agent") == r1.release)  // installing does not activate
        #expect(try SiteAdmin.audit(site: t.site, name: "support-agent", release: r2.release).clean)
        #expect(t.stagingIsEmpty)
        #expect(try History.verify(t.site) == nil)
    }

    /// A release of many files is written by the staging writers (two threads, batches of 512
    /// KiB and 512 operations): every file lands with its own bytes and mode, whatever batch or
    /// writer its bytes crossed, and content repeated across folders is one file. The next
    /// version shares all it can through the store.
    @Test func manyFilesLandIntactAcrossWritersAndBatches() throws {
        var r = v1
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return seed >> 33
        }
        func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
        // 2,400 small files in 6 folders, a few of them empty or repeated in another folder.
        let repeated = bytes(1500)
        for i in 0..<2400 {
            let data: [UInt8] = i % 97 == 0 ? repeated : i % 101 == 0 ? [] : bytes(Int(next() % 3000))
            r.files.append(Release.File(path: "index/shard-\(i % 6)/doc-\(i).json", data: data, executable: i % 211 == 5))
        }
        // Files larger than a batch, so that their bytes cross batches (and operations do too).
        for i in 0..<5 {
            r.files.append(Release.File(path: "code/lib/big-\(i).so", data: bytes(600_000 + i * 250_000), executable: i % 2 == 0))
        }
        let t = try TestSite()
        let result = try t.install(releaseBundle(r), activate: true)
        let repeats = r.files.filter { $0.data == repeated }.count
        #expect(result.files == r.files.count)
        #expect(result.filesShared == repeats - 1 + r.files.filter({ $0.data.isEmpty }).count - 1)
        let payload = t.site.releaseDirectory("support-agent", result.release) + "/payload/"
        var wrong: [String] = []
        for f in r.files {
            var st = stat()
            let intact =
                FileManager.default.contents(atPath: payload + f.path) == Data(f.data) && lstat(payload + f.path, &st) == 0
                && st.st_mode & 0o7777 == (f.executable ? 0o555 : 0o444)
            if !intact { wrong.append(f.path) }
        }
        #expect(wrong.isEmpty, "\(wrong.count) files differ, e.g. \(wrong.prefix(3))")
        var first = stat(), last = stat()
        let copies = r.files.filter { $0.data == repeated }.map(\.path).sorted { PathRules.precedes($0, $1) }
        lstat(payload + copies.first!, &first)
        lstat(payload + copies.last!, &last)
        #expect(first.st_ino == last.st_ino && first.st_nlink == UInt(repeats) + 1)
        #expect(try SiteAdmin.audit(site: t.site, name: "support-agent").clean)
        #expect(t.stagingIsEmpty)

        let changed = ["index/shard-4/doc-1000.json", "code/lib/big-3.so"]
        let r2 = r.with(version: "2.4.0", sequence: 8) { files in
            for k in files.indices where changed.contains(files[k].path) { files[k].data += Array("v2".utf8) }
        }
        let second = try t.install(releaseBundle(r2))
        #expect(second.filesShared == r2.files.count - changed.count)
        #expect(try SiteAdmin.audit(site: t.site, name: "support-agent", release: second.release).clean)
    }

    /// Names and versions that look like the site's own entries stay inside their own folder.
    @Test func namesThatLookLikeSiteEntriesStayInTheirFolder() throws {
        let t = try TestSite()
        var r = v1
        r.name = "current"
        r.version = "current"
        let result = try t.install(releaseBundle(r), activate: true)
        #expect(result.release.hasPrefix("current-"))
        #expect(t.site.current("current") == result.release)
        #expect(FileIO.isDirectory(t.site.path("current", "releases", result.release)))
        #expect(try SiteAdmin.audit(site: t.site, name: "current").clean)
        // The escaping ones never parse: see the threat-model rows (names "../../etc", ".", ".objects").
    }

    @Test func reinstallCopiesNothingAndStillActivates() throws {
        let t = try TestSite()
        let r1 = try t.install(releaseBundle(v1))
        let before = t.snapshot()
        let again = try t.install(releaseBundle(v1))
        #expect(again.alreadyInstalled && again.files == 0)
        #expect(t.snapshot() == before)
        let activated = try t.install(releaseBundle(v1), activate: true)
        #expect(activated.alreadyInstalled && activated.activated)
        #expect(t.site.current("support-agent") == r1.release)
    }

    @Test func activationsFormAStackAndRollbackWalksBack() throws {
        let t = try TestSite()
        let v3 = v1.with(version: "2.5.0", sequence: 9) { $0[4].data = Array("v3\n".utf8) }
        let d1 = try t.install(releaseBundle(v1)).release
        let d2 = try t.install(releaseBundle(v2)).release
        let d3 = try t.install(releaseBundle(v3)).release
        for d in [d1, d2, d3] { _ = try Activation.activate(site: t.site, name: "support-agent", release: d) }
        #expect(try SiteAdmin.status(site: t.site, name: "support-agent")[0].rollbackTarget == d2)
        #expect(try Activation.rollback(site: t.site, name: "support-agent").to == d2)
        #expect(try Activation.rollback(site: t.site, name: "support-agent").to == d1)
        #expect { try Activation.rollback(site: t.site, name: "support-agent") } throws: { ($0 as? AirlockError)?.code == "nothing-to-roll-back" }
        #expect(t.site.current("support-agent") == d1)
        // Activate by version and by id prefix; --to activates a named release.
        _ = try Activation.activate(site: t.site, name: "support-agent", release: "2.5.0")
        #expect(t.site.current("support-agent") == d3)
        let id2 = try SiteAdmin.status(site: t.site, name: "support-agent")[0].releases.first { $0.directory == d2 }!.bundleID
        _ = try Activation.activate(site: t.site, name: "support-agent", release: "sha256:" + id2.hex.prefix(10))
        #expect(t.site.current("support-agent") == d2)
        #expect(try Activation.rollback(site: t.site, name: "support-agent").to == d3)
        #expect(try Activation.rollback(site: t.site, name: "support-agent", to: d2).to == d2)
        #expect(try History.read(t.site).filter { $0.action == "rollback" }.count == 4)
    }

    @Test func downgradeAndReusedSequenceAreRefusedAndLogged() throws {
        let t = try TestSite()
        try t.install(releaseBundle(v2))
        let before = t.snapshot()
        #expect { try t.install(releaseBundle(v1)) } throws: { ($0 as? AirlockError)?.code == "downgrade" }
        let sameSeq = v2.with(version: "2.4.0-hotfix", sequence: 8) { $0[0].data = Array("#!/bin/sh\n".utf8) }
        #expect { try t.install(releaseBundle(sameSeq)) } throws: { ($0 as? AirlockError)?.code == "sequence-reused" }
        #expect(t.snapshot() == before)
        let refusals = try t.history().filter { $0.action == "refuse" }
        #expect(refusals.map { $0.fields["reason"]?.stringValue } == ["downgrade", "sequence-reused"])
        try t.install(releaseBundle(v1)) { $0.allowDowngrade = true }
        #expect(try t.history().last?.fields["downgrade_from_sequence"]?.unsignedInteger() == 8)
    }

    @Test func expiredAndBelowThresholdAreRefused() throws {
        var old = v1
        old.expires = "2021-01-01T00:00:00Z"
        let t = try TestSite(trusting: [TestKeys.vendor, TestKeys.second], policy: #"{"threshold": 2}"#)
        #expect { try t.install(releaseBundle(old, signers: [TestKeys.vendor, TestKeys.second])) } throws: { ($0 as? AirlockError)?.code == "bundle-expired" }
        #expect { try t.install(releaseBundle(v1)) } throws: { ($0 as? AirlockError)?.code == "threshold-not-met" }
        try t.install(releaseBundle(v1, signers: [TestKeys.vendor, TestKeys.second]))
    }

    /// threat-model.md: every malicious input gives a non-zero exit, leaves a sentinel beside
    /// the root byte-identical, `current` and every installed release unchanged, no object and
    /// no staging behind, and one history line.
    @Test(arguments: signatureRows + archiveRows)
    func maliciousBundlesChangeNothing(_ row: ThreatRow) throws {
        let t = try TestSite()
        // An older release of the same name is installed and current (the rows' bundles are
        // sequence 7, so they get past the downgrade check to their payload).
        let v0 = v1.with(version: "2.2.0", sequence: 6) { $0[4].data = Array("v0\n".utf8) }
        try t.install(releaseBundle(v0), activate: true)
        // Then the row's trust store replaces the default one.
        let trust = row.trust()
        FileIO.removeTree(t.site.trustDirectory)
        for k in trust.keys.values { t.tmp.write("root/.trust/\(k.id).pub", k.pem) }
        t.tmp.write("root/.trust/policy.json", CanonicalJSON.encode(trust.policy.json))
        let before = t.snapshot()
        let lines = try t.history().count
        #expect(throws: AirlockError.self, "\(row.name)") {
            try t.install(try row.build()) { $0.detached = row.detached() }
        }
        #expect(t.snapshot() == before, "\(row.name) changed the site")
        #expect(t.sentinelIntact)
        #expect(t.stagingIsEmpty)
        #expect(try t.history().count == lines + 1, "\(row.name): one history line")
    }

    /// Governance inputs of a bundle signed by a trusted key (a compromised pipeline): each is
    /// refused with its code, and the site is left exactly as it was but for one history line.
    @Test(arguments: [
        ("tool manifest a correct packer refuses", "tools-invalid", #"{"perimeter": {"hosts": ["*.internal"]}}"#),
        ("a tools component without tools.json", "tools-missing", #"{"perimeter": {"hosts": ["*.internal"]}}"#),
        ("a tool reaching outside the perimeter", "egress-outside-perimeter", #"{"perimeter": {"hosts": ["kb.internal:443"]}}"#),
        ("a model endpoint that does not parse", "model-endpoint-invalid", #"{"perimeter": {"hosts": ["*.internal"]}}"#),
        ("a remote model outside the perimeter", "egress-outside-perimeter", #"{"perimeter": {"hosts": ["kb.internal"]}}"#),
        ("no eval where the policy requires one", "eval-missing", #"{"require_eval": true}"#),
        ("an eval attestation below its threshold", "eval-failed", #"{"require_eval": true}"#),
        ("an eval attestation with an unknown field", "eval-attestation-invalid", #"{"require_eval": true}"#),
    ])
    func hostileGovernanceInputsChangeNothing(_ what: String, _ code: String, _ policy: String) throws {
        let t = try TestSite(policy: policy)
        let eval: (String, String) -> JSONValue = { score, extra in
            try! JSONParser.parse(
                Array(
                    #"{"suite": "sha256:\#(String(repeating: "a", count: 64))", "command": "x", "score": \#(score), "threshold": 0.9, "cases": {"passed": 1, "total": 2}, "runs": 1\#(extra)}"#
                        .utf8))
        }
        var v0 = v1.with(version: "2.2.0", sequence: 6)
        v0.attestations = ["eval": eval("0.95", "")]
        try t.install(releaseBundle(v0), activate: true)
        var r = v1
        switch code {
        case "tools-missing":
            r.files[5].path = "tools/other.json"
        case "tools-invalid":
            r.files[5].data = Array(#"{"tools": [{"name": "x", "description": "d", "permissions": {"network": ["kb.internal:0"]}}]}"#.utf8)
        case "egress-outside-perimeter" where what.contains("tool"):
            r.files[5].data = Array(
                #"{"tools": [{"name": "x", "description": "d", "permissions": {"network": ["kb.internal:443", "evil.example:443"]}}]}"#.utf8)
        case "model-endpoint-invalid":
            r.modelMetadata["endpoint"] = "ftp://user@llm.internal/"
        case "egress-outside-perimeter":
            r.modelMetadata["endpoint"] = "https://llm.vendor.example/v1"
        case "eval-failed":
            r.attestations = ["eval": eval("0.5", "")]
        case "eval-attestation-invalid":
            r.attestations = ["eval": eval("0.95", #", "trusted": true"#)]
        default:
            break
        }
        let before = t.snapshot()
        let lines = try t.history().count
        #expect { try t.install(releaseBundle(r), activate: true) } throws: { ($0 as? AirlockError)?.code == code }
        #expect(t.snapshot() == before, "\(what) changed the site")
        #expect(t.sentinelIntact && t.stagingIsEmpty)
        #expect(try t.history().count == lines + 1)
        #expect(try t.history().last?.fields["reason"]?.stringValue == code)
    }

    /// What passes: a valid attestation under `require_eval`, endpoints inside the perimeter by
    /// name, wildcard and network.
    @Test func governanceInputsInsideThePolicyInstall() throws {
        let t = try TestSite(policy: #"{"require_eval": true, "perimeter": {"hosts": ["*.corp.internal", "kb.internal:443"], "networks": ["10.0.0.0/8"]}}"#)
        var r = v1
        r.files[5].data = Array(
            #"{"tools": [{"name": "x", "description": "d", "permissions": {"network": ["kb.internal:443", "a.b.corp.internal:80", "10.2.3.4:5432"]}}]}"#.utf8)
        r.modelMetadata["endpoint"] = "grpcs://llm.corp.internal/v1"
        r.attestations = [
            "eval": try JSONParser.parse(
                Array(
                    #"{"suite": "sha256:\#(String(repeating: "a", count: 64))", "command": "x", "score": 0.9, "threshold": 0.9, "cases": {"passed": 9, "total": 10}, "runs": 3}"#
                        .utf8))
        ]
        let result = try t.install(releaseBundle(r), activate: true)
        #expect(result.activated && result.allowances.isEmpty)
    }

    @Test func removeAndGCKeepWhatMustStay() throws {
        let t = try TestSite()
        var dirs: [String] = []
        for i in 0..<6 {
            let r = v1.with(version: "3.\(i).0", sequence: UInt64(10 + i)) { $0[4].data = Array("version \(i)\n".utf8) }
            dirs.append(try t.install(releaseBundle(r)).release)
        }
        _ = try Activation.activate(site: t.site, name: "support-agent", release: dirs[0])
        _ = try Activation.activate(site: t.site, name: "support-agent", release: dirs[1])
        _ = try SiteAdmin.setPinned(true, site: t.site, name: "support-agent", release: dirs[2])
        #expect { try SiteAdmin.remove(site: t.site, name: "support-agent", release: dirs[1]) } throws: { ($0 as? AirlockError)?.code == "release-in-use" }
        #expect { try SiteAdmin.remove(site: t.site, name: "support-agent", release: dirs[0]) } throws: { ($0 as? AirlockError)?.code == "release-in-use" }
        #expect { try SiteAdmin.remove(site: t.site, name: "support-agent", release: dirs[2]) } throws: { ($0 as? AirlockError)?.code == "release-pinned" }
        let gc = try SiteAdmin.gc(site: t.site, keep: 2)
        // Kept: the 2 newest (dirs 4, 5), current (1), rollback target (0), pinned (2).
        #expect(Set(gc.removed.map(\.release)) == [dirs[3]])
        #expect(gc.objectsRemoved == 1)  // dirs[3]'s own system.md
        #expect(Set(t.site.releases("support-agent")) == Set([dirs[0], dirs[1], dirs[2], dirs[4], dirs[5]]))
        for d in t.site.releases("support-agent") { #expect(try SiteAdmin.audit(site: t.site, name: "support-agent", release: d).clean) }
        _ = try SiteAdmin.setPinned(false, site: t.site, name: "support-agent", release: dirs[2])
        #expect(try SiteAdmin.remove(site: t.site, name: "support-agent", release: dirs[2]) == dirs[2])
    }

    /// A commit killed between its link and its rename leaves `.tmp-<hex>` in a shard: gc
    /// removes the name (the content stays where else it is linked) and nothing else.
    @Test func gcRemovesTemporariesAKilledCommitLeft() throws {
        let t = try TestSite()
        let r = try t.install(releaseBundle(v1), activate: true)
        let shard = t.site.path(SiteLayout.objects, SiteLayout.objectsAlgorithm, "ab")
        try FileManager.default.createDirectory(atPath: shard, withIntermediateDirectories: true)
        chmod(shard, 0o755)
        try Data("half".utf8).write(to: URL(fileURLWithPath: shard + "/.tmp-0123456789abcdef"))
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: shard + "/.tmp-notahexname"))
        _ = try SiteAdmin.gc(site: t.site)
        #expect(!FileManager.default.fileExists(atPath: shard + "/.tmp-0123456789abcdef"))
        #expect(FileManager.default.fileExists(atPath: shard + "/.tmp-notahexname"))
        #expect(try SiteAdmin.audit(site: t.site, name: "support-agent", release: r.release).clean)
    }

    @Test func auditFindsDrift() throws {
        let t = try TestSite()
        let r = try t.install(releaseBundle(v1), activate: true)
        let base = t.site.releaseDirectory("support-agent", r.release) + "/payload"
        chmod(base + "/prompts/system.md", 0o644)
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: base + "/prompts/system.md"))
        unlink(base + "/tools/tools.json")
        FileManager.default.createFile(atPath: base + "/code/extra.py", contents: Data())
        chmod(base + "/code/agent.py", 0o755)
        let a = try SiteAdmin.audit(site: t.site, name: "support-agent")
        #expect(!a.clean)
        #expect(a.modified == ["prompts/system.md"] && a.missing == ["tools/tools.json"] && a.extra == ["code/extra.py"])
        #expect(Set(a.modeChanged) == ["prompts/system.md", "code/agent.py"])
    }

    @Test func repairRestoresADriftedReleaseAndCorruptObjectsAreNotReused() throws {
        let t = try TestSite()
        let bundle = releaseBundle(v1)
        let r = try t.install(bundle, activate: true)
        let file = t.site.releaseDirectory("support-agent", r.release) + "/payload/prompts/system.md"
        chmod(file, 0o644)
        try Data("tampered, longer than before".utf8).write(to: URL(fileURLWithPath: file))
        #expect(!(try SiteAdmin.audit(site: t.site, name: "support-agent")).clean)
        // A new release sharing that content does not link the damaged object.
        let v1b = v1.with(version: "2.3.1", sequence: 8) { $0[0].data = Array("#!/bin/sh\necho v1b\n".utf8) }
        let rb = try t.install(releaseBundle(v1b))
        #expect(try SiteAdmin.audit(site: t.site, name: "support-agent", release: rb.release).clean)
        // Repair the damaged release from its bundle.
        let repaired = try t.install(bundle) { $0.repair = true }
        #expect(repaired.alreadyInstalled)
        #expect(try SiteAdmin.audit(site: t.site, name: "support-agent").clean)
        #expect(try t.history().last?.action == "repair")
    }

    @Test func healthCheckFailureSwitchesBack() throws {
        let t = try TestSite()
        let d1 = try t.install(releaseBundle(v1), activate: true).release
        let d2 = try t.install(releaseBundle(v2)).release
        #expect {
            try Activation.activate(site: t.site, name: "support-agent", release: d2, check: HealthCheck(command: "test -f payload/nothing-here"))
        } throws: { ($0 as? AirlockError)?.code == "health-check-failed" }
        #expect(t.site.current("support-agent") == d1)
        #expect(try t.history().last?.action == "health-rollback")
        #expect(try SiteAdmin.status(site: t.site, name: "support-agent")[0].rollbackTarget == nil)
        _ = try Activation.activate(
            site: t.site, name: "support-agent", release: d2, check: HealthCheck(command: "test -x payload/code/agent.py && test \"$AIRLOCK_RELEASE\" = \(d2)"))
        #expect(t.site.current("support-agent") == d2)
        // A check that hangs is cut off at its timeout.
        _ = try Activation.rollback(site: t.site, name: "support-agent")
        #expect {
            try Activation.activate(site: t.site, name: "support-agent", release: d2, check: HealthCheck(command: "sleep 30", timeoutSeconds: 0.5))
        } throws: { ($0 as? AirlockError)?.message.contains("did not finish") == true }
        #expect(t.site.current("support-agent") == d1)
    }

    @Test func historyChainDetectsEdits() throws {
        let t = try TestSite()
        try t.install(releaseBundle(v1), activate: true)
        try t.install(releaseBundle(v2), activate: true)
        #expect(try History.verify(t.site) == nil)
        let path = t.site.path(SiteLayout.history)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        lines.remove(at: 1)
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try History.verify(t.site)?.line == 2)
    }

    @Test func lockIsExclusiveAndNamesItsHolder() throws {
        let t = try TestSite()
        let holder = try SiteLock(site: t.site, command: "test")
        #expect {
            try t.install(releaseBundle(v1)) { $0.lockTimeout = 0.2 }
        } throws: { e in
            guard let e = e as? AirlockError else { return false }
            return e.code == "site-busy" && e.message.contains("pid \(getpid())")
        }
        withExtendedLifetime(holder) {}
    }
}

@Suite struct DeclaredHealthCheckTests {
    /// A health check declared in airlock.yaml travels in the signed manifest and runs at
    /// every activation of that release.
    @Test func declaredCheckRunsAtActivation() throws {
        let t = try TestSite()
        let good = Release()
        try t.install(releaseBundle(good), activate: true)
        let tmp = TempDir()
        var bad = good.with(version: "2.4.0", sequence: 8)
        bad.files[4].data = Array("broken\n".utf8)
        let dir = bad.writeDirectory(in: tmp)
        let yaml = try String(contentsOfFile: dir + "/airlock.yaml", encoding: .utf8)
        try (yaml + "health: { command: \"grep -q support payload/prompts/system.md\", timeout: 5 }\n").write(
            toFile: dir + "/airlock.yaml", atomically: true, encoding: .utf8)
        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file("bad.airlock")
        let packed = try Packer.pack(directory: dir, options: o)
        #expect(packed.manifest.health?["command"]?.stringValue == "grep -q support payload/prompts/system.md")
        let r = try Installer.install(bundle: packed.path, site: t.site)
        #expect {
            try Activation.activate(site: t.site, name: "support-agent", release: r.release)
        } throws: { ($0 as? AirlockError)?.code == "health-check-failed" }
        #expect(t.site.current("support-agent")?.hasPrefix("2.3.0-") == true)
    }
}
