import Foundation
import Testing

/// A site with the example release packed at two (or three) versions.
final class SiteWorkspace: @unchecked Sendable {
    let w: Workspace
    let root: String
    var v1: String { w.file("v1.airlock") }
    var v2: String { w.file("v2.airlock") }
    var v3: String { w.file("v3.airlock") }

    init(weightsMiB: Int = 1) throws {
        w = try Workspace()
        root = w.file("site")
        _ = try w.key("vendor")
        if weightsMiB != 1 {
            #expect(try CLI.sh("'\(CLI.root)/bundles/example-agent/make-weights.sh' release/model/weights.safetensors \(weightsMiB)", cwd: w.path).status == 0)
        }
        #expect(try w.pack("v1.airlock").status == 0)
        for (n, v) in [(2, "1.1.0"), (3, "1.2.0")] {
            #expect(
                try CLI.sh(
                    "sed -i 's/^version: .*/version: \(v)/; s/^sequence: .*/sequence: \(n)/' release/airlock.yaml && echo '- rule \(n)' >> release/prompts/system.md",
                    cwd: w.path
                ).status == 0)
            #expect(try w.pack("v\(n).airlock").status == 0)
        }
        #expect(try airlock(["trust", "add", w.file("vendor.pub")]).status == 0)
        #expect(try airlock(["trust", "allow"] + Self.perimeter).status == 0)
    }

    /// Replaces the site's trust policy.
    func policy(_ json: String) throws {
        try Data(json.utf8).write(to: URL(fileURLWithPath: root + "/.trust/policy.json"))
    }

    /// The endpoints the example agent's tools reach: the test site's perimeter.
    static let perimeter = ["kb.internal:443", "tickets.internal:443", "orders.internal:8443"]
    static var allowLine: String { "trust allow " + perimeter.joined(separator: " ") }

    @discardableResult
    func airlock(_ args: [String], fault: String? = nil) throws -> CLI.Result {
        try CLI.run(args + ["--root", root], env: fault.map { ["AIRLOCK_TEST_FAULT": $0] } ?? [:])
    }

    /// Starts `args` on the site with `AIRLOCK_TEST_FAULT=fault` (say, `stop:<step>`); its
    /// standard error comes through the pipe.
    func start(_ args: [String], fault: String) throws -> (process: Process, stderr: Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = args + ["--root", root]
        p.environment = ProcessInfo.processInfo.environment.merging(["AIRLOCK_TEST_FAULT": fault]) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        return (p, err)
    }

    var current: String? { try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/example-agent/current") }
    var staging: [String] { (try? FileManager.default.contentsOfDirectory(atPath: root + "/.staging")) ?? [] }
    var releases: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: root + "/example-agent/releases")) ?? []).sorted() }

    /// `current` resolves to a complete release that passes audit.
    func expectConsistent(_ context: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard let c = current else {
            Issue.record("\(context): current is gone", sourceLocation: sourceLocation)
            return
        }
        #expect(FileManager.default.fileExists(atPath: root + "/example-agent/" + c + "/manifest.json"), "\(context)", sourceLocation: sourceLocation)
        let audit = try airlock(["audit", "example-agent"])
        #expect(audit.status == 0, "\(context): \(audit.stdout) \(audit.stderr)", sourceLocation: sourceLocation)
    }
}

@Suite(.serialized) struct SiteFaultTests {
    static let installSteps = ["install.head-verified", "install.verified", "install.locked", "install.objects", "install.staged", "install.renamed"]

    /// kill -9 at every stage of install: current still resolves to a complete release that
    /// passes audit, and the next command cleans up and succeeds.
    @Test(arguments: installSteps)
    func killedInstall(_ step: String) throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let before = s.current
        let killed = try s.airlock(["install", s.v2, "--activate"], fault: "crash:\(step)")
        #expect(killed.status == 9, "expected SIGKILL at \(step), got \(killed.status): \(killed.stderr)")
        #expect(s.current == before)
        try s.expectConsistent("after kill at \(step)")
        let again = try s.airlock(["install", s.v2, "--activate"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(s.staging.isEmpty)
        #expect(s.current?.hasPrefix("releases/1.1.0-") == true)
        try s.expectConsistent("after the next install")
        #expect(try s.airlock(["history", "--verify"]).status == 0)
    }

    @Test(arguments: ["activate.state", "activate.switched", "rollback.state", "rollback.switched", "gc.releases", "gc.objects"])
    func killedSwitchOrGC(_ step: String) throws {
        let s = try SiteWorkspace()
        for v in [s.v1, s.v2, s.v3] { #expect(try s.airlock(["install", v, "--activate"]).status == 0) }
        let command: [String]
        switch step {
        case let x where x.hasPrefix("activate"): command = ["activate", "example-agent", "1.0.0"]
        case let x where x.hasPrefix("rollback"): command = ["rollback", "example-agent"]
        default: command = ["gc", "--keep", "0"]
        }
        let killed = try s.airlock(command, fault: "crash:\(step)")
        #expect(killed.status == 9, "expected SIGKILL at \(step), got \(killed.status): \(killed.stderr)")
        try s.expectConsistent("after kill at \(step)")
        // The next commands see a consistent stack and succeed.
        let status = try s.airlock(["status", "--json"])
        #expect(status.status == 0)
        let again = try s.airlock(command)
        #expect(again.status == 0, "\(command) after kill at \(step): \(again.stderr)")
        try s.expectConsistent("after the next \(command[0])")
        #expect(s.staging.isEmpty)
    }

    @Test func diskFullMidFileChangesNothing() throws {
        let s = try SiteWorkspace()
        let r = try s.airlock(["install", s.v1, "--activate"], fault: "enospc-after:200000")
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains("no space left"))
        #expect(s.releases.isEmpty && s.current == nil && s.staging.isEmpty)
        let objects = try CLI.sh("find '\(s.root)/.objects' -type f | wc -l").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(objects == "0")
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        try s.expectConsistent("after a full disk")
    }

    /// A full disk while packing in one pass (the payload written from its own thread): the pack
    /// fails saying so, leaves no bundle and no temporary file, and the next pack gives the same
    /// bundle as before.
    @Test func diskFullWhilePackingLeavesNothing() throws {
        let s = try SiteWorkspace(weightsMiB: 4)
        let out = s.w.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for limit in ["100000", "3000000"] {
            let r = try CLI.run(
                ["pack", s.w.file("release"), "--key", s.w.file("vendor.key"), "--out", out + "/b.airlock"],
                env: ["AIRLOCK_TEST_FAULT": "enospc-after:" + limit, "SOURCE_DATE_EPOCH": "1767225600"])
            #expect(r.status == 3, "\(limit): \(r.stderr)")
            #expect(r.stderr.contains("no space left"), "\(r.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
        }
        #expect(
            try CLI.run(
                ["pack", s.w.file("release"), "--key", s.w.file("vendor.key"), "--out", out + "/b.airlock"], env: ["SOURCE_DATE_EPOCH": "1767225600"]
            ).status == 0)
        #expect(FileManager.default.contents(atPath: out + "/b.airlock") == FileManager.default.contents(atPath: s.v3))
    }

    /// A real full disk: the site root on a 3 MiB tmpfs (in a private mount namespace) and a
    /// bundle with 8 MiB of weights.
    @Test func realFullDiskChangesNothing() throws {
        guard try CLI.sh("unshare -m true").status == 0 else {
            Issue.record("unshare -m is not permitted here: the injected-ENOSPC test above covers the code path")
            return
        }
        let s = try SiteWorkspace(weightsMiB: 8)
        let r = try CLI.sh(
            """
            set -u
            mkdir -p '\(s.root)'
            unshare -m bash -c '
              mount -t tmpfs -o size=3m,mode=755 tmpfs "\(s.root)" || exit 99
              "\(CLI.binary)" trust add "\(s.w.file("vendor.pub"))" --root "\(s.root)" >/dev/null
              "\(CLI.binary)" \(SiteWorkspace.allowLine) --root "\(s.root)" >/dev/null
              "\(CLI.binary)" install "\(s.v1)" --root "\(s.root)" --activate; echo "rc=$?"
              echo "staging=$(ls -A "\(s.root)/.staging" | wc -l) objects=$(find "\(s.root)/.objects" -type f | wc -l) releases=$(ls -A "\(s.root)/example-agent/releases" 2>/dev/null | wc -l)"
              test -e "\(s.root)/example-agent/current" && echo current=yes || echo current=no
              "\(CLI.binary)" history --root "\(s.root)" | tail -1
            '
            """)
        #expect(r.stdout.contains("rc=3"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("no space left"))
        #expect(r.stdout.contains("staging=0 objects=0 releases=0"))
        #expect(r.stdout.contains("current=no"))
        #expect(r.stdout.contains("install-failed"))
    }

    /// A read-only root: a clear error, nothing changed.
    @Test func readOnlyRoot() throws {
        guard try CLI.sh("unshare -m true").status == 0 else {
            Issue.record("unshare -m is not permitted here")
            return
        }
        let s = try SiteWorkspace()
        let r = try CLI.sh(
            """
            set -u
            mkdir -p '\(s.root)'
            unshare -m bash -c '
              mount -t tmpfs -o size=64m,mode=755 tmpfs "\(s.root)" || exit 99
              "\(CLI.binary)" trust add "\(s.w.file("vendor.pub"))" --root "\(s.root)" >/dev/null
              "\(CLI.binary)" \(SiteWorkspace.allowLine) --root "\(s.root)" >/dev/null
              "\(CLI.binary)" install "\(s.v1)" --root "\(s.root)" --activate >/dev/null
              mount -o remount,ro "\(s.root)"
              "\(CLI.binary)" install "\(s.v2)" --root "\(s.root)" --activate; echo "rc=$?"
              "\(CLI.binary)" audit example-agent --root "\(s.root)"; echo "audit=$?"
              readlink "\(s.root)/example-agent/current"
            '
            """)
        #expect(r.stdout.contains("rc=3"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.lowercased().contains("read-only"))
        #expect(r.stdout.contains("audit=0"))
        #expect(r.stdout.contains("releases/1.0.0-"))
    }

    @Test func fsyncErrorsInstallNothing() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let r = try s.airlock(["install", s.v2, "--activate"], fault: "eio:fsync")
        #expect(r.status == 3, "\(r.stderr)")
        #expect(s.releases.count == 1 && s.staging.isEmpty)
        try s.expectConsistent("after EIO")
    }

    @Test func concurrentInstallsAndGC() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let group = DispatchGroup()
        let results = ResultBox()
        // Whatever order the lock gives them, each succeeds (v2 may come after v3: allowed).
        for args in [
            ["install", s.v2, "--allow-downgrade"], ["install", s.v3, "--activate"], ["gc", "--keep", "1"], ["install", s.v2, "--allow-downgrade"],
        ] {
            group.enter()
            DispatchQueue.global().async {
                results.add((try? s.airlock(args))?.status ?? -1)
                group.leave()
            }
        }
        group.wait()
        #expect(results.all.allSatisfy { $0 == 0 }, "\(results.all)")
        try s.expectConsistent("after concurrent commands")
        for r in s.releases {
            #expect(try s.airlock(["audit", "example-agent", r]).status == 0)
        }
        #expect(try s.airlock(["history", "--verify"]).status == 0)
    }

    @Test func busySiteNamesTheHolder() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1]).status == 0)
        // Hold the lock from another process for a few seconds.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [s.root + "/.lock", "sleep", "5"]
        try holder.run()
        defer { holder.stopHelper() }
        usleep(300_000)
        let r = try s.airlock(["activate", "example-agent", "1.0.0", "--lock-timeout", "0.5"])
        #expect(r.status == 7, "\(r.stderr)")
        #expect(r.stderr.contains("in use"))
    }

    /// The bundle changes on disk after verification started: what is installed is what was
    /// verified (one descriptor, hashed while extracting).
    @Test func bundleChangedWhileInstalling() throws {
        let s = try SiteWorkspace(weightsMiB: 32)
        let copy = s.w.file("copy.airlock")
        try FileManager.default.copyItem(atPath: s.v1, toPath: copy)
        let size = (try FileManager.default.attributesOfItem(atPath: copy)[.size] as! NSNumber).intValue
        #expect(size > 24 << 20)

        // 1. Overwritten in place past the part already read: the install is refused.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["install", copy, "--root", s.root]
        p.environment = ProcessInfo.processInfo.environment.merging(["AIRLOCK_TEST_FAULT": "stop:install.head-verified"]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        try CLI.waitUntilStopped(p.processIdentifier)
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: copy))
        try fh.seek(toOffset: UInt64(size - 4096))
        try fh.write(contentsOf: Data(repeating: 0x41, count: 1024))
        try fh.close()
        kill(p.processIdentifier, SIGCONT)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        #expect(s.releases.isEmpty && s.staging.isEmpty)

        // 2. Replaced by another file (rename): the open descriptor still reads the bundle
        //    that was verified, and that is what gets installed.
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let q = Process()
        q.executableURL = URL(fileURLWithPath: CLI.binary)
        q.arguments = ["install", s.v2, "--root", s.root, "--activate"]
        q.environment = ProcessInfo.processInfo.environment.merging(["AIRLOCK_TEST_FAULT": "stop:install.head-verified"]) { $1 }
        q.standardOutput = FileHandle.nullDevice
        q.standardError = FileHandle.nullDevice
        try q.run()
        try CLI.waitUntilStopped(q.processIdentifier)
        #expect(rename(s.v3, s.v2) == 0)
        kill(q.processIdentifier, SIGCONT)
        q.waitUntilExit()
        #expect(q.terminationStatus == 0)
        #expect(s.current?.hasPrefix("releases/1.1.0-") == true)
        try s.expectConsistent("after the rename")
    }

    @Test func installFromStandardInputSplitIntoParts() throws {
        let s = try SiteWorkspace()
        let r = try CLI.sh(
            """
            set -e
            split -b 300k '\(s.v1)' '\(s.w.file("part-"))'
            cat '\(s.w.file("part-"))'* | '\(CLI.binary)' install - --root '\(s.root)' --activate
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try s.expectConsistent("after a stdin install")
        let truncated = try CLI.sh("head -c 100000 '\(s.v2)' | '\(CLI.binary)' install - --root '\(s.root)'")
        #expect(truncated.status == 1)
        #expect(s.releases.count == 1 && s.staging.isEmpty)
    }

    @Test func statusAndHistoryJSON() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v2, "--activate"]).status == 0)
        let st = try JSONSerialization.jsonObject(with: Data(try s.airlock(["status", "--json"]).stdout.utf8)) as! [String: Any]
        let names = st["names"] as! [[String: Any]]
        #expect(names.count == 1)
        #expect((names[0]["current"] as? String)?.hasPrefix("1.1.0-") == true)
        #expect((names[0]["bundle_id"] as? String)?.hasPrefix("sha256:") == true)
        #expect((names[0]["rollback_target"] as? String)?.hasPrefix("1.0.0-") == true)
        #expect((names[0]["releases"] as? [[String: Any]])?.count == 2)
        let h = try JSONSerialization.jsonObject(with: Data(try s.airlock(["history", "--json"]).stdout.utf8)) as! [[String: Any]]
        #expect(h.map { $0["action"] as! String } == ["trust-add", "perimeter-add", "install", "activate", "install", "activate"])
        // A health check given at activation that fails switches back, exit 8.
        let bad = try s.airlock(["rollback", "example-agent"])
        #expect(bad.status == 0)
        let failing = try s.airlock(["activate", "example-agent", "1.1.0", "--check", "exit 3"])
        #expect(failing.status == 8, "\(failing.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)
    }
}

@Suite struct OfflineInstallerTests {
    /// installer/: the distribution checks its own files and libraries, installs the binary and
    /// creates a site root with a trust store, without any network.
    @Test func distributionInstallsOffline() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        // The debug binary links the Swift runtime dynamically; `make dist` uses a static one.
        let made = try CLI.sh("AIRLOCK_DIST_ALLOW_DYNAMIC=1 '\(CLI.root)/installer/make-dist.sh' '\(CLI.binary)' '\(w.file("dist"))'")
        #expect(made.status == 0, "\(made.stderr)")
        let tarball = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try CLI.sh("cd '\(w.file("dist"))' && sha256sum -c --quiet *.tar.gz.sha256 && mkdir x && tar -xzf '\(tarball)' -C x").status == 0)
        let dir = try FileManager.default.contentsOfDirectory(atPath: w.file("dist/x")).first!
        let install = try CLI.sh(
            "cd '\(w.file("dist/x/" + dir))' && ./install.sh --prefix '\(w.file("prefix"))' --root '\(w.file("site"))' --trust '\(w.file("vendor.pub"))'")
        #expect(install.status == 0, "\(install.stdout) \(install.stderr)")
        #expect(try CLI.run(["--version"], executable: w.file("prefix/bin/airlock")).status == 0)
        let trusted = try CLI.run(["trust", "list", "--root", w.file("site")], executable: w.file("prefix/bin/airlock"))
        let id = try CLI.run(["key", "id", w.file("vendor.pub")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(trusted.status == 0 && trusted.stdout.contains(id))
        var st = stat()
        stat(w.file("site"), &st)
        #expect(st.st_mode & 0o777 == 0o755)
        // A file altered in transit: the installer refuses to run.
        #expect(try CLI.sh("echo x >> '\(w.file("dist/x/" + dir + "/docs/site.md"))'").status == 0)
        let refused = try CLI.sh("cd '\(w.file("dist/x/" + dir))' && ./install.sh --prefix '\(w.file("prefix2"))' --no-root")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("SHA256SUMS"))
    }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int32] = []
    func add(_ v: Int32) {
        lock.lock()
        values.append(v)
        lock.unlock()
    }
    var all: [Int32] {
        lock.lock()
        defer { lock.unlock() }
        return values
    }
}

/// Regressions found by reviewing the site against its contract.
@Suite(.serialized) struct SiteReviewRegressionTests {
    /// A stack that holds a release twice ([1,2,1]) keeps its rollback target through a kill
    /// between saving the state and switching the pointer.
    @Test(arguments: ["rollback.state", "activate.state"])
    func journaledSwitchKeepsARepeatedStack(_ step: String) throws {
        let s = try SiteWorkspace()
        for v in [s.v1, s.v2] { #expect(try s.airlock(["install", v]).status == 0) }
        for v in ["1.0.0", "1.1.0", "1.0.0"] { #expect(try s.airlock(["activate", "example-agent", v]).status == 0) }
        let command = step.hasPrefix("rollback") ? ["rollback", "example-agent"] : ["activate", "example-agent", "1.1.0"]
        #expect(try s.airlock(command, fault: "crash:\(step)").status == 9)
        let st = try JSONSerialization.jsonObject(with: Data(try s.airlock(["status", "--json"]).stdout.utf8)) as! [String: Any]
        let name = (st["names"] as! [[String: Any]])[0]
        #expect((name["current"] as? String)?.hasPrefix("1.0.0-") == true)
        #expect((name["rollback_target"] as? String)?.hasPrefix("1.1.0-") == true, "\(name)")
        #expect(try s.airlock(["gc", "--keep", "0"]).status == 0)
        #expect(s.releases.count == 2)
        #expect(try s.airlock(["rollback", "example-agent"]).status == 0)
        #expect(s.current?.hasPrefix("releases/1.1.0-") == true)
    }

    /// rollback --to a release in the stack cuts the stack down to it: the next rollback keeps
    /// walking back and never returns to a release that was rolled back from.
    @Test func rollbackToDoesNotBounce() throws {
        let s = try SiteWorkspace()
        for v in [s.v1, s.v2, s.v3] { #expect(try s.airlock(["install", v, "--activate"]).status == 0) }
        #expect(try s.airlock(["rollback", "example-agent", "--to", "1.1.0"]).status == 0)
        #expect(s.current?.hasPrefix("releases/1.1.0-") == true)
        #expect(try s.airlock(["rollback", "example-agent"]).status == 0)
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)
    }

    /// Removing the newest release does not let an older one in without --allow-downgrade.
    @Test func removedReleasesStillBlockDowngrades() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v3]).status == 0)
        #expect(try s.airlock(["remove", "example-agent", "1.2.0"]).status == 0)
        let r = try s.airlock(["install", s.v2])
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stderr.contains("since removed"))
    }

    /// A kill right after the release appeared does not lose its declared health check.
    @Test func declaredCheckSurvivesAKillAfterTheRename() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(
            try CLI.sh(
                "sed -i 's/^version: .*/version: 9.0.0/; s/^sequence: .*/sequence: 9/' release/airlock.yaml && echo 'health: { command: \"exit 3\", timeout: 5 }' >> release/airlock.yaml",
                cwd: s.w.path
            ).status == 0)
        #expect(try s.w.pack("bad.airlock").status == 0)
        #expect(try s.airlock(["install", s.w.file("bad.airlock")], fault: "crash:install.renamed").status == 9)
        let r = try s.airlock(["install", s.w.file("bad.airlock"), "--activate"])
        #expect(r.status == 8, "\(r.stdout) \(r.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)
    }

    /// A stored copy damaged without changing its size is not linked into a new release.
    @Test func sameSizeDamageInTheStoreIsNotReused() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let victim = s.root + "/example-agent/current/payload/index/index.json"
        #expect(try CLI.sh("chmod u+w '\(victim)' && printf X | dd of='\(victim)' bs=1 seek=3 conv=notrunc status=none && chmod 0444 '\(victim)'").status == 0)
        #expect(try s.airlock(["install", s.v2]).status == 0)
        #expect(try s.airlock(["audit", "example-agent", "1.1.0"]).status == 0)
        // The store holds the verified copy again; the damaged release still shows its drift
        // until it is repaired.
        #expect(try s.airlock(["audit", "example-agent", "1.0.0"]).status == 1)
        #expect(try s.airlock(["install", s.v1, "--repair"]).status == 0)
        #expect(try s.airlock(["audit", "example-agent", "1.0.0"]).status == 0)
    }

    /// Repair never follows a folder that was replaced by a symlink.
    @Test func repairDoesNotFollowSymlinkedFolders() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let outside = s.w.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let code = s.root + "/example-agent/current/payload/code"
        #expect(try CLI.sh("rm -rf '\(code)' && ln -s '\(outside)' '\(code)'").status == 0)
        #expect(try s.airlock(["audit", "example-agent"]).status == 1)
        let r = try s.airlock(["install", s.v1, "--repair"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(try s.airlock(["audit", "example-agent"]).status == 0)
        #expect(s.staging.isEmpty)
    }

    /// A failure after the content was committed takes the new content away again.
    @Test func failureAfterCommitLeavesNoObjects() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let objects = { try CLI.sh("find '\(s.root)/.objects' -type f | sort").stdout }
        let before = try objects()
        let r = try s.airlock(["install", s.v2], fault: "eio:fsync")
        #expect(r.status == 3)
        #expect(try objects() == before)
        #expect(s.releases.count == 1)
    }

    /// A check that leaves a background job behind is judged by its own exit, at once, and the
    /// job goes with it. A relative --root works for checks too.
    @Test func healthCheckWithABackgroundJob() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v2]).status == 0)
        let start = Date()
        let r = try CLI.run(["activate", "example-agent", "1.1.0", "--check", "sleep 30 & test -f manifest.json", "--root", "site"], cwd: s.w.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(try CLI.sh("pgrep -f '^sleep 30$' || true").stdout.isEmpty)
    }
}
