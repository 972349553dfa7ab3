import Foundation
import Testing

/// How `airlock serve` proxies agent requests (AgentProxy): kept-alive connections to the
/// runtime reused, a request sent again once when a kept-alive connection turns out closed,
/// 502 when the runtime never answers, control and agent requests mixed and pipelined on one
/// connection, chunked request bodies, a large answer streamed with back-pressure (serve's
/// memory does not grow with it), HTTP/1.0 and `Connection: close` clients, a refused body
/// still being sent.
@Suite(.serialized) struct ProxyTests {
    /// An HTTP/1.1 runtime (keep-alive) that says which connection served a request and how
    /// many that connection served; `/flaky` drops a connection's second request unanswered,
    /// `/drop` every request; `/stream?n=N` sends N blocks of 64 KiB, chunked.
    static let runtime = """
        import hashlib, http.server, json, os, socketserver
        seen = []
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def setup(self):
                super().setup()
                self.served = 0
            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\\r\\n", b"\\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""
            def one(self):
                self.served += 1
                seen.append(self.path)
                if self.path == "/seen":
                    data = json.dumps(seen).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if self.path == "/upgrade":
                    self.send_response(101)
                    self.send_header("Upgrade", "x")
                    self.send_header("Connection", "Upgrade")
                    self.end_headers()
                    return
                # /ignore answers without reading the body (a careless runtime).
                body = b"" if self.path.startswith("/ignore") else self.body()
                if self.path.startswith("/drop") or (self.path.startswith("/flaky") and self.served > 1):
                    self.close_connection = True
                    return
                if self.path.startswith("/stream"):
                    n = int(self.path.split("=")[1])
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    block = bytes(range(256)) * 256
                    for _ in range(n):
                        self.wfile.write(b"%x\\r\\n" % len(block) + block + b"\\r\\n")
                    self.wfile.write(b"0\\r\\n\\r\\n")
                    return
                data = json.dumps({"conn": self.client_address[1], "served": self.served, "path": self.path,
                                   "task": self.headers.get("X-Task-Id"), "length": len(body),
                                   "sha256": hashlib.sha256(body).hexdigest()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            do_GET = do_POST = one
            def log_message(self, *a): pass
        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
        S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
        """

    /// The client: every case, its findings as one JSON object.
    static let client = """
        import hashlib, http.client, json, os, socket, sys, time, urllib.error, urllib.request
        port, pid, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        out = {}
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        def req(method, path, task=None, body=None, chunked=False):
            h = {"X-Task-Id": task} if task else {}
            c.request(method, path, body=body, headers=h, encode_chunked=chunked)
            r = c.getresponse()
            return r.status, r.getheader("X-Airlock-Release"), r.read()
        def raw(data, seconds=30):
            s = socket.create_connection(("127.0.0.1", port), timeout=seconds)
            s.sendall(data)
            got = b""
            while True:
                b = s.recv(1 << 16)
                if not b:
                    return got
                got += b
        s1 = json.loads(req("GET", "/p/conn", "k1")[2])
        s2 = json.loads(req("GET", "/p/conn", "k2")[2])
        out["reuse"] = [s1["conn"] == s2["conn"], s1["served"], s2["served"]]
        st, rel, data = req("GET", "/p/flaky", "k3")
        f = json.loads(data)
        out["flaky"] = [st, f["served"], f["conn"] != s2["conn"]]
        st, rel, data = req("GET", "/p/drop", "k4")
        out["drop"] = [st, rel, json.loads(data).get("error", "")]
        seq = []
        for path, task in [("/_airlock/healthz", None), ("/p/conn?x=1", "k5"), ("/_airlock/healthz", None), ("/p/conn", "k6")]:
            st, rel, data = req("GET", path, task)
            seq.append([st, json.loads(data).get("path", json.loads(data).get("ok"))])
        out["mixed"] = seq
        body = os.urandom(300000)
        st, rel, data = req("POST", "/p/echo", "k7", body=iter([body[i:i + 50000] for i in range(0, len(body), 50000)]), chunked=True)
        e = json.loads(data)
        out["chunked"] = [st, e["length"], e["sha256"] == hashlib.sha256(body).hexdigest()]
        got = raw(b"GET /p/conn HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k8\\r\\n\\r\\n"
                  b"GET /_airlock/healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
                  b"GET /p/path/a?b=c HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k8\\r\\nConnection: close\\r\\n\\r\\n")
        out["pipelined"] = [got.count(b"HTTP/1.1 200"), got.find(b'"conn"') < got.find(b'"ok"') < got.find(b"/path/a?b=c")]
        got = raw(b"GET /_airlock/healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
                  b"GET /p/first HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k8\\r\\n\\r\\n"
                  b"POST /p/echo HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k8\\r\\nContent-Length: 5\\r\\n\\r\\nhello"
                  b"GET /_airlock/nothing HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
                  b"GET /p/last HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k8\\r\\nConnection: close\\r\\n\\r\\n")
        marks = [got.find(m) for m in (b'"ok"', b'"/first"', b'"length": 5', b"HTTP/1.1 404", b'"/last"')]
        out["pipelined2"] = [got.count(b"HTTP/1.1 200"), -1 not in marks and marks == sorted(marks)]
        got = raw(b"GET /p/conn HTTP/1.0\\r\\nX-Task-Id: k9\\r\\n\\r\\n", seconds=10)
        out["http10"] = [got.startswith(b"HTTP/1.0 200"), b'"task": "k9"' in got]
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /p/echo HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k11\\r\\nContent-Length: 3145728\\r\\nConnection: close\\r\\n\\r\\n")
        try:
            for _ in range(48):
                s.sendall(b"x" * 65536)
            sent = True
        except OSError:
            sent = False
        got = b""
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            got += b
        out["refused"] = [sent, got.startswith(b"HTTP/1.1 413")]
        # A body that is a request of its own, to a runtime that does not read bodies: it never
        # becomes a request on a connection another client's request uses.
        smuggled = b"GET /smuggled HTTP/1.1\\r\\nHost: h\\r\\nX-Task-Id: evil\\r\\n\\r\\n"
        got = raw(b"GET /p/ignore HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k12\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(smuggled) + smuggled)
        after = [json.loads(req("GET", "/p/conn", "k13")[2])["path"] for _ in range(3)]
        time.sleep(0.5)
        seen = json.loads(req("GET", "/p/seen", "k13")[2])
        out["smuggle"] = [got.startswith(b"HTTP/1.1 200"), after == ["/conn"] * 3, "/smuggled" not in seen]
        # HTTP/1.0 keep-alive, an answer without a length: the connection ends it.
        got = raw(b"GET /p/stream?n=1 HTTP/1.0\\r\\nConnection: keep-alive\\r\\nX-Task-Id: k14\\r\\n\\r\\n", seconds=10)
        out["http10stream"] = [got.startswith(b"HTTP/1.0 200"), len(got.split(b"\\r\\n\\r\\n", 1)[1]) == 65536]
        # No upgrade, no tunnel; a runtime's 101 is a 502.
        got = raw(b"GET /p/conn HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k15\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n\\r\\n")
        got2 = raw(b"CONNECT example.com:443 HTTP/1.1\\r\\nHost: example.com:443\\r\\n\\r\\n")
        st, rel, data = req("GET", "/p/upgrade", "k16")
        out["upgrade"] = [got.startswith(b"HTTP/1.1 400"), got2.startswith(b"HTTP/1.1 400"), st]
        # A chunked body over the limit: 413, and the task was never routed.
        big = b"y" * (2 << 20)
        st, rel, data = req("POST", "/p/echo", "k-over", body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]), chunked=True)
        c.close()
        r = urllib.request.Request("http://127.0.0.1:%d/_airlock/outcomes/p" % port, method="POST",
                                   data=json.dumps({"task_id": "k-over", "success": True, "cost": 0, "intervention": False}).encode(),
                                   headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            code = urllib.request.urlopen(r).status
        except urllib.error.HTTPError as e:
            code = e.code
        out["overChunked"] = [st, code]
        # A control request that closes the connection: the agent request pipelined after it
        # is never started.
        got = raw(b"GET /_airlock/healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"
                  b"GET /p/after-close HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k17\\r\\n\\r\\n")
        # Bytes that do not parse after a good request: its answer, then a 400, then the end.
        got3 = raw(b"GET /p/before-garbage HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k18\\r\\n\\r\\nNOT HTTP AT ALL\\r\\n\\r\\n")
        time.sleep(0.5)
        seen = json.loads(req("GET", "/p/seen", "k13")[2])
        out["closing"] = [got.count(b"HTTP/1.1"), "/after-close" not in seen]
        out["garbage"] = [got3.count(b"HTTP/1.1 200"), got3.find(b"/before-garbage") < got3.find(b"HTTP/1.1 400") != -1]
        def rss():
            for line in open("/proc/%d/status" % pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        s.sendall(b"GET /p/stream?n=1024 HTTP/1.1\\r\\nHost: x\\r\\nX-Task-Id: k10\\r\\nConnection: close\\r\\n\\r\\n")
        before = rss()
        time.sleep(2)
        during = rss()
        f = s.makefile("rb")
        status = f.readline()
        while f.readline() not in (b"\\r\\n", b""):
            pass
        total, digest = 0, hashlib.sha256()
        while True:
            size = int(f.readline().strip(), 16)
            if size == 0:
                break
            chunk = f.read(size)
            total += len(chunk)
            digest.update(chunk)
            f.readline()
        expected = hashlib.sha256((bytes(range(256)) * 256) * 1024).hexdigest()
        out["stream"] = [status.startswith(b"HTTP/1.1 200"), total, digest.hexdigest() == expected, during - before]
        print(json.dumps(out))
        """

    @Test func proxiesKeepAliveRetryPipeliningChunkedAndStreams() throws {
        let dir = try ServeTests.scratch("airlock-proxy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.runtime.write(toFile: dir + "/rel/code/server.py", atomically: true, encoding: .utf8)
        try Self.client.write(toFile: dir + "/client.py", atomically: true, encoding: .utf8)
        try "name: p\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/ }\nserve: { command: python3 code/server.py, ready: /ready }\n"
            .write(toFile: dir + "/rel/airlock.yaml", atomically: true, encoding: .utf8)
        let root = try ServeTests.trustingSite(dir)
        try ServeTests.pack(dir, "p.airlock")
        #expect(try CLI.run(["install", dir + "/p.airlock", "--root", root, "--activate"]).status == 0)
        let (serve, port) = try ServeTests.startServe("p", root: root)
        defer { if serve.isRunning { serve.terminate() } }
        #expect(try ServeTests.eventually(20) { try ServeTests.request("http://127.0.0.1:\(port)/p/ready", task: "warm")?.status == 200 })

        let token = try String(contentsOfFile: root + "/.serve-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let run = try CLI.run(["python3", dir + "/client.py", String(port), String(serve.processIdentifier), token], executable: "/usr/bin/env")
        #expect(run.status == 0, "\(run.stderr)")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout) \(run.stderr)")
        // (JSONSerialization gives Python's true as 1 in these arrays.)
        // Two requests in a row share one kept-alive connection to the runtime.
        #expect(o["reuse"] as? [AnyHashable] == [1, 1, 2] as [AnyHashable], "true, 1, 2")
        // The runtime dropped the kept-alive connection unanswered: sent again on a new one.
        #expect(o["flaky"] as? [AnyHashable] == [200, 1, 1] as [AnyHashable], "200, 1, true")
        // A runtime that never answers: 502 with the reason, no release named, no retry loop.
        let drop = try #require(o["drop"] as? [Any])
        #expect(drop[0] as? Int == 502 && drop[1] is NSNull && (drop[2] as? String)?.contains("did not answer") == true, "\(drop)")
        // Control and agent requests on one connection, each answered by its own side.
        #expect(o["mixed"] as? [[AnyHashable]] == [[200, 1], [200, "/conn?x=1"], [200, 1], [200, "/conn"]] as [[AnyHashable]])
        #expect(o["chunked"] as? [AnyHashable] == [200, 300_000, 1] as [AnyHashable])
        #expect(o["pipelined"] as? [AnyHashable] == [3, 1] as [AnyHashable])
        #expect(o["pipelined2"] as? [AnyHashable] == [4, 1] as [AnyHashable])
        #expect(o["http10"] as? [Bool] == [true, true])
        // A body over the limit with `Connection: close`: the client sends all of it and reads
        // the 413 (the rest is read and dropped before the connection closes, no reset).
        #expect(o["refused"] as? [Bool] == [true, true])
        // The review's attacks (docs/rollout.md, "How a request travels"): a body smuggled to a
        // runtime that does not read it, an HTTP/1.0 keep-alive client and an answer without a
        // length, upgrades and CONNECT, a runtime's 101, a chunked body over the limit (no
        // state), a closing control request with an agent request behind it, bytes that do not
        // parse after a good request.
        #expect(o["smuggle"] as? [Bool] == [true, true, true])
        #expect(o["http10stream"] as? [Bool] == [true, true])
        #expect(o["upgrade"] as? [AnyHashable] == [1, 1, 502] as [AnyHashable])
        #expect(o["overChunked"] as? [Int] == [413, 404])
        #expect(o["closing"] as? [AnyHashable] == [1, 1] as [AnyHashable])
        #expect(o["garbage"] as? [AnyHashable] == [1, 1] as [AnyHashable])
        // 64 MiB streamed to a client that reads nothing for 2 s: serve holds little of it.
        let stream = try #require(o["stream"] as? [Any])
        #expect(stream[0] as? Bool == true && stream[1] as? Int == 64 << 20 && stream[2] as? Bool == true, "\(stream)")
        #expect((stream[3] as? Int ?? .max) < 24, "serve's memory grew by \(stream[3]) MiB while the client did not read")
    }
}
