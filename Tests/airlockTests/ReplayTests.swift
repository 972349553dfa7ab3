import Foundation
import Testing

/// Replay before a canary (issue 12): 200 tasks of the example agent recorded on 1.0.0 through
/// `airlock serve` and its tool gateway, then replayed against an unchanged repack (nothing
/// beyond the noise floor, exit 0), a release whose prompts change the answers of the refund
/// questions (those tasks and only those, exit 1), a release that calls a tool it does not
/// declare (refused by the gateway, reported), and one that hangs on some tasks (killed at the
/// task timeout, reported as timeouts); the HTML report rendered in headless Chromium; bad input
/// refused with nothing written; `require_replay` enforced by `canary start`.
@Suite(.serialized) struct ReplayTests {
    @Test func replayCatchesWhatChangedBeforeTheCanary() throws {
        let w = try Workspace()
        let dir = w.path
        let root = dir + "/site"
        #expect(try CLI.run(["key", "generate", "--out", dir + "/vendor"]).status == 0)
        try FileManager.default.createDirectory(atPath: root + "/.trust", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/vendor.pub", toPath: root + "/.trust/vendor.pub")
        #expect(try CLI.run(["trust", "allow", "kb.internal:443", "tickets.internal:443", "orders.internal:8443", "--root", root]).status == 0)

        // The releases: 1.0.0; 1.0.1 the same again; 1.1.0 hands refund questions to a person;
        // 1.2.0 no longer declares search_kb but calls it; 1.3.0 hangs on password questions.
        let variants: [(String, String)] = [
            ("1.0.0", ""),
            ("1.0.1", ""),
            ("1.1.0", "printf -- '- Offer a human agent for questions about Refunds.\\n' >> r/prompts/system.md"),
            (
                "1.2.0",
                """
                python3 - r <<'PY'
                import json, sys
                p = sys.argv[1] + "/tools/tools.json"
                m = json.load(open(p)); m["tools"] = [t for t in m["tools"] if t["name"] != "search_kb"]; json.dump(m, open(p, "w"))
                a = sys.argv[1] + "/code/agent.py"
                s = open(a).read().replace('if "search_kb" not in tools:', 'if False:'); open(a, "w").write(s)
                PY
                """
            ),
            (
                "1.3.0",
                """
                python3 - r <<'PY'
                import sys
                a = sys.argv[1] + "/code/agent.py"
                s = open(a).read().replace("            search = None\\n", "            search = None\\n            if 'password' in question:\\n                import time; time.sleep(3600)\\n")
                open(a, "w").write(s)
                PY
                """
            ),
        ]
        for (version, change) in variants {
            let r = try CLI.sh(
                """
                set -e
                rm -rf r && cp -R release r
                sed -i -e 's/^version: .*/version: \(version)/' -e 's/^sequence: .*/sequence: \(version.replacingOccurrences(of: ".", with: ""))/' r/airlock.yaml
                \(change)
                """, cwd: dir)
            #expect(r.status == 0, "\(r.stderr)")
            let packed = try CLI.run(["pack", dir + "/r", "--key", dir + "/vendor.key", "--out", dir + "/\(version).airlock"])
            #expect(packed.status == 0, "\(version): \(packed.stderr)")
            let installed = try CLI.run(["install", dir + "/\(version).airlock", "--root", root] + (version == "1.0.0" ? ["--activate"] : []))
            #expect(installed.status == 0, "\(version): \(installed.stderr)")
        }

        // The site's knowledge-base service, which search_kb is mapped to.
        let kbPort = ServeTests.freePort()
        let kb = Process()
        kb.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        kb.arguments = ["python3", dir + "/release/code/retrieval.py", "--http", String(kbPort), dir + "/release/index"]
        kb.standardOutput = FileHandle.nullDevice
        kb.standardError = FileHandle.nullDevice
        try kb.run()
        defer { kb.stopHelper() }
        #expect(try CLI.run(["trust", "allow", "127.0.0.1:\(kbPort)", "--root", root]).status == 0)
        let policyPath = root + "/.trust/policy.json"
        var policy = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: policyPath))) as? [String: Any])
        policy["tools"] = ["endpoints": ["search_kb": ["url": "http://127.0.0.1:\(kbPort)/search"]]]
        try JSONSerialization.data(withJSONObject: policy).write(to: URL(fileURLWithPath: policyPath))

        // 200 real tasks on 1.0.0, recorded (once serve has picked recording up).
        let (serve, port) = try ServeTests.startServe("example-agent", root: root)
        defer { if serve.isRunning { serve.terminate() } }
        let base = "http://127.0.0.1:\(port)"
        #expect(try ServeTests.eventually(30) { try ServeTests.request(base + "/example-agent/healthz", task: "warm")?.status == 200 })
        #expect(try CLI.run(["record", "on", "example-agent", "--sample", "100%", "--root", root]).status == 0)
        let token = try String(contentsOfFile: root + "/.serve-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(
            try ServeTests.eventually(10) {
                let s = try ServeTests.request(base + "/_airlock/status", token: token)
                return ((s?.body["names"] as? [String: Any])?["example-agent"] as? [String: Any])?["recording"] is [String: Any]
            })
        let load = try CLI.run(
            [
                "python3", CLI.root + "/scripts/rollout-load.py", "--url", base, "--token-file", root + "/.serve-token", "--name", "example-agent",
                "--cases", CLI.root + "/bundles/example-agent/eval/cases.json", "--tasks", "200", "--prefix", "rec", "--threads", "4",
            ], executable: "/usr/bin/env")
        #expect(load.status == 0, "\(load.stdout) \(load.stderr)")
        let exported = dir + "/tasks.jsonl"
        #expect(
            try ServeTests.eventually(15) {
                try? FileManager.default.removeItem(atPath: exported)
                let e = try CLI.run(["record", "export", "example-agent", "--out", exported, "--root", root])
                return e.status == 0 && e.stdout.contains("200 recorded tasks")
            })
        serve.terminate()
        serve.waitUntilExit()

        // Which recorded tasks are refund questions (their answers cite Refunds).
        let recorded = try String(contentsOfFile: exported, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let refunds = Set(
            recorded.compactMap { t -> String? in
                let x = (t["exchanges"] as? [[String: Any]])?.last
                let body = (x?["response"] as? [String: Any])?["body"] as? String ?? ""
                return body.contains("(source: Refunds)") ? t["task"] as? String : nil
            })
        let passwords = Set(
            recorded.compactMap { t -> String? in
                let x = (t["exchanges"] as? [[String: Any]])?.first
                let body = (x?["request"] as? [String: Any])?["body"] as? String ?? ""
                return body.contains("password") ? t["task"] as? String : nil
            })
        #expect(refunds.count > 10 && refunds.count < 150 && !passwords.isEmpty)
        // Every recorded task called search_kb once through the gateway.
        #expect(recorded.allSatisfy { (($0["exchanges"] as? [[String: Any]])?.first?["tool_calls"] as? [Any])?.count == 1 })

        func replay(_ args: [String]) throws -> (status: Int32, report: [String: Any], stderr: String) {
            let r = try CLI.run(["replay", "example-agent"] + args + ["--root", root, "--json"])
            let report = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
            return (r.status, report, r.stderr)
        }
        func divergedTasks(_ report: [String: Any], beyondNoise: Bool = true) -> Set<String> {
            Set(
                (report["diverged"] as? [[String: Any]] ?? []).filter { !beyondNoise || $0["beyond_noise"] as? Bool == true }.compactMap {
                    $0["task"] as? String
                })
        }

        // The unchanged repack: nothing beyond the noise floor.
        let same = try replay(["1.0.1"])
        #expect(same.status == 0, "\(same.stderr)")
        #expect(same.report["tasks"] as? Int == 200 && same.report["beyond_noise"] as? Int == 0 && same.report["passed"] as? Bool == true)
        #expect(same.report["candidate_diverged"] as? Int == same.report["baseline_diverged"] as? Int)

        // The prompt that hands refunds to a person: exactly the refund tasks, with the HTML page.
        let html = dir + "/report.html"
        let prompts = try replay(["1.1.0", "--html", html])
        #expect(prompts.status == 1, "\(prompts.stderr)")
        #expect(divergedTasks(prompts.report) == refunds, "\(divergedTasks(prompts.report).symmetricDifference(refunds))")
        let changed = ((prompts.report["change"] as? [String: Any])?["changed"] as? [String]) ?? []
        #expect(changed == ["prompts"])
        let first = try #require((prompts.report["diverged"] as? [[String: Any]])?.first)
        #expect((first["verdict"] as? String)?.hasPrefix("likely") == true || first["verdict"] as? String == "no recorded outcome")
        #expect(((first["candidate"] as? [String: Any])?["first_divergence"] as? String)?.hasPrefix("answer") == true)

        // The HTML page: self-contained, and it renders (a headless Chromium screenshot shows the
        // FAIL banner's red).
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains("FAIL") && !page.contains("http://") && !page.contains("https://") && !page.contains("<script"))
        #expect(refunds.allSatisfy { page.contains($0) })
        let shot = dir + "/report.png"
        let chromium = try CLI.run(
            [
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,900", "--screenshot=\(shot)",
                "file://" + html,
            ], executable: "/usr/bin/env")
        #expect(chromium.status == 0, "\(chromium.stderr)")
        let red = try CLI.run(["python3", "-c", Self.countColor, shot, "c0392b"], executable: "/usr/bin/env")
        #expect(red.status == 0 && (Int(red.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 200, "\(red.stdout) \(red.stderr)")

        // The undeclared tool: refused by the gateway, every task diverges, the refusal reported.
        let undeclared = try replay(["1.2.0"])
        #expect(undeclared.status == 1)
        #expect(undeclared.report["beyond_noise"] as? Int == 200)
        let calls = ((undeclared.report["diverged"] as? [[String: Any]])?.first?["candidate"] as? [String: Any])?["tool_calls"] as? [[String: Any]]
        #expect(calls?.first?["tool"] as? String == "search_kb" && calls?.first?["status"] as? String == "refused")

        // The hang: killed at the task timeout, the tasks reported as timeouts, not passes.
        let hung = try replay(["1.3.0", "--task-timeout", "3", "--last", "30"])
        #expect(hung.status == 1)
        let timedOut = (hung.report["diverged"] as? [[String: Any]] ?? []).filter {
            ($0["candidate"] as? [String: Any])?["timed_out"] as? Bool == true
        }.compactMap { $0["task"] as? String }
        let lastPasswords = Set(recorded.suffix(30).compactMap { $0["task"] as? String }).intersection(passwords)
        #expect(Set(timedOut) == lastPasswords && !lastPasswords.isEmpty, "\(timedOut) vs \(lastPasswords)")

        // Bad input: a damaged file is refused naming the line, and nothing is written.
        let replays = root + "/example-agent/.serve/replays"
        let before = try FileManager.default.contentsOfDirectory(atPath: replays).sorted()
        var lines = try String(contentsOfFile: exported, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[6] = "{\"task\": \"broken\""
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/damaged.jsonl", atomically: true, encoding: .utf8)
        let damaged = try CLI.run(["replay", "example-agent", "1.0.1", "--tasks", dir + "/damaged.jsonl", "--root", root])
        #expect(damaged.status == 3 && damaged.stderr.contains("damaged.jsonl:7"), "\(damaged.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: replays).sorted() == before)
        let history = try CLI.run(["history", "example-agent", "--root", root, "--json"]).stdout
        #expect(history.components(separatedBy: "\"replay\"").count - 1 == 4)

        // require_replay: canary start takes 1.0.1 (its replay passed) and refuses 1.1.0.
        policy = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: policyPath))) as? [String: Any])
        policy["require_replay"] = true
        try JSONSerialization.data(withJSONObject: policy).write(to: URL(fileURLWithPath: policyPath))
        let refused = try CLI.run(["canary", "start", "example-agent", "1.1.0", "--root", root])
        #expect(refused.status == 4 && refused.stderr.contains("diverged beyond the noise floor"), "\(refused.stderr)")
        let none = try CLI.run(["canary", "start", "example-agent", "1.3.0", "--root", root])
        #expect(none.status == 4 && none.stderr.contains("replay"), "\(none.stderr)")
        let accepted = try CLI.run(["canary", "start", "example-agent", "1.0.1", "--root", root])
        #expect(accepted.status == 0, "\(accepted.stderr)")
    }

    /// Counts the pixels of one colour (hex RRGGBB) in a PNG, with Python's standard library
    /// (8-bit RGB or RGBA, not interlaced, as Chromium writes its screenshots).
    static let countColor = """
        import struct, sys, zlib
        data = open(sys.argv[1], "rb").read()
        assert data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        pos, idat = 8, b""
        while pos < len(data):
            n, kind = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + n]
            if kind == b"IHDR":
                w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            elif kind == b"IDAT":
                idat += body
            pos += 12 + n
        assert depth == 8 and ctype in (2, 6)
        bpp = 3 if ctype == 2 else 4
        raw = zlib.decompress(idat)
        stride = w * bpp
        prev = bytearray(stride)
        want = bytes.fromhex(sys.argv[2])
        count = 0
        for y in range(h):
            f = raw[y * (stride + 1)]
            line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1: line[i] = (line[i] + a) & 255
                elif f == 2: line[i] = (line[i] + b) & 255
                elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            count += sum(1 for x in range(0, stride, bpp) if bytes(line[x:x + 3]) == want)
            prev = line
        print(count)
        """
}
