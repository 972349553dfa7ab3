import AirlockBench
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The benchmark's settings (from the command line or the BENCH_* environment).
struct Settings {
    var airlock: String
    var workdir: String
    var runs: Int
    var scale: Double
    /// BENCH_SCALE as given, for folder names and the report.
    var scaleText: String
    var settleSeconds: Int
    var switches: Int
    var scaleFiles: [Int]
    var scaleRunsLargest: Int
    /// Seconds of each reference measurement (openssl speed, zstd -b); nil: 2 and 3.
    var referenceSeconds: Int?
}

/// Every path of a run, under the work folder.
struct Paths {
    let work: String
    let scale: String
    var release: String { "\(work)/release-s\(scale)" }
    var releaseMarker: String { release + ".ready" }
    var release2: String { release + "-v2" }
    var release2Marker: String { release2 + ".ready" }
    var keyPrefix: String { "\(work)/vendor" }
    var key: String { keyPrefix + ".key" }
    var publicKey: String { keyPrefix + ".pub" }
    var trust: String { "\(work)/trust" }
    var bundle: String { "\(work)/out.airlock" }
    var bundle2: String { "\(work)/out-v2.airlock" }
    var deltaBundle: String { "\(work)/out-v2-delta.airlock" }
    var baselineTarZst: String { "\(work)/baseline.tar.zst" }
    var baselineSums: String { "\(work)/baseline.sums" }
    /// Baseline folders: verify x1, x2, ...; install i1, i2, ...; scale-N-i.
    var extract: String { "\(work)/extract" }
    /// Site roots: install-1, ...; switch; delta-d1, delta-f1, ...; scale-N-i.
    var sites: String { "\(work)/sites" }
    var switchRoot: String { sites + "/switch" }
    var small: String { "\(work)/small" }
    var smallMarker: String { small + ".ready" }
    var smallBundle1: String { "\(work)/small-v1.airlock" }
    var smallBundle2: String { "\(work)/small-v2.airlock" }
    var scaleDir: String { "\(work)/scale" }
    var deleteStamp: String { "\(work)/.last-tree-delete" }
    var results: String { "\(work)/results" }
}

/// A reproducible bundle: every pack runs with this SOURCE_DATE_EPOCH.
let sourceDateEpoch = ["SOURCE_DATE_EPOCH": "1767225600"]

/// One benchmark run: the datasets, the measured rows and tables, the sanity checks.
final class Bench {
    let settings: Settings
    let paths: Paths
    let runner: CommandRunner
    let airlock: String
    let large: LargeRelease
    var notes: [String] = []
    var settleWaited = 0
    let hasStrace: Bool
    /// The `-s` of xargs: one openssl process for all the files when the kernel allows it.
    let xargsSize: Int

    init(_ settings: Settings) throws {
        self.settings = settings
        paths = Paths(work: settings.workdir, scale: settings.scaleText)
        runner = CommandRunner(results: paths.results)
        airlock = settings.airlock
        large = LargeRelease(scale: settings.scale)
        hasStrace = Bench.which("strace") != nil
        for tool in ["zstd", "openssl", "tar", "find", "xargs", "du", "sync", "head"] where Bench.which(tool) == nil {
            throw BenchError(description: "missing tool: \(tool)")
        }
        try? FileManager.default.createDirectory(atPath: paths.results, withIntermediateDirectories: true)
        let sh = CommandRunner(results: paths.results)
        let timeVersion = (try? sh.text([gnuTime, "--version"], mergeStderr: true, tolerant: true)) ?? ""
        guard timeVersion.contains("GNU") else { throw BenchError(description: "GNU time is needed at \(gnuTime) (apt-get install time)") }
        let tarVersion = (try? sh.text(["tar", "--version"], tolerant: true)) ?? ""
        guard tarVersion.contains("GNU tar") else { throw BenchError(description: "GNU tar is needed") }
        let limits = (try? sh.text(["xargs", "--show-limits"], mergeStderr: true, tolerant: true)) ?? ""
        let usable = limits.split(separator: "\n").first { $0.contains("actually use") }?.split(separator: " ").last.flatMap { Int($0) }
        xargsSize = usable.map { $0 - 4096 } ?? 131072
    }

    /// The first match for `tool` on PATH.
    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    /// Runs everything and returns what was measured.
    func run() throws -> BenchResults {
        let start = Self.utcNow()
        let help = try runner.text([airlock, "install", "--help"], mergeStderr: true, tolerant: true)
        guard help.contains("USAGE: airlock install") else {
            throw BenchError(description: "\(airlock) has no install command: it predates the site commands; rebuild it (make release)")
        }
        try prepareDatasets()
        let (dataBytes, dataFiles) = try Self.treeSize(paths.release)
        // Disk: release + 2 bundles + baseline + RUNS verify extraction dirs + RUNS install sites and
        // RUNS install extraction dirs + the switch site + 2 RUNS delta sites, with a margin.
        let need = Double(dataBytes) * Double(5 * settings.runs + 5) * 1.1
        var fs = statvfs()
        if statvfs(paths.work, &fs) == 0 {
            let available = Double(fs.f_bavail) * Double(fs.f_frsize)
            guard available > need else {
                throw BenchError(description: "not enough space in \(paths.work): need ~\(mib(Int(need))) MiB, have \(mib(Int(available))) MiB")
            }
        }
        try prepareKey()
        deleteTree(paths.extract)  // leftovers of an interrupted run
        deleteTree(paths.sites)
        try? FileManager.default.removeItem(atPath: paths.results)
        try FileManager.default.createDirectory(atPath: paths.results, withIntermediateDirectories: true)
        defer {
            deleteTree(paths.extract)
            deleteTree(paths.sites)
        }

        log("dataset: \(mib(dataBytes)) MiB in \(dataFiles) files; \(settings.runs) runs per step")
        let rows = try runMainRows()
        let site = try siteSetup(dataBytes: dataBytes)
        let rollback = try runSwitches(site, dataBytes: dataBytes)
        let delta = try runDelta()
        let scale = try runScale()
        let reference = try runReference()
        let main = try sanityChecks(rows: rows, dataFiles: dataFiles, site: site)
        let context = RunContext(
            date: start, machine: machine(), airlock: airlockDescription(), tools: tools(), scale: settings.scaleText,
            runs: settings.runs, switches: settings.switches, scaleRunsLargest: settings.scaleRunsLargest, settleWaited: settleWaited)
        return BenchResults(
            context: context,
            dataset: DatasetFacts(bytes: dataBytes, files: dataFiles, weightsBytes: large.weightsBytes, indexFiles: large.indexFiles),
            main: main, rollback: rollback, disk: site.disk, delta: delta, scale: scale, reference: reference, notes: notes)
    }

    // MARK: datasets

    /// Generates (or reuses) the large release, its second version and the small release.
    func prepareDatasets() throws {
        let plan = large.plan
        if Self.readMarker(paths.releaseMarker) == plan.description && Self.isDirectory(paths.release) {
            log("reusing the release in \(paths.release)")
        } else {
            if Self.exists(paths.release) {
                log("\(paths.release) is stale or incomplete: regenerating it")
                deleteTree(paths.release)
            }
            _ = FileSystem.unlink(paths.releaseMarker)
            try generate(plan, at: paths.release, marker: paths.releaseMarker, what: "the release (\(plan.description))")
        }
        let description2 = plan.description + " v2=1 changed=" + LargeRelease.revision.changedPath
        if Self.readMarker(paths.release2Marker) == description2
            && Self.sameFile(paths.release + "/model/weights.safetensors", paths.release2 + "/model/weights.safetensors")
        {
            log("reusing the second release in \(paths.release2)")
        } else {
            _ = FileSystem.unlink(paths.release2Marker)
            deleteTree(paths.release2)
            deleteTree(paths.release2 + ".partial")
            log("making the second release \(paths.release2) (hardlinks, one prompt file changed)")
            try ReleaseWriter.writeRevision(LargeRelease.revision, of: paths.release, to: paths.release2 + ".partial")
            sync()
            try renameOrThrow(paths.release2 + ".partial", paths.release2)
            try Self.writeMarker(paths.release2Marker, description2)
        }
        let small = SmallRelease.plan
        if Self.readMarker(paths.smallMarker) != small.description || !Self.isDirectory(paths.small + "/v2") {
            try? FileManager.default.removeItem(atPath: paths.small + ".partial")  // a few files: no settle needed
            try? FileManager.default.removeItem(atPath: paths.small)
            _ = FileSystem.unlink(paths.smallMarker)
            log("generating the small release in \(paths.small)")
            try ReleaseWriter.write(small, to: paths.small + ".partial/v1")
            try ReleaseWriter.writeRevision(SmallRelease.revision, of: paths.small + ".partial/v1", to: paths.small + ".partial/v2")
            sync()
            try renameOrThrow(paths.small + ".partial", paths.small)
            try Self.writeMarker(paths.smallMarker, small.description)
        }
    }

    /// Writes `plan` into `folder.partial`, then renames it into place and writes its marker.
    func generate(_ plan: ReleasePlan, at folder: String, marker: String, what: String) throws {
        deleteTree(folder + ".partial")
        log("generating \(what) in \(folder)")
        try ReleaseWriter.write(plan, to: folder + ".partial")
        sync()
        try renameOrThrow(folder + ".partial", folder)
        try Self.writeMarker(marker, plan.description)
    }

    func prepareKey() throws {
        if !Self.nonEmpty(paths.key) || !Self.nonEmpty(paths.publicKey) {
            log("generating the vendor key")
            _ = FileSystem.unlink(paths.key)
            _ = FileSystem.unlink(paths.publicKey)
            try FileManager.default.createDirectory(atPath: paths.results, withIntermediateDirectories: true)
            try runner.check([airlock, "key", "generate", "--out", paths.keyPrefix])
        }
        try FileManager.default.createDirectory(atPath: paths.trust, withIntermediateDirectories: true)
        _ = FileSystem.unlink(paths.trust + "/vendor.pub")
        try FileManager.default.copyItem(atPath: paths.publicKey, toPath: paths.trust + "/vendor.pub")
    }

    // MARK: the file system

    /// Deletes a (possibly large) tree and remembers when, for `settle`.
    func deleteTree(_ path: String) {
        guard Self.exists(path) else { return }
        // Installed releases are read-only; root deletes them all the same, others need write bits.
        if getuid() != 0 { _ = try? Spawner.run([Command(["chmod", "-R", "u+w", path])], log: "/dev/null") }
        _ = try? Spawner.run([Command(["rm", "-rf", path])], log: "/dev/null")
        try? Self.writeMarker(paths.deleteStamp, String(time(nil)))
    }

    /// Waits until BENCH_SETTLE_SECONDS have passed since this benchmark last deleted a large
    /// tree: on ext4 without a journal, creating many files right after deleting many is slowed.
    func settle() {
        guard let text = Self.readMarker(paths.deleteStamp) else { return }
        let then = Int(text) ?? 0
        let now = time(nil)
        let left = then + settings.settleSeconds - now
        if left > 0 {
            log(
                "a file tree was deleted \(now - then) s ago: waiting \(left) s before creating many files (ext4 slows inode allocation after deletions; BENCH_SETTLE_SECONDS=0 skips)"
            )
            settleWaited += left
            sleep(UInt32(left))
        }
    }

    /// Reads every file of a tree once (untimed), so the timed run finds it in the page cache.
    func warmTree(_ root: String) throws {
        try Self.walk(root) { rel, st in
            if st.st_mode & S_IFMT == S_IFREG { self.warmFile(root + "/" + rel) }
        }
    }

    /// Reads a file once.
    func warmFile(_ path: String) {
        let fd = FileSystem.open(path, O_RDONLY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while read(fd, buffer, 1 << 20) > 0 {}
    }

    /// Makes a folder that must not exist yet (a new site root or extraction folder per run).
    func makeFresh(_ path: String) throws {
        guard !Self.exists(path) else { throw BenchError(description: "\(path) exists already") }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    /// Calls `visit` with the path (relative to `root`) and lstat of everything under `root`.
    static func walk(_ root: String, _ visit: (String, stat) throws -> Void) throws {
        func go(_ dir: String, _ rel: String) throws {
            guard let d = opendir(dir) else { throw BenchError(description: "cannot open \(dir): \(String(cString: strerror(errno)))") }
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(d)
            for name in names.sorted() {
                var st = stat()
                let path = dir + "/" + name
                guard lstat(path, &st) == 0 else { continue }
                let r = rel.isEmpty ? name : rel + "/" + name
                try visit(r, st)
                if st.st_mode & S_IFMT == S_IFDIR { try go(path, r) }
            }
        }
        try go(root, "")
    }

    /// Bytes and number of the regular files of a tree.
    static func treeSize(_ root: String) throws -> (Int, Int) {
        var bytes = 0, files = 0
        try walk(root) { _, st in
            if st.st_mode & S_IFMT == S_IFREG {
                bytes += Int(st.st_size)
                files += 1
            }
        }
        return (bytes, files)
    }

    static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }
    static func nonEmpty(_ path: String) -> Bool { fileSize(path) > 0 }
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }
    static func readMarker(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    static func writeMarker(_ path: String, _ text: String) throws {
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
    func renameOrThrow(_ from: String, _ to: String) throws {
        guard FileSystem.rename(from, to) == 0 else { throw BenchError(description: "cannot rename \(from) to \(to): \(String(cString: strerror(errno)))") }
    }

    // MARK: the report's header

    static func utcNow() -> String {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
    }

    func machine() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }.flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let memKiB =
            (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("MemTotal") }.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String { withUnsafeBytes(of: v) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } }
        let df = (try? runner.text(["df", "-T", paths.work], tolerant: true)) ?? ""
        let fsType = df.split(separator: "\n").dropFirst().first?.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
        return
            "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), \(fixed(Double(memKiB) / 1_048_576, 1)) GiB RAM, \(field(u.sysname)) \(field(u.release)), \(fsType) at \(paths.work)"
    }

    func airlockDescription() -> String {
        let version = (try? runner.text([airlock, "--version"], tolerant: true))?.split(separator: "\n").first.map(String.init) ?? ""
        return version.isEmpty ? airlock : "\(airlock) (\(version))"
    }

    func tools() -> String {
        let openssl = (try? runner.text(["openssl", "version"], tolerant: true))?.split(separator: " ").prefix(2).joined(separator: " ") ?? "openssl ?"
        let zstdText = (try? runner.text(["zstd", "--version"], tolerant: true)) ?? ""
        let zstd =
            zstdText.split(separator: " ").first { $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true }
            .map { "zstd " + $0.trimmingCharacters(in: CharacterSet(charactersIn: ",")) } ?? "zstd ?"
        let tar = (try? runner.text(["tar", "--version"], tolerant: true))?.split(separator: "\n").first.map(String.init) ?? "tar ?"
        return "\(openssl), \(zstd), \(tar)"
    }
}
