import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// A release's runtime started from its `serve` section, the way `airlock serve` keeps it
/// warm: in its release's payload folder, with a clean environment, reachable on a loopback
/// port or a unix socket, ended with its whole process group.
@Suite(.serialized) struct RuntimeTests {
    /// Every command Airlock starts (a runtime, a health check, an eval, a tool, an alert)
    /// starts with no signal blocked and none ignored, whatever the spawning thread had: here
    /// SIGTERM and SIGINT blocked and SIGPIPE ignored, as on serve's threads.
    @Test func commandsStartWithNoSignalBlockedOrIgnored() throws {
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGTERM)
        sigaddset(&block, SIGINT)
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &block, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let oldPipe = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, oldPipe) }
        let out = try Subprocess.anonymousFile("signals")
        defer { close(out) }
        let outcome = try Subprocess.run(
            ["/bin/sh", "-c", "grep -E '^Sig(Blk|Ign):' /proc/self/status"], environment: ["PATH=/usr/bin:/bin"], stdout: .descriptor(out),
            stderr: .descriptor(out), timeoutSeconds: 10)
        #expect(outcome == .exited(0))
        var text = [UInt8](repeating: 0, count: 256)
        let n = pread(out, &text, text.count, 0)
        let lines = String(decoding: text.prefix(max(0, n)), as: UTF8.self)
        func mask(_ name: String) -> UInt64? {
            lines.split(separator: "\n").first { $0.hasPrefix(name + ":") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        }
        #expect(mask("SigBlk") == 0, "\(lines)")
        // Signals 1 to 31; glibc's posix_spawn itself leaves its two internal signals (32, 33)
        // ignored in the child, and they cannot be named to it.
        #expect(mask("SigIgn").map { $0 & 0x7FFF_FFFF } == 0, "\(lines)")
    }

    static let server = """
        import http.server, os, socketserver, sys
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = (os.environ.get("AIRLOCK_RELEASE", "") + " " + os.getcwd() + " " + os.environ.get("HOME", "")).encode()
                self.send_response(200 if self.path == "/ready" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *a): pass
            def address_string(self): return "local"
        print("starting", flush=True)
        if "AIRLOCK_SOCKET" in os.environ:
            socketserver.UnixStreamServer(os.environ["AIRLOCK_SOCKET"], H).serve_forever()
        else:
            http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
        """

    static let client = """
        import socket, sys, time
        addr, deadline = sys.argv[1], time.time() + 10
        while True:
            try:
                s = socket.socket(socket.AF_UNIX) if addr.startswith("/") else socket.socket()
                s.connect(addr if addr.startswith("/") else ("127.0.0.1", int(addr)))
                s.sendall(b"GET /ready HTTP/1.0\\r\\n\\r\\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk: break
                    data += chunk
                print(data.decode())
                break
            except OSError:
                if time.time() > deadline: sys.exit(1)
                time.sleep(0.05)
        """

    /// Packs and installs a one-file release whose `serve` runs `command`.
    private func installed(_ tmp: TempDir, listen: String, command: String = "python3 code/server.py") throws -> (Site, InstallResult, ServeSpec) {
        chmod(tmp.path, 0o755)  // runtimes run as nobody when the tests run as root
        tmp.write("rel/code/server.py", Self.server)
        tmp.write(
            "rel/airlock.yaml",
            "name: svc\nversion: 1.0.0\nsequence: 1\ncomponents: { code: code/ }\nserve: { command: \(command), listen: \(listen), ready: /ready }\n")
        var o = PackOptions(keys: [TestKeys.vendor])
        o.output = tmp.file("svc-\(listen).airlock")
        let packed = try Packer.pack(directory: tmp.file("rel"), options: o)
        let site = Site(root: tmp.file("root"))
        try FileManager.default.createDirectory(atPath: site.trustDirectory, withIntermediateDirectories: true)
        tmp.write("root/.trust/vendor.pub", TestKeys.vendor.publicKey.pem)
        return (site, try Installer.install(bundle: packed.path, site: site), packed.manifest.serve!)
    }

    private func get(_ address: Runtime.Address) throws -> (status: Int32, stdout: String, stderr: String) {
        switch address {
        case .port(let p): return try run(["python3", "-c", Self.client, String(p)])
        case .socket(let path): return try run(["python3", "-c", Self.client, path])
        }
    }

    @Test(arguments: ["port", "socket"])
    func startsInItsPayloadFolderAndStopsWithItsGroup(listen: String) throws {
        let tmp = TempDir()
        let (site, r, spec) = try installed(tmp, listen: listen)
        let runtime = try Runtime.start(site: site, name: r.name, release: r.release, spec: spec)
        let reply = try get(runtime.address)
        #expect(reply.status == 0, "\(reply.stderr) \(runtime.outputTail())")
        #expect(reply.stdout.hasPrefix("HTTP/1.0 200"), "\(reply.stdout)")
        // Its release, its own payload folder (not `current`), and a clean environment.
        let payload = (site.releaseDirectory(r.name, r.release) + "/payload").replacingOccurrences(of: "//", with: "/")
        #expect(reply.stdout.contains("\(r.release) \(payload) /"), "\(reply.stdout)")
        #expect(runtime.isRunning)
        #expect(runtime.outputTail().contains("starting"))
        if case .socket(let path) = runtime.address {
            #expect(path.hasPrefix(site.path(SiteLayout.staging) + "/run-"))
            // The lock-time cleanup of another command leaves a live runtime's folder alone.
            let lock = try site.lockForWriting(command: "test", timeout: 5)
            withExtendedLifetime(lock) {}
            #expect(FileManager.default.fileExists(atPath: path))
        }
        runtime.stop(graceSeconds: 2)
        #expect(!runtime.isRunning)
        #expect(kill(runtime.pid, 0) != 0)
        if case .socket(let path) = runtime.address {
            #expect(!FileManager.default.fileExists(atPath: String(path[..<path.lastIndex(of: "/")!])))
        }
    }

    @Test func aCrashIsSeenWithItsOutput() throws {
        let tmp = TempDir()
        let (site, r, spec) = try installed(tmp, listen: "port", command: "echo 'cannot load the model' >&2; exit 3")
        let runtime = try Runtime.start(site: site, name: r.name, release: r.release, spec: spec)
        for _ in 0..<200 where runtime.isRunning { usleep(20_000) }
        #expect(!runtime.isRunning)
        #expect(runtime.ended == "exited with status 3")
        #expect(runtime.outputTail().contains("cannot load the model"))
    }

    /// A runtime that writes without end does not fill the disk: its output is cut back to
    /// its tail once it passes the limit, and what it writes next is kept.
    @Test func aChattyRuntimeIsCutBackToItsTail() throws {
        let tmp = TempDir()
        let (site, r, spec) = try installed(
            tmp, listen: "port", command: "yes x | head -c 3000000; echo; echo the-last-line; sleep 30")
        let runtime = try Runtime.start(site: site, name: r.name, release: r.release, spec: spec)
        defer { runtime.stop(graceSeconds: 0) }
        for _ in 0..<250 where !runtime.outputTail(bytes: 100).contains("the-last-line") { usleep(20_000) }
        runtime.trimOutput(above: 1 << 20, keep: 4096)
        #expect(runtime.outputTail(bytes: 100).contains("the-last-line"))
        #expect(runtime.outputTail(bytes: 1 << 22).utf8.count <= 4096)
    }

    @Test func onlyAnInstalledReleaseStarts() throws {
        let tmp = TempDir()
        let (site, r, spec) = try installed(tmp, listen: "port")
        #expect {
            try Runtime.start(site: site, name: r.name, release: "9.9.9-000000000000", spec: spec)
        } throws: { ($0 as? AirlockError)?.code == "release-unknown" }
    }

    /// Review finding: every runtime ran as `nobody`, so one could read another's environment
    /// (its tool URL with its secret) in /proc. Each now runs as a user of its own.
    @Test func runtimesDoNotShareAUser() throws {
        guard geteuid() == 0 else { return }  // as another user, runtimes run as that user
        let tmp = TempDir()
        let (site, r, spec) = try installed(tmp, listen: "port")
        let a = try Runtime.start(site: site, name: r.name, release: r.release, spec: spec, environment: ["AIRLOCK_TOOLS_URL=http://127.0.0.1:1/t/secret-a"])
        defer { a.stop(graceSeconds: 0) }
        let b = try Runtime.start(site: site, name: r.name, release: r.release, spec: spec, environment: ["AIRLOCK_TOOLS_URL=http://127.0.0.1:1/t/secret-b"])
        defer { b.stop(graceSeconds: 0) }
        #expect(try get(a.address).status == 0 && get(b.address).status == 0)
        func uid(_ pid: pid_t) throws -> uid_t? {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
            return line.flatMap { $0.split(separator: "\t").dropFirst().first }.flatMap { uid_t(String($0)) }
        }
        let ua = try #require(try uid(a.pid)), ub = try #require(try uid(b.pid))
        #expect(ua != ub && Runtime.isolatedUsers.contains(ua) && Runtime.isolatedUsers.contains(ub))
        // As runtime A's user, B's environment cannot be read.
        let peek = try run(["/usr/bin/setpriv", "--reuid=\(ua)", "--regid=\(ua)", "--clear-groups", "--", "cat", "/proc/\(b.pid)/environ"])
        #expect(peek.status != 0 && !peek.stdout.contains("secret-b"), "\(peek.stdout)")
    }
}

/// The serve token: made once, exclusively, 0600; a token others can read, or a link in its
/// place, is refused and never followed.
@Suite struct ServeTokenTests {
    @Test func madeOnceSecretAndNeverFollowed() throws {
        let tmp = TempDir()
        let site = Site(root: tmp.file("root"))
        #expect(try ServeToken.load(site: site, create: false) == nil)
        let token = try #require(try ServeToken.load(site: site, create: true))
        #expect(token.utf8.count == 64 && SHA256Digest(hex: token) != nil)
        #expect(try ServeToken.load(site: site, create: true) == token)
        var st = stat()
        #expect(lstat(site.path(SiteLayout.serveToken), &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(ServeToken.authorizes("Bearer \(token)", token: token))
        #expect(!ServeToken.authorizes("Bearer \(String(token.dropLast()))0", token: token) || token.hasSuffix("0"))
        #expect(!ServeToken.authorizes(token, token: token) && !ServeToken.authorizes(nil, token: token))

        chmod(site.path(SiteLayout.serveToken), 0o644)
        #expect { try ServeToken.load(site: site, create: true) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        chmod(site.path(SiteLayout.serveToken), 0o600)

        // A link planted in its place is refused, and its target is neither read nor written.
        tmp.write("elsewhere", "secret of another program\n")
        unlink(site.path(SiteLayout.serveToken))
        symlink(tmp.file("elsewhere"), site.path(SiteLayout.serveToken))
        #expect { try ServeToken.load(site: site, create: true) } throws: { ($0 as? AirlockError)?.code == "site-unsafe" }
        #expect(try String(contentsOfFile: tmp.file("elsewhere"), encoding: .utf8) == "secret of another program\n")
    }
}
