import Foundation
import Testing

/// Issue 9: a site that defends itself. Each attack of the independent round is performed as
/// written, then a sweep replaces every path the site keeps by a link, a FIFO or a folder
/// others can write, and runs every writing command against it.
@Suite(.serialized) struct SiteRootTests {
    /// A folder outside the site with files in it, which no command may touch.
    final class Sentinel {
        let path: String
        init(_ w: Workspace, _ name: String = "sentinel") throws {
            path = w.file(name)
            try FileManager.default.createDirectory(atPath: path + "/deep", withIntermediateDirectories: true)
            for (f, text) in [
                ("a.txt", "keep me"), ("deep/b.txt", "keep me too"), (".foo.tmp-1", "a temporary name"),
                ("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "object-shaped"),
            ] {
                try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/" + f))
            }
            chmod(path + "/a.txt", 0o600)
        }

        /// Every entry with its content and mode.
        var snapshot: String {
            (try? CLI.sh("cd '\(path)' && find . -printf '%p %m %s\\n' | sort && cat a.txt deep/b.txt .foo.tmp-1").stdout) ?? "?"
        }
    }

    private func sh(_ script: String, cwd: String) throws {
        let r = try CLI.sh("set -e\n" + script, cwd: cwd)
        #expect(r.status == 0, "\(script): \(r.stderr)")
    }

    private func folder(_ s: SiteWorkspace, _ version: String) -> String {
        s.releases.first { $0.hasPrefix(version + "-") } ?? "?"
    }

    // MARK: The nine attacks, as written

    /// 1. `.staging` replaced by a symlink: any command that takes the lock emptied the folder
    /// it points to.
    @Test func stagingSymlinkIsRefusedNotEmptied() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let sentinel = try Sentinel(s.w)
        let before = sentinel.snapshot
        try sh("rm -rf site/.staging && ln -s '\(sentinel.path)' site/.staging", cwd: s.w.path)
        for args in [["pin", "example-agent", "1.0.0"], ["gc"], ["install", s.v2], ["rollback", "example-agent"]] {
            let r = try s.airlock(args)
            #expect(r.status == 3 && r.stderr.hasPrefix("error: ") && r.stderr.contains(".staging is a symbolic link"), "\(args): \(r.stderr)")
        }
        #expect(sentinel.snapshot == before)
        // Read-only commands refuse it as well, and say what to do.
        let status = try s.airlock(["status"])
        #expect(status.status == 3 && status.stderr.contains("move it out of the root"), "\(status.stderr)")
    }

    /// 2. A shard of the store replaced by a symlink: gc deleted the files it pointed at. And a
    /// name-shaped symlink in the root: the lock-time cleanup deleted `.foo.tmp-1` through it.
    @Test func gcNeverFollowsAShardAndCleanupNeverFollowsAName() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let sentinel = try Sentinel(s.w)
        let before = sentinel.snapshot
        try sh("ln -s '\(sentinel.path)' site/.objects/sha256/zz", cwd: s.w.path)
        let gc = try s.airlock(["gc"])
        #expect(gc.status == 3 && gc.stderr.contains("sha256/zz"), "\(gc.stderr)")
        try sh("rm site/.objects/sha256/zz && ln -s '\(sentinel.path)' site/.objects/sha256/01", cwd: s.w.path)
        let gc2 = try s.airlock(["gc"])
        #expect(gc2.status == 3 && gc2.stderr.contains("sha256/01 is a symbolic link"), "\(gc2.stderr)")
        try sh("rm site/.objects/sha256/01 && ln -s '\(sentinel.path)' site/other", cwd: s.w.path)
        let pin = try s.airlock(["pin", "example-agent", "1.0.0"])
        #expect(pin.status == 3 && pin.stderr.contains("other is a symbolic link"), "\(pin.stderr)")
        #expect(sentinel.snapshot == before)

        // A stray file of object form in a real shard is collected; nothing else is.
        try sh("rm site/other && mkdir -m 755 site/.objects/sha256/ee && echo x > site/.objects/sha256/ee/notes.txt", cwd: s.w.path)
        #expect(try s.airlock(["gc"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: s.root + "/.objects/sha256/ee/notes.txt"))
        #expect(try s.airlock(["audit", "example-agent"]).status == 0)
    }

    /// A shard of the store swapped for a symlink after the install checked the site and took
    /// the lock, just before new content joins the store: the install reaches each shard
    /// through the store's descriptor with O_NOFOLLOW, so it refuses and links nothing where the
    /// symlink points.
    @Test func aShardSwappedForALinkUnderTheLockIsNotFollowed() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let sentinel = try Sentinel(s.w)
        let before = sentinel.snapshot
        let (p, err) = try s.start(["install", s.v2], fault: "stop:install.locked")
        try CLI.waitUntilStopped(p.processIdentifier)
        // Every shard name, present or not, becomes a link to the sentinel.
        try sh(
            """
            mkdir moved
            cd site/.objects/sha256
            for a in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do for b in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do
              if [ -d $a$b ]; then mv $a$b ../../../moved/; fi
              ln -s '\(sentinel.path)' $a$b
            done; done
            """, cwd: s.w.path)
        kill(p.processIdentifier, SIGCONT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 3 && stderr.contains("is not a real folder"), "\(p.terminationStatus) \(stderr)")
        #expect(sentinel.snapshot == before)
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true && s.releases.count == 1)
        // Put back, the store takes the install.
        try sh("cd site/.objects/sha256 && find . -maxdepth 1 -type l -delete && mv ../../../moved/* .", cwd: s.w.path)
        #expect(try s.airlock(["install", s.v2]).status == 0)
        #expect(try s.airlock(["audit", "example-agent", "1.1.0"]).status == 0)
        #expect(s.staging.isEmpty)
    }

    /// Runs `args` with `AIRLOCK_TEST_FAULT=stop:<step>`: `atFirstStop` runs the first time the
    /// command stops there, and it is continued at every stop until it exits.
    private func runStopping(_ s: SiteWorkspace, _ args: [String], at step: String, atFirstStop: () throws -> Void) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = args + ["--root", s.root]
        p.environment = ProcessInfo.processInfo.environment.merging(["AIRLOCK_TEST_FAULT": "stop:" + step]) { $1 }
        let err = s.w.file("stopping.err")
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        var first = true
        while p.isRunning {
            if let stat = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
                stat[stat.index(close, offsetBy: 2)] == "T"
            {
                if first { try atFirstStop() }
                first = false
                kill(p.processIdentifier, SIGCONT)
            }
            usleep(2_000)
        }
        p.waitUntilExit()
        #expect(!first, "the command never stopped at \(step)")
        return (p.terminationStatus, (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// Another file renamed over a stored object after the install compared it with the stream
    /// and before it links it: the release gets the bytes that were compared (a copy from the
    /// open descriptor), never the file now under the object's name.
    @Test func anObjectSwappedAfterItsComparisonIsNotLinked() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let r = try runStopping(s, ["install", s.v2], at: "install.reuse") {
            try sh(
                """
                for f in site/.objects/sha256/*/*; do
                  printf 'foreign' > swap && chmod 444 swap && mv -f swap "$f"
                done
                """, cwd: s.w.path)
        }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try s.airlock(["audit", "example-agent", "1.1.0"]).status == 0)
        let foreign = try CLI.sh("grep -rl --include='*' '^foreign$' '\(s.root)/example-agent/releases' | wc -l").stdout
        #expect(foreign.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    /// Two installs at once: v2 stages while the store is still empty, and v1 installs whole
    /// before v2 takes the lock. At its commit v2 finds the content they share in the store, and
    /// its release takes the store's files instead of replacing them: every file of both
    /// releases is one of the store's objects (as many inodes as objects), and nothing v1
    /// installed was replaced.
    @Test func twoInstallsAtOnceShareTheirContent() throws {
        let s = try SiteWorkspace()
        var before = ""
        let r = try runStopping(s, ["install", s.v2], at: "install.verified") {
            #expect(try s.airlock(["install", s.v1]).status == 0)
            before = try CLI.sh("find site/.objects/sha256 -type f -printf '%i %P\\n' | sort", cwd: s.w.path).stdout
        }
        #expect(r.status == 0, "\(r.stderr)")
        for v in ["1.0.0", "1.1.0"] { #expect(try s.airlock(["audit", "example-agent", v]).status == 0) }
        let inodes = try CLI.sh("find site/example-agent/releases -type f -path '*/payload/*' -printf '%i\\n' | sort -u | wc -l", cwd: s.w.path).stdout
        let objects = try CLI.sh("find site/.objects/sha256 -type f | wc -l", cwd: s.w.path).stdout
        #expect(Int(inodes.trimmingCharacters(in: .whitespacesAndNewlines))! > 1)
        #expect(inodes == objects, "\(inodes) inodes in the releases, \(objects) objects")
        let after = try CLI.sh("find site/.objects/sha256 -type f -printf '%i %P\\n' | sort", cwd: s.w.path).stdout
        for line in before.split(separator: "\n") { #expect(after.contains(line), "\(line) was replaced") }
    }

    /// The same race, and another file renamed over each stored object after the install
    /// compared it with its staged copy, before it links it (`install.adopt`): the release
    /// never takes the file now under the object's name; the store gets the verified copy.
    @Test func anObjectSwappedBeforeItIsSharedIsNotTaken() throws {
        let s = try SiteWorkspace()
        let (p, err) = try s.start(["install", s.v2], fault: "stop:install.verified,stop:install.adopt")
        try CLI.waitUntilStopped(p.processIdentifier)
        #expect(try s.airlock(["install", s.v1]).status == 0)
        kill(p.processIdentifier, SIGCONT)
        usleep(100_000)
        try CLI.waitUntilStopped(p.processIdentifier)
        try sh(
            """
            for f in site/.objects/sha256/*/*; do
              printf 'foreign' > swap && chmod --reference="$f" swap && mv -f swap "$f"
            done
            """, cwd: s.w.path)
        while p.isRunning {
            kill(p.processIdentifier, SIGCONT)
            usleep(2_000)
        }
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(stderr)")
        #expect(try s.airlock(["audit", "example-agent", "1.1.0"]).status == 0)
        let foreign = try CLI.sh("grep -rl '^foreign$' '\(s.root)/example-agent/releases' | wc -l").stdout
        #expect(foreign.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    /// The store's folder swapped for another real folder while the release is staged, and
    /// swapped back before the lock (and its safety check): the commit sees it is not the folder
    /// staging looked into, and refuses.
    @Test func aStoreSwappedWhileStagingIsRefusedAtTheCommit() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        let (p, err) = try s.start(["install", s.v2], fault: "stop:install.head-verified,stop:install.verified")
        try CLI.waitUntilStopped(p.processIdentifier)
        try sh("mv site/.objects real-objects && mkdir -p site/.objects/sha256", cwd: s.w.path)
        kill(p.processIdentifier, SIGCONT)
        usleep(100_000)
        try CLI.waitUntilStopped(p.processIdentifier)
        try sh("rm -r site/.objects && mv real-objects site/.objects", cwd: s.w.path)
        kill(p.processIdentifier, SIGCONT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 3 && stderr.contains("was replaced while the release was staged"), "\(p.terminationStatus) \(stderr)")
        #expect(s.releases.count == 1 && s.current?.hasPrefix("releases/1.0.0-") == true)
        #expect(try s.airlock(["install", s.v2]).status == 0)
        #expect(try s.airlock(["audit", "example-agent", "1.1.0"]).status == 0)
    }

    /// 3. The health check's log: a world-writable `.staging` is refused, and the log is never
    /// opened by a name someone could have planted.
    @Test func healthCheckLogCannotBePointedElsewhere() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v2]).status == 0)
        let victim = s.w.file("victim")
        try Data("root's secret".utf8).write(to: URL(fileURLWithPath: victim))
        chmod(victim, 0o600)
        try sh("chmod 777 site/.staging", cwd: s.w.path)
        let r = try s.airlock(["activate", "example-agent", "1.1.0", "--check", "echo overwritten; exit 1"])
        #expect(r.status == 3 && r.stderr.contains(".staging is writable by every user") && r.stderr.contains("chmod go-w"), "\(r.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)

        // With the mode put right: links planted after the lock was taken, at the names the
        // log used to have (health-<pid>.log), catch nothing: the output goes to a file of an
        // unpredictable name, created exclusively.
        try sh("chmod 755 site/.staging", cwd: s.w.path)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["activate", "example-agent", "1.1.0", "--check", "echo overwritten; exit 1", "--root", s.root]
        p.environment = ProcessInfo.processInfo.environment.merging(["AIRLOCK_TEST_FAULT": "stop:activate.switched"]) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        try CLI.waitUntilStopped(p.processIdentifier)
        for name in ["health-\(p.processIdentifier).log", "health.log", "check.log"] {
            try FileManager.default.createSymbolicLink(atPath: s.root + "/.staging/" + name, withDestinationPath: victim)
        }
        kill(p.processIdentifier, SIGCONT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 8 && stderr.contains("overwritten"), "\(stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root's secret")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)
        // The next command cleans the planted links as stale staging, without following them.
        #expect(try s.airlock(["pin", "example-agent", "1.0.0"]).status == 0)
        #expect(s.staging.isEmpty, "\(s.staging)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root's secret")
    }

    /// 4. `--trust DIR` on a site command replaced the perimeter and the approvers.
    @Test func theSitesPolicyComesFromTheSite() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        try sh(
            """
            python3 -c "import json; p = 'release/tools/tools.json'; d = json.load(open(p)); d['tools'].append({'name': 'exfiltrate', 'description': 'x', 'permissions': {'network': ['evil.example:443']}}); json.dump(d, open(p, 'w'))"
            """, cwd: s.w.path)
        try sh("sed -i 's/^version: .*/version: 6.6.6/; s/^sequence: .*/sequence: 66/' release/airlock.yaml", cwd: s.w.path)
        #expect(try s.w.pack("evil.airlock").status == 0)
        // The rogue folder: the vendor key, a rogue approver and a perimeter that allows evil.example.
        _ = try s.w.key("rogue", trust: false)
        try sh(
            """
            mkdir -p rogue/approvers && cp vendor.pub rogue/ && cp rogue.pub rogue/approvers/
            echo '{"perimeter": {"hosts": ["evil.example:443"]}, "approvals": {"threshold": 1, "first_activation": true}}' > rogue/policy.json
            """, cwd: s.w.path)
        let rogue = s.w.file("rogue")
        for args in [
            ["install", s.w.file("evil.airlock"), "--trust", rogue],
            ["approve", s.w.file("evil.airlock"), "--key", s.w.file("rogue.key"), "--trust", rogue],
            ["activate", "example-agent", "1.0.0", "--trust", rogue],
        ] {
            let r = try s.airlock(args)
            #expect(r.status == 2 && r.stderr.contains("site commands take no --trust"), "\(args): \(r.stderr)")
        }
        let plain = try s.airlock(["install", s.w.file("evil.airlock"), "--activate"])
        #expect(plain.status == 4 && plain.stderr.contains("evil.example:443"), "\(plain.stderr)")
        let approve = try s.airlock(["approve", s.w.file("evil.airlock"), "--key", s.w.file("rogue.key")])
        #expect(approve.status == 6, "\(approve.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true && s.releases.count == 1)
        let evidence = try s.airlock(["evidence", "example-agent", "--json"])
        #expect(evidence.status == 0 && !evidence.stdout.contains("evil.example"), "\(evidence.stdout)")
    }

    /// 5. Deleting `current` made a widening activation a first one, unapproved.
    @Test func deletingCurrentDoesNotDropTheApproval() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        try Data(
            """
            {"tools": [
              {"name": "search_kb", "description": "Search", "permissions": {"network": ["kb.internal:443"], "read": ["index/"]}},
              {"name": "send_email", "description": "Mail", "permissions": {"network": ["kb.internal:443"]}}
            ]}
            """.utf8
        ).write(to: URL(fileURLWithPath: s.w.file("release/tools/tools.json")))
        try sh("sed -i 's/^version: .*/version: 2.0.0/; s/^sequence: .*/sequence: 20/' release/airlock.yaml", cwd: s.w.path)
        #expect(try s.w.pack("wide.airlock").status == 0)
        #expect(try s.airlock(["install", s.w.file("wide.airlock")]).status == 0)
        let refused = try s.airlock(["activate", "example-agent", "2.0.0"])
        #expect(refused.status == 4 && refused.stderr.contains("widens its permissions"), "\(refused.stderr)")

        try FileManager.default.removeItem(atPath: s.root + "/example-agent/current")
        let again = try s.airlock(["activate", "example-agent", "2.0.0"])
        #expect(again.status == 4 && again.stderr.contains("which the site last had active") && again.stderr.contains("new tool send_email"), "\(again.stderr)")
        #expect(s.current == nil)
        // Removing the release it was measured against does not open the door either.
        #expect(try s.airlock(["remove", "example-agent", "1.0.0"]).status == 0)
        try? FileManager.default.removeItem(atPath: s.root + "/example-agent/.state.json")
        let third = try s.airlock(["activate", "example-agent", "2.0.0"])
        #expect(third.status == 4 && third.stderr.contains("widens its permissions"), "\(third.stderr)")
        let history = try String(contentsOfFile: s.root + "/.history.jsonl", encoding: .utf8)
        #expect(!history.split(separator: "\n").contains { $0.contains("\"action\":\"activate\"") && $0.contains("2.0.0-") })
    }

    /// 6. More identical files than the file system allows links to one inode.
    @Test func moreIdenticalFilesThanTheLinkLimit() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        try sh("mkdir -p release/index/many && cd release/index/many && seq -f 'e%06g' 1 70000 | xargs touch", cwd: w.path)
        #expect(try w.pack("many.airlock").status == 0)
        let root = w.file("site")
        #expect(try CLI.run(["trust", "add", w.file("vendor.pub"), "--root", root]).status == 0)
        #expect(try CLI.run(["trust", "allow"] + SiteWorkspace.perimeter + ["--root", root]).status == 0)
        let r = try CLI.run(["install", w.file("many.airlock"), "--activate", "--root", root])
        #expect(r.status == 0, "\(r.stderr)")
        let audit = try CLI.run(["audit", "example-agent", "--root", root])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        // The same again (content already in the store), and gc keeps what releases use.
        try sh(
            "echo '- again' >> release/prompts/system.md && sed -i 's/^sequence: .*/sequence: 2/; s/^version: .*/version: 1.0.1/' release/airlock.yaml",
            cwd: w.path)
        #expect(try w.pack("many2.airlock").status == 0)
        let second = try CLI.run(["install", w.file("many2.airlock"), "--activate", "--root", root])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try CLI.run(["gc", "--root", root]).status == 0)
        #expect(try CLI.run(["audit", "example-agent", "--root", root]).status == 0)
    }

    /// 9. `install -` took the lock before reading anything, with no read timeout: a stalled
    /// stream blocked every rollback.
    @Test func aStalledStreamBlocksNoRollback() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v2, "--activate"]).status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        // (bash waits for the sleep; the install reports how long it took itself.)
        p.arguments = [
            "-c",
            "{ head -c 20000 '\(s.v3)'; sleep 8; } 2>/dev/null | { '\(CLI.binary)' install - --root '\(s.root)' --read-timeout 3; echo \"rc=$? after=$SECONDS\" >&2; }",
        ]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        usleep(1_000_000)
        let rollback = try s.airlock(["rollback", "example-agent", "--lock-timeout", "1"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(stderr.contains("rc=3") && stderr.contains("sent nothing for 3 s"), "\(stderr)")
        let after = stderr.split(separator: "after=").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 99
        #expect(after <= 6, "the stalled install gave up after \(after) s: \(stderr)")
        #expect(s.releases.count == 2 && s.staging.isEmpty)
        let last = try String(contentsOfFile: s.root + "/.history.jsonl", encoding: .utf8).split(separator: "\n").last ?? ""
        #expect(last.contains("\"install-failed\"") && last.contains("stream-stalled"), "\(last)")
        // The whole stream still installs.
        let whole = try CLI.sh("cat '\(s.v3)' | '\(CLI.binary)' install - --root '\(s.root)'")
        #expect(whole.status == 0, "\(whole.stderr)")
    }

    // MARK: The sweep

    /// What the sweep replaces: every folder and file the site keeps, relative to the root.
    static func sweptPaths(release: String) -> [(path: String, isFolder: Bool)] {
        [
            (".staging", true), (".objects", true), (".objects/sha256", true), (".trust", true), (".trust/approvers", true),
            (".approvals", true), (".lock", false), (".history.jsonl", false), (".trust/policy.json", false), (".trust/vendor.pub", false),
            ("example-agent", true), ("example-agent/releases", true), ("example-agent/releases/\(release)", true),
            ("example-agent/releases/\(release)/payload", true), ("example-agent/releases/\(release)/payload/prompts", true),
            ("example-agent/releases/\(release)/manifest.json", false), ("example-agent/current", false),
            ("example-agent/.state.json", false),
        ]
    }

    @Test func sweepEveryPathTheSiteKeeps() throws {
        let s = try SiteWorkspace()
        _ = try s.w.key("approver", trust: false)
        _ = try s.w.key("second", trust: false)
        #expect(try s.airlock(["trust", "add", "--approver", s.w.file("approver.pub")]).status == 0)
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v2, "--activate"]).status == 0)
        #expect(try s.airlock(["approve", "example-agent", "1.1.0", "--key", s.w.file("approver.key")]).status == 0)
        let release = folder(s, "1.0.0")
        // One shard of the store, and the approvals folder of 1.1.0, join the list.
        let shard = try FileManager.default.contentsOfDirectory(atPath: s.root + "/.objects/sha256").sorted().first!
        let approval = try FileManager.default.contentsOfDirectory(atPath: s.root + "/.approvals").first!
        let paths = Self.sweptPaths(release: release) + [(".objects/sha256/" + shard, true), (".approvals/" + approval, true)]
        try sh("cp -a site template", cwd: s.w.path)

        let commands: [(String, [String])] = [
            ("install", ["install", s.v3]), ("activate", ["activate", "example-agent", "1.0.0"]), ("rollback", ["rollback", "example-agent"]),
            ("pin", ["pin", "example-agent", "1.0.0"]), ("remove", ["remove", "example-agent", "1.0.0"]), ("gc", ["gc", "--keep", "1"]),
            ("repair", ["install", s.v1, "--repair"]), ("approve", ["approve", "example-agent", "1.0.0", "--key", s.w.file("approver.key")]),
            ("trust add", ["trust", "add", s.w.file("second.pub")]),
        ]
        var runs = 0
        for (rel, isFolder) in paths {
            for kind in isFolder ? ["symlink", "fifo", "world-writable"] : ["symlink", "fifo", "hardlink"] {
                for (label, args) in commands {
                    let sentinel = try Sentinel(s.w, "sentinel-\(runs)")
                    let before = sentinel.snapshot
                    let target = s.root + "/" + rel
                    var setup = "rm -rf site && cp -a template site\n"
                    switch kind {
                    case "symlink": setup += "rm -rf '\(target)' && ln -s '\(sentinel.path)' '\(target)'"
                    case "fifo": setup += "rm -rf '\(target)' && mkfifo '\(target)'"
                    case "hardlink": setup += "rm -f '\(target)' && ln '\(sentinel.path)/a.txt' '\(target)'"
                    default: setup += "chmod o+w '\(target)'"
                    }
                    try sh(setup, cwd: s.w.path)
                    let r = try CLI.run(args + ["--root", s.root, "--lock-timeout", "2"], env: ["AIRLOCK_TEST_FAULT": ""])
                    let context = "\(rel) as a \(kind), \(label): exit \(r.status) \(r.stderr)"
                    #expect(sentinel.snapshot == before, "\(context)")
                    #expect(r.status == 0 || r.stderr.hasPrefix("error: "), "\(context)")
                    #expect(!r.stderr.contains("Fatal error") && r.status < 64, "\(context)")
                    if r.status == 0 && label == "repair" {
                        // A repair replaces the drifted release with the verified one.
                        #expect(try CLI.run(["audit", "example-agent", "1.0.0", "--root", s.root]).status == 0, "\(context)")
                    } else if r.status == 0 {
                        // It succeeded without following: the replaced path is still what was planted.
                        let still = try CLI.sh("stat -c %F '\(target)'").stdout
                        #expect(!(kind == "symlink" && still.contains("directory")), "\(context)")
                    }
                    try FileManager.default.removeItem(atPath: sentinel.path)
                    runs += 1
                }
            }
        }
        #expect(runs == paths.count * 3 * commands.count)
    }
}
