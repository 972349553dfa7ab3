import Foundation
import Testing

/// A registry for the tests: Debian's `docker-registry` (CNCF distribution) on loopback, with
/// plain HTTP, or with TLS from a test CA and the Bearer token flow of a token service.
final class TestRegistry: @unchecked Sendable {
    let dir: String
    let port: Int
    var host: String { "127.0.0.1:\(port)" }
    private var processes: [Process] = []

    /// Starts a registry; with `secure`, behind TLS (certificate of a CA at `dir/ca.pem`) and
    /// token auth (user alice, password `wonderland`, credentials in `dir/auth.json`).
    init(secure: Bool = false) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("airlock-registry-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        port = ServeTests.freePort()
        var config = """
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: \(dir)/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)

            """
        if secure {
            let tokenPort = ServeTests.freePort()
            let made = try CLI.sh(
                """
                set -e
                openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=airlock-test-ca 2>/dev/null
                openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=127.0.0.1 2>/dev/null
                printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
                openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.pem -days 2 -extfile ext.cnf 2>/dev/null
                openssl req -x509 -newkey rsa:2048 -nodes -keyout token.key -out token.pem -days 2 -subj /CN=airlock-test-tokens 2>/dev/null
                printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}' \(port) "$(printf alice:wonderland | base64)" > auth.json
                printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}' \(port) "$(printf alice:guess | base64)" > wrong.json
                """, cwd: dir)
            guard made.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: made.stderr]) }
            config += """
                  tls:
                    certificate: \(dir)/tls.pem
                    key: \(dir)/tls.key
                auth:
                  token:
                    realm: https://127.0.0.1:\(tokenPort)/token
                    service: airlock-test-registry
                    issuer: airlock-test-tokens
                    rootcertbundle: \(dir)/token.pem

                """
            try Self.tokenService.write(toFile: dir + "/token.py", atomically: true, encoding: .utf8)
            try start(
                "/usr/bin/python3",
                [dir + "/token.py", String(tokenPort), dir + "/tls.pem", dir + "/tls.key", dir + "/token.key", dir + "/token.pem", "alice:wonderland"],
                port: tokenPort)
        }
        try config.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
        try start("/usr/bin/docker-registry", ["serve", dir + "/config.yml"], port: port)
    }

    private func start(_ executable: String, _ arguments: [String], port: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        processes.append(p)
        let up = ServeTests.eventually(20) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        guard up else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(executable) did not listen on \(port)"]) }
    }

    deinit {
        // SIGKILL: a server started from the test process may have inherited SIGTERM ignored.
        for p in processes where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Issues registry tokens as the distribution registry expects them: RS256 JWTs whose `x5c`
    /// header carries the certificate its `rootcertbundle` trusts, to one user, over TLS.
    static let tokenService = #"""
        import base64, http.server, json, os, ssl, subprocess, sys, time, urllib.parse
        port, tls_cert, tls_key, sign_key, sign_cert, creds = sys.argv[1:7]
        der = subprocess.run(["openssl", "x509", "-in", sign_cert, "-outform", "DER"], capture_output=True, check=True).stdout
        def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                if self.headers.get("Authorization", "") != "Basic " + base64.b64encode(creds.encode()).decode():
                    self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
                access = []
                for scope in q.get("scope", []):
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                now = int(time.time())
                header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
                claims = {"iss": "airlock-test-tokens", "sub": creds.split(":")[0], "aud": q.get("service", [""])[0], "exp": now + 300,
                          "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
                signing = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()
                sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sign_key], input=signing, capture_output=True, check=True).stdout
                body = json.dumps({"token": signing.decode() + "." + b64(sig)}).encode()
                self.send_response(200); self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain(tls_cert, tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.serve_forever()
        """#
}

/// A hostile registry: serves a real bundle with the fault its repository names (a cut
/// connection, a flipped byte, extra bytes, tiny chunks, a redirect loop, an oversized
/// manifest, an image index, an image) so that each is shown to be refused, or healed, by the client.
final class FaultyRegistry: @unchecked Sendable {
    let port: Int
    private let process: Process

    init(bundle: String, bundleID: String) throws {
        port = ServeTests.freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script, String(port), bundle, bundleID]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        _ = ServeTests.eventually(10) { (try? CLI.sh("exec 3<>/dev/tcp/127.0.0.1/\(port)").status) == 0 }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func ref(_ repository: String, _ tag: String = "1") -> String { "oci://127.0.0.1:\(port)/\(repository):\(tag)" }

    static let script = #"""
        import hashlib, http.server, json, socket, sys
        port, bundle, bundle_id = sys.argv[1:4]
        data = open(bundle, "rb").read()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        def manifest(layer="application/vnd.airlock.bundle.v1.tar+zstd", config="application/vnd.airlock.manifest.v1+json"):
            return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": config, "digest": bundle_id, "size": 100},
                               "layers": [{"mediaType": layer, "digest": digest, "size": len(data)}]}).encode()
        cut = set()
        OCI = "application/vnd.oci.image.manifest.v1+json"
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def reply(self, status, body=b"", ctype="application/json", headers={}):
                self.send_response(status); self.send_header("Content-Type", ctype); self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items(): self.send_header(k, v)
                self.end_headers(); self.wfile.write(body)
            def do_GET(self):
                if self.path == "/v2/": return self.reply(200, b"{}")
                _, _, repo, kind, ref = self.path.split("/", 4)
                if kind == "manifests":
                    if repo == "loop": return self.reply(307, headers={"Location": "/v2/loop/manifests/" + ("b" if ref == "a" else "a")})
                    if repo == "big": return self.reply(200, b" " * (5 << 20), OCI)
                    if repo == "index": return self.reply(200, b'{"schemaVersion":2,"manifests":[]}', "application/vnd.oci.image.index.v1+json")
                    if repo == "image": return self.reply(200, manifest("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.config.v1+json"), OCI)
                    return self.reply(200, manifest(), OCI)
                body = data
                if repo == "tamper": body = data[:4000] + bytes([data[4000] ^ 1]) + data[4001:]
                if repo == "extra": body = data + b"x" * 10
                if repo == "tiny":
                    # The layer in HTTP chunks of 1 to 97 bytes.
                    self.send_response(200); self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
                    out, at, n = [], 0, 1
                    while at < len(body):
                        piece = body[at:at + n]; out.append(b"%x\r\n" % len(piece) + piece + b"\r\n"); at += len(piece); n = n % 97 + 1
                    out.append(b"0\r\n\r\n"); self.wfile.write(b"".join(out)); return
                start = 0
                rng = self.headers.get("Range")
                if rng and repo != "norange":
                    start = int(rng[len("bytes="):].split("-")[0])
                    self.send_response(206); self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream"); self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if repo in ("cut", "norange", "cutpull") and start == 0 and repo not in cut:
                    cut.add(repo)
                    self.wfile.write(body[:len(body) // 2]); self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR); self.close_connection = True
                    return
                self.wfile.write(body[start:])
        http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()
        """#
}

@Suite(.serialized) struct RegistryTests {
    /// A workspace with the example release packed as `v1.airlock`, and a site at `site` that
    /// trusts its key and allows its tools' endpoints.
    static func setUp() throws -> (Workspace, String) {
        let w = try Workspace()
        _ = try w.key("vendor")
        #expect(try w.pack("v1.airlock").status == 0)
        let root = w.file("site")
        #expect(try CLI.run(["trust", "add", w.file("vendor.pub"), "--root", root]).status == 0)
        #expect(try CLI.run(["trust", "allow", "kb.internal:443", "orders.internal:8443", "tickets.internal:443", "--root", root]).status == 0)
        return (w, root)
    }

    static func json(_ r: CLI.Result) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
    }

    static func installed(_ root: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: root + "/example-agent/releases")) ?? []
    }

    @Test func pushInstallVerifyPullAndInteropWithSkopeo() throws {
        let (w, root) = try Self.setUp()
        let registry = try TestRegistry()
        let repo = "\(registry.host)/agents/example-agent"
        let pushed = try CLI.run(["push", w.file("v1.airlock"), repo, "--insecure", "--json"])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        let p = Self.json(pushed)
        #expect(p["reference"] as? String == "oci://\(repo):1.0.0")
        let bundleID = p["bundle_id"] as! String
        let layerDigest = try CLI.sh("sha256sum v1.airlock | cut -c1-64", cwd: w.path).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(p["layer_digest"] as? String == "sha256:" + layerDigest)

        // What another tool sees: skopeo reads the artifact's manifest as pushed.
        let raw = try CLI.run(["inspect", "--raw", "--tls-verify=false", "docker://\(repo):1.0.0"], executable: "/usr/bin/skopeo")
        #expect(raw.status == 0, "\(raw.stderr)")
        let m = (try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8))) as! [String: Any]
        #expect(m["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")
        #expect((m["config"] as? [String: Any])?["digest"] as? String == bundleID)
        #expect((m["config"] as? [String: Any])?["mediaType"] as? String == "application/vnd.airlock.manifest.v1+json")
        let layers = m["layers"] as! [[String: Any]]
        #expect(layers.count == 1 && layers[0]["mediaType"] as? String == "application/vnd.airlock.bundle.v1.tar+zstd")
        let annotations = m["annotations"] as! [String: String]
        #expect(annotations["dev.airlock.name"] == "example-agent" && annotations["dev.airlock.version"] == "1.0.0")
        #expect(annotations["dev.airlock.sequence"] == "1" && annotations["dev.airlock.bundle-id"] == bundleID)

        // verify and install stream from the registry; a second install copies nothing.
        let verified = try CLI.run(["verify", "oci://\(repo):1.0.0", "--trust", w.file("trust"), "--insecure"])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.hasPrefix("OK example-agent 1.0.0"))
        let pinned = p["pinned"] as! String
        let install = try CLI.run(["install", pinned, "--root", root, "--insecure", "--activate", "--json"])
        #expect(install.status == 0, "\(install.stderr)")
        #expect(Self.json(install)["activated"] as? Bool == true)
        #expect(try CLI.run(["audit", "example-agent", "--root", root]).status == 0)
        let again = try CLI.run(["install", "oci://\(repo):1.0.0", "--root", root, "--insecure", "--json"])
        #expect(Self.json(again)["already_installed"] as? Bool == true)

        // pull writes the same bytes, pinned by digest.
        let pulled = try CLI.run(["pull", pinned, "--out", w.file("pulled.airlock"), "--insecure", "--json"])
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(try CLI.sh("cmp v1.airlock pulled.airlock", cwd: w.path).status == 0)
        #expect(!FileManager.default.fileExists(atPath: w.file("pulled.airlock") + "." + layerDigest.prefix(16) + ".partial"))

        // skopeo copies it to an OCI layout; the layer blob there is the bundle, which airlock
        // verify and the auditor's plain tools (docs/audit.md) accept.
        let copy = try CLI.sh(
            """
            set -e
            echo '{"default":[{"type":"insecureAcceptAnything"}]}' > policy.json
            skopeo copy --quiet --policy policy.json --src-tls-verify=false docker://\(repo):1.0.0 oci:layout:1.0.0
            manifest=$(python3 -c 'import json; print(json.load(open("layout/index.json"))["manifests"][0]["digest"][7:])')
            layer=$(python3 -c 'import json,sys; print(json.load(open("layout/blobs/sha256/"+sys.argv[1]))["layers"][0]["digest"][7:])' "$manifest")
            echo "layout/blobs/sha256/$layer"
            """, cwd: w.path)
        #expect(copy.status == 0, "\(copy.stderr)")
        let blob = w.file(copy.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try CLI.run(["verify", blob, "--trust", w.file("trust")]).status == 0)
        let audit = try CLI.run([blob, w.file("vendor.pub")], executable: CLI.root + "/scripts/audit-bundle.sh")
        #expect(audit.status == 0 && audit.stdout.contains("audit: PASS"), "\(audit.stdout)\(audit.stderr)")

        // docs/audit.md: an auditor fetches the bundle with curl alone.
        let curl = try CLI.sh(
            """
            set -e
            reg=http://\(registry.host); repo=agents/example-agent
            curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$reg/v2/$repo/manifests/1.0.0" > manifest.json
            layer=$(grep -o '"layers":\\[{[^]]*' manifest.json | grep -o 'sha256:[0-9a-f]\\{64\\}')
            curl -fsSL "$reg/v2/$repo/blobs/$layer" -o fetched.airlock
            echo "${layer#sha256:}  fetched.airlock" | sha256sum -c --quiet
            cmp fetched.airlock v1.airlock
            """, cwd: w.path)
        #expect(curl.status == 0, "\(curl.stdout)\(curl.stderr)")
    }

    @Test func deltaBundlesTravelAsTheirOwnArtifact() throws {
        let (w, root) = try Self.setUp()
        let registry = try TestRegistry()
        let repo = "\(registry.host)/agents/example-agent"
        #expect(
            try CLI.sh(
                "sed -i 's/^version: .*/version: 1.1.0/; s/^sequence: .*/sequence: 2/' release/airlock.yaml && echo more >> release/prompts/system.md",
                cwd: w.path
            ).status == 0)
        let full = try w.pack("v2.airlock")
        #expect(full.status == 0, "\(full.stderr)")
        let delta = try w.pack("v2-delta.airlock", extra: ["--base", w.file("v1.airlock")])
        #expect(delta.status == 0, "\(delta.stderr)")
        #expect(try CLI.run(["push", w.file("v1.airlock"), repo, "--insecure"]).status == 0)
        // The delta carries its manifest as a patch: push needs its base to read the manifest
        // it stores as the artifact's config.
        let noBase = try CLI.run(["push", w.file("v2-delta.airlock"), repo, "--insecure"])
        #expect(noBase.status != 0 && noBase.stderr.contains("--base"), "\(noBase.stderr)")
        let pushed = try CLI.run(["push", w.file("v2-delta.airlock"), repo, "--insecure", "--json", "--base", w.file("v1.airlock")])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        let p = Self.json(pushed)
        let base = try #require(p["delta_base"] as? String)
        #expect((p["reference"] as? String)?.hasSuffix(":1.1.0-delta-" + base.dropFirst(7).prefix(12)) == true)
        let raw = try CLI.run(
            ["inspect", "--raw", "--tls-verify=false", "docker://" + String((p["reference"] as! String).dropFirst(6))], executable: "/usr/bin/skopeo")
        #expect(raw.stdout.contains("\"dev.airlock.delta-base\":\"\(base)\""))

        // Over its base, the delta installs from the registry; without it, it is refused.
        let bare = try CLI.run(["install", p["reference"] as! String, "--root", w.file("bare"), "--insecure"])
        #expect(bare.status != 0)
        #expect(try CLI.run(["install", "oci://\(repo):1.0.0", "--root", root, "--insecure", "--activate"]).status == 0)
        let installed = try CLI.run(["install", p["reference"] as! String, "--root", root, "--insecure", "--activate", "--json"])
        #expect(installed.status == 0, "\(installed.stderr)")
        #expect(try CLI.run(["audit", "example-agent", "--root", root]).status == 0)
    }

    @Test func tlsAndTokenAuth() throws {
        let (w, root) = try Self.setUp()
        let registry = try TestRegistry(secure: true)
        let ref = "oci://\(registry.host)/agents/example-agent:1.0.0"
        let auth = ["--ca-file", registry.dir + "/ca.pem", "--authfile", registry.dir + "/auth.json"]
        let pushed = try CLI.run(["push", w.file("v1.airlock"), ref] + auth)
        #expect(pushed.status == 0, "\(pushed.stderr)")

        // Without the CA: the certificate is not accepted, and the message says what to give.
        let noCA = try CLI.run(["install", ref, "--root", root, "--authfile", registry.dir + "/auth.json", "--retries", "0", "--json"])
        #expect(noCA.status == 3)
        #expect(noCA.stderr.contains("TLS certificate was not accepted") && noCA.stderr.contains("--ca-file"), "\(noCA.stderr)")
        // Without credentials, or with wrong ones, the token service refuses.
        let anonymous = try CLI.run(["install", ref, "--root", root, "--ca-file", registry.dir + "/ca.pem", "--json"])
        #expect(anonymous.status == 3 && anonymous.stderr.contains("refused an anonymous request"), "\(anonymous.stderr)")
        let wrong = try CLI.run(["pull", ref, "--out", w.file("x.airlock"), "--ca-file", registry.dir + "/ca.pem", "--authfile", registry.dir + "/wrong.json"])
        #expect(wrong.status == 3 && wrong.stderr.contains("refused the credentials"), "\(wrong.stderr)")
        #expect(Self.installed(root).isEmpty)

        // --insecure is for loopback only; a registry elsewhere is refused before any request.
        let insecure = try CLI.run(["pull", "oci://registry.example:5000/a/b:1", "--out", w.file("x.airlock"), "--insecure", "--json"])
        #expect(insecure.status == 2 && insecure.stderr.contains("allowed only for a registry on loopback"), "\(insecure.stderr)")

        // The site's CA file is the default for a site command; credentials from $REGISTRY_AUTH_FILE.
        try FileManager.default.copyItem(atPath: registry.dir + "/ca.pem", toPath: root + "/.trust/registry-ca.pem")
        let installed = try CLI.run(["install", ref, "--root", root, "--activate"], env: ["REGISTRY_AUTH_FILE": registry.dir + "/auth.json"])
        #expect(installed.status == 0, "\(installed.stderr)")
        #expect(Self.installed(root).count == 1)
    }

    @Test func hostileRegistriesInstallNothing() throws {
        let (w, root) = try Self.setUp()
        let id = Self.json(try CLI.run(["inspect", w.file("v1.airlock"), "--json"]))["bundle_id"] as? String ?? ""
        #expect(id.hasPrefix("sha256:"))
        let fake = try FaultyRegistry(bundle: w.file("v1.airlock"), bundleID: id)
        func install(_ repo: String, _ tag: String = "1") throws -> CLI.Result {
            try CLI.run(["install", fake.ref(repo, tag), "--root", root, "--insecure", "--json", "--retries", "1"])
        }
        // A tampered layer is refused by whichever check meets it first: the reader (here the
        // flipped byte lies in the head's zero padding, refused before any signature is read;
        // the reader then stops the download) or, when the download ends first, the layer digest.
        let tampered = try install("tamper")
        #expect(tampered.status == 1, "\(tampered.stderr)")
        #expect(tampered.stderr.contains("altered") || tampered.stderr.contains("does not match its manifest: its"), "\(tampered.stderr)")
        #expect(Self.installed(root).isEmpty)
        for (repo, says) in [
            ("extra", "the registry sent more than"), ("big", "more than the 4194304"),
            ("index", "serves it as application/vnd.oci.image.index.v1+json"), ("image", "an image or another artifact"),
        ] {
            let r = try install(repo)
            #expect(r.status == 1, "\(repo)")
            #expect(r.stderr.contains("is not an Airlock bundle") || r.stderr.contains("does not match its manifest"), "\(repo): \(r.stderr)")
            #expect(r.stderr.contains(says), "\(repo): \(r.stderr)")
            #expect(Self.installed(root).isEmpty, "\(repo)")
        }
        let loop = try install("loop", "a")
        #expect(loop.status == 3 && loop.stderr.contains("a redirect loop"), "\(loop.stderr)")
        // A manifest whose bytes are not the digest the reference pins.
        let pinned = try install("good", "1@sha256:" + String(repeating: "0", count: 64))
        #expect(pinned.status == 1 && pinned.stderr.contains("not to the digest asked for"), "\(pinned.stderr)")
        #expect(Self.installed(root).isEmpty)
        #expect(try CLI.run(["verify", fake.ref("tamper"), "--trust", w.file("trust"), "--insecure", "--retries", "0"]).status == 1)

        // A layer sent in tiny HTTP chunks arrives whole (the feed gathers the pieces).
        let tiny = try CLI.run(["verify", fake.ref("tiny"), "--trust", w.file("trust"), "--insecure"])
        #expect(tiny.status == 0, "\(tiny.stderr)")
        let tinyPull = try CLI.run(["pull", fake.ref("tiny"), "--out", w.file("t.airlock"), "--insecure"])
        #expect(tinyPull.status == 0, "\(tinyPull.stderr)")
        #expect(try CLI.sh("cmp v1.airlock t.airlock", cwd: w.path).status == 0)

        // A cut connection resumes with a range request; a registry that ignores the range
        // sends everything again, and the client skips what it holds.
        let cut = try install("cut")
        #expect(cut.status == 0, "\(cut.stderr)")
        #expect(Self.installed(root).count == 1)
        let norange = try CLI.run(["pull", fake.ref("norange"), "--out", w.file("n.airlock"), "--insecure", "--json"])
        #expect(norange.status == 0, "\(norange.stderr)")
        #expect(try CLI.sh("cmp v1.airlock n.airlock", cwd: w.path).status == 0)

        // A pull that fails part way keeps what it has; the same command resumes from there.
        let size = (try FileManager.default.attributesOfItem(atPath: w.file("v1.airlock"))[.size] as! NSNumber).intValue
        let first = try CLI.run(["pull", fake.ref("cutpull"), "--out", w.file("c.airlock"), "--insecure", "--retries", "0"])
        #expect(first.status == 3 && first.stderr.contains("run the same command again to resume"), "\(first.stderr)")
        let second = try CLI.run(["pull", fake.ref("cutpull"), "--out", w.file("c.airlock"), "--insecure", "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let s = Self.json(second)
        // What the first run kept: up to the cut, less what the client had buffered but not
        // written when the connection failed; the second run fetches only the rest.
        let kept = s["resumed_from"] as? Int ?? 0
        #expect(kept > 0 && kept <= size / 2, "\(kept) of \(size)")
        #expect(s["bytes_received"] as? Int == size - kept)
        #expect(try CLI.sh("cmp v1.airlock c.airlock", cwd: w.path).status == 0)
    }

    /// Regression: a layer larger than the download pipe (1 MiB) that the reader refuses early
    /// used to hang install and verify: the command waited for the download, which waited for
    /// the reader to take more bytes. The reader is now closed first, which stops the download.
    @Test func anEarlyRefusalOfALargeLayerStopsTheDownload() throws {
        let (w, root) = try Self.setUp()
        #expect(try CLI.sh("'\(CLI.root)/bundles/example-agent/make-weights.sh' release/model/weights.safetensors 6", cwd: w.path).status == 0)
        #expect(try w.pack("big.airlock").status == 0)
        let id = Self.json(try CLI.run(["inspect", w.file("big.airlock"), "--json"]))["bundle_id"] as? String ?? ""
        let fake = try FaultyRegistry(bundle: w.file("big.airlock"), bundleID: id)
        let started = Date()
        let r = try CLI.run(["install", fake.ref("tamper", "1"), "--root", root, "--insecure", "--retries", "0"])
        #expect(r.status == 1 && r.stderr.contains("altered"), "\(r.stderr)")
        let v = try CLI.run(["verify", fake.ref("tamper", "1"), "--trust", w.file("trust"), "--insecure", "--retries", "0"])
        #expect(v.status == 1, "\(v.stderr)")
        #expect(Date().timeIntervalSince(started) < 60)
        #expect(Self.installed(root).isEmpty)
    }

    @Test func aBundleTheSiteDoesNotTrustIsRefusedFromTheRegistryToo() throws {
        let (w, root) = try Self.setUp()
        let registry = try TestRegistry()
        _ = try w.key("stranger", trust: false)
        #expect(try w.pack("s.airlock", key: "stranger").status == 0)
        let ref = "oci://\(registry.host)/agents/example-agent:stranger"
        #expect(try CLI.run(["push", w.file("s.airlock"), ref, "--insecure"]).status == 0)
        let r = try CLI.run(["install", ref, "--root", root, "--insecure", "--json"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(Self.installed(root).isEmpty)
        // Pushing a file that is not a bundle is refused before anything is uploaded.
        #expect(try CLI.sh("head -c 4096 /dev/urandom > junk.airlock", cwd: w.path).status == 0)
        let junk = try CLI.run(["push", w.file("junk.airlock"), ref, "--insecure", "--json"])
        #expect(junk.status == 1 && junk.stderr.contains("not an Airlock bundle"), "\(junk.stderr)")
        let none = try CLI.run(["pull", "oci://\(registry.host)/agents/nothing:1", "--out", w.file("n.airlock"), "--insecure", "--json"])
        #expect(none.status == 2 && none.stderr.contains("has no manifest for"), "\(none.stderr)")
    }
}
