import Foundation
import Testing

/// Task recording through `airlock serve` (issue 12): `airlock record on` with a sample, the
/// exchanges of the sampled tasks with their tool calls and outcomes, exported for replay; a
/// kill -9 of serve leaves a recording that reads back.
@Suite(.serialized) struct RecordingServeTests {
    /// An agent that answers `{"question"}` after calling the tool `lookup` through its
    /// gateway: `{"answer": "<question>: <the tool's result>"}`.
    static let agent = """
        import http.server, json, os, urllib.request
        URL = os.environ["AIRLOCK_TOOLS_URL"]
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer({"ok": True})
            def do_POST(self):
                q = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["question"]
                req = urllib.request.Request(URL + "/lookup", data=json.dumps({"q": q}).encode(), method="POST")
                req.add_header("X-Task-Id", self.headers["X-Task-Id"])
                result = json.load(urllib.request.urlopen(req, timeout=30))["result"]
                self.answer({"answer": q + ": " + result["found"]})
            def answer(self, o):
                data = json.dumps(o).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *a): pass
        http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
        """

    static let lookup = """
        #!/usr/bin/env python3
        import json, sys
        print(json.dumps({"found": "doc-" + str(len(json.load(sys.stdin)["q"]))}))
        """

    @Test func sampledTasksAreRecordedWithToolCallsAndOutcomes() throws {
        let dir = try ServeTests.scratch("airlock-record")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.agent.write(toFile: dir + "/rel/code/agent.py", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/rel/tools", withIntermediateDirectories: true)
        try #"{"tools": [{"name": "lookup", "description": "finds a document"}]}"#.write(
            toFile: dir + "/rel/tools/tools.json", atomically: true, encoding: .utf8)
        try "name: rc\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/, tools: tools/ }\nserve: { command: python3 code/agent.py, ready: /ready }\n"
            .write(toFile: dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
        let root = try ServeTests.trustingSite(dir)
        try ServeTests.pack(dir, "v1.airlock")
        try Self.lookup.write(toFile: dir + "/lookup.py", atomically: true, encoding: .utf8)
        chmod(dir + "/lookup.py", 0o755)
        try #"{"tools": {"endpoints": {"lookup": {"command": ["\#(dir)/lookup.py"]}}}}"#.write(
            toFile: root + "/.trust/policy.json", atomically: true, encoding: .utf8)
        let installed = try CLI.run(["install", dir + "/v1.airlock", "--root", root, "--activate", "--json"])
        #expect(installed.status == 0, "\(installed.stderr)")
        let release = (try JSONSerialization.jsonObject(with: Data(installed.stdout.utf8)) as? [String: Any])?["release"] as? String

        // Bad settings are refused and change nothing.
        for bad in [["--sample", "0%"], ["--sample", "150%"], ["--sample", "ten"], ["--sample", "10%", "--retention-days", "0"]] {
            let r = try CLI.run(["record", "on", "rc"] + bad + ["--root", root])
            #expect(r.status == 2 && r.stderr.contains("--"), "\(bad): \(r.stderr)")
        }
        #expect(try CLI.run(["record", "on", "nope", "--sample", "10%", "--root", root]).status != 0)
        let on = try CLI.run(["record", "on", "rc", "--sample", "100%", "--root", root])
        #expect(on.status == 0, "\(on.stderr)")

        var (serve, port) = try ServeTests.startServe("rc", root: root)
        defer { if serve.isRunning { serve.terminate() } }
        let base = "http://127.0.0.1:\(port)"
        #expect(try ServeTests.eventually(20) { try ServeTests.request(base + "/rc/ready", task: "warm")?.status == 200 })
        let token = try String(contentsOfFile: root + "/.serve-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        for i in 0..<12 {
            let r = try #require(try ServeTests.request(base + "/rc/v1/answer", method: "POST", task: "task-\(i)", body: #"{"question": "q\#(i)"}"#))
            #expect(r.status == 200 && (r.body["answer"] as? String)?.hasPrefix("q\(i): doc-") == true, "\(r.body)")
            if i < 3 {
                // A second request of the task: recorded as its second exchange.
                _ = try ServeTests.request(base + "/rc/v1/answer", method: "POST", task: "task-\(i)", body: #"{"question": "again \#(i)"}"#)
            }
            if i % 2 == 0 {
                let outcome = #"{"task_id": "task-\#(i)", "success": \#(i % 4 == 0), "cost": 0.5, "intervention": false}"#
                #expect(try ServeTests.request(base + "/_airlock/outcomes/rc", method: "POST", body: outcome, token: token)?.status == 200)
            }
        }

        // Exported: every task with its exchanges, tool calls and outcome.
        let out = dir + "/tasks.jsonl"
        #expect(
            try ServeTests.eventually(10) {
                try? FileManager.default.removeItem(atPath: out)
                let e = try CLI.run(["record", "export", "rc", "--out", out, "--root", root])
                return e.status == 0 && e.stdout.contains("13 recorded tasks")
            })
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        let tasks = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let byID = Dictionary(uniqueKeysWithValues: tasks.map { ($0["task"] as? String ?? "", $0) })
        let t0 = try #require(byID["task-0"])
        let exchanges = try #require(t0["exchanges"] as? [[String: Any]])
        #expect(exchanges.count == 2)
        let first = exchanges[0]
        #expect(first["release"] as? String == release)
        #expect((first["request"] as? [String: Any])?["body"] as? String == #"{"question": "q0"}"#)
        #expect((first["request"] as? [String: Any])?["path"] as? String == "/v1/answer")
        #expect((first["response"] as? [String: Any])?["status"] as? Int == 200)
        #expect(((first["response"] as? [String: Any])?["body"] as? String)?.contains("q0: doc-") == true)
        let calls = try #require(first["tool_calls"] as? [[String: Any]])
        #expect(calls.count == 1 && calls[0]["tool"] as? String == "lookup" && calls[0]["status"] as? String == "ok")
        #expect((calls[0]["arguments"] as? [String: Any])?["q"] as? String == "q0")
        #expect((calls[0]["result"] as? [String: Any])?["found"] as? String == "doc-2")
        #expect((t0["outcome"] as? [String: Any])?["success"] as? Bool == true)
        #expect(byID["task-1"]?["outcome"] is NSNull)
        #expect((byID["task-2"]?["outcome"] as? [String: Any])?["success"] as? Bool == false)

        // Status, and the file is the site owner's alone.
        let status = try CLI.run(["record", "status", "rc", "--root", root, "--json"])
        let s = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(s["on"] as? Bool == true && (s["segments"] as? Int ?? 0) >= 1 && (s["bytes"] as? Int ?? 0) > 0)

        // kill -9 of serve: what was written reads back.
        kill(serve.processIdentifier, SIGKILL)
        serve.waitUntilExit()
        try? FileManager.default.removeItem(atPath: out)
        let after = try CLI.run(["record", "export", "rc", "--out", out, "--root", root])
        #expect(after.status == 0 && after.stdout.contains("13 recorded tasks"), "\(after.stdout) \(after.stderr)")

        // A sample: the same tasks are recorded whichever request (both of task-x or neither).
        #expect(try CLI.run(["record", "purge", "rc", "--root", root]).status == 0)
        #expect(try CLI.run(["record", "on", "rc", "--sample", "50%", "--root", root]).status == 0)
        (serve, port) = try ServeTests.startServe("rc", root: root)
        let base2 = "http://127.0.0.1:\(port)"
        #expect(try ServeTests.eventually(20) { try ServeTests.request(base2 + "/rc/ready", task: "warm")?.status == 200 })
        // How many requests of each task were answered (a client that gave up is not recorded).
        var answered: [String: Int] = [:]
        for i in 0..<40 {
            for k in 0..<2 {
                let r = try ServeTests.request(base2 + "/rc/v1/answer", method: "POST", task: "s-\(i)", body: #"{"question": "s\#(i)-\#(k)"}"#)
                if r?.status == 200 { answered["s-\(i)", default: 0] += 1 }
            }
        }
        func complete(_ t: [String: Any]) -> Bool {
            guard let id = t["task"] as? String, id.hasPrefix("s-") else { return true }  // the warm-up request
            return (t["exchanges"] as? [Any])?.count == answered[id]
        }
        try? FileManager.default.removeItem(atPath: out)
        var sampled: [[String: Any]] = []
        #expect(
            try ServeTests.eventually(10) {
                try? FileManager.default.removeItem(atPath: out)
                guard try CLI.run(["record", "export", "rc", "--out", out, "--root", root]).status == 0 else { return false }
                sampled = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap {
                    try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }
                return sampled.allSatisfy(complete)
            })
        sampled.removeAll { ($0["task"] as? String)?.hasPrefix("s-") != true }
        #expect(sampled.count > 8 && sampled.count < 32, "\(sampled.count) of 40 tasks at 50%")
        #expect(sampled.allSatisfy(complete))
        #expect(answered.values.reduce(0, +) >= 76, "\(answered)")
        #expect(try CLI.run(["record", "off", "rc", "--root", root]).stdout.contains("recording off"))
        serve.terminate()
        serve.waitUntilExit()
    }
}
