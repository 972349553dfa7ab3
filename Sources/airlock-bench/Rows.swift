import AirlockBench
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One side of a row: its untimed preparation and its timed pipelines, given the run number.
struct Side {
    var name: String
    var prepare: (Int) throws -> Void
    var step: (Int) throws -> [Pipeline]
}

/// The site of the rollback and disk rows, as set up.
struct SiteState {
    var disk: DiskTable
    var first: [String: String]
    var second: [String: String]
    var smallFiles: Int
}

extension Bench {
    // MARK: alternation

    /// `runs` runs of each side, alternating, the order swapped every run (A B, B A, ...).
    func alternate(_ row: String, _ a: Side, _ b: Side) throws -> ([RunSample], [RunSample]) {
        log("row \(row): \(settings.runs) runs each, alternating")
        var sa: [RunSample] = [], sb: [RunSample] = []
        func measure(_ side: Side, _ i: Int) throws -> RunSample {
            try side.prepare(i)
            return try runner.time("\(row)_\(side.name)", run: i, try side.step(i))
        }
        for i in 1...settings.runs {
            for side in Alternation.order(run: i) {
                if side == 0 { sa.append(try measure(a, i)) } else { sb.append(try measure(b, i)) }
            }
        }
        return (sa, sb)
    }

    /// openssl dgst -sha256 over every file of `root` (find | xargs), into `out`.
    func hashTree(_ root: String, into out: String) -> Pipeline {
        [
            Command(["find", root, "-type", "f", "-print0"]),
            Command(["xargs", "-0", "-s", String(xargsSize), "openssl", "dgst", "-sha256"], stdout: out),
        ]
    }

    // MARK: pack, verify, install

    func runMainRows() throws -> [ComparisonRow] {
        let p = paths
        let pack = try alternate(
            "pack",
            Side(
                name: "airlock",
                prepare: { _ in
                    _ = FileSystem.unlink(p.bundle)
                    try self.warmTree(p.release)
                },
                step: { _ in
                    [[Command([self.airlock, "pack", p.release, "--key", p.key, "--out", p.bundle], environment: sourceDateEpoch)]]
                }),
            Side(
                name: "baseline",
                prepare: { _ in
                    _ = FileSystem.unlink(p.baselineTarZst)
                    _ = FileSystem.unlink(p.baselineSums)
                    try self.warmTree(p.release)
                },
                step: { _ in
                    [
                        self.hashTree(p.release, into: p.baselineSums),
                        [Command(["tar", "-cf", "-", "-C", p.release, "."]), Command(["zstd", "-1", "-T0", "-q", "-o", p.baselineTarZst])],
                    ]
                }))

        settle()
        try FileManager.default.createDirectory(atPath: p.extract, withIntermediateDirectories: true)
        let verify = try alternate(
            "verify",
            Side(
                name: "airlock", prepare: { _ in self.warmFile(p.bundle) },
                step: { _ in
                    [[Command([self.airlock, "verify", p.bundle, "--trust", p.trust])]]
                }),
            Side(
                name: "baseline",
                prepare: { i in
                    try self.makeFresh("\(p.extract)/x\(i)")
                    self.warmFile(p.baselineTarZst)
                },
                step: { i in
                    [
                        [Command(["zstd", "-dc", p.baselineTarZst]), Command(["tar", "-xf", "-", "-C", "\(p.extract)/x\(i)"])],
                        self.hashTree("\(p.extract)/x\(i)", into: "\(p.results)/verify-baseline.\(i).sums"),
                    ]
                }))

        settle()
        try FileManager.default.createDirectory(atPath: p.sites, withIntermediateDirectories: true)
        let install = try alternate(
            "install",
            Side(
                name: "airlock",
                prepare: { i in
                    let root = "\(p.sites)/install-\(i)"
                    try self.makeFresh(root)
                    try self.runner.check([self.airlock, "trust", "add", p.publicKey, "--root", root])
                    self.warmFile(p.bundle)
                },
                step: { i in
                    [[Command([self.airlock, "install", p.bundle, "--root", "\(p.sites)/install-\(i)"])]]
                }),
            Side(
                name: "baseline",
                prepare: { i in
                    try self.makeFresh("\(p.extract)/i\(i)")
                    self.warmFile(p.bundle)
                },
                step: { i in
                    [
                        [Command(["zstd", "-dc", p.bundle]), Command(["tar", "-xf", "-", "-C", "\(p.extract)/i\(i)"])],
                        [Command(["sync"])],
                    ]
                }))
        return [("pack", pack), ("verify", verify), ("install", install)].map {
            ComparisonRow(name: $0.0, airlock: $0.1.0, baseline: $0.1.1, ratioTarget: Targets.ratio[$0.0]!)
        }
    }

    // MARK: rollback and disk

    func siteInstall(_ bundle: String, _ out: String) throws -> InstallReport {
        try runner.check([airlock, "install", bundle, "--root", paths.switchRoot, "--json"], stdout: out)
        guard let r = InstallReport(json: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "") else {
            throw BenchError(description: "could not read airlock install --json of \(bundle) in \(out)")
        }
        return r
    }

    func du(_ paths: [String]) throws -> Int {
        guard let k = ToolOutput.duKiB(try runner.text(["du", "-sk"] + paths)) else { throw BenchError(description: "du -sk gave no figure") }
        return k
    }

    /// The changed files of the second release: those not hard-linked to the first (one link),
    /// but its airlock.yaml; sorted.
    func changedFiles() throws -> [(path: String, bytes: Int)] {
        var out: [(String, Int)] = []
        try Self.walk(paths.release2) { rel, st in
            if st.st_mode & S_IFMT == S_IFREG && st.st_nlink == 1 && rel != "airlock.yaml" { out.append((rel, Int(st.st_size))) }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Untimed: the site with both releases of both names, measuring the disk the second large
    /// release adds on the way; then each name's activation stack is [first, second].
    func siteSetup(dataBytes: Int) throws -> SiteState {
        let p = paths
        log("site rows: packing the second releases (untimed)")
        for (dir, out) in [(p.release2, p.bundle2), (p.small + "/v1", p.smallBundle1), (p.small + "/v2", p.smallBundle2)] {
            try runner.check([airlock, "pack", dir, "--key", p.key, "--out", out], environment: sourceDateEpoch)
        }
        log("site rows: installing both releases of bench-agent and small-agent into \(p.switchRoot) (untimed)")
        try FileManager.default.createDirectory(atPath: p.sites, withIntermediateDirectories: true)
        try makeFresh(p.switchRoot)
        try runner.check([airlock, "trust", "add", p.publicKey, "--root", p.switchRoot])
        sync()
        let root0 = try du([p.switchRoot])
        let one = try siteInstall(p.bundle, "\(p.results)/site-install-1.json")
        let root1 = try du([p.switchRoot]), objects1 = try du([p.switchRoot + "/.objects"])
        let two = try siteInstall(p.bundle2, "\(p.results)/site-install-2.json")
        let root2 = try du([p.switchRoot]), objects2 = try du([p.switchRoot + "/.objects"])
        // One du over the objects and both release folders counts every inode once, at its first
        // appearance: the second folder's figure is its own manifest, signatures and folders.
        let own = try du([
            p.switchRoot + "/.objects", "\(p.switchRoot)/bench-agent/releases/\(one.release)",
            "\(p.switchRoot)/bench-agent/releases/\(two.release)",
        ])
        let changed = try changedFiles()
        let s1 = try siteInstall(p.smallBundle1, "\(p.results)/site-install-s1.json")
        let s2 = try siteInstall(p.smallBundle2, "\(p.results)/site-install-s2.json")
        let first = ["bench-agent": one.release, "small-agent": s1.release]
        let second = ["bench-agent": two.release, "small-agent": s2.release]
        for name in ["bench-agent", "small-agent"] {
            guard first[name] != second[name] else { throw BenchError(description: "\(name): both installs gave release \(first[name]!)") }
            try runner.check([airlock, "activate", name, first[name]!, "--root", p.switchRoot])
            try runner.check([airlock, "activate", name, second[name]!, "--root", p.switchRoot])
        }
        if two.filesShared != two.files - 1 {
            notes.append("WARNING: the second release shared \(two.filesShared) of \(two.files) files with the first (expected all but the changed one)")
        }
        let disk = DiskTable(
            siteRoot: p.switchRoot, emptyKiB: root0, afterFirstKiB: root1, afterSecondKiB: root2,
            objectsAfterFirstKiB: objects1, objectsAfterSecondKiB: objects2, secondOwnKiB: own,
            changedBytes: changed.reduce(0) { $0 + $1.bytes }, changedFiles: changed.map(\.path).joined(separator: " "),
            releaseBytes: dataBytes, filesShared: two.filesShared, files: two.files, bytesWritten: two.bytesWritten)
        return SiteState(disk: disk, first: first, second: second, smallFiles: s2.files)
    }

    func runSwitches(_ site: SiteState, dataBytes: Int) throws -> RollbackTable {
        let p = paths
        var atSecond = ["bench-agent": true, "small-agent": true]
        /// The name's next switch: rollback from the second release to the first, or activate
        /// the second again.
        func next(_ name: String) -> (args: [String], kind: String) {
            if atSecond[name]! {
                atSecond[name] = false
                return (["rollback", name], "rollback")
            }
            atSecond[name] = true
            return (["activate", name, site.second[name]!], "activate")
        }
        func onSite(_ args: [String]) -> Command { Command([airlock] + args + ["--root", p.switchRoot]) }
        let switchLog = "\(p.results)/switch.log"
        func timedMs(_ command: Command) throws -> Double {
            sync()
            let t0 = monotonicSeconds()
            _ = try runner.run([[command]], log: switchLog, what: command.argv.dropFirst().joined(separator: " "))
            return (monotonicSeconds() - t0) * 1000
        }
        log("row rollback: \(settings.switches) timed switches per release, alternating with the start-up reference")
        // Untimed warm-up: one round trip per name, the binary and the site in the page cache.
        for name in ["small-agent", "bench-agent"] {
            _ = try runner.run([[onSite(next(name).args)]], log: switchLog, what: "warm-up")
            _ = try runner.run([[onSite(next(name).args)]], log: switchLog, what: "warm-up")
        }
        _ = try runner.run([[Command([airlock, "--help"])]], log: "/dev/null", what: "airlock --help")
        var times: [String: [Double]] = [:]
        let items = ["small-agent", "bench-agent", "help", "status"]
        for i in 1...settings.switches {
            for k in Alternation.rotation(count: items.count, round: i) {
                switch items[k] {
                case "help": times["help", default: []].append(try timedMs(Command([airlock, "--help"], stdout: "/dev/null")))
                case "status": times["status", default: []].append(try timedMs(onSite(["status", "small-agent"])))
                case let name:
                    let s = next(name)
                    times["\(name).\(s.kind)", default: []].append(try timedMs(onSite(s.args)))
                }
            }
        }
        // Peak RSS: one switch each way per name, untimed.
        var peak = 0
        for name in ["small-agent", "bench-agent", "small-agent", "bench-agent"] {
            let usage = try runner.run([[onSite(next(name).args)]], log: switchLog, what: "switch", measure: "\(p.results)/switch.rss")
            peak = max(peak, usage.map(\.peakKiB).max() ?? 0)
        }
        // The switch itself, under strace: 6 switches per name (3 rollbacks, 3 activates).
        var window: [String: [Double]] = [:], syscalls: [String: [Double]] = [:]
        if hasStrace {
            for i in 1...6 {
                for name in ["small-agent", "bench-agent"] {
                    let trace = "\(p.results)/switch-\(name).strace.\(i)"
                    let s = next(name)
                    _ = try runner.run(
                        [
                            [
                                Command(
                                    [
                                        "strace", "-f", "-ttt", "-T", "-e", "trace=symlink,symlinkat,rename,renameat,renameat2,openat,fsync",
                                        "-o", trace, airlock,
                                    ] + s.args + ["--root", p.switchRoot])
                            ]
                        ],
                        log: switchLog, what: "airlock \(s.kind) under strace")
                    guard let w = ToolOutput.straceSwitch((try? String(contentsOfFile: trace, encoding: .utf8)) ?? "") else {
                        throw BenchError(description: "no pointer switch found in \(trace)")
                    }
                    window[name, default: []].append(w.windowMs)
                    syscalls[name, default: []].append(w.syscallsMs)
                }
            }
        }
        // Every switch did switch: current is where the alternation says it is.
        for name in ["small-agent", "bench-agent"] {
            let want = "releases/" + (atSecond[name]! ? site.second[name]! : site.first[name]!)
            let got = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(p.switchRoot)/\(name)/current")) ?? "?"
            guard got == want else { throw BenchError(description: "\(name): current is \(got), expected \(want)") }
        }
        let (smallBytes, _) = try Self.treeSize(p.small + "/v2")
        let smallYAML = Self.fileSize(p.small + "/v2/airlock.yaml")
        func series(_ name: String, _ label: String, _ files: Int, _ bytes: Int) -> SwitchSeries {
            SwitchSeries(
                name: name, label: label, files: files, bytes: bytes,
                rollbackMs: times["\(name).rollback"] ?? [], activateMs: times["\(name).activate"] ?? [],
                straceWindowMs: window[name] ?? [], straceSyscallsMs: syscalls[name] ?? [])
        }
        return RollbackTable(
            small: series("small-agent", "small (small-agent, 10 MiB weights)", site.smallFiles, smallBytes - smallYAML),
            large: series("bench-agent", "large (bench-agent, BENCH_SCALE=\(settings.scaleText))", site.disk.files, dataBytes),
            helpMs: times["help"] ?? [], statusMs: times["status"] ?? [], peakRSSKiB: peak, straceAvailable: hasStrace)
    }

    // MARK: delta

    /// A member of a bundle, its bytes.
    func member(_ bundle: String, _ name: String) throws -> Data {
        try runner.capture([Command(["tar", "--zstd", "-xOf", bundle, name])])
    }

    func runDelta() throws -> DeltaTable {
        let p = paths
        // The second release as a delta against out.airlock, and as the full out-v2.airlock
        // again; both reproducible, so the bundles are the same every run.
        let pack = try alternate(
            "deltapack",
            Side(
                name: "delta",
                prepare: { _ in
                    _ = FileSystem.unlink(p.deltaBundle)
                    try self.warmTree(p.release2)
                    self.warmFile(p.bundle)
                },
                step: { _ in
                    [[Command([self.airlock, "pack", p.release2, "--key", p.key, "--out", p.deltaBundle, "--base", p.bundle], environment: sourceDateEpoch)]]
                }),
            Side(
                name: "full",
                prepare: { _ in
                    _ = FileSystem.unlink(p.bundle2)
                    try self.warmTree(p.release2)
                },
                step: { _ in
                    [[Command([self.airlock, "pack", p.release2, "--key", p.key, "--out", p.bundle2], environment: sourceDateEpoch)]]
                }))
        // Install the delta or the full second release into a new site that already holds out.airlock.
        settle()
        try FileManager.default.createDirectory(atPath: p.sites, withIntermediateDirectories: true)
        func prepareSite(_ root: String) throws {
            try makeFresh(root)
            try runner.check([airlock, "trust", "add", p.publicKey, "--root", root])
            try runner.check([airlock, "install", p.bundle, "--root", root])
        }
        let install = try alternate(
            "deltainst",
            Side(
                name: "delta",
                prepare: { i in
                    try prepareSite("\(p.sites)/delta-d\(i)")
                    self.warmFile(p.deltaBundle)
                },
                step: { i in
                    [
                        [
                            Command(
                                [self.airlock, "install", p.deltaBundle, "--root", "\(p.sites)/delta-d\(i)", "--json"],
                                stdout: "\(p.results)/deltainst_delta.\(i).json")
                        ]
                    ]
                }),
            Side(
                name: "full",
                prepare: { i in
                    try prepareSite("\(p.sites)/delta-f\(i)")
                    self.warmFile(p.bundle2)
                },
                step: { i in
                    [
                        [
                            Command(
                                [self.airlock, "install", p.bundle2, "--root", "\(p.sites)/delta-f\(i)", "--json"],
                                stdout: "\(p.results)/deltainst_full.\(i).json")
                        ]
                    ]
                }))

        log("delta: sizes")
        let fullManifest = try member(p.bundle2, "airlock/manifest.json")
        // The delta carries its manifest as a patch against the base's: rebuilt with zstd alone
        // (docs/audit.md), it must be the full bundle's.
        let rebuilt = try runner.capture([
            Command([
                "sh", "-c",
                "tar --zstd -xOf \"$1\" airlock/manifest.json > \"$3\" && tar --zstd -xOf \"$2\" airlock/manifest.patch | zstd -q -d -c --patch-from=\"$3\"",
                "sh", p.bundle, p.deltaBundle, p.work + "/base-manifest.json",
            ])
        ])
        if rebuilt != fullManifest {
            notes.append("WARNING: the delta bundle's manifest, rebuilt from its patch, differs from the full bundle's")
        }
        let changed = try changedFiles()
        var changedZstd = 0
        for c in changed {
            changedZstd += try runner.capture([Command(["zstd", "-1", "-c", "\(p.release2)/\(c.path)"])]).count
        }
        // What the delta carries: its members, uncompressed, and each one alone through zstd -1.
        let listing = ToolOutput.tarListing(try runner.text(["tar", "--zstd", "-tvf", p.deltaBundle]))
        let carried = listing.map(\.name).filter { $0.hasPrefix("payload/") && !$0.hasSuffix("/") }.map { String($0.dropFirst(8)) }.sorted()
        if carried != changed.map(\.path) {
            notes.append(
                "WARNING: the delta bundle carries [\(carried.joined(separator: " "))], the changed files are [\(changed.map(\.path).joined(separator: " "))]")
        }
        var members: [BundleMember] = []
        for m in listing where !m.name.hasSuffix("/") {
            let compressed = try runner.capture([Command(["tar", "--zstd", "-xOf", p.deltaBundle, m.name]), Command(["zstd", "-1", "-c"])])
            members.append(BundleMember(name: m.name, bytes: m.size, zstdBytes: compressed.count))
        }
        // Every install installed every file; the delta's took the omitted ones from the store.
        let want = String(decoding: try member(p.bundle2, "airlock/SHA256SUMS"), as: UTF8.self).split(separator: "\n").count
        var reports: [String: InstallReport] = [:]
        for i in 1...settings.runs {
            for n in ["deltainst_delta", "deltainst_full"] {
                let r = InstallReport(json: (try? String(contentsOfFile: "\(p.results)/\(n).\(i).json", encoding: .utf8)) ?? "")
                if r?.files != want { notes.append("WARNING: \(n) run \(i) installed \(r.map { String($0.files) } ?? "?") files, the bundle lists \(want)") }
                if i == 1 { reports[n] = r }
            }
        }
        guard let rd = reports["deltainst_delta"], let rf = reports["deltainst_full"] else {
            throw BenchError(description: "could not read the delta installs' --json output in \(p.results)")
        }
        // Both installs gave the same release: the same folder name and the same payload files.
        if rd.release != rf.release { notes.append("note: the delta installs as release \(rd.release), the full bundle as \(rf.release)") }
        let treeD = try treeListing("\(p.sites)/delta-d1/bench-agent/releases/\(rd.release)")
        let treeF = try treeListing("\(p.sites)/delta-f1/bench-agent/releases/\(rf.release)")
        if treeD != treeF {
            notes.append("WARNING: the release installed from the delta differs (names, sizes, modes) from the one installed from the full bundle")
        }
        return DeltaTable(
            fullBytes: Self.fileSize(p.bundle2), deltaBytes: Self.fileSize(p.deltaBundle),
            changedFiles: changed.map(\.path).joined(separator: " "), changedRawBytes: changed.reduce(0) { $0 + $1.bytes },
            changedZstdBytes: changedZstd, manifestBytes: fullManifest.count, members: members,
            packDelta: pack.0, packFull: pack.1, installDelta: install.0, installFull: install.1,
            deltaShared: rd.filesShared, deltaWritten: rd.bytesWritten, fullShared: rf.filesShared, fullWritten: rf.bytesWritten)
    }

    /// Type, size, mode and path of everything under `root`, one a line.
    func treeListing(_ root: String) throws -> [String] {
        var out: [String] = []
        try Self.walk(root) { rel, st in
            let type = st.st_mode & S_IFMT == S_IFDIR ? "d" : st.st_mode & S_IFMT == S_IFLNK ? "l" : "f"
            out.append("\(type) \(type == "d" ? 0 : Int(st.st_size)) \(String(st.st_mode & 0o7777, radix: 8)) \(rel)")
        }
        return out
    }

    // MARK: scale

    func runScale() throws -> [ScaleEntry] {
        let p = paths
        try FileManager.default.createDirectory(atPath: p.scaleDir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: p.sites, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: p.extract, withIntermediateDirectories: true)
        for n in settings.scaleFiles {
            let plan = ScaleRelease(files: n).plan
            let dir = "\(p.scaleDir)/n\(n)"
            if Self.readMarker(dir + ".ready") != plan.description || !Self.isDirectory(dir) {
                deleteTree(dir + ".partial")
                deleteTree(dir)
                _ = FileSystem.unlink(dir + ".ready")
                settle()
                try generate(plan, at: dir, marker: dir + ".ready", what: "scale: \(n) files")
            }
        }
        settle()
        var entries: [ScaleEntry] = []
        for n in settings.scaleFiles {
            let release = "\(p.scaleDir)/n\(n)", bundle = "\(p.scaleDir)/n\(n).airlock"
            let runs = n == settings.scaleFiles.last ? settings.scaleRunsLargest : settings.runs
            log("row scale, \(n) files: \(runs) runs of pack, verify, install, audit (and tar -x)")
            var samples: [String: [RunSample]] = [:]
            var installed: InstallReport?
            var ids: Set<String> = []
            for i in 1...runs {
                _ = FileSystem.unlink(bundle)
                try warmTree(release)
                samples["pack", default: []].append(
                    try runner.time(
                        "scale\(n)-pack", run: i,
                        [
                            [
                                Command([airlock, "pack", release, "--key", p.key, "--out", bundle], environment: sourceDateEpoch)
                            ]
                        ]))
                ids.formUnion(ToolOutput.bundleIDs((try? String(contentsOfFile: "\(p.results)/scale\(n)-pack.\(i).log", encoding: .utf8)) ?? ""))
                warmFile(bundle)
                samples["verify", default: []].append(
                    try runner.time(
                        "scale\(n)-verify", run: i,
                        [
                            [
                                Command([airlock, "verify", bundle, "--trust", p.trust])
                            ]
                        ]))
                let root = "\(p.sites)/scale-\(n)-\(i)"
                try makeFresh(root)
                try runner.check([airlock, "trust", "add", p.publicKey, "--root", root])
                warmFile(bundle)
                let json = "\(p.results)/scale\(n)-install.\(i).json"
                samples["install", default: []].append(
                    try runner.time(
                        "scale\(n)-install", run: i,
                        [
                            [
                                Command([airlock, "install", bundle, "--root", root, "--json"], stdout: json)
                            ]
                        ]))
                guard let r = InstallReport(json: (try? String(contentsOfFile: json, encoding: .utf8)) ?? "") else {
                    throw BenchError(description: "could not read the installed release from \(json)")
                }
                if i == 1 { installed = r }
                samples["audit", default: []].append(
                    try runner.time(
                        "scale\(n)-audit", run: i,
                        [
                            [
                                Command([airlock, "audit", "scale-\(n)", r.release, "--root", root])
                            ]
                        ]))
                let extract = "\(p.extract)/scale-\(n)-\(i)"
                try makeFresh(extract)
                warmFile(bundle)
                samples["tarx", default: []].append(
                    try runner.time(
                        "scale\(n)-tarx", run: i,
                        [
                            [Command(["zstd", "-dc", bundle]), Command(["tar", "-xf", "-", "-C", extract])], [Command(["sync"])],
                        ]))
            }
            if installed?.files != n + 2 {
                notes.append("WARNING: scale \(n): the install reported \(installed.map { String($0.files) } ?? "?") files, expected \(n + 2)")
            }
            if ids.count > 1 { notes.append("WARNING: scale \(n): the bundle id differed between pack runs") }
            entries.append(ScaleEntry(files: n, manifestBytes: try member(bundle, "airlock/manifest.json").count, samples: samples))
        }
        return entries
    }

    // MARK: reference

    /// One core: SHA-256 (openssl speed, 1 MiB blocks) and zstd -1 compression and
    /// decompression (zstd -b1 on up to 64 MiB of the release's prompt and code text).
    func runReference() throws -> ReferenceTable {
        log("reference: openssl speed sha256, zstd -b1 (one core)")
        let p = paths
        let seconds = settings.referenceSeconds
        let speed = try runner.text(["openssl", "speed", "-seconds", String(seconds ?? 2), "-bytes", "1048576", "-evp", "sha256"], tolerant: true)
        let sample = "\(p.results)/zstd-sample"
        // tar dies of SIGPIPE once head has its 64 MiB: its status is not looked at.
        _ = try Spawner.run(
            [
                Command(["tar", "-cf", "-", "-C", p.release, "prompts", "code"]),
                Command(["head", "-c", String(64 << 20)], stdout: sample),
            ], log: "\(p.results)/setup.log")
        let bench = try runner.text(["zstd", "-b1", "-e1", "-i\(seconds ?? 3)", "-T1", sample], mergeStderr: true, tolerant: true)
        let sampleBytes = Self.fileSize(sample)
        _ = FileSystem.unlink(sample)
        let z = ToolOutput.zstdBench(bench)
        return ReferenceTable(
            sha256: ToolOutput.opensslSpeed(speed), zstdCompress: z?.compress, zstdDecompress: z?.decompress,
            zstdRatio: z?.ratio, sampleBytes: sampleBytes)
    }

    // MARK: sanity checks

    /// Untimed checks of what the timed runs produced; returns the main table.
    func sanityChecks(rows: [ComparisonRow], dataFiles: Int, site: SiteState) throws -> MainTable {
        let p = paths
        // The same inputs and SOURCE_DATE_EPOCH must give the same bundle id every run.
        var ids: Set<String> = []
        for i in 1...settings.runs {
            ids.formUnion(ToolOutput.bundleIDs((try? String(contentsOfFile: "\(p.results)/pack_airlock.\(i).log", encoding: .utf8)) ?? ""))
        }
        let bundleID: String
        switch ids.count {
        case 1: bundleID = ids.first!
        case 0:
            bundleID = "(not printed)"
            notes.append("airlock pack printed no bundle id")
        default:
            bundleID = "(varies)"
            notes.append("WARNING: the bundle id differed between pack runs: \(ids.sorted().joined(separator: " "))")
        }
        // Baseline: the extracted tree must hash like the source tree.
        let reference = ToolOutput.normalizedSums((try? String(contentsOfFile: p.baselineSums, encoding: .utf8)) ?? "", root: p.release)
        for i in 1...settings.runs {
            let sums = ToolOutput.normalizedSums(
                (try? String(contentsOfFile: "\(p.results)/verify-baseline.\(i).sums", encoding: .utf8)) ?? "",
                root: "\(p.extract)/x\(i)")
            guard sums == reference else { throw BenchError(description: "baseline verify run \(i): extracted files hash differently from the release") }
        }
        if reference.count != dataFiles { notes.append("WARNING: baseline sums cover \(reference.count) of \(dataFiles) files") }
        // airlock: its SHA256SUMS must agree with openssl's hashes of the release files.
        var payloadFiles: Int?
        if let data = try? member(p.bundle, "airlock/SHA256SUMS"), !data.isEmpty {
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            let known = Set(reference)
            let bad = lines.filter { !known.contains($0) }.count
            payloadFiles = lines.count
            if bad > 0 { notes.append("WARNING: \(bad) lines of the bundle's SHA256SUMS differ from openssl's hashes of the release") }
            if lines.count < dataFiles - 1 { notes.append("WARNING: the bundle lists \(lines.count) payload files, the release has \(dataFiles)") }
        } else {
            notes.append("could not read airlock/SHA256SUMS from the bundle with GNU tar")
        }
        // install: every run installed (airlock) or extracted (baseline) every payload file.
        for i in 1...settings.runs {
            var installed = 0
            try Self.walk("\(p.sites)/install-\(i)") { rel, st in
                if st.st_mode & S_IFMT == S_IFREG && rel.contains("/releases/") && rel.contains("/payload/") { installed += 1 }
            }
            if installed != payloadFiles {
                notes.append("WARNING: install run \(i): the site holds \(installed) payload files, the bundle lists \(payloadFiles.map(String.init) ?? "?")")
            }
            var extracted = 0
            if Self.isDirectory("\(p.extract)/i\(i)/payload") {
                try Self.walk("\(p.extract)/i\(i)/payload") { _, st in if st.st_mode & S_IFMT == S_IFREG { extracted += 1 } }
            }
            if extracted != payloadFiles {
                notes.append(
                    "WARNING: baseline install run \(i): \(extracted) payload files extracted, the bundle lists \(payloadFiles.map(String.init) ?? "?")")
            }
        }
        return MainTable(
            rows: rows, bundleBytes: Self.fileSize(p.bundle), baselineBytes: Self.fileSize(p.baselineTarZst),
            bundleID: bundleID, payloadFiles: payloadFiles)
    }
}
