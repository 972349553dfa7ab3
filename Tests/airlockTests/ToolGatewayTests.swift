import Foundation
import Testing

/// The tool gateway of `airlock serve` (issue 12): a runtime calls its tools through its own
/// `AIRLOCK_TOOLS_URL`; a tool its release does not declare is refused, counted and alerted
/// on; a declared one goes to the endpoint the site maps it to (a URL inside the perimeter or a
/// local command); bad calls get a clear 4xx.
@Suite(.serialized) struct ToolGatewayTests {
    /// A runtime that makes, for each `POST /call` `{"tool", "args", "task"?, "token"?}`, one
    /// call through its gateway (`args` a string is sent as it is; `token` replaces the secret
    /// in its URL) and answers `{"status", "body"}` with what the gateway answered.
    static let runtime = """
        import http.server, json, os, urllib.request, urllib.error
        URL = os.environ.get("AIRLOCK_TOOLS_URL", "")
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer({"tools_url": bool(URL)})
            def do_POST(self):
                c = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                base = URL if "token" not in c else URL.rsplit("/", 1)[0] + "/" + c["token"]
                data = c["args"].encode() if isinstance(c["args"], str) else json.dumps(c["args"]).encode()
                def one(_=None):
                    req = urllib.request.Request(base + "/" + c["tool"], data=data, method="POST")
                    if c.get("task"): req.add_header("X-Task-Id", c["task"])
                    try:
                        r = urllib.request.urlopen(req, timeout=30)
                        return r.status, r.read()
                    except urllib.error.HTTPError as e:
                        return e.code, e.read()
                if c.get("burst"):
                    from concurrent.futures import ThreadPoolExecutor
                    with ThreadPoolExecutor(c["burst"]) as pool:
                        statuses = [s for s, _ in pool.map(one, range(c["burst"]))]
                    return self.answer({"status": 200, "body": {"statuses": statuses}})
                status, body = one()
                self.answer({"status": status, "body": json.loads(body)})
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

    /// The site's `lookup` service: answers each call with what it received.
    static let service = """
        import http.server, json, sys
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                if self.path == "/stall":
                    # The head, a part of the body, then nothing.
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"partial": ')
                    self.wfile.flush()
                    import time; time.sleep(30)
                    return
                o = {"received": body, "task": self.headers.get("X-Task-Id"), "tool": self.headers.get("X-Airlock-Tool"),
                     "release": self.headers.get("X-Airlock-Release"), "path": self.path}
                data = json.dumps(o).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *a): pass
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
        """

    /// The site's `echo` command: prints its arguments and environment back as JSON.
    static let echoCommand = """
        #!/usr/bin/env python3
        import json, os, sys
        print(json.dumps({"args": json.load(sys.stdin), "tool": os.environ.get("AIRLOCK_TOOL"), "task": os.environ.get("AIRLOCK_TASK_ID"),
                          "release": os.environ.get("AIRLOCK_RELEASE"), "name": os.environ.get("AIRLOCK_NAME")}))
        """

    struct Answer {
        var status: Int
        var body: [String: Any]
    }

    /// One call through the runtime; nil when the runtime did not answer.
    static func call(_ base: String, _ tool: String, args: Any, task: String? = "task-1", token: String? = nil, burst: Int? = nil) throws -> Answer? {
        var c: [String: Any] = ["tool": tool, "args": args]
        if let burst { c["burst"] = burst }
        if let task { c["task"] = task }
        if let token { c["token"] = token }
        let body = String(decoding: try JSONSerialization.data(withJSONObject: c), as: UTF8.self)
        guard let r = try ServeTests.request(base + "/tools/call", method: "POST", task: "t-\(UUID().uuidString)", body: body), r.status == 200 else {
            return nil
        }
        return Answer(status: r.body["status"] as? Int ?? 0, body: r.body["body"] as? [String: Any] ?? [:])
    }

    @Test func declaredToolsReachTheSiteEndpointsAndUndeclaredOnesAreRefused() throws {
        let dir = try ServeTests.scratch("airlock-tools")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.runtime.write(toFile: dir + "/rel/code/runtime.py", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/rel/tools", withIntermediateDirectories: true)
        let declared = ["lookup", "echo", "slow", "broken", "unmapped", "stall"].map {
            "{\"name\": \"\($0)\", \"description\": \"a tool\", \"permissions\": {\"network\": [], \"read\": [], \"write\": [], \"exec\": []}}"
        }
        try "{\"tools\": [\(declared.joined(separator: ", "))]}".write(toFile: dir + "/rel/tools/tools.json", atomically: true, encoding: .utf8)
        try "name: tl\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/, tools: tools/ }\nserve: { command: python3 code/runtime.py, ready: /ready }\n"
            .write(toFile: dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
        let root = try ServeTests.trustingSite(dir)
        try ServeTests.pack(dir, "v1.airlock")

        // The site's endpoints: a service on loopback (inside the perimeter) and commands.
        let servicePort = ServeTests.freePort()
        try Self.service.write(toFile: dir + "/service.py", atomically: true, encoding: .utf8)
        let service = Process()
        service.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        service.arguments = ["python3", dir + "/service.py", String(servicePort)]
        service.standardOutput = FileHandle.nullDevice
        service.standardError = FileHandle.nullDevice
        try service.run()
        defer { service.stopHelper() }
        try Self.echoCommand.write(toFile: dir + "/echo.py", atomically: true, encoding: .utf8)
        chmod(dir + "/echo.py", 0o755)
        #expect(try CLI.run(["trust", "allow", "127.0.0.1:\(servicePort)", "--root", root]).status == 0)
        let policyPath = root + "/.trust/policy.json"
        var policy = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: policyPath))) as? [String: Any])
        policy["tools"] = [
            "endpoints": [
                "lookup": ["url": "http://127.0.0.1:\(servicePort)/lookup"],
                "stall": ["url": "http://127.0.0.1:\(servicePort)/stall"],
                "echo": ["command": [dir + "/echo.py"]],
                "slow": ["command": ["/bin/sleep", "30"]],
                "broken": ["command": ["/bin/sh", "-c", "echo it broke >&2; exit 3"]],
                "delete_everything": ["command": [dir + "/echo.py"]],
            ],
            "timeout_seconds": 1,
        ]
        try JSONSerialization.data(withJSONObject: policy).write(to: URL(fileURLWithPath: policyPath))
        // The perimeter entry a tool endpoint needs cannot be taken out from under it.
        let disallow = try CLI.run(["trust", "disallow", "127.0.0.1:\(servicePort)", "--root", root])
        #expect(disallow.status == 2 && disallow.stderr.contains("tools.endpoints.lookup"), "\(disallow.stderr)")
        let listed = try CLI.run(["trust", "list", "--root", root, "--json"])
        #expect(listed.status == 0 && listed.stdout.contains("delete_everything"), "\(listed.stderr)")

        let installed = try CLI.run(["install", dir + "/v1.airlock", "--root", root, "--activate", "--json"])
        #expect(installed.status == 0, "\(installed.stderr)")
        let release = (try JSONSerialization.jsonObject(with: Data(installed.stdout.utf8)) as? [String: Any])?["release"] as? String
        // Every task recorded: a runtime must not be able to put calls into tasks it was not given.
        #expect(try CLI.run(["record", "on", "tl", "--sample", "100%", "--root", root]).status == 0)
        let (serve, port) = try ServeTests.startServe("tl", root: root)
        defer { if serve.isRunning { serve.terminate() } }
        let base = "http://127.0.0.1:\(port)/tl"
        #expect(try ServeTests.eventually(20) { try ServeTests.request(base + "/ready", task: "t0")?.status == 200 })
        #expect(ServeTests.eventually(10) { (try? ServeTests.request("http://127.0.0.1:\(servicePort)/", method: "POST", body: "{}"))??.status == 200 })

        // A declared tool mapped to a URL: the arguments arrive canonical, with the task and release.
        let looked = try #require(try Self.call(base, "lookup", args: ["q": "refunds", "a": [1, 2]]))
        #expect(looked.status == 200, "\(looked.body)")
        let result = try #require(looked.body["result"] as? [String: Any])
        #expect(result["received"] as? String == #"{"a":[1,2],"q":"refunds"}"#)
        #expect(result["task"] as? String == "task-1" && result["tool"] as? String == "lookup" && result["release"] as? String == release)
        #expect(result["path"] as? String == "/lookup")

        // A declared tool mapped to a command: arguments on stdin, the call in its environment.
        let echoed = try #require(try Self.call(base, "echo", args: ["x": 1], task: "task-2"))
        #expect(echoed.status == 200, "\(echoed.body)")
        let echo = try #require(echoed.body["result"] as? [String: Any])
        #expect((echo["args"] as? [String: Any])?["x"] as? Int == 1)
        #expect(echo["tool"] as? String == "echo" && echo["task"] as? String == "task-2" && echo["name"] as? String == "tl")

        // Refused: a tool the release does not declare, even one the site maps.
        let refused = try #require(try Self.call(base, "delete_everything", args: ["all": true]))
        #expect(refused.status == 403 && refused.body["refused"] as? Bool == true)
        #expect((refused.body["error"] as? String)?.contains("does not declare the tool delete_everything") == true)
        #expect(try Self.call(base, "delete_everything", args: [:])?.status == 403)

        // Declared but not mapped by the site; failing and slow commands.
        let unmapped = try #require(try Self.call(base, "unmapped", args: [:]))
        #expect(unmapped.status == 503 && (unmapped.body["error"] as? String)?.contains("maps no endpoint") == true)
        let broken = try #require(try Self.call(base, "broken", args: [:]))
        #expect(broken.status == 502 && (broken.body["error"] as? String)?.contains("it broke") == true, "\(broken.body)")
        let slow = try #require(try Self.call(base, "slow", args: [:]))
        #expect(slow.status == 504 && (slow.body["error"] as? String)?.contains("within 1 s") == true, "\(slow.body)")

        // An endpoint that sends its head and stalls in its body: cut at the timeout too.
        let stalled = try #require(try Self.call(base, "stall", args: [:]))
        #expect(stalled.status == 504, "\(stalled.body)")

        // A runtime that floods the gateway: 16 of its calls at once, the others 429.
        let burst = try #require(try Self.call(base, "slow", args: [:], burst: 24))
        let statuses = burst.body["statuses"] as? [Int] ?? []
        #expect(statuses.count == 24 && statuses.filter { $0 == 429 }.count == 8 && statuses.filter { $0 == 504 }.count == 16, "\(statuses)")

        // Made-up tool names: one alert for the release, whatever the names (checked below).
        for i in 0..<20 { #expect(try Self.call(base, "made_up_\(i)", args: [:])?.status == 403) }

        // Bad calls: no task id, arguments that are not an object, a name that is no tool name,
        // a URL with another secret.
        #expect(try Self.call(base, "echo", args: [:], task: nil)?.status == 400)
        #expect(try Self.call(base, "echo", args: "[1, 2]")?.status == 400)
        #expect(try Self.call(base, "echo", args: "{not json")?.status == 400)
        #expect(try Self.call(base, "bad%20name", args: [:])?.status == 400)
        let stranger = try #require(try Self.call(base, "echo", args: [:], token: String(repeating: "0", count: 64)))
        #expect(stranger.status == 404)

        // Counted: by tool for declared tools, "undeclared" for the others (a runtime's names
        // never become labels).
        let text = try CLI.run(
            [
                "python3", "-c", "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
                "http://127.0.0.1:\(port)/_airlock/metrics",
            ],
            executable: "/usr/bin/env"
        ).stdout
        let rel = release ?? ""
        #expect(text.contains(#"airlock_tool_calls_total{name="tl",release="\#(rel)",tool="undeclared",result="refused"} 22"#), "\(text)")
        #expect(text.contains(#"airlock_tool_calls_total{name="tl",release="\#(rel)",tool="lookup",result="ok"} 1"#))
        #expect(text.contains(#"tool="slow",result="timeout"} 17"#) && text.contains(#"tool="broken",result="failed"} 1"#))
        #expect(text.contains(#"tool="stall",result="timeout"} 1"#))
        #expect(text.contains(#"tool="unmapped",result="unmapped"} 1"#))
        #expect(!text.contains("delete_everything") && !text.contains("made_up"))

        // Alerted on once (not once per call), naming the release and the tool.
        let alerts = try CLI.run(["alerts", "tl", "--root", root, "--json"])
        #expect(alerts.status == 0)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(alerts.stdout.utf8)) as? [[String: Any]])
        #expect(list.filter { $0["event"] as? String == "tool-refused" }.count == 1, "\(alerts.stdout)")
        #expect(alerts.stdout.contains("delete_everything"))

        // The recording has the runtime's exchanges (each under its own task id), and none of
        // the calls it made with the ids of tasks that were not in flight (task-1, task-2).
        let out = dir + "/recorded.jsonl"
        #expect(try CLI.run(["record", "export", "tl", "--out", out, "--root", root]).status == 0)
        let recorded = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(recorded.count > 10)
        #expect(!recorded.contains { ["task-1", "task-2"].contains($0["task"] as? String) })
        #expect(recorded.allSatisfy { ($0["exchanges"] as? [[String: Any]])?.allSatisfy { ($0["tool_calls"] as? [Any])?.isEmpty == true } == true })
    }

    @Test func aToolURLOutsideThePerimeterIsRefusedWithThePolicy() throws {
        let dir = try ServeTests.scratch("airlock-tools-policy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let root = try ServeTests.trustingSite(dir)
        for (tools, problem) in [
            (#"{"endpoints": {"search_kb": {"url": "http://kb.elsewhere.example:80/search"}}}"#, "outside the site's perimeter"),
            (#"{"endpoints": {"search_kb": {"url": "https://kb.internal/search"}}}"#, "must be {\"url\""),
            (#"{"endpoints": {"search_kb": {"command": ["relative/tool"]}}}"#, "must be {\"url\""),
            (#"{"endpoints": {"bad name": {"command": ["/bin/true"]}}}"#, "not a tool name"),
            (#"{"timeout_seconds": 0}"#, "timeout_seconds"),
            (#"{"endpoint": {}}"#, "unknown field"),
        ] {
            try "{\"tools\": \(tools)}".write(toFile: root + "/.trust/policy.json", atomically: true, encoding: .utf8)
            let r = try CLI.run(["trust", "list", "--root", root])
            #expect(r.status != 0, "\(tools)")
            #expect(r.stderr.contains(problem), "\(tools): \(r.stderr)")
        }
    }
}
