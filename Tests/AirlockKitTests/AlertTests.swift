import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// The parts of an alert that say what changed (`ReleaseChange`) and where alerts go
/// (`AlertLog`, `AlertCommand`).
@Suite struct AlertTests {
    let v1 = Release()

    static func file(_ path: String, _ text: String) -> Release.File { Release.File(path: path, data: Array(text.utf8)) }

    // MARK: ReleaseChange

    @Test func aChangedPromptNamesOnlyPromptsWithItsPathAndDigests() throws {
        let t = try TestSite()
        let v2 = v1.with(version: "2.4.0", sequence: 8) { $0[4].data = Array("You are a careful support agent.\n".utf8) }
        let r1 = try t.install(releaseBundle(v1)), r2 = try t.install(releaseBundle(v2))
        let change = try ReleaseChange(site: t.site, name: "support-agent", from: r1.release, to: r2.release)

        #expect(change.changed == ["prompts"])
        #expect(change.from == ReleaseChange.Side(release: r1.release, version: "2.3.0", bundleID: r1.bundleID))
        #expect(change.to == ReleaseChange.Side(release: r2.release, version: "2.4.0", bundleID: r2.bundleID))
        #expect(change.components.map(\.name) == ["code", "model", "prompts", "tools"])
        let prompts = try #require(change.components.first { $0.name == "prompts" })
        let before = v1.manifest.components["prompts"]!.digest, after = v2.manifest.components["prompts"]!.digest
        #expect(prompts.status == "changed" && prompts.from == before && prompts.to == after && before != after)
        #expect(prompts.changed == ReleaseChange.Paths(paths: ["prompts/system.md"], count: 1))
        #expect(prompts.added.count == 0 && prompts.removed.count == 0)
        for c in change.components where c.name != "prompts" {
            #expect(c.status == "unchanged" && c.from == c.to && c.changed.count + c.added.count + c.removed.count == 0)
        }
        #expect(change.widened.isEmpty && change.narrowed.isEmpty)

        let json = change.json.objectValue!
        #expect(json["changed"] == .array([.string("prompts")]))
        #expect(json["from"]?.objectValue?["bundle_id"] == .string(r1.bundleID.prefixed))
        #expect(json["to"]?.objectValue?["version"] == .string("2.4.0"))
        let p = try #require(json["components"]?.objectValue?["prompts"]?.objectValue)
        #expect(p["status"] == .string("changed") && p["from"] == .string(before.prefixed) && p["to"] == .string(after.prefixed))
        let files = try #require(p["files"]?.objectValue)
        #expect(files["changed"] == .array([.string("prompts/system.md")]) && files["changed_count"] == .integer(1))
        #expect(files["added"] == .array([]) && files["added_count"] == .integer(0) && files["removed_count"] == .integer(0))
        #expect(json["components"]?.objectValue?["code"]?.objectValue?["status"] == .string("unchanged"))
        #expect(json["permissions"] == .object(["widened": .array([]), "narrowed": .array([])]))
        // The JSON form round-trips through the strict parser.
        #expect(try JSONParser.parse(CanonicalJSON.encode(change.json)) == change.json)

        let summary = change.summary()
        #expect(summary.hasPrefix("support-agent: \(r1.release) -> \(r2.release)\n"))
        #expect(
            summary.contains(
                "prompts changed (sha256:\(before.hex.prefix(12)).. -> sha256:\(after.hex.prefix(12))..): 1 changed: prompts/system.md\n"))
        #expect(summary.contains("unchanged: code, model, tools\n"))
        #expect(summary.hasSuffix("permissions: unchanged"))
        #expect(!summary.contains("code changed"))
    }

    /// More than `maxListedPaths` files added, removed and changed in one component: the lists
    /// are cut, the counts are not.
    @Test func countsAreFullWhenMoreThanTwentyFilesDiffer() throws {
        let t = try TestSite()
        func name(_ i: Int) -> String { "index/shard-" + (i < 10 ? "0" : "") + String(i) + ".bin" }
        var a = v1
        a.files += (0..<30).map { Self.file(name($0), "shard \($0)\n") }
        // b: shards 0-24 changed, 25-26 kept, 27-29 removed, 30-52 added.
        let b = a.with(version: "2.4.0", sequence: 8) { files in
            files.removeAll { $0.path.hasPrefix("index/") }
            files += (0..<25).map { Self.file(name($0), "shard \($0), rebuilt\n") }
            files += (25..<27).map { Self.file(name($0), "shard \($0)\n") }
            files += (30..<53).map { Self.file(name($0), "new shard \($0)\n") }
        }
        let r1 = try t.install(releaseBundle(a)), r2 = try t.install(releaseBundle(b))
        let change = try ReleaseChange(site: t.site, name: "support-agent", from: r1.release, to: r2.release)
        #expect(change.changed == ["index"])
        let index = try #require(change.components.first { $0.name == "index" })
        #expect(index.changed.count == 25 && index.changed.paths == (0..<20).map(name))
        #expect(index.added.count == 23 && index.added.paths == (30..<50).map(name))
        #expect(index.removed.count == 3 && index.removed.paths == (27..<30).map(name))

        let files = try #require(change.json.objectValue?["components"]?.objectValue?["index"]?.objectValue?["files"]?.objectValue)
        #expect(files["changed_count"] == .integer(25) && files["changed"]?.arrayValue?.count == 20)
        #expect(files["added_count"] == .integer(23) && files["added"]?.arrayValue?.count == 20)
        #expect(files["removed_count"] == .integer(3) && files["removed"]?.arrayValue?.count == 3)
        let summary = change.summary()
        #expect(summary.contains("23 added: \(name(30)), \(name(31)), \(name(32)) and 20 more"))
        #expect(summary.contains("3 removed: \(name(27)), \(name(28)), \(name(29));"))
        #expect(summary.contains("25 changed: \(name(0)), \(name(1)), \(name(2)) and 22 more"))

        // A component only one side has is added (or removed), with all its files.
        let back = try ReleaseChange(site: t.site, name: "support-agent", from: r2.release, to: r1.release)
        #expect(back.components.first { $0.name == "index" }?.changed.count == 25)
        let noIndex = try t.install(releaseBundle(v1.with(version: "2.5.0", sequence: 9)))
        let removed = try ReleaseChange(site: t.site, name: "support-agent", from: r1.release, to: noIndex.release)
        let gone = try #require(removed.components.first { $0.name == "index" })
        #expect(gone.status == "removed" && gone.to == nil && gone.removed.count == 30 && gone.removed.paths.count == 20)
        #expect(removed.summary().contains("index removed (was sha256:"))
    }

    @Test func permissionWideningAndNarrowingShowUp() throws {
        let t = try TestSite()
        let v2 = v1.with(version: "2.4.0", sequence: 8) {
            $0[5].data = Array(#"{"tools": [{"name": "search_kb", "description": "d", "permissions": {"read": ["index/"], "exec": ["/usr/bin/rg"]}}]}"#.utf8)
        }
        let r1 = try t.install(releaseBundle(v1)), r2 = try t.install(releaseBundle(v2))
        let change = try ReleaseChange(site: t.site, name: "support-agent", from: r1.release, to: r2.release)
        #expect(change.changed == ["tools"])
        #expect(change.widened == ["new tool search_kb: read index/; run /usr/bin/rg"])
        #expect(change.narrowed.isEmpty)
        #expect(change.json.objectValue?["permissions"]?.objectValue?["widened"] == .array([.string("new tool search_kb: read index/; run /usr/bin/rg")]))
        #expect(change.summary().hasSuffix("permissions widened: new tool search_kb: read index/; run /usr/bin/rg"))
        #expect(change.summary().contains("tools changed (sha256:") && change.summary().contains("1 changed: tools/tools.json"))

        let back = try ReleaseChange(site: t.site, name: "support-agent", from: r2.release, to: r1.release)
        #expect(back.widened.isEmpty && back.narrowed == ["tool search_kb is removed"])
        #expect(back.summary().hasSuffix("permissions narrowed: tool search_kb is removed"))
    }

    @Test func aReleaseNotInstalledIsRefused() throws {
        let t = try TestSite()
        let r1 = try t.install(releaseBundle(v1))
        for other in ["2.4.0-000000000000", "..", "../../etc"] {
            #expect { try ReleaseChange(site: t.site, name: "support-agent", from: r1.release, to: other) } throws: {
                ($0 as? AirlockError)?.code == "release-unknown"
            }
        }
        #expect { try ReleaseChange(site: t.site, name: "other-agent", from: r1.release, to: r1.release) } throws: {
            ($0 as? AirlockError)?.code == "name-unknown"
        }
    }

    // MARK: AlertLog

    static func alert(_ i: Int) -> JSONValue {
        .object(["event": .string("canary-rollback"), "name": .string("support-agent"), "n": .integer(i), "text": .string("line one\nline two")])
    }

    @Test func appendedAlertsReadBack() throws {
        let t = try TestSite()
        #expect(try AlertLog.read(site: t.site, limit: 10).isEmpty)  // no log yet
        for i in 1...3 { try AlertLog.append(site: t.site, Self.alert(i)) }
        let path = t.site.path(SiteLayout.alerts)
        let bytes = try #require(FileManager.default.contents(atPath: path))
        #expect(Array(bytes) == (1...3).flatMap { CanonicalJSON.encode(Self.alert($0)) + [0x0A] })
        var st = stat()
        lstat(path, &st)
        #expect(st.st_mode & 0o7777 == 0o640 && st.st_uid == geteuid())
        try t.site.checkSafety()

        #expect(try AlertLog.read(site: t.site, limit: 10) == (1...3).map(Self.alert))
        #expect(try AlertLog.read(site: t.site, limit: 2) == [Self.alert(2), Self.alert(3)])
        #expect(try AlertLog.read(site: t.site, limit: 0).isEmpty)

        // A torn last line (a write cut short) is skipped, and the next alert starts a line of its own.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"event":"canary-"#.utf8))
        try handle.close()
        #expect(try AlertLog.read(site: t.site, limit: 2) == [Self.alert(2), Self.alert(3)])
        try AlertLog.append(site: t.site, Self.alert(4))
        #expect(try AlertLog.read(site: t.site, limit: 10) == [1, 2, 3, 4].map(Self.alert))
        #expect(try AlertLog.read(site: t.site, limit: 1) == [Self.alert(4)])
    }

    /// The log is read from its end: a log far larger than one read chunk gives its last lines.
    @Test func aLongLogGivesItsLastAlerts() throws {
        let t = try TestSite()
        let padding = String(repeating: "x", count: 300)
        func alert(_ i: Int) -> JSONValue { .object(["n": .integer(i), "padding": .string(padding)]) }
        var bytes: [UInt8] = []
        for i in 0..<2000 { bytes += CanonicalJSON.encode(alert(i)) + [0x0A] }
        t.tmp.write("root/" + SiteLayout.alerts, bytes, mode: 0o640)
        #expect(try AlertLog.read(site: t.site, limit: 3) == [1997, 1998, 1999].map(alert))
        #expect(try AlertLog.read(site: t.site, limit: 1500) == (500..<2000).map(alert))
        #expect(try AlertLog.read(site: t.site, limit: 5000).count == 2000)
    }

    @Test func aPlantedSymlinkIsRefusedAndItsTargetLeftAlone() throws {
        let t = try TestSite()
        let path = t.site.path(SiteLayout.alerts)
        #expect(symlink(t.sentinel, path) == 0)
        #expect { try AlertLog.append(site: t.site, Self.alert(1)) } throws: {
            let e = $0 as? AirlockError
            return e?.code == "site-unsafe" && e!.message.contains("a symbolic link")
        }
        #expect(t.sentinelIntact)
        #expect(FileIO.readLink(path) == t.sentinel)
        #expect { try AlertLog.read(site: t.site, limit: 5) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect { try t.site.checkSafety() } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
    }

    @Test func aFIFOIsRefusedWithoutWaiting() throws {
        let t = try TestSite()
        let path = t.site.path(SiteLayout.alerts)
        #expect(mkfifo(path, 0o640) == 0)
        #expect { try AlertLog.append(site: t.site, Self.alert(1)) } throws: {
            let e = $0 as? AirlockError
            return e?.code == "site-unsafe" && e!.message.contains("a FIFO")
        }
        #expect { try AlertLog.read(site: t.site, limit: 5) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect { try t.site.checkSafety() } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
    }

    @Test func aLogOfAnotherOwnerOrWithASecondNameIsNotWritten() throws {
        let t = try TestSite()
        let path = t.tmp.write("root/" + SiteLayout.alerts, Array("{}\n".utf8), mode: 0o640)
        let other: uid_t = geteuid() == 0 ? 65534 : 0
        if geteuid() == 0 {
            #expect(chown(path, other, other) == 0)
            #expect { try AlertLog.append(site: t.site, Self.alert(1)) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
            #expect(chown(path, 0, 0) == 0)
        }
        #expect(link(path, t.tmp.file("second-name")) == 0)
        #expect { try AlertLog.append(site: t.site, Self.alert(1)) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect(FileManager.default.contents(atPath: path) == Data("{}\n".utf8))
    }

    // MARK: AlertCommand

    /// A folder the command (run as `nobody` when the tests run as root) can reach, with a
    /// script in it and a folder it may write to.
    static func scriptFolder(_ body: String) -> (dir: TempDir, script: String, out: String) {
        let dir = TempDir()
        chmod(dir.path, 0o755)
        let script = dir.write("alert.sh", Array(("#!/bin/sh\n" + body).utf8), mode: 0o755)
        let out = dir.file("out")
        mkdir(out, 0o777)
        chmod(out, 0o777)
        return (dir, script, out)
    }

    @Test func theCommandGetsTheAlertOnStdin() throws {
        let (dir, script, out) = Self.scriptFolder(
            #"cat > "$1/alert.json"; id -u > "$1/uid"; env > "$1/env"; ls /proc/self/fd > "$1/fds"; printf '%s\n' "$@" > "$1/args"; pwd > "$1/pwd""# + "\n")
        defer { withExtendedLifetime(dir) {} }
        let alert = Self.alert(7)
        try AlertCommand.run([script, out, "second arg"], alert: alert, timeoutSeconds: 10)
        #expect(FileManager.default.contents(atPath: out + "/alert.json") == Data(CanonicalJSON.encode(alert)))
        #expect(try String(contentsOfFile: out + "/args", encoding: .utf8) == "\(out)\nsecond arg\n")
        #expect(try String(contentsOfFile: out + "/pwd", encoding: .utf8) == "/\n")
        if geteuid() == 0 { #expect(try String(contentsOfFile: out + "/uid", encoding: .utf8) == "65534\n") }
        let env = try String(contentsOfFile: out + "/env", encoding: .utf8).split(separator: "\n").map { String($0.prefix { $0 != "=" }) }
        #expect(Set(env).isSubset(of: ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_"]), "\(env)")
        // stdin, stdout, stderr and the descriptor ls reads the folder through: nothing of Airlock's.
        let fds = try String(contentsOfFile: out + "/fds", encoding: .utf8).split(separator: "\n")
        #expect(fds.count <= 4, "\(fds)")
    }

    @Test func aFailingCommandIsReportedWithItsOutput() throws {
        let (dir, script, _) = Self.scriptFolder("cat > /dev/null\necho 'the pager is down' >&2\nexit 3\n")
        defer { withExtendedLifetime(dir) {} }
        #expect { try AlertCommand.run([script], alert: Self.alert(1), timeoutSeconds: 10) } throws: {
            let e = $0 as? AirlockError
            return e?.code == "alert-command-failed" && e!.message.contains(script) && e!.message.contains("exited with status 3")
                && e!.message.contains("the pager is down")
        }
    }

    @Test func aSlowCommandIsKilledAtItsTimeout() throws {
        let (dir, script, _) = Self.scriptFolder("echo waiting\nsleep 41\n")
        defer { withExtendedLifetime(dir) {} }
        let start = Date()
        #expect { try AlertCommand.run([script], alert: Self.alert(1), timeoutSeconds: 0.5) } throws: {
            let e = $0 as? AirlockError
            return e?.code == "alert-command-failed" && e!.message.contains("did not finish within 0.5 s") && e!.message.contains("waiting")
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func aCommandWithoutAnAbsoluteProgramIsRefused() throws {
        for argv in [[], ["alert.sh"], ["./alert.sh", "x"]] {
            #expect { try AlertCommand.run(argv, alert: Self.alert(1), timeoutSeconds: 1) } throws: {
                ($0 as? AirlockError)?.code == "alert-command-failed"
            }
        }
    }
}
