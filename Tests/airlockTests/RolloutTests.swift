import Foundation
import Testing

/// Canaries, outcomes, breakers and alerts through a real `airlock serve` (issue 11): a
/// candidate that fails more is aborted by itself with an alert naming the component that
/// changed; a good one ramps through its steps and is promoted; bad input changes no state;
/// when the current release starts failing its breaker trips and new tasks go to the warm
/// last-good release, also across a `kill -9` of `serve`.
@Suite(.serialized) struct RolloutTests {
    /// A runtime whose quality is set by its release: `code/behavior.json` says which share of
    /// tasks it answers badly (by the task id's hash, so the same task gets the same answer).
    static let server = """
        import hashlib, http.server, json, os
        behavior = json.load(open("code/behavior.json"))
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                task = self.headers.get("X-Task-Id", "")
                luck = int(hashlib.sha256(task.encode()).hexdigest()[:8], 16) / 2**32
                text = "Sorry." if luck < behavior["fail"] else "Here is how. (source: Doc)"
                data = json.dumps({"answer": text}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *a): pass
        http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
        """

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    struct World {
        let dir: String
        let root: String
        var releases: [String: String] = [:]
        var port = 0
        var base: String { "http://127.0.0.1:\(port)" }
        var token: String { (try? String(contentsOfFile: root + "/.serve-token", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "" }

        func json(_ args: [String]) throws -> [String: Any] {
            let r = try CLI.run(args + ["--root", root, "--json"])
            #expect(r.status == 0, "\(args): \(r.stderr)")
            return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        }

        /// Runs the load script: `tasks` tasks, stopping when the canary ends if asked.
        func load(_ tasks: Int, prefix: String, untilCanaryEnds: Bool = false, failRelease: String? = nil) throws -> [String: Any] {
            var args = [
                "python3", Self.script, "--url", base, "--token-file", root + "/.serve-token", "--name", "svc", "--cases", dir + "/cases.json",
                "--tasks", String(tasks), "--prefix", prefix, "--threads", "6", "--quiet",
            ]
            if untilCanaryEnds { args.append("--until-canary-ends") }
            if let failRelease { args += ["--fail-release", failRelease] }
            let r = try CLI.run(args, executable: "/usr/bin/env")
            #expect(r.status == 0, "\(r.stderr)")
            let last = r.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
            return (try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any] ?? [:]
        }

        static let script = RolloutTests.repo + "/scripts/rollout-load.py"
    }

    /// Packs svc 1.0.0 (good), 2.0.0 (fails 40% of tasks) and 3.0.0 (good), installs them,
    /// activates 1.0.0, and writes a site policy with a short horizon. The breakers' error-rate
    /// limit is 0.8, so that the canary's decision, not a breaker, catches the 40% (at 0.5 a
    /// window of 20 tasks trips now and then first).
    static func world(alerts: String = "") throws -> World {
        let dir = try ServeTests.scratch("airlock-rollout")
        try server.write(toFile: dir + "/rel/code/server.py", atomically: true, encoding: .utf8)
        try #"{"cases": [{"id": "a", "question": "how?", "source": "Doc"}]}"#.write(toFile: dir + "/cases.json", atomically: true, encoding: .utf8)
        var w = World(dir: dir, root: try ServeTests.trustingSite(dir))
        try """
        {"perimeter": {"hosts": [], "networks": ["127.0.0.0/8"]},
         "rollout": {\(alerts) "defaults": {"outcome_deadline_seconds": 60,
          "decision": {"horizon": 150, "success": {"non_inferiority_margin": 0.12}, "cost": {"non_inferiority_margin": 0.12},
                       "intervention": {"non_inferiority_margin": 0.12}},
          "breaker": {"minimum_tasks": 20, "error_rate": 0.8, "window_seconds": 60}}}}
        """.write(toFile: w.root + "/.trust/policy.json", atomically: true, encoding: .utf8)
        for (version, fail) in [("1.0.0", 0.0), ("2.0.0", 0.4), ("3.0.0", 0.0)] {
            try "{\"fail\": \(fail)}".write(toFile: dir + "/rel/code/behavior.json", atomically: true, encoding: .utf8)
            try
                "name: svc\nversion: \(version)\nsequence: \(version.first!)\ncomponents: { code: code/ }\nserve: { command: python3 code/server.py, ready: /ready }\n"
                .write(toFile: dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
            try ServeTests.pack(dir, "\(version).airlock")
            let installed = try w.json(["install", dir + "/\(version).airlock"] + (version == "1.0.0" ? ["--activate"] : []))
            w.releases[version] = installed["release"] as? String
        }
        return w
    }

    static func startServe(_ w: inout World) throws -> Process {
        if w.port == 0 { w.port = ServeTests.freePort() }
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: CLI.binary)
        serve.arguments = ["serve", "svc", "--root", w.root, "--listen", "127.0.0.1:\(w.port)"]
        serve.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: w.dir + "/serve.log", contents: nil)
        serve.standardError = FileHandle(forWritingAtPath: w.dir + "/serve.log")
        try serve.run()
        let base = w.base
        #expect(try ServeTests.eventually(30) { try ServeTests.request(base + "/svc/ready", task: "probe-\(UUID().uuidString)")?.status == 200 })
        return serve
    }

    static func lines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    /// A loopback webhook that appends each POSTed body, one line each, to a file.
    static let receiver = """
        import http.server, sys
        out = sys.argv[2]
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with open(out, "ab") as f: f.write(body + b"\\n")
                self.send_response(204); self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
        """

    @Test func canaryAbortsPromotesAndBadInputChangesNothing() throws {
        let hookPort = ServeTests.freePort()
        let spool = FileManager.default.temporaryDirectory.appendingPathComponent("airlock-alert-spool-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        chmod(spool, 0o777)  // the alert command runs as nobody
        defer { try? FileManager.default.removeItem(atPath: spool) }
        let hook = Process()
        hook.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        hook.arguments = ["python3", "-c", Self.receiver, String(hookPort), spool + "/webhook.jsonl"]
        hook.standardOutput = FileHandle.nullDevice
        hook.standardError = FileHandle.nullDevice
        try hook.run()
        defer { hook.stopHelper() }
        var w = try Self.world(
            alerts: """
                "alerts": {"webhook": "http://127.0.0.1:\(hookPort)/hook", "command": ["/bin/sh", "-c", "cat >> \(spool)/command.jsonl; echo >> \(spool)/command.jsonl"]},
                """)
        defer { try? FileManager.default.removeItem(atPath: w.dir) }
        let serve = try Self.startServe(&w)
        defer { if serve.isRunning { serve.terminate() } }
        let token = w.token
        #expect(token.count == 64)
        let outcomes = w.base + "/_airlock/outcomes/svc"
        let journal = w.root + "/svc/.serve/tasks.log"

        // One routed task, then bad input of every kind: a clear 4xx, and the journal unchanged.
        #expect(try ServeTests.request(w.base + "/svc/v1/answer", method: "POST", task: "known", body: "{}")?.status == 200)
        let before = Self.lines(journal)
        let good = #"{"task_id": "known", "success": true, "cost": 0.01, "intervention": false}"#
        #expect(try ServeTests.request(w.base + "/svc/v1/answer", method: "POST", body: "{}")?.status == 400)
        #expect(try ServeTests.request(w.base + "/nope/v1/answer", method: "POST", task: "x", body: "{}")?.status == 404)
        #expect(try ServeTests.request(outcomes, method: "POST", body: good)?.status == 401)
        #expect(try ServeTests.request(outcomes, method: "POST", body: good, token: String(repeating: "a", count: 64))?.status == 401)
        for bad in [
            "not json", #"{"task_id": "known"}"#, #"{"task_id": "known", "success": "yes", "cost": 0, "intervention": false}"#,
            #"{"task_id": "known", "success": true, "cost": -1, "intervention": false}"#,
            #"{"task_id": "known", "success": true, "cost": 0, "intervention": false, "extra": 1}"#,
            #"{"task_id": "has space", "success": true, "cost": 0, "intervention": false}"#,
        ] {
            let r = try #require(try ServeTests.request(outcomes, method: "POST", body: bad, token: token))
            #expect(r.status == 400 && r.body["error"] is String, "\(bad): \(r.status)")
        }
        #expect(try ServeTests.request(outcomes, method: "POST", body: "SIZE:\(64 << 10)", token: token)?.status == 413)
        #expect(try ServeTests.request(w.base + "/_airlock/outcomes/nope", method: "POST", body: good, token: token)?.status == 404)
        let never = #"{"task_id": "never-routed", "success": true, "cost": 0, "intervention": false}"#
        #expect(try ServeTests.request(outcomes, method: "POST", body: never, token: token)?.status == 404)
        #expect(Self.lines(journal) == before, "bad input changed the journal")
        #expect(try ServeTests.request(outcomes, method: "POST", body: good, token: token)?.status == 200)
        let dup = try #require(try ServeTests.request(outcomes, method: "POST", body: good, token: token))
        #expect(dup.status == 409 && dup.body["duplicate"] as? Bool == true)
        #expect(Self.lines(journal) == before + 1)

        // A candidate that fails 40% of its tasks: the canary aborts by itself.
        let v1 = try #require(w.releases["1.0.0"]), v2 = try #require(w.releases["2.0.0"]), v3 = try #require(w.releases["3.0.0"])
        let start = try CLI.run(["canary", "start", "svc", "2.0.0", "--steps", "50,100", "--root", w.root])
        #expect(start.status == 0, "\(start.stderr)")
        _ = try w.load(1500, prefix: "bad", untilCanaryEnds: true)
        let aborted = try w.json(["canary", "status", "svc"])
        #expect(aborted["status"] as? String == "aborted" && aborted["candidate"] as? String == v2, "\(aborted)")
        #expect((aborted["reason"] as? String)?.contains("success") == true, "\(aborted)")
        let alerts = try #require(
            try JSONSerialization.jsonObject(with: Data(CLI.run(["alerts", "svc", "--json", "--root", w.root]).stdout.utf8)) as? [[String: Any]])
        let abort = try #require(alerts.last { $0["event"] as? String == "canary-abort" })
        let change = try #require(abort["change"] as? [String: Any])
        #expect(change["changed"] as? [String] == ["code"], "\(change)")
        #expect(((abort["metrics"] as? [String: Any])?["table"] as? String)?.contains("success") == true)
        #expect((abort["to"] as? [String: Any])?["release"] as? String == v2)
        // The alert also reached the site's webhook and its command.
        #expect(
            ServeTests.eventually(10) {
                let hooked = (try? String(contentsOfFile: spool + "/webhook.jsonl", encoding: .utf8)) ?? ""
                let handed = (try? String(contentsOfFile: spool + "/command.jsonl", encoding: .utf8)) ?? ""
                return hooked.contains("\"canary-abort\"") && handed.contains("\"canary-abort\"")
            })
        // Aborted: every new task goes to the incumbent.
        let after = try w.load(40, prefix: "after-abort")
        #expect((after["served"] as? [String: Int]) == [v1: 40], "\(after)")

        // A good candidate ramps through 50% and is promoted; tasks stay on their release.
        #expect(try CLI.run(["canary", "start", "svc", "3.0.0", "--steps", "50,100", "--root", w.root]).status == 0)
        var seen: Set<String> = []
        for i in 0..<30 {
            let a = try ServeTests.request(w.base + "/svc/v1/answer", method: "POST", task: "sticky-\(i)", body: "{}")?.release
            let b = try ServeTests.request(w.base + "/svc/v1/answer", method: "POST", task: "sticky-\(i)", body: "{}")?.release
            #expect(a != nil && a == b)
            if let a { seen.insert(a) }
        }
        #expect(seen == [v1, v3], "both releases take tasks at 50%: \(seen)")
        _ = try w.load(3000, prefix: "good", untilCanaryEnds: true)
        let promoted = try w.json(["canary", "status", "svc"])
        #expect(promoted["status"] as? String == "promoted", "\(promoted)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: w.root + "/svc/current") == "releases/" + v3)
        #expect(try String(contentsOfFile: w.root + "/.history.jsonl", encoding: .utf8).contains("\"canary-promote\""))

        serve.terminate()
        serve.waitUntilExit()
    }

    /// The wall-clock time the breaker of `release` tripped, from `breakers.json`; nil while closed.
    static func tripTime(_ w: World, _ release: String) -> Double? {
        guard let data = FileManager.default.contents(atPath: w.root + "/svc/.serve/breakers.json"),
            let all = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let r = all[release] as? [String: Any],
            let state = r["state"] as? [String: Any], state["tripped"] != nil
        else { return nil }
        return r["since"] as? Double
    }

    /// Starts the load script in the background: every task 3.0.0 serves is reported failed.
    static func failingLoad(_ w: World, _ release: String, prefix: String) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", World.script, "--url", w.base, "--token-file", w.root + "/.serve-token", "--name", "svc", "--cases", w.dir + "/cases.json",
            "--tasks", "1500", "--prefix", prefix, "--threads", "4", "--quiet", "--fail-release", release,
        ]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        return (p, out)
    }

    @Test func containmentDrillDrainsToLastGoodAndSurvivesKill9() throws {
        var w = try Self.world()
        defer { try? FileManager.default.removeItem(atPath: w.dir) }
        let v1 = try #require(w.releases["1.0.0"]), v3 = try #require(w.releases["3.0.0"])
        #expect(try CLI.run(["activate", "svc", "3.0.0", "--root", w.root]).status == 0)
        var serve = try Self.startServe(&w)
        defer { if serve.isRunning { serve.terminate() } }
        let base = w.base, token = w.token
        func lastGoodReady() throws -> Bool {
            let svc = (try ServeTests.request(base + "/_airlock/status", token: token))?.body["names"] as? [String: Any]
            let lastGood = (svc?["svc"] as? [String: Any])?["last_good"] as? [String: Any]
            return lastGood?["release"] as? String == v1 && lastGood?["ready"] as? Bool == true
        }
        #expect(try ServeTests.eventually(30) { try lastGoodReady() })

        // The current release starts failing every task: its breaker trips (error rate over
        // 0.8 once 20 tasks are in the window), `current` switches to the warm last-good
        // release, and every new task is served by it within 5 s of the trip, with no request
        // failing on the way.
        let (load, out) = try Self.failingLoad(w, v3, prefix: "drill")
        #expect(try ServeTests.eventually(60) { Self.tripTime(w, v3) != nil })
        let trip = try #require(Self.tripTime(w, v3))
        var servedBy: String? = nil
        var n = 0
        _ = try ServeTests.eventually(10) {
            n += 1
            servedBy = try ServeTests.request(base + "/svc/v1/answer", method: "POST", task: "after-trip-\(n)", body: "{}")?.release
            return servedBy == v1
        }
        let drained = Date().timeIntervalSince1970 - trip
        #expect(servedBy == v1)
        #expect(drained < 5, "new tasks reached last-good \(drained) s after the trip")
        load.waitUntilExit()
        let summary = (try? JSONSerialization.jsonObject(with: out.fileHandleForReading.readDataToEndOfFile())) as? [String: Any]
        #expect(summary?["errors"] as? Int == 0, "requests failed during the switch: \(String(describing: summary))")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: w.root + "/svc/current") == "releases/" + v1)
        let history = try String(contentsOfFile: w.root + "/.history.jsonl", encoding: .utf8)
        #expect(history.contains("\"breaker-trip\"") && history.contains("\"rollback\""))
        let alerts = try CLI.run(["alerts", "svc", "--root", w.root])
        #expect(alerts.stdout.contains("breaker-trip svc"), "\(alerts.stdout)")

        // Again, with a kill -9 of serve as soon as the trip is on disk (before, during or
        // after the switch): `current` stays complete, and serve started again finishes the
        // drain from the state it finds.
        #expect(try CLI.run(["breaker", "reset", "svc", "--root", w.root]).status == 0)
        #expect(try CLI.run(["activate", "svc", "3.0.0", "--root", w.root]).status == 0)
        #expect(try ServeTests.eventually(30) { try lastGoodReady() })
        let (again, _) = try Self.failingLoad(w, v3, prefix: "drill2")
        #expect(try ServeTests.eventually(60) { Self.tripTime(w, v3) != nil })
        let before = (try ServeTests.request(base + "/_airlock/status", token: token))?.body["names"] as? [String: Any]
        let runtimePIDs = [
            (before?["svc"] as? [String: Any])?["pid"] as? Int, ((before?["svc"] as? [String: Any])?["last_good"] as? [String: Any])?["pid"] as? Int,
        ].compactMap { $0 }
        kill(serve.processIdentifier, SIGKILL)
        serve.waitUntilExit()
        again.terminate()
        again.waitUntilExit()
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: w.root + "/svc/current")
        #expect(FileManager.default.fileExists(atPath: w.root + "/svc/" + target + "/manifest.json"))
        serve = try Self.startServe(&w)
        #expect(try ServeTests.eventually(20) { (try? FileManager.default.destinationOfSymbolicLink(atPath: w.root + "/svc/current")) == "releases/" + v1 })
        #expect(try ServeTests.request(base + "/svc/v1/answer", method: "POST", task: "after-restart", body: "{}")?.release == v1)
        // The runtimes the killed serve left running were stopped by the new one.
        #expect(!runtimePIDs.isEmpty)
        #expect(ServeTests.eventually(5) { runtimePIDs.allSatisfy { kill(Int32($0), 0) != 0 } }, "left running: \(runtimePIDs)")
        #expect(try CLI.run(["history", "--verify", "--root", w.root]).status == 0)
        #expect(try CLI.run(["audit", "svc", "--root", w.root]).status == 0)
        let breakers = try w.json(["breaker", "status", "svc"])
        #expect(((breakers["breakers"] as? [String: Any])?[v3] as? [String: Any])?["state"] as? String == "tripped", "\(breakers)")
        serve.terminate()
        serve.waitUntilExit()
    }

    /// Rollout settings out of range are refused with `policy-invalid` naming them, and a
    /// webhook outside the perimeter is refused.
    @Test(arguments: [
        (#"{"rollout": {"defaults": {"steps": [5, 1]}}}"#, "steps"),
        (#"{"rollout": {"defaults": {"decision": {"horizon": 10}}}}"#, "horizon"),
        (#"{"rollout": {"names": {"svc": {"breaker": {"error_rate": -1}}}}}"#, "breaker.error_rate"),
        (#"{"rollout": {"defaults": {"decision": {"success": {"smallest_harm": 0}}}}}"#, "smallestHarm"),
        (#"{"rollout": {"defaults": {"speed": 1}}}"#, "unknown field \"speed\""),
        (#"{"rollout": {"alerts": {"webhook": "http://hooks.example.com/x"}}}"#, "outside the site's perimeter"),
        (#"{"rollout": {"alerts": {"command": ["page-oncall"]}}}"#, "absolute program path"),
    ])
    func badSettingsAreRefused(policy: String, names: String) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("airlock-policy-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/.trust", withIntermediateDirectories: true)
        #expect(try CLI.run(["key", "generate", "--out", root + "/k"]).status == 0)
        try FileManager.default.moveItem(atPath: root + "/k.pub", toPath: root + "/.trust/k.pub")
        try policy.write(toFile: root + "/.trust/policy.json", atomically: true, encoding: .utf8)
        let r = try CLI.run(["trust", "list", "--root", root])
        #expect(r.status == 6, "\(r.stderr)")
        #expect(r.stderr.contains(names), "\(r.stderr)")
    }

    /// `canary start` is an activation for a slice: the same refusals, and nothing started.
    /// A running canary's candidate cannot be removed or collected.
    @Test func canaryStartIsCheckedLikeAnActivation() throws {
        let w = try Self.world()
        defer { try? FileManager.default.removeItem(atPath: w.dir) }
        let v2 = try #require(w.releases["2.0.0"])
        func canary(_ args: [String]) throws -> CLI.Result { try CLI.run(["canary"] + args + ["--root", w.root]) }
        let same = try canary(["start", "svc", "1.0.0"])
        #expect(same.status == 2 && same.stderr.contains("already the current release"), "\(same.stderr)")
        #expect(try canary(["start", "svc", "2.0.0", "--steps", "5,1"]).status == 2)
        #expect(!FileManager.default.fileExists(atPath: w.root + "/svc/.serve/canary.json"))

        // A release whose tools reach further than the current one's: it needs an approval,
        // as an activation would.
        try FileManager.default.createDirectory(atPath: w.dir + "/rel/tools", withIntermediateDirectories: true)
        try #"{"tools": [{"name": "mail", "description": "e-mail", "permissions": {"network": ["127.0.0.1:25"]}}]}"#
            .write(toFile: w.dir + "/rel/tools/tools.json", atomically: true, encoding: .utf8)
        try "name: svc\nversion: 4.0.0\nsequence: 4\ncomponents: { code: code/, tools: tools/ }\nserve: { command: python3 code/server.py, ready: /ready }\n"
            .write(toFile: w.dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["pack", w.dir + "/rel", "--key", w.dir + "/vendor.key", "--out", w.dir + "/4.airlock"]).status == 0)
        #expect(try CLI.run(["install", w.dir + "/4.airlock", "--root", w.root]).status == 0)
        let widening = try canary(["start", "svc", "4.0.0"])
        #expect(widening.status == 4 && widening.stderr.contains("approv"), "\(widening.stderr)")
        #expect(!FileManager.default.fileExists(atPath: w.root + "/svc/.serve/canary.json"))

        // Promoted by hand: the candidate is activated and the canary recorded, in one hold of the lock.
        let v3 = try #require(w.releases["3.0.0"])
        #expect(try canary(["start", "svc", "3.0.0"]).status == 0)
        let promote = try canary(["promote", "svc"])
        #expect(promote.status == 0, "\(promote.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: w.root + "/svc/current") == "releases/" + v3)
        #expect(try w.json(["canary", "status", "svc"])["status"] as? String == "promoted")
        #expect(try canary(["promote", "svc"]).status == 2)
        // Started, it holds its candidate: not removed, not collected; a second one waits.
        #expect(try canary(["start", "svc", "2.0.0", "--steps", "5,100"]).status == 0)
        #expect(try canary(["start", "svc", "3.0.0"]).status == 2)
        let remove = try CLI.run(["remove", "svc", v2, "--root", w.root])
        #expect(remove.status != 0 && remove.stderr.contains("canary"), "\(remove.stderr)")
        #expect(try CLI.run(["gc", "--keep", "0", "--root", w.root]).status == 0)
        #expect(FileManager.default.fileExists(atPath: w.root + "/svc/releases/" + v2))
        #expect(try canary(["abort", "svc"]).status == 0)
        #expect(try canary(["abort", "svc"]).status == 2)
        #expect(try CLI.run(["remove", "svc", v2, "--root", w.root]).status == 0)
        let history = try String(contentsOfFile: w.root + "/.history.jsonl", encoding: .utf8)
        #expect(history.contains("\"canary-start\"") && history.contains("\"canary-abort\"") && history.contains("\"refuse\""))
        #expect(history.contains("\"canary-promote\"") && history.contains("\"activate\""))
    }
}
