import Foundation

/// The benchmark's targets.
public enum Targets {
    /// Airlock's peak RSS in every row, MiB.
    public static let rssMiB = 64.0
    /// Ratio airlock / baseline of each row of the main table.
    public static let ratio: [String: Double] = ["pack": 1.0, "verify": 0.6, "install": 1.3]
    /// The pointer switch itself (symlink + rename + fsync), ms.
    public static let switchMs = 10.0
    /// Disk: a second release adds its changed bytes plus less than this share of its size, %.
    public static let diskPercent = 1.0
    /// Delta: the bundle is at most zstd -1 of the changed files + the manifest + this, bytes.
    public static let deltaSlackBytes = 65536
    /// Scale: time per file at the largest count at most this many times that at the basis.
    public static let flatFactor = 2.0
    /// Scale: peak RSS at the largest count minus the manifest's size, MiB.
    public static let scaleRSSMiB = 64.0
}

/// The markdown report of a benchmark run and the verdict on each of its targets.
public struct Report: Sendable {
    /// The report, markdown.
    public var markdown: String
    /// Every checked target, in the report's order.
    public var verdicts: [VerdictLine]

    /// Renders the report of `results`.
    public init(_ results: BenchResults) {
        var r = Renderer()
        r.render(results)
        markdown = r.lines.joined(separator: "\n") + "\n"
        verdicts = r.verdicts
    }

    /// The headings of the report's tables, in order (each appears once in every report).
    public static let sections = [
        "## Airlock benchmark",
        "### Rollback: one pointer switch (ms)",
        "### Disk: a second release that shares its weights with the first",
        "### Delta: the second release as a delta bundle against out.airlock",
        "### Scale: time per file and memory",
        "### Reference throughputs (one core)",
        "### Verdicts",
    ]
}

// MARK: - Formatting

/// `x` with `digits` decimals.
public func fixed(_ x: Double, _ digits: Int) -> String {
    x.isFinite ? String(format: "%.\(digits)f", x) : "inf"
}

/// Bytes as MiB with one decimal.
public func mib(_ bytes: Int) -> String { fixed(Double(bytes) / 1_048_576, 1) }

/// KiB as MiB with one decimal.
public func mib(kib: Int) -> String { fixed(Double(kib) / 1024, 1) }

/// "min / median / max" of samples, with `digits` decimals.
public func spread(_ values: [Double], _ digits: Int = 3) -> String {
    guard let s = Summary(values) else { return "?" }
    return "\(fixed(s.min, digits)) / \(fixed(s.median, digits)) / \(fixed(s.max, digits))"
}

private func median(_ v: [Double]) -> Double { Statistics.median(v) ?? .nan }
private func iqr(_ v: [Double]) -> Double { Statistics.interquartileRange(v) ?? .nan }

struct Renderer {
    var lines: [String] = []
    var verdicts: [VerdictLine] = []

    mutating func out(_ s: String = "") { lines.append(s) }

    mutating func check(_ section: String, _ what: String, _ v: Verdict) -> String {
        verdicts.append(VerdictLine(section: section, check: what, verdict: v))
        return v.rawValue
    }

    mutating func render(_ r: BenchResults) {
        header(r)
        mainTable(r)
        rollback(r)
        disk(r)
        delta(r)
        scale(r)
        reference(r)
        method(r)
        if !r.notes.isEmpty {
            out()
            for n in r.notes { out("- \(n)") }
        }
        summary()
    }

    // MARK: main table

    mutating func header(_ r: BenchResults) {
        let c = r.context, d = r.dataset
        out("## Airlock benchmark")
        out()
        out("- date: \(c.date)")
        out("- machine: \(c.machine)")
        out("- airlock: \(c.airlock)")
        out("- tools: \(c.tools)")
        out(
            "- dataset: BENCH_SCALE=\(c.scale), \(mib(d.bytes)) MiB in \(d.files) files (\(mib(d.weightsBytes)) MiB incompressible weights, \(d.indexFiles) index docs)"
        )
        out("- runs: \(c.runs) per tool and step, alternating; min / median / max, ratio of the medians")
        out()
    }

    mutating func mainTable(_ r: BenchResults) {
        out(
            "| step | airlock (s): min / median / max | baseline (s): min / median / max | ratio | ratio per run: min – max | airlock peak RSS (MiB) | baseline peak RSS (MiB) | target |"
        )
        out("|---|---:|---:|---:|---:|---:|---:|---|")
        for row in r.main.rows {
            let a = median(row.airlock.seconds), b = median(row.baseline.seconds)
            let ratio = Statistics.ratio(a, b) ?? .infinity
            let perRun = Statistics.pairedRatios(row.airlock.seconds, row.baseline.seconds)
            let target = Target.atMost(row.ratioTarget)
            let ratioVerdict = perRun.map { target.verdict(spread: $0) } ?? .fail
            let runs = perRun.map { "\(fixed($0.min()!, 2)) – \(fixed($0.max()!, 2))" } ?? "inf"
            let rssVerdict = Target.below(Targets.rssMiB).verdict(Double(row.airlock.peakRSSKiB) / 1024)
            let rv = check(row.name, "ratio \(target.describe(fixed(row.ratioTarget, 1)))", ratioVerdict)
            let mv = check(row.name, "peak RSS < \(Int(Targets.rssMiB)) MiB", rssVerdict)
            out(
                "| \(row.name) | \(spread(row.airlock.seconds)) | \(spread(row.baseline.seconds)) | \(fixed(ratio, 2)) | \(runs) | \(mib(kib: row.airlock.peakRSSKiB)) | \(mib(kib: row.baseline.peakRSSKiB)) | ratio \(target.describe(fixed(row.ratioTarget, 1))) \(rv); RSS < \(Int(Targets.rssMiB)) MiB \(mv) |"
            )
        }
        out()
        let m = r.main
        out("| output | size (MiB) | vs baseline |")
        out("|---|---:|---:|")
        out(
            "| airlock bundle (out.airlock) | \(mib(m.bundleBytes)) | \(fixed(Statistics.ratio(Double(m.bundleBytes), Double(m.baselineBytes)) ?? .infinity, 3)) |"
        )
        out("| baseline tar.zst (zstd -1) | \(mib(m.baselineBytes)) | 1.000 |")
        out()
        out("Bundle id: \(m.bundleID) (\(m.payloadFiles.map(String.init) ?? "?") payload files).")
        out()
        out("Per-run times (s), in run order:")
        out()
        func list(_ v: [Double]) -> String { v.map { fixed($0, 3) }.joined(separator: " ") }
        for row in m.rows {
            out("- \(row.name)_airlock: \(list(row.airlock.seconds))")
            out("- \(row.name)_baseline: \(list(row.baseline.seconds))")
        }
        out("- deltapack_delta: \(list(r.delta.packDelta.seconds))")
        out("- deltapack_full: \(list(r.delta.packFull.seconds))")
        out("- deltainst_delta: \(list(r.delta.installDelta.seconds))")
        out("- deltainst_full: \(list(r.delta.installFull.seconds))")
        for e in r.scale {
            for c in scaleCommands { out("- scale \(e.files) \(c): \(list(e.samples[c]?.seconds ?? []))") }
        }
        for s in [r.rollback.small, r.rollback.large] {
            out("- rollback \(s.name) (ms): \(list(s.rollbackMs))")
            out("- activate \(s.name) (ms): \(list(s.activateMs))")
        }
        out("- airlock --help (ms): \(list(r.rollback.helpMs))")
        out()
    }

    // MARK: rollback

    mutating func rollback(_ r: BenchResults) {
        let t = r.rollback
        let startup = median(t.helpMs)
        out("### Rollback: one pointer switch (ms)")
        out()
        out(
            "| release | files | size (MiB) | rollback: median (IQR), min – max | activate: median (IQR), min – max | all switches: median | minus start-up: rollback / activate | switch itself: window / syscalls (strace) |"
        )
        out("|---|---:|---:|---:|---:|---:|---:|---:|")
        func cell(_ v: [Double]) -> String {
            guard let s = Summary(v) else { return "?" }
            return "\(fixed(s.median, 3)) (\(fixed(iqr(v), 3))), \(fixed(s.min, 3)) – \(fixed(s.max, 3))"
        }
        for s in [t.small, t.large] {
            let st =
                t.straceAvailable && !s.straceWindowMs.isEmpty
                ? "\(fixed(median(s.straceWindowMs), 3)) / \(fixed(median(s.straceSyscallsMs), 3))" : "(no strace)"
            out(
                "| \(s.label) | \(s.files) | \(mib(s.bytes)) | \(cell(s.rollbackMs)) | \(cell(s.activateMs)) | \(fixed(median(s.allMs), 3)) | \(fixed(median(s.rollbackMs) - startup, 3)) / \(fixed(median(s.activateMs) - startup, 3)) | \(st) |"
            )
        }
        out("| start-up reference: `airlock --help` | | | \(cell(t.helpMs)) | | | 0 | |")
        out("| `airlock status small-agent` (reads the site) | | | \(cell(t.statusMs)) | | | \(fixed(median(t.statusMs) - startup, 3)) | |")
        out()
        for (kind, small, large) in [("rollback", t.small.rollbackMs, t.large.rollbackMs), ("activate", t.small.activateMs, t.large.activateMs)] {
            let d = median(large) - median(small)
            let noise = Swift.max(iqr(small), iqr(large), 1)
            let v = check("rollback", "flat, \(kind)", Target.atMost(noise).verdict(Swift.abs(d)))
            out("- flat, \(kind): large - small = \(fixed(d, 3)) ms against a noise of \(fixed(noise, 3)) ms (the larger IQR, at least 1 ms): \(v)")
        }
        let limit = Target.below(Targets.switchMs)
        let switchVerdict: Verdict
        let basis: String
        if t.straceAvailable && !t.small.straceWindowMs.isEmpty && !t.large.straceWindowMs.isEmpty {
            let a = median(t.small.straceWindowMs), b = median(t.large.straceWindowMs)
            switchVerdict = limit.verdict(Swift.max(a, b))
            basis = "strace window: small \(fixed(a, 3)) ms, large \(fixed(b, 3)) ms"
        } else {
            switchVerdict = limit.verdict(Swift.max(median(t.small.rollbackMs), median(t.large.rollbackMs)) - startup)
            basis = "rollback minus start-up; strace is not installed"
        }
        out(
            "- the switch itself < \(Int(Targets.switchMs)) ms (\(basis)): \(check("rollback", "the switch itself < \(Int(Targets.switchMs)) ms", switchVerdict))"
        )
        let rssVerdict = Target.below(Targets.rssMiB).verdict(Double(t.peakRSSKiB) / 1024)
        out("- peak RSS of a switch \(mib(kib: t.peakRSSKiB)) MiB < \(Int(Targets.rssMiB)) MiB: \(check("rollback", "peak RSS of a switch", rssVerdict))")
        out()
    }

    // MARK: disk

    mutating func disk(_ r: BenchResults) {
        let d = r.disk
        let added = d.afterSecondKiB - d.afterFirstKiB
        let changedK = (d.changedBytes + 1023) / 1024
        let allowK = Int((Double(d.changedBytes) + Double(d.releaseBytes) * Targets.diskPercent / 100) / 1024)
        let over = added - changedK
        out("### Disk: a second release that shares its weights with the first")
        out()
        out("| site (\(d.siteRoot)) | KiB |")
        out("|---|---:|")
        out("| empty (trust store) | \(d.emptyKiB) |")
        out("| after the first release (bench-agent 1.0.0, \(mib(d.releaseBytes)) MiB) | \(d.afterFirstKiB) |")
        out("| after the second release (1.0.1: \(d.changedFiles) changed) | \(d.afterSecondKiB) |")
        out("| **added by the second release** | **\(added)** |")
        out("| of which new content objects | \(d.objectsAfterSecondKiB - d.objectsAfterFirstKiB) |")
        out("| of which its release folder (manifest, signatures, folders; payload hardlinked) | \(d.secondOwnKiB) |")
        out("| changed bytes (\(d.changedBytes) B) | \(changedK) |")
        let share = d.releaseBytes > 0 ? Double(over) * 1024 * 100 / Double(d.releaseBytes) : .infinity
        out("| added beyond the changed bytes | \(over) (\(fixed(share, 3))% of the release) |")
        out()
        let v = check("disk", "added <= changed + \(fixed(Targets.diskPercent, 0))% of the release", Target.atMost(Double(allowK)).verdict(Double(added)))
        out("- added <= changed + \(fixed(Targets.diskPercent, 0))% of the release (\(allowK) KiB): \(v)")
        out("- airlock install reported: \(d.filesShared) of \(d.files) files shared with the first release, \(d.bytesWritten) bytes written")
        out()
    }

    // MARK: delta

    mutating func delta(_ r: BenchResults) {
        let d = r.delta
        let allow = d.changedZstdBytes + d.manifestBytes + Targets.deltaSlackBytes
        out("### Delta: the second release as a delta bundle against out.airlock")
        out()
        out("| | bytes | MiB |")
        out("|---|---:|---:|")
        out("| full bundle (out-v2.airlock) | \(d.fullBytes) | \(mib(d.fullBytes)) |")
        out("| **delta bundle (out-v2-delta.airlock)** | **\(d.deltaBytes)** | \(mib(d.deltaBytes)) |")
        out("| changed files (\(d.changedFiles)), raw | \(d.changedRawBytes) | \(mib(d.changedRawBytes)) |")
        out("| changed files, zstd -1 -c each | \(d.changedZstdBytes) | \(mib(d.changedZstdBytes)) |")
        out("| manifest (airlock/manifest.json, uncompressed) | \(d.manifestBytes) | \(mib(d.manifestBytes)) |")
        out("| allowance: changed (zstd -1) + manifest + \(Targets.deltaSlackBytes / 1024) KiB | \(allow) | \(mib(allow)) |")
        out()
        let v = check("delta", "delta <= allowance", Target.atMost(Double(allow)).verdict(Double(d.deltaBytes)))
        let ofFull = d.fullBytes > 0 ? Double(d.deltaBytes) * 100 / Double(d.fullBytes) : .infinity
        out(
            "- delta <= allowance: \(v) (the delta is \(fixed(Double(d.deltaBytes) * 100 / Double(allow), 3))% of the allowance, \(fixed(ofFull, 3))% of the full bundle)"
        )
        out(
            "- the delta's members, uncompressed bytes / each alone through zstd -1 (the bundle compresses them as one stream): "
                + d.members.map { "\($0.name) \($0.bytes) / \($0.zstdBytes)" }.joined(separator: "; "))
        out()
        out(
            "| step | delta (s): min / median / max | full (s): min / median / max | delta / full | delta peak RSS (MiB) | full peak RSS (MiB) | delta CPU (s) | full CPU (s) |"
        )
        out("|---|---:|---:|---:|---:|---:|---:|---:|")
        for (label, a, b) in [
            ("pack the second release (--base out.airlock / full)", d.packDelta, d.packFull),
            ("install it into a site holding out.airlock", d.installDelta, d.installFull),
        ] {
            let ratio = Statistics.ratio(median(a.seconds), median(b.seconds)) ?? .infinity
            out(
                "| \(label) | \(spread(a.seconds)) | \(spread(b.seconds)) | \(fixed(ratio, 3)) | \(mib(kib: a.peakRSSKiB)) | \(mib(kib: b.peakRSSKiB)) | \(fixed(median(a.cpuSeconds), 3)) | \(fixed(median(b.cpuSeconds), 3)) |"
            )
        }
        out()
        out(
            "- install reported: from the delta \(d.deltaShared) files shared, \(d.deltaWritten) bytes written; from the full bundle \(d.fullShared) files shared, \(d.fullWritten) bytes written"
        )
        out()
    }

    // MARK: scale

    mutating func scale(_ r: BenchResults) {
        let entries = r.scale
        guard let smallest = entries.first, let largest = entries.last, entries.count >= 2 else {
            out("### Scale: time per file and memory")
            out()
            out("(no scale entries)")
            verdicts.append(VerdictLine(section: "scale", check: "at least two file counts", verdict: .fail))
            out()
            return
        }
        let middle = entries[1]
        let startupMs = median(r.rollback.helpMs)
        out("### Scale: time per file and memory from \(smallest.files) to \(largest.files) files")
        out()
        out(
            "| files | manifest (KiB) | command | runs | min / median / max (s) | µs per file | µs per file minus start-up | CPU user+sys (s) | CPU / wall | peak RSS (MiB) | peak RSS minus manifest (MiB) |"
        )
        out("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for e in entries {
            for c in scaleCommands {
                let s = e.samples[c] ?? []
                let t = median(s.seconds), cpu = median(s.cpuSeconds)
                let perFile = t * 1e6 / Double(e.files)
                let label = c == "tarx" ? "(reference: zstd -dc \\| tar -x, sync)" : c
                let minusStartup = c == "tarx" ? perFile : (t - startupMs / 1000) * 1e6 / Double(e.files)
                let over = c == "tarx" ? "" : fixed((Double(s.peakRSSKiB) * 1024 - Double(e.manifestBytes)) / 1_048_576, 1)
                out(
                    "| \(e.files) | \(Int((Double(e.manifestBytes) / 1024).rounded())) | \(label) | \(s.count) | \(spread(s.seconds)) | \(fixed(perFile, 1)) | \(fixed(minusStartup, 1)) | \(fixed(cpu, 3)) | \(fixed(cpu / t, 3)) | \(mib(kib: s.peakRSSKiB)) | \(over) |"
                )
            }
        }
        out()
        out("Start-up (`airlock --help`, median): \(fixed(startupMs, 3)) ms. The tar row (not airlock: no verdict) is the")
        out("file system's own cost of creating the same files in the same run: the floor under install.")
        out()
        for c in scaleCommands where c != "tarx" {
            let small = smallest.samples[c]?.seconds ?? []
            // When start-up is more than half the smallest count's time, the middle count is the basis.
            let basis = startupMs / 1000 > median(small) / 2 ? middle : smallest
            let b = basis.samples[c]?.seconds ?? [], l = largest.samples[c]?.seconds ?? []
            let nb = Double(basis.files), nl = Double(largest.files)
            let perB = median(b) * 1e6 / nb, perL = median(l) * 1e6 / nl
            let ratio = (median(l) / nl) / (median(b) / nb)
            let lo = ((l.min() ?? .nan) / nl) / ((b.max() ?? .nan) / nb)
            let hi = ((l.max() ?? .nan) / nl) / ((b.min() ?? .nan) / nb)
            let v = check(
                "scale", "flat, \(c)",
                ratio.isFinite && lo.isFinite && hi.isFinite
                    ? Target.atMost(Targets.flatFactor).verdict(lowest: lo, highest: hi) : .fail)
            let why = basis.files == smallest.files ? "" : " (start-up is more than half of the \(smallest.files)-file time: \(basis.files) files is the basis)"
            var extra = ""
            if basis.files == smallest.files {
                let m = middle.samples[c]?.seconds ?? []
                extra = "; vs \(middle.files) files: \(fixed((median(l) / nl) / (median(m) / Double(middle.files)), 2))x"
            }
            out(
                "- flat, \(c): \(fixed(perL, 1)) µs/file at \(largest.files) files vs \(fixed(perB, 1)) at \(basis.files) files\(why) = \(fixed(ratio, 2))x (runs \(fixed(lo, 2)) – \(fixed(hi, 2)))\(extra), <= \(fixed(Targets.flatFactor, 0))x: \(v)"
            )
        }
        for c in scaleCommands where c != "tarx" {
            let rss = largest.samples[c]?.peakRSSKiB ?? 0
            let over = (Double(rss) * 1024 - Double(largest.manifestBytes)) / 1_048_576
            let v = check("scale", "memory, \(c)", Target.below(Targets.scaleRSSMiB).verdict(over))
            out(
                "- memory, \(c): peak RSS \(mib(kib: rss)) MiB at \(largest.files) files minus the manifest \(mib(largest.manifestBytes)) MiB = \(fixed(over, 1)) MiB < \(Int(Targets.scaleRSSMiB)) MiB: \(v)"
            )
        }
        out()
    }

    // MARK: reference

    mutating func reference(_ r: BenchResults) {
        let t = r.reference
        func num(_ v: Double?, _ digits: Int) -> String { v.map { fixed($0, digits) } ?? "?" }
        out("### Reference throughputs (one core)")
        out()
        out("| | MB/s |")
        out("|---|---:|")
        out("| SHA-256 (openssl speed -evp sha256, 1 MiB blocks) | \(num(t.sha256, 0)) |")
        out(
            "| zstd -1 compress (zstd -b1 -T1, \(mib(t.sampleBytes)) MiB of the release's prompt and code text, ratio x\(num(t.zstdRatio, 3))) | \(num(t.zstdCompress, 1)) |"
        )
        out("| zstd -1 decompress (same) | \(num(t.zstdDecompress, 1)) |")
        out()
        out("Throughput of the main table's airlock steps (release bytes / median time) and their CPU (user + sys, median):")
        out()
        for row in r.main.rows {
            let a = median(row.airlock.seconds), b = median(row.baseline.seconds)
            out(
                "- \(row.name): \(fixed(Double(r.dataset.bytes) / a / 1e6, 0)) MB/s; CPU airlock \(fixed(median(row.airlock.cpuSeconds), 3)) s, baseline \(fixed(median(row.baseline.cpuSeconds), 3)) s (wall \(fixed(a, 3)) / \(fixed(b, 3)) s)"
            )
        }
        out()
    }

    // MARK: method, summary

    mutating func method(_ r: BenchResults) {
        let c = r.context
        out(
            """
            Method: wall time of each step (the whole pipeline for the baseline) on a monotonic clock;
            each timed run follows an untimed read of its inputs and a sync; airlock and baseline
            alternate (odd runs airlock first, even runs baseline first). "Ratio" is the ratio of the
            medians; "ratio per run" pairs run i of airlock with run i of the baseline, and a target
            is PASS when every pair meets it, FAIL when none does, and "not established" when the
            pairs fall on both sides. Peak RSS is GNU time's max RSS (%M) of the step's largest
            process (each pipeline stage under its own GNU time; xargs counts the openssl runs it
            waited for), maximum over the runs; CPU is GNU time's user + sys of all of them.
            Baseline pack = openssl dgst -sha256 over every file (find | xargs), then tar | zstd -1 -T0
            to a file; baseline verify = zstd -dc | tar -x into a new dir per run, then openssl dgst
            -sha256 over every extracted file (the comparison of the sums is not timed). Install:
            airlock install of out.airlock into a new site root per run (trust store added untimed),
            timed alone: it makes the release durable itself (syncfs before the rename); baseline
            install = zstd -dc out.airlock | tar -x into a new dir per run, then sync (the same
            durability, no checks). Extraction dirs and site roots are deleted after the last run, not
            between runs.
            Rollback: one site holds two releases of small-agent and of bench-agent, each name's
            activation stack [first, second]; a switch is `airlock rollback NAME` or `airlock activate
            NAME SECOND`, alternating, \(c.switches) per name, interleaved with the start-up reference
            (`airlock --help`) and `airlock status`, each after a sync, one warm-up round trip untimed.
            "Minus start-up" = median switch - median `airlock --help`. The switch itself: strace -f
            -ttt -T of 6 more switches per name; window = from the start of symlink(2) of the new
            pointer to the end of the fsync(2) of the name's folder after the rename(2) (includes
            strace's overhead), syscalls = the time of those three calls; medians. Disk: du -sk of the
            site root (hardlinks counted once) before and after installing the second release of
            bench-agent, whose folder hardlinks the first one's files except airlock.yaml and the
            changed prompt file.
            Delta: `airlock pack --base out.airlock` of the second release against `airlock pack` of it
            (alternating, \(c.runs) runs each, both after reading the release once); install: into a new
            site per run that holds out.airlock (installed untimed), the delta and the full bundle
            alternating.
            Scale: per file count, run by run: pack, verify, install into a new site root, audit of
            that release; each after an untimed read of its input (audit: the files just installed)
            and a sync. After each audit, the reference: zstd -dc of the bundle | tar -x into a new
            dir, then sync. µs per file = median / files; minus start-up subtracts the median `airlock
            --help`. CPU = user + sys of the airlock process (all processes for the reference), median
            over runs. "Flat" is PASS when even the slowest run at the largest count against the
            fastest at the basis stays within the factor.
            """)
        if c.scaleRunsLargest != c.runs {
            out("The largest file count ran \(c.scaleRunsLargest) time(s) per command (BENCH_SCALE_RUNS_LARGEST), the others \(c.runs).")
        }
        if c.settleWaited > 0 {
            out("Waited \(c.settleWaited) s before creating many files: a previous run had deleted a tree recently.")
        }
    }

    mutating func summary() {
        out()
        out("### Verdicts")
        out()
        let pass = verdicts.filter { $0.verdict == .pass }.count
        out("\(verdicts.count) targets: \(pass) PASS, \(verdicts.unsettled.count) not established, \(verdicts.failures.count) FAIL.")
        for v in verdicts where v.verdict != .pass {
            out("- \(v.verdict.rawValue): \(v.section), \(v.check)")
        }
    }
}
