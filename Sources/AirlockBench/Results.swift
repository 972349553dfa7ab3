/// What one timed run of a step measured.
public struct RunSample: Equatable, Sendable {
    /// Wall-clock seconds of the whole step (every process of it, start to end).
    public var seconds: Double
    /// The largest peak resident set of the step's processes, in KiB.
    public var peakRSSKiB: Int
    /// User plus system CPU seconds of every process of the step.
    public var cpuSeconds: Double

    /// A run's measurements.
    public init(seconds: Double, peakRSSKiB: Int, cpuSeconds: Double) {
        self.seconds = seconds
        self.peakRSSKiB = peakRSSKiB
        self.cpuSeconds = cpuSeconds
    }
}

extension Array where Element == RunSample {
    /// The wall times, in run order.
    public var seconds: [Double] { map(\.seconds) }
    /// The CPU times, in run order.
    public var cpuSeconds: [Double] { map(\.cpuSeconds) }
    /// The largest peak RSS over the runs, in KiB (0 without runs).
    public var peakRSSKiB: Int { map(\.peakRSSKiB).max() ?? 0 }
}

/// Facts about the machine and the run that head the report.
public struct RunContext: Equatable, Sendable {
    /// When the run started (UTC, ISO 8601).
    public var date: String
    /// Cores, CPU, memory, kernel and the work folder's file system.
    public var machine: String
    /// The airlock binary measured and its version.
    public var airlock: String
    /// The versions of the baseline's tools.
    public var tools: String
    /// `BENCH_SCALE` as given.
    public var scale: String
    /// Timed runs per tool and step.
    public var runs: Int
    /// Timed pointer switches per release.
    public var switches: Int
    /// Timed runs at the scale table's largest file count.
    public var scaleRunsLargest: Int
    /// Seconds waited for the file system to settle after a deletion (0 if none).
    public var settleWaited: Int

    /// The run's facts.
    public init(
        date: String, machine: String, airlock: String, tools: String, scale: String, runs: Int, switches: Int,
        scaleRunsLargest: Int, settleWaited: Int
    ) {
        self.date = date
        self.machine = machine
        self.airlock = airlock
        self.tools = tools
        self.scale = scale
        self.runs = runs
        self.switches = switches
        self.scaleRunsLargest = scaleRunsLargest
        self.settleWaited = settleWaited
    }
}

/// The large release as generated.
public struct DatasetFacts: Equatable, Sendable {
    /// Bytes of every file of the release.
    public var bytes: Int
    /// Number of files of the release.
    public var files: Int
    /// Bytes of the incompressible weights.
    public var weightsBytes: Int
    /// Number of index documents.
    public var indexFiles: Int

    /// The dataset's facts.
    public init(bytes: Int, files: Int, weightsBytes: Int, indexFiles: Int) {
        self.bytes = bytes
        self.files = files
        self.weightsBytes = weightsBytes
        self.indexFiles = indexFiles
    }
}

/// One row of the main table: airlock against the standard tools.
public struct ComparisonRow: Equatable, Sendable {
    /// The step: `pack`, `verify` or `install`.
    public var name: String
    /// Airlock's runs, in run order.
    public var airlock: [RunSample]
    /// The baseline's runs, in run order (run `i` alternated with airlock's run `i`).
    public var baseline: [RunSample]
    /// The highest acceptable ratio airlock / baseline.
    public var ratioTarget: Double

    /// A row.
    public init(name: String, airlock: [RunSample], baseline: [RunSample], ratioTarget: Double) {
        self.name = name
        self.airlock = airlock
        self.baseline = baseline
        self.ratioTarget = ratioTarget
    }
}

/// The main table and the sizes of its outputs.
public struct MainTable: Equatable, Sendable {
    /// The rows, in order.
    public var rows: [ComparisonRow]
    /// Size of airlock's bundle.
    public var bundleBytes: Int
    /// Size of the baseline's tar.zst.
    public var baselineBytes: Int
    /// The bundle id airlock printed (or why there is none).
    public var bundleID: String
    /// Number of payload files the bundle lists (nil when unknown).
    public var payloadFiles: Int?

    /// The main table.
    public init(rows: [ComparisonRow], bundleBytes: Int, baselineBytes: Int, bundleID: String, payloadFiles: Int?) {
        self.rows = rows
        self.bundleBytes = bundleBytes
        self.baselineBytes = baselineBytes
        self.bundleID = bundleID
        self.payloadFiles = payloadFiles
    }
}

/// The switches measured on one release name of the rollback table.
public struct SwitchSeries: Equatable, Sendable {
    /// The name on the site (`small-agent`, `bench-agent`).
    public var name: String
    /// How the report labels it.
    public var label: String
    /// Payload files of its release.
    public var files: Int
    /// Bytes of its release.
    public var bytes: Int
    /// Wall times of its rollbacks, ms, in order.
    public var rollbackMs: [Double]
    /// Wall times of its activations, ms, in order.
    public var activateMs: [Double]
    /// The switch itself under strace: window from symlink(2) to the fsync(2) after rename(2), ms.
    public var straceWindowMs: [Double]
    /// The same three calls' own times, ms.
    public var straceSyscallsMs: [Double]

    /// A series.
    public init(
        name: String, label: String, files: Int, bytes: Int, rollbackMs: [Double], activateMs: [Double],
        straceWindowMs: [Double], straceSyscallsMs: [Double]
    ) {
        self.name = name
        self.label = label
        self.files = files
        self.bytes = bytes
        self.rollbackMs = rollbackMs
        self.activateMs = activateMs
        self.straceWindowMs = straceWindowMs
        self.straceSyscallsMs = straceSyscallsMs
    }

    /// Every switch, rollbacks and activations.
    public var allMs: [Double] { rollbackMs + activateMs }
}

/// The rollback table: one pointer switch on a small and a large release.
public struct RollbackTable: Equatable, Sendable {
    /// The small release's switches.
    public var small: SwitchSeries
    /// The large release's switches.
    public var large: SwitchSeries
    /// `airlock --help` wall times, ms (the process start-up reference).
    public var helpMs: [Double]
    /// `airlock status` wall times, ms.
    public var statusMs: [Double]
    /// Peak RSS of a switch, KiB.
    public var peakRSSKiB: Int
    /// Whether strace was there to time the switch itself.
    public var straceAvailable: Bool

    /// The table.
    public init(small: SwitchSeries, large: SwitchSeries, helpMs: [Double], statusMs: [Double], peakRSSKiB: Int, straceAvailable: Bool) {
        self.small = small
        self.large = large
        self.helpMs = helpMs
        self.statusMs = statusMs
        self.peakRSSKiB = peakRSSKiB
        self.straceAvailable = straceAvailable
    }
}

/// The disk table: what a second release that shares its weights adds to a site.
public struct DiskTable: Equatable, Sendable {
    /// The site measured.
    public var siteRoot: String
    /// `du -sk` of the site with only its trust store.
    public var emptyKiB: Int
    /// After the first release.
    public var afterFirstKiB: Int
    /// After the second release.
    public var afterSecondKiB: Int
    /// The object store after the first release.
    public var objectsAfterFirstKiB: Int
    /// The object store after the second release.
    public var objectsAfterSecondKiB: Int
    /// The second release's own folder (manifest, signatures, folders), KiB.
    public var secondOwnKiB: Int
    /// Bytes of the files the second release changed.
    public var changedBytes: Int
    /// Those files' paths.
    public var changedFiles: String
    /// Bytes of the release.
    public var releaseBytes: Int
    /// What `airlock install --json` reported for the second release.
    public var filesShared: Int, files: Int, bytesWritten: Int

    /// The table.
    public init(
        siteRoot: String, emptyKiB: Int, afterFirstKiB: Int, afterSecondKiB: Int, objectsAfterFirstKiB: Int,
        objectsAfterSecondKiB: Int, secondOwnKiB: Int, changedBytes: Int, changedFiles: String, releaseBytes: Int,
        filesShared: Int, files: Int, bytesWritten: Int
    ) {
        self.siteRoot = siteRoot
        self.emptyKiB = emptyKiB
        self.afterFirstKiB = afterFirstKiB
        self.afterSecondKiB = afterSecondKiB
        self.objectsAfterFirstKiB = objectsAfterFirstKiB
        self.objectsAfterSecondKiB = objectsAfterSecondKiB
        self.secondOwnKiB = secondOwnKiB
        self.changedBytes = changedBytes
        self.changedFiles = changedFiles
        self.releaseBytes = releaseBytes
        self.filesShared = filesShared
        self.files = files
        self.bytesWritten = bytesWritten
    }
}

/// One member of a bundle: its size and its size through `zstd -1` alone.
public struct BundleMember: Equatable, Sendable {
    /// The member's path in the bundle.
    public var name: String
    /// Uncompressed bytes.
    public var bytes: Int
    /// Bytes after `zstd -1 -c` of the member alone.
    public var zstdBytes: Int

    /// A member.
    public init(name: String, bytes: Int, zstdBytes: Int) {
        self.name = name
        self.bytes = bytes
        self.zstdBytes = zstdBytes
    }
}

/// The delta table: the second release as a delta bundle against the first.
public struct DeltaTable: Equatable, Sendable {
    /// The full second bundle's size.
    public var fullBytes: Int
    /// The delta bundle's size.
    public var deltaBytes: Int
    /// The changed files' paths.
    public var changedFiles: String
    /// Their bytes, raw.
    public var changedRawBytes: Int
    /// Their bytes, each through `zstd -1 -c`.
    public var changedZstdBytes: Int
    /// The manifest's bytes, uncompressed.
    public var manifestBytes: Int
    /// The delta's members.
    public var members: [BundleMember]
    /// Packing the delta and the full bundle, alternating.
    public var packDelta: [RunSample], packFull: [RunSample]
    /// Installing them into a site that holds the first release, alternating.
    public var installDelta: [RunSample], installFull: [RunSample]
    /// What the first install of each reported: files shared and bytes written.
    public var deltaShared: Int, deltaWritten: Int, fullShared: Int, fullWritten: Int

    /// The table.
    public init(
        fullBytes: Int, deltaBytes: Int, changedFiles: String, changedRawBytes: Int, changedZstdBytes: Int,
        manifestBytes: Int, members: [BundleMember], packDelta: [RunSample], packFull: [RunSample],
        installDelta: [RunSample], installFull: [RunSample], deltaShared: Int, deltaWritten: Int,
        fullShared: Int, fullWritten: Int
    ) {
        self.fullBytes = fullBytes
        self.deltaBytes = deltaBytes
        self.changedFiles = changedFiles
        self.changedRawBytes = changedRawBytes
        self.changedZstdBytes = changedZstdBytes
        self.manifestBytes = manifestBytes
        self.members = members
        self.packDelta = packDelta
        self.packFull = packFull
        self.installDelta = installDelta
        self.installFull = installFull
        self.deltaShared = deltaShared
        self.deltaWritten = deltaWritten
        self.fullShared = fullShared
        self.fullWritten = fullWritten
    }
}

/// The commands of the scale table, in the report's order; `tarx` is the reference.
public let scaleCommands = ["pack", "verify", "install", "audit", "tarx"]

/// One file count of the scale table.
public struct ScaleEntry: Equatable, Sendable {
    /// Documents in the release.
    public var files: Int
    /// The bundle's manifest, bytes.
    public var manifestBytes: Int
    /// The runs of each command (`scaleCommands`).
    public var samples: [String: [RunSample]]

    /// An entry.
    public init(files: Int, manifestBytes: Int, samples: [String: [RunSample]]) {
        self.files = files
        self.manifestBytes = manifestBytes
        self.samples = samples
    }
}

/// The single-core reference throughputs (MB/s = 10^6 bytes per second), as the tools printed them.
public struct ReferenceTable: Equatable, Sendable {
    /// `openssl speed -evp sha256`, 1 MiB blocks.
    public var sha256: Double?
    /// `zstd -b1 -T1` compression and decompression, and the ratio.
    public var zstdCompress: Double?, zstdDecompress: Double?, zstdRatio: Double?
    /// Bytes of the text sample zstd compressed.
    public var sampleBytes: Int

    /// The table.
    public init(sha256: Double?, zstdCompress: Double?, zstdDecompress: Double?, zstdRatio: Double?, sampleBytes: Int) {
        self.sha256 = sha256
        self.zstdCompress = zstdCompress
        self.zstdDecompress = zstdDecompress
        self.zstdRatio = zstdRatio
        self.sampleBytes = sampleBytes
    }
}

/// Everything one benchmark run measured: the report is rendered from this alone.
public struct BenchResults: Equatable, Sendable {
    /// The run's facts.
    public var context: RunContext
    /// The large release.
    public var dataset: DatasetFacts
    /// pack, verify, install.
    public var main: MainTable
    /// One pointer switch.
    public var rollback: RollbackTable
    /// The second release's disk use.
    public var disk: DiskTable
    /// Delta bundles.
    public var delta: DeltaTable
    /// 1,000 to 100,000 files.
    public var scale: [ScaleEntry]
    /// Reference throughputs.
    public var reference: ReferenceTable
    /// Warnings of the untimed sanity checks.
    public var notes: [String]

    /// The results.
    public init(
        context: RunContext, dataset: DatasetFacts, main: MainTable, rollback: RollbackTable, disk: DiskTable,
        delta: DeltaTable, scale: [ScaleEntry], reference: ReferenceTable, notes: [String]
    ) {
        self.context = context
        self.dataset = dataset
        self.main = main
        self.rollback = rollback
        self.disk = disk
        self.delta = delta
        self.scale = scale
        self.reference = reference
        self.notes = notes
    }
}
