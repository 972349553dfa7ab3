import Foundation
import Testing

/// `airlock serve` (issue 11, first part): the current release's runtime kept warm, requests
/// routed to it by name with their task id, `current` followed, a crashed runtime restarted,
/// everything stopped on SIGTERM.
@Suite(.serialized) struct ServeTests {
    static let server = """
        import http.server, json, os, sys
        class H(http.server.BaseHTTPRequestHandler):
            def reply(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                data = json.dumps({"release": os.environ.get("AIRLOCK_RELEASE"), "path": self.path,
                                   "task": self.headers.get("X-Task-Id"), "body": body.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            do_GET = reply
            do_POST = reply
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
        """

    /// One HTTP request through Python's standard library: status, the X-Airlock-Release
    /// header, and the body.
    static let client = """
        import json, sys, urllib.request, urllib.error
        url, method, task, body, token = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
        data = b"x" * int(body[5:]) if body.startswith("SIZE:") else body.encode()
        req = urllib.request.Request(url, method=method, data=data if body else None)
        if task: req.add_header("X-Task-Id", task)
        if token: req.add_header("Authorization", "Bearer " + token)
        try:
            r = urllib.request.urlopen(req, timeout=10)
            status, headers, data = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, data = e.code, e.headers, e.read()
        print(json.dumps({"status": status, "release": headers.get("X-Airlock-Release"), "body": data.decode()}))
        """

    struct Reply {
        var status: Int
        var release: String?
        var body: [String: Any]
    }

    static func request(_ url: String, method: String = "GET", task: String? = nil, body: String = "", token: String = "") throws -> Reply? {
        let r = try CLI.run(["python3", "-c", client, url, method, task ?? "", body, token], executable: "/usr/bin/env")
        guard r.status == 0, let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return nil }
        let inner = (try? JSONSerialization.jsonObject(with: Data(((o["body"] as? String) ?? "").utf8))) as? [String: Any] ?? [:]
        return Reply(status: o["status"] as? Int ?? 0, release: o["release"] as? String, body: inner)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A scratch folder (the caller removes it) with an empty release at `rel/code`, readable by
    /// the runtimes, which run as nobody when the tests run as root.
    static func scratch(_ prefix: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/rel/code", withIntermediateDirectories: true)
        chmod(dir, 0o755)
        return dir
    }

    /// A site at `dir/root` that trusts a new vendor key (`dir/vendor.key`); returns the root.
    static func trustingSite(_ dir: String) throws -> String {
        let root = dir + "/root"
        #expect(try CLI.run(["key", "generate", "--out", dir + "/vendor"]).status == 0)
        try FileManager.default.createDirectory(atPath: root + "/.trust", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/vendor.pub", toPath: root + "/.trust/vendor.pub")
        return root
    }

    /// Packs the release at `dir/rel` into `dir/<file>` with the vendor key of `trustingSite`.
    static func pack(_ dir: String, _ file: String) throws {
        #expect(try CLI.run(["pack", dir + "/rel", "--key", dir + "/vendor.key", "--out", dir + "/" + file]).status == 0)
    }

    /// Starts `airlock serve NAME` on a free loopback port (the caller stops it); its output is
    /// dropped, so that no pipe holds up the test run.
    static func startServe(_ name: String, root: String) throws -> (serve: Process, port: Int) {
        let port = freePort()
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: CLI.binary)
        serve.arguments = ["serve", name, "--root", root, "--listen", "127.0.0.1:\(port)"]
        serve.standardOutput = FileHandle.nullDevice
        serve.standardError = FileHandle.nullDevice
        try serve.run()
        return (serve, port)
    }

    /// Waits until `check` holds, at most `seconds`.
    static func eventually(_ seconds: Double, _ check: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try check() { return true }
            usleep(100_000)
        }
        return false
    }

    @Test func routesByTaskFollowsCurrentRestartsAndStops() throws {
        let dir = try Self.scratch("airlock-serve")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.server.write(toFile: dir + "/rel/code/server.py", atomically: true, encoding: .utf8)
        func spec(_ version: String, _ sequence: Int) throws {
            try
                "name: svc\nversion: \(version)\nsequence: \(sequence)\ncomponents: { code: code/ }\nserve: { command: python3 code/server.py, ready: /ready }\n"
                .write(toFile: dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
        }
        let root = try Self.trustingSite(dir)
        try spec("1.0.0", 1)
        try Self.pack(dir, "v1.airlock")
        try spec("2.0.0", 2)
        try Self.pack(dir, "v2.airlock")
        let installed = try CLI.run(["install", dir + "/v1.airlock", "--root", root, "--activate", "--json"])
        #expect(installed.status == 0, "\(installed.stderr)")
        let v1 = (try JSONSerialization.jsonObject(with: Data(installed.stdout.utf8)) as? [String: Any])?["release"] as? String

        let (serve, port) = try Self.startServe("svc", root: root)
        let base = "http://127.0.0.1:\(port)"
        defer { if serve.isRunning { serve.terminate() } }

        // Ready: the current release answers through the router.
        #expect(try Self.eventually(20) { try Self.request(base + "/svc/ready", task: "t0")?.status == 200 })
        let r = try #require(try Self.request(base + "/svc/v1/answer?x=1", method: "POST", task: "task-1", body: "hello"))
        #expect(r.status == 200 && r.release == v1)
        #expect(r.body["release"] as? String == v1 && r.body["path"] as? String == "/v1/answer?x=1")
        #expect(r.body["task"] as? String == "task-1" && r.body["body"] as? String == "hello")

        // Bad input: a clear 4xx with a JSON error.
        let noTask = try #require(try Self.request(base + "/svc/v1/answer"))
        #expect(noTask.status == 400 && (noTask.body["error"] as? String)?.contains("X-Task-Id") == true)
        #expect(try Self.request(base + "/other/v1/answer", task: "t")?.status == 404)
        #expect(try Self.request(base + "/svc/v1/answer", method: "POST", task: "t", body: "SIZE:\(2 << 20)")?.status == 413)

        // `current` moves (an admin activates 2.0.0): serve follows it.
        let second = try CLI.run(["install", dir + "/v2.airlock", "--root", root, "--activate", "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let v2 = (try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any])?["release"] as? String
        #expect(try Self.eventually(20) { try Self.request(base + "/svc/v1/x", task: "t2-\(UUID().uuidString)")?.release == v2 })

        // The runtime crashes: it is started again and served once ready.
        // The control endpoints need the site's token (0600, made by serve).
        var tokenFile = stat()
        #expect(lstat(root + "/.serve-token", &tokenFile) == 0 && tokenFile.st_mode & 0o777 == 0o600)
        let token = try String(contentsOfFile: root + "/.serve-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try Self.request(base + "/_airlock/status")?.status == 401)
        #expect(try Self.request(base + "/_airlock/status", token: String(repeating: "0", count: 64))?.status == 401)
        let status = try #require(try Self.request(base + "/_airlock/status", token: token))
        let pid = try #require(((status.body["names"] as? [String: Any])?["svc"] as? [String: Any])?["pid"] as? Int)
        kill(-Int32(pid), SIGKILL)
        #expect(
            try Self.eventually(20) {
                guard let s = try Self.request(base + "/_airlock/status", token: token),
                    let svc = (s.body["names"] as? [String: Any])?["svc"] as? [String: Any]
                else { return false }
                return (svc["pid"] as? Int).map { $0 != pid } == true && svc["ready"] as? Bool == true
            })
        #expect(try Self.request(base + "/svc/v1/x", task: "t3")?.status == 200)

        // Prometheus metrics: requests by release and code, readiness, restarts.
        let metrics = try CLI.run(
            ["python3", "-c", "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())", base + "/_airlock/metrics"],
            executable: "/usr/bin/env")
        #expect(metrics.stdout.contains("airlock_requests_total{name=\"svc\",release=\"\(v1 ?? "")\",code=\"200\"}"), "\(metrics.stdout)")
        #expect(metrics.stdout.contains("airlock_requests_total{name=\"svc\",release=\"none\",code=\"400\"} 1"), "\(metrics.stdout)")
        #expect(metrics.stdout.contains("airlock_runtime_restarts_total{name=\"svc\"} 1"), "\(metrics.stdout)")
        #expect(metrics.stdout.contains("airlock_runtime_ready{name=\"svc\",release=\"\(v2 ?? "")\"} 1"), "\(metrics.stdout)")

        // The last-good release (1.0.0, the rollback target) is kept warm: a rollback takes the
        // traffic to it as soon as serve sees the pointer, without starting anything.
        #expect(
            try Self.eventually(20) {
                let svc = (try Self.request(base + "/_airlock/status", token: token))?.body["names"] as? [String: Any]
                let lastGood = (svc?["svc"] as? [String: Any])?["last_good"] as? [String: Any]
                return lastGood?["release"] as? String == v1 && lastGood?["ready"] as? Bool == true
            })
        let warm = (((try Self.request(base + "/_airlock/status", token: token))?.body["names"] as? [String: Any])?["svc"] as? [String: Any])?["last_good"]
        let warmPID = (warm as? [String: Any])?["pid"] as? Int
        #expect(try CLI.run(["rollback", "svc", "--root", root]).status == 0)
        let flipped = Date()
        #expect(try Self.eventually(10) { try Self.request(base + "/svc/v1/x", task: "t4-\(UUID().uuidString)")?.release == v1 })
        #expect(Date().timeIntervalSince(flipped) < 3, "the warm last-good release took \(Date().timeIntervalSince(flipped)) s")
        let now = ((try Self.request(base + "/_airlock/status", token: token))?.body["names"] as? [String: Any])?["svc"] as? [String: Any]
        #expect(now?["release"] as? String == v1 && now?["pid"] as? Int == warmPID)

        // SIGTERM: serve stops, and its runtime with it.
        let last = try #require(((try Self.request(base + "/_airlock/status", token: token))?.body["names"] as? [String: Any])?["svc"] as? [String: Any])
        let runtime = try #require(last["pid"] as? Int)
        serve.terminate()
        serve.waitUntilExit()
        #expect(serve.terminationStatus == 0)
        #expect(kill(Int32(runtime), 0) != 0)
    }

    /// A runtime that listens on a unix socket owns its socket folder; once ready it replaces
    /// its socket with a link to another socket of the machine (one root can reach). serve
    /// keeps talking to the socket it checked (held open with O_PATH) and never connects to
    /// the other one.
    @Test func aRuntimeCannotRedirectServeToAnotherSocket() throws {
        let dir = try Self.scratch("airlock-s")  // short: the runtime's socket path must fit
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + "/victim.sock", hits = dir + "/victim-hits"
        let victimServer = Process()
        victimServer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        victimServer.arguments = [
            "python3", "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(8)\nwhile True:\n  c,_=s.accept()\n  open(sys.argv[2],'a').write('hit\\n')\n  c.close()",
            victim, hits,
        ]
        victimServer.standardOutput = FileHandle.nullDevice
        victimServer.standardError = FileHandle.nullDevice
        try victimServer.run()
        defer { victimServer.stopHelper() }
        try victim.write(toFile: dir + "/rel/code/victim.txt", atomically: true, encoding: .utf8)
        try """
        import http.server, os, socketserver, threading, time
        path = os.environ["AIRLOCK_SOCKET"]
        victim = open("code/victim.txt").read().strip()
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.send_header("Content-Length", "7"); self.end_headers(); self.wfile.write(b"runtime")
            def address_string(self): return "local"
            def log_message(self, *a): pass
        server = socketserver.UnixStreamServer(path, H)
        def swap():
            time.sleep(4)
            os.rename(path, path + ".old")
            os.symlink(victim, path)
        threading.Thread(target=swap, daemon=True).start()
        server.serve_forever()
        """.write(toFile: dir + "/rel/code/server.py", atomically: true, encoding: .utf8)
        try "name: sock\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/ }\nserve: { command: python3 code/server.py, listen: socket, ready: /ready }\n"
            .write(toFile: dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
        let root = try Self.trustingSite(dir)
        try Self.pack(dir, "s.airlock")
        #expect(try CLI.run(["install", dir + "/s.airlock", "--root", root, "--activate"]).status == 0)
        let (serve, port) = try Self.startServe("sock", root: root)
        let base = "http://127.0.0.1:\(port)"
        defer { if serve.isRunning { serve.terminate() } }
        #expect(try Self.eventually(20) { try Self.request(base + "/sock/x", task: "a-\(UUID().uuidString)")?.status == 200 })
        sleep(5)  // the runtime has swapped its socket for the link by now
        for i in 0..<5 {
            let r = try #require(try Self.request(base + "/sock/x", task: "after-swap-\(i)"))
            #expect(r.status == 200)
        }
        #expect(!FileManager.default.fileExists(atPath: hits), "serve connected to the socket the runtime's link pointed at")
    }
}
