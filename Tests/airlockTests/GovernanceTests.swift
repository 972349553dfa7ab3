import Foundation
import Testing

/// Issue 5: the eval gate, tool permissions and the perimeter, site approvals, evidence, SBOM.
@Suite(.serialized) struct GovernanceTests {
    private func json(_ s: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
    }

    private func sh(_ w: Workspace, _ script: String) throws {
        let r = try CLI.sh("set -e\n" + script, cwd: w.path)
        #expect(r.status == 0, "\(script): \(r.stderr)")
    }

    /// Sets the release's tools.json.
    private func tools(_ w: Workspace, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: w.file("release/tools/tools.json")))
    }

    private func bump(_ w: Workspace, _ version: String, _ sequence: Int) throws {
        try sh(w, "sed -i 's/^version: .*/version: \(version)/; s/^sequence: .*/sequence: \(sequence)/' release/airlock.yaml")
    }

    // MARK: tools.json at pack time

    @Test(arguments: [
        (#"{"tools": {}}"#, "must be a list"),
        (#"{"tools": [], "extra": 1}"#, "unknown field \"extra\""),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["kb.internal"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["kb.internal:70000"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["KB.internal:443"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"read": ["../etc/passwd"]}}]}"#, "'..' segment"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"root": []}}]}"#, "unknown field \"root\""),
        (#"{"tools": [{"name": "a", "description": "x"}, {"name": "a", "description": "y"}]}"#, "declared twice"),
        (#"{"tools": [{"name": "a"}]}"#, "description must be"),
        (#"{"tools": [{"name": "1a", "description": "x"}]}"#, "name must match"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"write": ["/tmp/", "/tmp/"]}}]}"#, "lists an entry twice"),
        ("not json", "not strict JSON"),
        // Addresses written as numbers are refused, not taken for names.
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["2130706433:80"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["0x7f000001:80"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["010.0.0.1:80"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["10.1:80"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["[FD00::1]:443"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["[fd00:0::1]:443"]}}]}"#, "must be host:port"),
        (#"{"tools": [{"name": "a", "description": "x", "permissions": {"network": ["kb.internal.:443"]}}]}"#, "must be host:port"),
        // A path is compared byte for byte, so it must be in NFC.
        ("{\"tools\": [{\"name\": \"a\", \"description\": \"x\", \"permissions\": {\"write\": [\"/srv/e\u{301}/\"]}}]}", "not in Unicode NFC form"),
    ])
    func invalidToolManifestsAreRefusedAtPack(_ text: String, _ message: String) throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        try tools(w, text)
        let r = try w.pack("t.airlock")
        #expect(r.status == 5, "\(r.stderr)")
        #expect(r.stderr.contains("tools.json is invalid"), "\(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: w.file("t.airlock")))
    }

    @Test func aToolsComponentNeedsItsManifest() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        try FileManager.default.removeItem(atPath: w.file("release/tools/tools.json"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: w.file("release/tools/notes.txt")))
        let r = try w.pack("t.airlock")
        #expect(r.status == 5 && r.stderr.contains("the tools component has no tools.json"), "\(r.stderr)")
        // The agent's eval needs its search tool; a tool with no permissions list has none.
        try tools(w, #"{"tools": [{"name": "search_kb", "description": "Search"}]}"#)
        let ok = try w.pack("t.airlock")
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    // MARK: the eval gate

    @Test func passingEvalIsSignedIntoTheManifest() throws {
        let w = try Workspace()
        let id = try w.key("vendor")
        let packed = try w.pack("v1.airlock")
        #expect(packed.status == 0, "\(packed.stderr)")
        #expect(packed.stdout.contains("eval       score 1 >= threshold 0.9"), "\(packed.stdout)")
        #expect(packed.stderr.contains("eval run 2 of 2"))
        let info = try json(try CLI.run(["inspect", w.file("v1.airlock"), "--json"]).stdout)
        let eval = (info["attestations"] as! [String: Any])["eval"] as! [String: Any]
        #expect(eval["score"] as? Double == 1 && eval["threshold"] as? Double == 0.9 && eval["runs"] as? Int == 2)
        #expect((eval["cases"] as? [String: Int]) == ["passed": 10, "total": 10])
        #expect(eval["command"] as? String == "python3 eval/run.py")
        let suite = eval["suite"] as! String
        #expect(suite.hasPrefix("sha256:") && suite.count == 71)
        let text = try CLI.run(["inspect", w.file("v1.airlock")]).stdout
        #expect(text.contains("eval         score 1, threshold 0.9, 10/10 cases, 2 runs, suite \(suite)"), "\(text)")
        // The attestation is covered by the signature: the bundle verifies.
        #expect(try CLI.run(["verify", w.file("v1.airlock"), "--trust", w.file("trust")]).status == 0)
        _ = id

        // The suite digest covers the eval's files: changing a case changes it.
        try sh(w, "sed -i 's/How do I get a refund?/How can I get a refund?/' release/eval/cases.json")
        #expect(try w.pack("v1b.airlock").status == 0)
        let info2 = try json(try CLI.run(["inspect", w.file("v1b.airlock"), "--json"]).stdout)
        let suite2 = ((info2["attestations"] as! [String: Any])["eval"] as! [String: Any])["suite"] as! String
        #expect(suite2 != suite)
    }

    @Test func evalBelowThresholdNeverLeavesTheBuild() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        // The index loses its refund terms: three cases fail, 0.7 < 0.9.
        try sh(w, #"sed -i '/"refund"\|"money"\|"remboursement"/d' release/index/index.json"#)
        let r = try w.pack("bad.airlock")
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stderr.contains("scored 0.7, below the threshold 0.9"), "\(r.stderr)")
        #expect(r.stderr.contains("refund-1") && r.stderr.contains("no bundle was written"))
        #expect(!FileManager.default.fileExists(atPath: w.file("bad.airlock")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: w.path).filter { $0.contains("bad.airlock") }.isEmpty)
    }

    /// Every run must pass, and the recorded score is the lowest.
    @Test(arguments: [("0.95", "0.91", 0, "0.91"), ("0.95", "0.5", 4, ""), ("1", "1", 0, "1")])
    func everyRunMustPassAndTheLowestScoreIsRecorded(_ first: String, _ second: String, _ status: Int32, _ recorded: String) throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        try sh(
            w,
            """
            cat > release/eval/flaky.sh <<'EOF'
            if [ "$AIRLOCK_EVAL_RUN" = 1 ]; then s=\(first); else s=\(second); fi
            printf '{"score": %s, "cases": [{"id": "c1", "passed": true}]}' "$s"
            EOF
            sed -i 's|command: python3 eval/run.py|command: sh eval/flaky.sh|' release/airlock.yaml
            """)
        let r = try w.pack("f.airlock")
        #expect(r.status == status, "\(r.stderr)")
        if status == 0 {
            let info = try json(try CLI.run(["inspect", w.file("f.airlock"), "--json"]).stdout)
            let eval = (info["attestations"] as! [String: Any])["eval"] as! [String: Any]
            #expect("\(eval["score"]!)" == recorded || (eval["score"] as? Double) == Double(recorded))
        } else {
            #expect(r.stderr.contains("eval run 2 of 2 scored 0.5"), "\(r.stderr)")
        }
    }

    @Test(arguments: [
        ("exit 3", "eval-failed", "exited with status 3"),
        ("echo not-json", "eval-output-invalid", "not strict JSON"),
        (#"echo '{"score": 1.5, "cases": []}'"#, "eval-output-invalid", "no \"score\" from 0 to 1"),
        (#"echo '{"score": 1}'"#, "eval-output-invalid", "no \"cases\" list"),
        (#"echo '{"score": 1, "cases": []}'"#, "eval-output-invalid", "an empty \"cases\" list"),
        (#"echo '{"score": 1, "cases": [{"id": "a", "passed": "yes"}]}'"#, "eval-output-invalid", "boolean \"passed\""),
        ("sleep 30", "eval-failed", "did not finish within 2 s"),
    ])
    func brokenEvalsAreRefused(_ command: String, _ code: String, _ message: String) throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        try sh(
            w,
            """
            printf '%s\\n' '\(command.replacingOccurrences(of: "'", with: "'\\''"))' > release/eval/broken.sh
            sed -i 's|command: python3 eval/run.py|command: sh eval/broken.sh|; s|timeout: 120|timeout: 2|' release/airlock.yaml
            """)
        let started = Date()
        let r = try w.pack("b.airlock")
        #expect(r.status == 5, "\(r.stderr)")
        #expect(r.stderr.contains(message), "\(code): \(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(!FileManager.default.fileExists(atPath: w.file("b.airlock")))
    }

    @Test func sitePolicyCanRequireAPassingEval() throws {
        let s = try SiteWorkspace()
        try s.policy(#"{"require_eval": true, "perimeter": {"hosts": ["*.internal"]}}"#)
        // v1 carries an attestation (the example agent's gate): accepted.
        #expect(try s.airlock(["install", s.v1]).status == 0)
        // A bundle packed without an eval gate is refused, and the refusal is in the history.
        try sh(s.w, "sed -i '/^eval:/,$d' release/airlock.yaml && sed -i 's/^sequence: .*/sequence: 9/; s/^version: .*/version: 9.0.0/' release/airlock.yaml")
        #expect(try s.w.pack("noeval.airlock").status == 0)
        let r = try s.airlock(["install", s.w.file("noeval.airlock")])
        #expect(r.status == 4 && r.stderr.contains("requires a passing eval attestation"), "\(r.stderr)")
        #expect(s.releases.count == 1)
        #expect(try s.airlock(["history"]).stdout.contains("eval-missing"))
    }

    // MARK: the perimeter

    @Test func installRefusesEgressOutsideThePerimeter() throws {
        let s = try SiteWorkspace()
        try s.policy("{}")
        let r = try s.airlock(["install", s.v1, "--activate"])
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stderr.contains("outside the site's perimeter") && r.stderr.contains("tool open_ticket reaches tickets.internal:443"), "\(r.stderr)")
        #expect(r.stderr.contains("--allow-egress tickets.internal:443") && r.stderr.contains("airlock trust allow"))
        #expect(s.releases.isEmpty && s.current == nil && s.staging.isEmpty)
        let objects = try CLI.sh("find '\(s.root)/.objects' -type f 2>/dev/null | wc -l").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(objects == "0", "objects left in the store: \(objects)")

        // One allowance is not enough when three endpoints are outside.
        let partial = try s.airlock(["install", s.v1, "--allow-egress", "tickets.internal:443"])
        #expect(
            partial.status == 4 && partial.stderr.contains("tool search_kb reaches kb.internal:443")
                && partial.stderr.contains("tool read_order reaches orders.internal:8443") && !partial.stderr.contains("tool open_ticket"), "\(partial.stderr)")

        let allowed = try s.airlock([
            "install", s.v1, "--activate", "--allow-egress", "kb.internal:443", "--allow-egress", "tickets.internal:443", "--allow-egress",
            "orders.internal:8443",
        ])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("allowed by --allow-egress: tool search_kb reaches kb.internal:443"))
        let history = try s.airlock(["history", "--json"]).stdout
        #expect(history.components(separatedBy: "\"allowance\"").count - 1 == 3, "\(history)")
        #expect(try s.airlock(["history", "--verify"]).status == 0)

        let bad = try s.airlock(["install", s.v2, "--allow-egress", "kb.internal"])
        #expect(bad.status == 2 && bad.stderr.contains("is not host:port"))
    }

    /// `install --activate` verifies and stages before it takes the site lock; its activation
    /// is judged by the policy as it is under the lock. A perimeter entry removed while the
    /// bundle streamed refuses the activation (the release stays installed, not current).
    @Test func installActivateJudgesThePolicyAsItIsUnderTheLock() throws {
        let s = try SiteWorkspace()
        try s.policy("{}")
        #expect(try s.airlock(["trust", "allow", "*.internal:443", "orders.internal"]).status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["install", s.v1, "--root", s.root, "--activate"]
        p.environment = ProcessInfo.processInfo.environment.merging(["AIRLOCK_TEST_FAULT": "stop:install.verified"]) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        try CLI.waitUntilStopped(p.processIdentifier)
        // The install holds no lock while it streams: the admin narrows the perimeter meanwhile.
        #expect(try s.airlock(["trust", "disallow", "orders.internal"]).status == 0)
        kill(p.processIdentifier, SIGCONT)
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 4, "\(stderr)")
        #expect(stderr.contains("but not activated") && stderr.contains("orders.internal:8443"), "\(stderr)")
        #expect(s.current == nil)
        #expect(s.releases.count == 1)
    }

    @Test func perimeterRulesHostsWildcardsPortsAndNetworks() throws {
        let s = try SiteWorkspace()
        try s.policy("{}")
        #expect(try s.airlock(["trust", "allow", "*.internal:443"]).status == 0)
        // orders.internal:8443 is on another port.
        let r = try s.airlock(["install", s.v1])
        #expect(r.status == 4 && r.stderr.contains("tool read_order reaches orders.internal:8443"), "\(r.stderr)")
        #expect(try s.airlock(["trust", "allow", "orders.internal"]).status == 0)
        #expect(try s.airlock(["install", s.v1]).status == 0)

        // Address endpoints match CIDR blocks, never name wildcards.
        try tools(
            s.w,
            #"{"tools": [{"name": "search_kb", "description": "x"}, {"name": "db", "description": "x", "permissions": {"network": ["10.1.2.3:5432", "[fd00::1]:443"]}}]}"#
        )
        try bump(s.w, "5.0.0", 5)
        #expect(try s.w.pack("ip.airlock").status == 0)
        let refused = try s.airlock(["install", s.w.file("ip.airlock")])
        #expect(refused.status == 4 && refused.stderr.contains("10.1.2.3:5432"), "\(refused.stderr)")
        #expect(try s.airlock(["trust", "allow", "10.0.0.0/8", "fd00::/8"]).status == 0)
        #expect(try s.airlock(["install", s.w.file("ip.airlock")]).status == 0)
        #expect(try s.airlock(["trust", "allow", "10.0.0.0/33"]).status == 2)
        #expect(try s.airlock(["trust", "disallow", "10.0.0.0/8"]).status == 0)
        let list = try s.airlock(["trust", "list", "--json"]).stdout
        #expect(list.contains("fd00::/8") && !list.contains("10.0.0.0/8"), "\(list)")
    }

    @Test func aRemoteModelEndpointIsEgressToo() throws {
        let s = try SiteWorkspace()
        try sh(
            s.w,
            "sed -i 's|model: { path: model/, name: tinyllama-1.1b-chat, snapshot: 2026-10-01 }|model: { path: model/, name: tinyllama-1.1b-chat, snapshot: 2026-10-01, endpoint: \"https://llm.vendor.example:8443/v1\" }|' release/airlock.yaml"
        )
        try bump(s.w, "7.0.0", 7)
        let packed = try s.w.pack("remote.airlock")
        #expect(packed.status == 0, "\(packed.stderr)")
        let r = try s.airlock(["install", s.w.file("remote.airlock")])
        #expect(r.status == 4 && r.stderr.contains("the model reaches llm.vendor.example:8443"), "\(r.stderr)")
        #expect(try s.airlock(["install", s.w.file("remote.airlock"), "--allow-egress", "llm.vendor.example:8443"]).status == 0)

        for url in ["ftp://user@host/", "socks5://proxy.example:1080", "https://user@llm.internal/"] {
            try sh(s.w, "sed -i 's|endpoint: \"[^\"]*\"|endpoint: \"\(url)\"|' release/airlock.yaml")
            let bad = try s.w.pack("bad.airlock")
            #expect(bad.status == 5 && bad.stderr.contains("components.model.endpoint"), "\(url): \(bad.stderr)")
        }
    }

    // MARK: approvals

    @Test func wideningActivationsNeedASiteApproval() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        // v2 adds a tool that sends mail, and widens search_kb's reads.
        try tools(
            s.w,
            """
            {"tools": [
              {"name": "search_kb", "description": "Search", "permissions": {"network": ["kb.internal:443"], "read": ["index/", "/srv/kb/"]}},
              {"name": "open_ticket", "description": "Tickets", "permissions": {"network": ["tickets.internal:443"]}},
              {"name": "read_order", "description": "Orders", "permissions": {"network": ["orders.internal:8443"]}},
              {"name": "send_email", "description": "Mail a customer", "permissions": {"network": ["smtp.internal:25"]}}
            ]}
            """)
        try bump(s.w, "2.0.0", 20)
        #expect(try s.w.pack("wide.airlock").status == 0)
        #expect(try s.airlock(["trust", "allow", "smtp.internal:25"]).status == 0)

        let diff = try CLI.run(["diff", s.v1, s.w.file("wide.airlock")])
        #expect(diff.stdout.contains("+ new tool send_email: network smtp.internal:25"), "\(diff.stdout)")
        #expect(diff.stdout.contains("+ tool search_kb may now read /srv/kb/"), "\(diff.stdout)")
        let diffJSON = try json(try CLI.run(["diff", s.v1, s.w.file("wide.airlock"), "--json"]).stdout)
        #expect(((diffJSON["permissions"] as! [String: Any])["widened"] as! [String]).count == 2)

        let r = try s.airlock(["install", s.w.file("wide.airlock"), "--activate"])
        #expect(r.status == 4, "\(r.stderr)")
        #expect(
            r.stderr.contains("widens its permissions") && r.stderr.contains("new tool send_email")
                && r.stderr.contains("airlock approve example-agent 2.0.0-"), "\(r.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)
        #expect(s.releases.count == 2)  // installed, not active

        // A key that is not a site approver cannot approve; neither can the vendor's key.
        _ = try s.w.key("approver", trust: false)
        _ = try s.w.key("stranger", trust: false)
        let stranger = try s.airlock(["approve", "example-agent", "2.0.0", "--key", s.w.file("stranger.key")])
        #expect(stranger.status == 6 && stranger.stderr.contains("is not one of the site's approvers"), "\(stranger.stderr)")
        #expect(try s.airlock(["approve", "example-agent", "2.0.0", "--key", s.w.file("vendor.key")]).status == 6)

        #expect(try s.airlock(["trust", "add", "--approver", s.w.file("approver.pub")]).status == 0)
        // An approval of another bundle does not count, even copied into this one's folder.
        #expect(try s.airlock(["approve", "example-agent", "1.0.0", "--key", s.w.file("approver.key")]).status == 0)
        let wideID = try json(try CLI.run(["inspect", s.w.file("wide.airlock"), "--json"]).stdout)["bundle_id"] as! String
        let v1ID = try json(try CLI.run(["inspect", s.v1, "--json"]).stdout)["bundle_id"] as! String
        let approverID = try CLI.run(["key", "id", s.w.file("approver.pub")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try sh(
            s.w,
            "mkdir -p site/.approvals/\(wideID.dropFirst(7)) && cp site/.approvals/\(v1ID.dropFirst(7))/\(approverID).sig site/.approvals/\(wideID.dropFirst(7))/"
        )
        #expect(try s.airlock(["activate", "example-agent", "2.0.0"]).status == 4)

        let approved = try s.airlock(["approve", "example-agent", "2.0.0", "--key", s.w.file("approver.key")])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(approved.stdout.contains("+ new tool send_email"), "\(approved.stdout)")
        #expect(try s.airlock(["activate", "example-agent", "2.0.0"]).status == 0)
        #expect(s.current?.hasPrefix("releases/2.0.0-") == true)
        let history = try s.airlock(["history", "--json"]).stdout
        #expect(history.contains("\"approved_by\"") && history.contains("new tool send_email"))

        // Rolling back is never gated; narrowing needs no approval.
        #expect(try s.airlock(["rollback", "example-agent"]).status == 0)
        #expect(try s.airlock(["activate", "example-agent", "2.0.0"]).status == 0)
        try tools(s.w, #"{"tools": [{"name": "search_kb", "description": "Search", "permissions": {"network": ["kb.internal:443"], "read": ["index/"]}}]}"#)
        try bump(s.w, "3.0.0", 30)
        #expect(try s.w.pack("narrow.airlock").status == 0)
        let narrow = try s.airlock(["install", s.w.file("narrow.airlock"), "--activate"])
        #expect(narrow.status == 0, "\(narrow.stderr)")

        // A bundle can be approved before it is installed (its signatures are verified first).
        try tools(s.w, #"{"tools": [{"name": "search_kb", "description": "Search", "permissions": {"network": ["kb.internal:443"], "read": ["/"]}}]}"#)
        try bump(s.w, "4.0.0", 40)
        #expect(try s.w.pack("root.airlock").status == 0)
        let pre = try s.airlock(["approve", s.w.file("root.airlock"), "--key", s.w.file("approver.key")])
        #expect(pre.status == 0 && pre.stdout.contains("+ tool search_kb may now read /"), "\(pre.stdout) \(pre.stderr)")
        #expect(try s.airlock(["install", s.w.file("root.airlock"), "--activate"]).status == 0)

        // The evidence report names it all.
        let ev = try s.airlock(["evidence", "example-agent", "--json"])
        #expect(ev.status == 0, "\(ev.stderr)")
        let report = try json(ev.stdout)
        #expect((report["current"] as? String)?.hasPrefix("4.0.0-") == true)
        #expect(((report["history"] as! [String: Any])["chain_verified"] as? Bool) == true)
        let policy = report["policy"] as! [String: Any]
        #expect(((policy["perimeter"] as! [String: Any])["hosts"] as? [String])?.contains("smtp.internal:25") == true)
        #expect((policy["approvals"] as? [String: Any])?["threshold"] as? Int == 1)
        let releases = report["releases"] as! [[String: Any]]
        #expect(releases.count == 4)
        let wide = releases.first { ($0["version"] as? String) == "2.0.0" }!
        #expect((wide["approvals"] as? [String]) == [approverID])
        #expect(((wide["signers"] as! [[String: Any]]).first?["status"] as? String) == "verified")
        #expect(((wide["eval"] as? [String: Any])?["score"] as? Double) == 1)
        #expect(!(wide["widened_at_activation"] as! [Any]).isEmpty)
        // What gc removes stays in the report, from the history.
        #expect(try s.airlock(["gc", "--keep", "1"]).status == 0)
        let after = try json(try s.airlock(["evidence", "example-agent", "--json"]).stdout)
        let gone = after["removed"] as! [[String: Any]]
        let kept = Set((after["releases"] as! [[String: Any]]).compactMap { $0["version"] as? String })
        let removedVersions = Set(gone.compactMap { $0["version"] as? String })
        #expect(!gone.isEmpty && gone.allSatisfy { ($0["how"] as? String) == "gc-remove" }, "\(gone)")
        #expect(kept.union(removedVersions) == ["1.0.0", "2.0.0", "3.0.0", "4.0.0"] && kept.isDisjoint(with: removedVersions), "\(kept) \(removedVersions)")
        let text = try s.airlock(["evidence", "example-agent"]).stdout
        #expect(text.contains("removed since (from the history):"))
        #expect(text.contains("hash chain verified") && text.contains("eval        score 1 (threshold 0.9, 10/10 cases, 2 runs)"), "\(text)")
    }

    /// Review regressions: no way around the activation checks.
    @Test func activationChecksHaveNoSideDoor() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        try tools(
            s.w,
            """
            {"tools": [{"name": "search_kb", "description": "Search", "permissions": {"network": ["kb.internal:443"], "write": ["/"], "exec": ["/"]}}]}
            """)
        try bump(s.w, "2.0.0", 20)
        #expect(try s.w.pack("wide.airlock").status == 0)

        // install --activate: installed, not activated, and the history says exactly that.
        let r = try s.airlock(["install", s.w.file("wide.airlock"), "--activate"])
        #expect(r.status == 4 && r.stderr.contains("installed example-agent 2.0.0-") && r.stderr.contains("but not activated: activating"), "\(r.stderr)")
        let h = try JSONSerialization.jsonObject(with: Data(try s.airlock(["history", "--json"]).stdout.utf8)) as! [[String: Any]]
        #expect(h.suffix(2).map { $0["action"] as! String } == ["install", "refuse"])
        #expect(h.last?["bundle"] == nil && (h.last?["reason"] as? String) == "approval-required")

        // rollback --to a release that was never active is an activation, approval included.
        let back = try s.airlock(["rollback", "example-agent", "--to", "2.0.0"])
        #expect(back.status == 4 && back.stderr.contains("widens its permissions"), "\(back.stderr)")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true)

        // A state written before the model endpoint was recorded: the manifest decides.
        try sh(s.w, "sed -i 's/^version: .*/version: 3.0.0/; s/^sequence: .*/sequence: 30/' release/airlock.yaml")
        try sh(
            s.w,
            "sed -i 's|model: { path: model/, name: tinyllama-1.1b-chat, snapshot: 2026-10-01 }|model: { path: model/, name: tinyllama-1.1b-chat, snapshot: 2026-10-01, endpoint: \"https://llm.internal/v1\" }|' release/airlock.yaml"
        )
        try tools(s.w, #"{"tools": [{"name": "search_kb", "description": "Search", "permissions": {"network": ["kb.internal:443"]}}]}"#)
        #expect(try s.w.pack("remote.airlock").status == 0)
        #expect(try s.airlock(["trust", "allow", "llm.internal:443"]).status == 0)
        #expect(try s.airlock(["install", s.w.file("remote.airlock")]).status == 0)
        try sh(
            s.w,
            #"python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d.pop("model_endpoint"); json.dump(d, open(p, "w"))' site/example-agent/.state.json"#
        )
        let old = try s.airlock(["activate", "example-agent", "3.0.0"])
        #expect(old.status == 4 && old.stderr.contains("the model reaches llm.internal:443"), "\(old.stderr)")

        // The perimeter as it is now: narrowed after install, the release does not activate,
        // unless the admin allows the endpoint now (recorded).
        #expect(try s.airlock(["install", s.v2, "--allow-downgrade"]).status == 0)
        #expect(try s.airlock(["trust", "disallow", "kb.internal:443"]).status == 0)
        let narrowed = try s.airlock(["activate", "example-agent", "1.1.0"])
        #expect(narrowed.status == 4 && narrowed.stderr.contains("tool search_kb reaches kb.internal:443: outside the site's perimeter"), "\(narrowed.stderr)")
        let allowed = try s.airlock(["activate", "example-agent", "1.1.0", "--allow-egress", "kb.internal:443"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(try s.airlock(["history", "--json"]).stdout.contains("\"allowed_egress\""))
        #expect(try s.airlock(["rollback", "example-agent"]).status == 0)  // a plain rollback is never gated
        #expect(try s.airlock(["activate", "example-agent", "1.1.0"]).status == 0)  // the allowance stays with the release

        // One key, one role; approvers can be removed.
        #expect(try s.airlock(["trust", "add", "--approver", s.w.file("vendor.pub")]).status == 6)
        _ = try s.w.key("approver", trust: false)
        #expect(try s.airlock(["trust", "add", "--approver", s.w.file("approver.pub")]).status == 0)
        #expect(try s.airlock(["trust", "add", s.w.file("approver.pub")]).status == 6)
        let approverID = try CLI.run(["key", "id", s.w.file("approver.pub")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try s.airlock(["trust", "remove", String(approverID.prefix(12))]).status == 0)
        #expect(!(try s.airlock(["trust", "list"]).stdout.contains(approverID)))
        #expect(try s.airlock(["approve", "example-agent", "2.0.0", "--key", s.w.file("approver.key")]).status == 6)

        // Numbers posing as names are not perimeter entries either.
        #expect(try s.airlock(["trust", "allow", "2130706433"]).status == 2)
        #expect(try s.airlock(["trust", "allow", "*.0.0.1"]).status == 2)
    }

    /// Second review's regressions.
    @Test func recordsAndRecoveryHoldUp() throws {
        let s = try SiteWorkspace()
        try s.policy("{}")
        let all = ["--allow-egress", "kb.internal:443", "--allow-egress", "tickets.internal:443", "--allow-egress", "orders.internal:8443"]
        // The install line itself carries the allowances.
        #expect(try s.airlock(["install", s.v1, "--activate"] + all).status == 0)
        let h = try JSONSerialization.jsonObject(with: Data(try s.airlock(["history", "--json"]).stdout.utf8)) as! [[String: Any]]
        let install = h.first { $0["action"] as? String == "install" }!
        #expect((install["allowed_egress"] as? [String])?.contains("tool search_kb -> kb.internal:443") == true, "\(install)")
        // A repair keeps them; --allow-egress on an installed release says where it belongs.
        let repaired = try s.airlock(["install", s.v1, "--repair"])
        #expect(repaired.status == 0, "\(repaired.stderr)")
        let again = try s.airlock(["install", s.v1, "--allow-egress", "kb.internal:443"])
        #expect(again.status == 2 && again.stderr.contains("airlock activate example-agent"), "\(again.stderr)")
        // Evidence shows the allowances in force, once each.
        let ev = try JSONSerialization.jsonObject(with: Data(try s.airlock(["evidence", "example-agent", "--json"]).stdout.utf8)) as! [String: Any]
        let r1 = (ev["releases"] as! [[String: Any]])[0]
        #expect((r1["allowances"] as! [[String: Any]]).count == 3, "\(r1)")

        // A check killed while re-activating the current release leaves it current.
        let killed = try CLI.sh(
            """
            '\(CLI.binary)' activate example-agent 1.0.0 --check 'sleep 30' --check-timeout 60 --root '\(s.root)' >/dev/null 2>&1 &
            pid=$!
            for i in $(seq 100); do grep -q '"checking"' '\(s.root)/example-agent/.state.json' && break; sleep 0.05; done
            kill -9 $pid; wait $pid 2>/dev/null; echo killed
            """)
        #expect(killed.stdout.contains("killed"))
        let started = Date()
        #expect(try s.airlock(["pin", "example-agent", "1.0.0"]).status == 0)
        #expect(Date().timeIntervalSince(started) < 10, "recovery waited for the killed check")
        #expect(s.current?.hasPrefix("releases/1.0.0-") == true, "\(String(describing: s.current))")

        // rollback --to a release never active takes --allow-egress like activate.
        #expect(try s.airlock(["install", s.v2] + all).status == 0)
        #expect(try s.airlock(["trust", "allow"] + SiteWorkspace.perimeter).status == 0)
        #expect(try s.airlock(["install", s.v3]).status == 0)  // inside the perimeter: no allowance recorded
        try s.policy("{}")  // then the perimeter is emptied
        let refused = try s.airlock(["rollback", "example-agent", "--to", "1.2.0"])
        #expect(refused.status == 4 && refused.stderr.contains("--allow-egress"), "\(refused.stderr)")
        #expect(try s.airlock(["rollback", "example-agent", "--to", "1.2.0"] + all).status == 0)
        #expect(s.current?.hasPrefix("releases/1.2.0-") == true)

        // Policy files are strict about the new fields too.
        try s.policy(#"{"min_eval_score": 0.9}"#)
        let strict = try s.airlock(["trust", "list"])
        #expect(strict.status == 6 && strict.stderr.contains("needs \"require_eval\": true"), "\(strict.stderr)")
        try s.policy("{}")
        // A vendor key copied into approvers/ by hand is refused, not counted.
        try FileManager.default.createDirectory(atPath: s.root + "/.trust/approvers", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: s.w.file("vendor.pub"), toPath: s.root + "/.trust/approvers/vendor.pub")
        let conflict = try s.airlock(["activate", "example-agent", "1.1.0"])
        #expect(conflict.status == 6 && conflict.stderr.contains("both a signing key and an approver key"), "\(conflict.stderr)")
    }

    @Test func siteMinimumEvalScore() throws {
        let s = try SiteWorkspace()
        try sh(
            s.w,
            """
            printf '{"score": 0.91, "cases": [{"id": "c1", "passed": true}]}' > release/eval/fixed.sh.out
            printf 'cat eval/fixed.sh.out\n' > release/eval/fixed.sh
            sed -i 's|command: python3 eval/run.py|command: sh eval/fixed.sh|; s/^version: .*/version: 5.0.0/; s/^sequence: .*/sequence: 50/' release/airlock.yaml
            """)
        #expect(try s.w.pack("low.airlock").status == 0)
        try s.policy(#"{"require_eval": true, "min_eval_score": 0.95, "perimeter": {"hosts": ["*.internal"]}}"#)
        let r = try s.airlock(["install", s.w.file("low.airlock")])
        #expect(r.status == 4 && r.stderr.contains("0.91 is below the site's minimum 0.95"), "\(r.stderr)")
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)  // scores 1
        // Raised after install: the release installed under the old floor does not activate.
        try s.policy(#"{"require_eval": true, "min_eval_score": 0.5, "perimeter": {"hosts": ["*.internal"]}}"#)
        #expect(try s.airlock(["install", s.w.file("low.airlock")]).status == 0)
        try s.policy(#"{"require_eval": true, "min_eval_score": 0.95, "perimeter": {"hosts": ["*.internal"]}}"#)
        let a = try s.airlock(["activate", "example-agent", "5.0.0"])
        #expect(a.status == 4 && a.stderr.contains("below the site's minimum"), "\(a.stderr)")
    }

    @Test func firstActivationApprovalIsThePolicysChoice() throws {
        let s = try SiteWorkspace()
        try s.policy(#"{"perimeter": {"hosts": ["*.internal"]}, "approvals": {"threshold": 1, "first_activation": true}}"#)
        let r = try s.airlock(["install", s.v1, "--activate"])
        #expect(r.status == 4 && r.stderr.contains("over nothing (first activation)") && r.stderr.contains("new tool search_kb"), "\(r.stderr)")
        #expect(s.current == nil)
        _ = try s.w.key("approver", trust: false)
        #expect(try s.airlock(["trust", "add", "--approver", s.w.file("approver.pub")]).status == 0)
        #expect(try s.airlock(["approve", "example-agent", "1.0.0", "--key", s.w.file("approver.key")]).status == 0)
        #expect(try s.airlock(["activate", "example-agent", "1.0.0"]).status == 0)
    }

    @Test func evidenceReportsABrokenHistoryChain() throws {
        let s = try SiteWorkspace()
        #expect(try s.airlock(["install", s.v1, "--activate"]).status == 0)
        #expect(try s.airlock(["install", s.v2, "--activate"]).status == 0)
        try sh(s.w, "sed -i '0,/\"install\"/s//\"instal1\"/' site/.history.jsonl")
        let r = try s.airlock(["evidence", "example-agent"])
        #expect(r.status == 1 && r.stdout.contains("chain BROKEN"), "\(r.stdout) \(r.stderr)")
    }

    // MARK: SBOM

    /// The python that has the CycloneDX validator: `make sbom-validator`'s environment, else
    /// the system's.
    private var validatorPython: String {
        let venv = CLI.root + "/.build/sbom-venv/bin/python3"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
    }

    @Test func sbomIsValidCycloneDX15() throws {
        let w = try Workspace()
        _ = try w.key("vendor")
        #expect(try w.pack("v1.airlock").status == 0)
        let r = try CLI.run(["sbom", w.file("v1.airlock")])
        #expect(r.status == 0, "\(r.stderr)")
        try Data(r.stdout.utf8).write(to: URL(fileURLWithPath: w.file("sbom.json")))
        let valid = try CLI.run([CLI.root + "/scripts/validate-sbom.py", w.file("sbom.json")], executable: validatorPython)
        #expect(valid.status == 0, "validator: \(valid.stdout) \(valid.stderr)")
        let bom = try json(r.stdout)
        #expect(bom["specVersion"] as? String == "1.5" && bom["bomFormat"] as? String == "CycloneDX")
        let components = bom["components"] as! [[String: Any]]
        let model = components.first { $0["type"] as? String == "machine-learning-model" }!
        #expect(model["name"] as? String == "tinyllama-1.1b-chat" && model["version"] as? String == "2026-10-01")
        let files = components.filter { $0["type"] as? String == "file" }
        let info = try json(try CLI.run(["inspect", w.file("v1.airlock"), "--json"]).stdout)
        #expect(files.count == info["files"] as? Int)
        let hashes = files.first { $0["name"] as? String == "code/agent.py" }?["hashes"] as? [[String: String]]
        #expect(hashes?.first?["alg"] == "SHA-256" && hashes?.first?["content"]?.count == 64)
        let deps = (bom["dependencies"] as? [[String: Any]])?.first
        #expect(deps?["ref"] as? String == "release" && (deps?["dependsOn"] as? [String])?.count == components.count)
        #expect(((bom["metadata"] as! [String: Any])["component"] as! [String: Any])["hashes"] == nil)
        // The same bundle gives the same document.
        #expect(try CLI.run(["sbom", w.file("v1.airlock")]).stdout == r.stdout)

        // The validator does fail: a document it must reject.
        try Data(r.stdout.replacingOccurrences(of: "\"machine-learning-model\"", with: "\"neural-net\"").utf8).write(
            to: URL(fileURLWithPath: w.file("bad.json")))
        #expect(try CLI.run([CLI.root + "/scripts/validate-sbom.py", w.file("bad.json")], executable: validatorPython).status != 0)
    }
}
