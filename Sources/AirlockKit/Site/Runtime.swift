import AirlockFormat
import CAirlockSystem

#if canImport(Glibc)
import Glibc
#endif

/// A release's runtime: its `serve` command (`ServeSpec`) running as a supervised child, the
/// way health checks run (docs/release.md, "Serve"): `/bin/sh -c` in the release's `payload/`
/// folder, a clean environment, a process group of its own, no inherited descriptor, and, when
/// Airlock runs as root, as a user of its own (`isolatedUser`: the command comes from a bundle,
/// and no runtime may read another's environment, memory or descriptors, as it could if they
/// all ran as `nobody`).
///
/// The runtime learns where to listen from its environment: `PORT` (a free loopback port
/// Airlock picked) or `AIRLOCK_SOCKET` (a socket path in a folder of its own under `.staging/`,
/// held with a flock so that the lock-time cleanup leaves it alone). Its output goes to an
/// anonymous file, read back by `outputTail`. `stop` ends the whole group.
public final class Runtime {
    /// Where Airlock reaches the runtime.
    public enum Address: Equatable, Sendable {
        /// `127.0.0.1:<port>`.
        case port(UInt16)
        /// A unix socket path.
        case socket(String)
    }

    /// The release name.
    public let name: String
    /// The release folder (`<version>-<id12>`).
    public let release: String
    /// How the release says it runs.
    public let spec: ServeSpec
    /// Where it listens.
    public let address: Address
    /// The process (and process group) id of the command.
    public let pid: pid_t
    private let log: Int32
    private var socketFolder: (fd: Int32, path: String)?
    /// The runtime's socket, opened once it exists (`O_PATH`, not following a link).
    private var socketHandle: Int32 = -1
    /// The user the runtime runs as, who must own its socket.
    private var owner: uid_t = geteuid()
    private var exitStatus: Int32?

    private init(name: String, release: String, spec: ServeSpec, address: Address, pid: pid_t, log: Int32, socketFolder: (Int32, String)?) {
        self.name = name
        self.release = release
        self.spec = spec
        self.address = address
        self.pid = pid
        self.log = log
        self.socketFolder = socketFolder
    }

    deinit {
        stop(graceSeconds: 0)
        if socketHandle >= 0 { close(socketHandle) }
        close(log)
    }

    /// Starts the runtime of the installed release `release` of `name` as `spec` says. Throws
    /// `release-unknown` (not installed), `spawn-failed`, and `write-failed` when its log or
    /// socket folder cannot be made.
    /// `environment` adds entries (`NAME=value`) to the runtime's environment.
    public static func start(site: Site, name: String, release: String, spec: ServeSpec, environment extra: [String] = []) throws -> Runtime {
        let dir = site.releaseDirectory(name, release)
        guard FileIO.isDirectory(dir) else { throw AirlockError(.usage, .releaseUnknown, "\(name) has no installed release \(release)") }
        let asNobody = geteuid() == 0
        let user: uid_t = asNobody ? isolatedUser() : geteuid()
        if asNobody && !FileIO.exists("/usr/bin/setpriv") {
            throw AirlockError(
                .io, .spawnFailed,
                "cannot run \(name) \(release) as nobody: /usr/bin/setpriv is missing (Debian's util-linux); Airlock never runs a release's code as root")
        }
        var environment = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "LANG=C.UTF-8",
            "AIRLOCK_ROOT=\(site.root)", "AIRLOCK_NAME=\(name)", "AIRLOCK_RELEASE=\(release)", Self.marker,
        ]
        environment += extra
        let address: Address
        var socketFolder: (Int32, String)?
        switch spec.listen {
        case .port:
            let port = try freeLoopbackPort()
            environment.append("PORT=\(port)")
            address = .port(port)
        case .socket:
            let folder = try makeSocketFolder(site: site, owner: user)
            socketFolder = folder
            let path = folder.path + "/runtime.sock"
            guard path.utf8.count < 108 else {
                removeSocketFolder(fd: folder.0, path: folder.path)
                throw AirlockError(
                    .usage, .spawnFailed,
                    "the socket path \(path) is \(path.utf8.count) bytes, longer than a unix socket address holds (107); use a shorter site root, or `listen: port` in the release's serve section"
                )
            }
            environment.append("AIRLOCK_SOCKET=\(path)")
            address = .socket(path)
        }
        let log = try HealthCheck.privateLog(site: site)
        var argv = ["/bin/sh", "-c", "cd \"$0\" && exec /bin/sh -c \"$1\"", dir + "/" + SiteLayout.releasePayload + "/", spec.command]
        if asNobody { argv = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"] + argv }
        let pid: pid_t
        do {
            pid = try Subprocess.spawn(argv, environment: environment, stdout: .descriptor(log), stderr: .descriptor(log))
        } catch {
            close(log)
            if let (fd, path) = socketFolder { removeSocketFolder(fd: fd, path: path) }
            throw error
        }
        let runtime = Runtime(name: name, release: release, spec: spec, address: address, pid: pid, log: log, socketFolder: socketFolder)
        runtime.owner = user
        return runtime
    }

    /// The first of the user and group ids runtimes run as when Airlock runs as root, and how
    /// many there are. No account names them: a runtime's uid (and gid) owns nothing on the
    /// machine but its socket folder, and is picked at random among them for each start, so
    /// that two runtimes (of any name, of `serve` or of a replay) share one with a chance of
    /// about one in 50 million per pair.
    public static let isolatedUsers: ClosedRange<uid_t> = 2_000_000_000...2_099_999_999

    /// A user id of `isolatedUsers`, from the system's random generator.
    static func isolatedUser() -> uid_t {
        var g = SystemRandomNumberGenerator()
        return uid_t.random(in: isolatedUsers, using: &g)
    }

    /// Where to connect to the runtime, nil until it can be reached. For a unix socket: its
    /// socket, opened once with `O_PATH` and `O_NOFOLLOW` after checking that it is a socket of
    /// the runtime's user, and then reached through `/proc/self/fd/N`, so that replacing the
    /// path with a link to another socket (the runtime owns the folder) cannot make `serve`
    /// connect elsewhere.
    public var connectAddress: Address? {
        guard case .socket(let path) = address else { return address }
        if socketHandle < 0 {
            let fd = Sys.open(path, airlock_o_path() | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK, st.st_uid == owner else {
                close(fd)
                return nil
            }
            socketHandle = fd
        }
        return .socket("/proc/self/fd/\(socketHandle)")
    }

    /// The environment entry that marks a runtime (and not a health check) of `airlock serve`.
    static let marker = "AIRLOCK_RUNTIME=serve"

    /// Stops the runtimes of `name` that a `serve` killed without a chance to stop them left
    /// running (their process group is their own, so they outlive it): every process group
    /// whose leader's environment marks it as a runtime of this site and name. The caller holds
    /// the name's serve lock, so no live `serve` owns them. Returns how many it stopped.
    public static func stopLeftovers(site: Site, name: String) -> Int {
        let wanted = [marker, "AIRLOCK_ROOT=\(site.root)", "AIRLOCK_NAME=\(name)"]
        var stopped = 0
        for entry in FileIO.entries(ofDirectory: "/proc") ?? [] {
            guard let pid = pid_t(entry), getpgid(pid) == pid, Subprocess.carries(pid, environment: wanted) else { continue }
            kill(-pid, SIGKILL)
            stopped += 1
        }
        return stopped
    }

    /// Whether the command is still running (it is reaped here when it has ended).
    public var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            exitStatus = status
            return false
        }
        return r == 0
    }

    /// How the command ended, in words ("exited with status 1", "was killed by signal 9"), or
    /// nil while it runs.
    public var ended: String? {
        guard !isRunning, let status = exitStatus else { return nil }
        return ((status & 0x7f) == 0 ? Subprocess.Outcome.exited((status >> 8) & 0xff) : .signaled(status & 0x7f)).how
    }

    /// The last `bytes` of what the runtime wrote to stdout and stderr.
    public func outputTail(bytes: Int = 2000) -> String {
        let size = lseek(log, 0, SEEK_END)
        guard size > 0 else { return "" }
        var out = [UInt8](repeating: 0, count: bytes)
        let n = pread(log, &out, out.count, max(0, size - off_t(bytes)))
        return String(decoding: out.prefix(max(0, n)), as: UTF8.self)
    }

    /// Keeps what the runtime writes from filling the disk: once its output passes `limit`
    /// bytes, the output file is cut back to its last `keep` bytes (the runtime writes on at
    /// the shared offset, which moves back with it).
    public func trimOutput(above limit: Int = 8 << 20, keep: Int = 64 << 10) {
        let size = lseek(log, 0, SEEK_END)
        guard size > off_t(limit) else { return }
        var tail = [UInt8](repeating: 0, count: keep)
        let n = pread(log, &tail, keep, size - off_t(keep))
        guard n > 0, ftruncate(log, 0) == 0, lseek(log, 0, SEEK_SET) == 0 else { return }
        _ = tail.withUnsafeBytes { Sys.write(log, $0.baseAddress!, n) }
    }

    /// Ends the runtime: SIGTERM to its process group, SIGKILL after `graceSeconds` if it is
    /// still there, then reaps it and removes its socket folder.
    public func stop(graceSeconds: Double = 5) {
        if isRunning {
            kill(-pid, SIGTERM)
            let deadline = Timestamp.monotonicSeconds() + graceSeconds
            while isRunning && Timestamp.monotonicSeconds() < deadline { usleep(10_000) }
            if isRunning {
                kill(-pid, SIGKILL)
                var status: Int32 = 0
                if waitpid(pid, &status, 0) == pid { exitStatus = status }
            }
        }
        kill(-pid, SIGKILL)  // whatever the command left running in its group goes with it
        if let (fd, path) = socketFolder {
            Self.removeSocketFolder(fd: fd, path: path)
            socketFolder = nil
        }
    }

    /// A loopback TCP port nobody listens on now: the kernel's pick for a socket bound to port
    /// 0, released at once for the runtime to bind. (Another process could take it in between;
    /// the runtime then fails to start, and the supervisor starts it again on another port.)
    static func freeLoopbackPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AirlockError.io(.writeFailed, "cannot open a socket to pick a port", errno: errno) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0 else { throw AirlockError.io(.writeFailed, "cannot bind a loopback socket to pick a port", errno: errno) }
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard named == 0 else { throw AirlockError.io(.writeFailed, "cannot read the picked port", errno: errno) }
        return UInt16(bigEndian: addr.sin_port)
    }

    /// A folder for the runtime's socket: `.staging/run-<128 random bits>/`, created
    /// exclusively, 0700, owned by the user the runtime runs as, held with a flock.
    static func makeSocketFolder(site: Site, owner: uid_t) throws -> (fd: Int32, path: String) {
        let staging = Sys.open(site.path(SiteLayout.staging), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard staging >= 0 else { throw Staging.failure("opening \(site.path(SiteLayout.staging))") }
        defer { close(staging) }
        let name = "run-" + Staging.randomName()
        guard Sys.mkdirat(staging, name, 0o700) == 0 else { throw Staging.failure("creating a socket folder in \(site.path(SiteLayout.staging))") }
        let fd = Sys.openat(staging, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Staging.failure("opening the socket folder \(name)") }
        flock(fd, LOCK_EX)
        if owner != geteuid() { _ = fchown(fd, owner, gid_t(owner)) }
        return (fd, site.path(SiteLayout.staging, name))
    }

    static func removeSocketFolder(fd: Int32, path: String) {
        // The socket, and whatever else the runtime made beside it.
        for entry in FileIO.entries(fd) { FileIO.removeTree(at: fd, entry) }
        FileIO.removeEmptyFolder(path)
        close(fd)
    }
}
