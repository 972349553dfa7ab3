#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func sysWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
private func sysRead(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int { read(fd, p, n) }

/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64): the same seed
/// gives the same sequence on every machine and every run, which is what makes the datasets
/// reproducible. Not for cryptography.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator whose sequence is determined by `seed`.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix()
        s1 = splitmix()
        s2 = splitmix()
        s3 = splitmix()
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// A number from 0 to `n - 1` (`n` > 0), by multiply-and-shift of 32 random bits.
    public mutating func below(_ n: Int) -> Int {
        Int(((next() >> 32) &* UInt64(n)) >> 32)
    }

    /// A number in [0, 1).
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Fills `buffer` with random bytes (incompressible data).
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var i = 0
        let n = buffer.count
        while i + 8 <= n {
            buffer.storeBytes(of: next().littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        if i < n {
            var last = next().littleEndian
            withUnsafeBytes(of: &last) { bytes in
                for k in 0..<(n - i) { buffer[i + k] = bytes[k] }
            }
        }
    }

    /// A seed for one item of a dataset, derived from the dataset's seed and the item's number,
    /// so that each file's bytes depend only on the seed and its place, not on the others.
    public static func derive(_ seed: UInt64, _ stream: UInt64, _ index: Int) -> UInt64 {
        var g = SeededGenerator(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) ^ (UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15))
        return g.next()
    }
}

/// One file of a planned release: where it goes, how large it is, and what it holds.
public struct PlannedFile: Equatable, Sendable {
    /// What the file holds; every case is fully determined by its fields.
    public enum Content: Equatable, Sendable {
        /// These exact bytes (text written out in the plan).
        case literal([UInt8])
        /// Random bytes from a seed: incompressible, like model weights.
        case incompressible(seed: UInt64)
        /// Swift-like source lines (the code component); `number` is the file's place.
        case code(seed: UInt64, number: Int)
        /// Markdown prose: a heading and paragraphs of sentences (the prompts component).
        case prompt(seed: UInt64, number: Int)
        /// A JSON document of an index shard: id, shard, title, text and a 12-value vector.
        case indexDocument(seed: UInt64, number: Int, shards: Int)
        /// A line of plain text starting `doc NNNNNN:` (the scale releases' documents).
        case scaleDocument(seed: UInt64, number: Int)
    }

    /// The path relative to the release folder.
    public var path: String
    /// The exact size in bytes.
    public var size: Int
    /// The permission bits.
    public var mode: mode_t
    /// The content.
    public var content: Content

    /// A planned file.
    public init(path: String, size: Int, mode: mode_t = 0o644, content: Content) {
        self.path = path
        self.size = size
        self.mode = mode
        self.content = content
    }

    /// A file of the given text.
    public static func text(_ path: String, _ text: String, mode: mode_t = 0o644) -> PlannedFile {
        let bytes = Array(text.utf8)
        return PlannedFile(path: path, size: bytes.count, mode: mode, content: .literal(bytes))
    }
}

/// A second version of a release: every file hard-linked to the first but the manifest, one
/// changed file, which gets a line appended, and any files rewritten whole.
public struct Revision: Equatable, Sendable {
    /// The new `airlock.yaml`.
    public var yaml: String
    /// The changed file, relative to the release folder.
    public var changedPath: String
    /// The text appended to the first release's copy of the changed file.
    public var appended: String
    /// Files of the first release written again with other content (same paths).
    public var rewritten: [PlannedFile] = []
}

/// A release to generate: its folders (made even when empty), files and a description that
/// changes whenever its bytes would.
public struct ReleasePlan: Equatable, Sendable {
    /// Folders relative to the release folder, parents first.
    public var directories: [String]
    /// The files, in the order they are written.
    public var files: [PlannedFile]
    /// A one-line description (generator version and sizes), stored beside a generated release
    /// so that a cached copy is reused only when it is the same.
    public var description: String

    /// The total size of the files in bytes.
    public var totalBytes: Int { files.reduce(0) { $0 + $1.size } }
}

/// The words the text generators draw from.
let vocabulary: [[UInt8]] =
    ("the agent must never call a tool without checking its permission list and "
    + "should answer the user in plain words citing the retrieved documents when "
    + "relevant if a request is unclear ask one short question before acting keep "
    + "answers under limit escalate refunds account billing policy model context").split(separator: " ").map { Array($0.utf8) }

let identifiers = ["value", "count", "buffer", "offset", "result", "handle", "index", "token"]

/// The sizes of the large release (`bench-agent`) at a scale: at scale 1, 1.5 GiB of weights,
/// 300 MiB of code in 240 files, 100 MiB of prompts in 60 files and 20,000 index documents of
/// 1 to 4 KiB in 20 shards (about 2 GiB in all). File counts of code and prompts are fixed;
/// their sizes and the number of index documents scale.
public struct LargeRelease: Sendable {
    /// Bumped whenever the generated bytes change, so cached datasets are made again.
    public static let generation = 2
    /// The seed of the text components.
    public static let textSeed: UInt64 = 20261001
    /// The seed of the weights.
    public static let weightsSeed: UInt64 = 0x62_656E_6368  // "bench"
    static let mib = 1 << 20

    /// The scale factor (1 is about 2 GiB).
    public let scale: Double
    /// The weights file's size in bytes.
    public let weightsBytes: Int
    /// The code component's planned size in bytes (each file's size is a share of it).
    public let codeBytes: Int
    /// The prompts component's planned size in bytes.
    public let promptBytes: Int
    /// The number of index documents.
    public let indexFiles: Int
    /// The number of code files.
    public let codeFiles = 240
    /// The number of prompt files.
    public let promptFiles = 60
    /// The number of index shards (folders).
    public let indexShards = 20

    /// The sizes at `scale` (greater than 0); `weightsMiB` replaces the weights' size (the
    /// many-file shape of `make bench-peers` keeps 300 MiB of them).
    public init(scale: Double, weightsMiB: Int? = nil) {
        self.scale = scale
        weightsBytes = weightsMiB.map { $0 * Self.mib } ?? Int(1536 * Double(Self.mib) * scale)
        codeBytes = Int(300 * Double(Self.mib) * scale)
        promptBytes = Int(100 * Double(Self.mib) * scale)
        indexFiles = Swift.max(1, Int(20000 * scale + 0.5))
    }

    /// The size of the `i`-th file of a component whose files average `average` bytes: from
    /// half to one and a half times the average, cycling over 11 steps.
    public static func share(_ average: Double, _ i: Int) -> Int {
        Int(average * (0.5 + Double(i % 11) / 10))
    }

    /// The release's `airlock.yaml`.
    public static func yaml(version: String, sequence: Int) -> String {
        """
        name: bench-agent
        version: \(version)
        sequence: \(sequence)
        components:
          code: code/
          model: { path: model/, name: bench-model, snapshot: 2026-10-01 }
          prompts: prompts/
          index: index/

        """
    }

    /// The plan of the release's files and folders.
    public var plan: ReleasePlan {
        var dirs = ["code", "code/scripts", "code/src"] + (0..<8).map { "code/src/mod\($0)" } + ["model", "prompts", "index"]
        dirs += (0..<indexShards).map { "index/shard-" + pad($0, 2) }
        var files: [PlannedFile] = [
            .text("airlock.yaml", Self.yaml(version: "1.0.0", sequence: 1)),
            .text("model/config.json", "{\"architecture\":\"bench\",\"hidden_size\":4096,\"layers\":32,\"dtype\":\"bfloat16\"}\n"),
            PlannedFile(path: "model/weights.safetensors", size: weightsBytes, content: .incompressible(seed: Self.weightsSeed)),
        ]
        let codeAverage = Double(codeBytes) / Double(codeFiles)
        for f in 0..<codeFiles {
            let seed = SeededGenerator.derive(Self.textSeed, 1, f)
            let size = Self.share(codeAverage, f)
            if f < 4 {
                files.append(
                    PlannedFile(path: "code/scripts/\(identifiers[f])-\(pad(f, 2)).sh", size: size, mode: 0o755, content: .code(seed: seed, number: f)))
            } else {
                files.append(
                    PlannedFile(path: "code/src/mod\(f % 8)/\(identifiers[f % 8])_\(pad(f, 3)).swift", size: size, content: .code(seed: seed, number: f)))
            }
        }
        let promptAverage = Double(promptBytes) / Double(promptFiles)
        for f in 0..<promptFiles {
            files.append(
                PlannedFile(
                    path: "prompts/prompt-\(pad(f, 3)).md", size: Self.share(promptAverage, f),
                    content: .prompt(seed: SeededGenerator.derive(Self.textSeed, 2, f), number: f)))
        }
        for d in 0..<indexFiles {
            files.append(
                PlannedFile(
                    path: "index/shard-\(pad(d % indexShards, 2))/doc-\(pad(d, 5)).json", size: 1024 + (d * 7919) % 3072,
                    content: .indexDocument(seed: SeededGenerator.derive(Self.textSeed, 3, d), number: d, shards: indexShards)))
        }
        return ReleasePlan(directories: dirs, files: files, description: description)
    }

    /// The description stored beside a generated copy.
    public var description: String {
        "gen=\(Self.generation) scale=\(scale) weights=\(weightsBytes) code=\(codeBytes)/\(codeFiles) prompts=\(promptBytes)/\(promptFiles) index=\(indexFiles)"
    }

    /// The second release as `make bench-peers` changes it (issue 14's release): version
    /// 1.0.1, sequence 2, 104 index documents rewritten (every 192nd, across all shards: about
    /// 0.26 MB).
    public var spreadRevision: Revision {
        let docs = stride(from: 0, to: indexFiles, by: Swift.max(1, indexFiles / 104)).prefix(104).map { d in
            PlannedFile(
                path: "index/shard-\(pad(d % indexShards, 2))/doc-\(pad(d, 5)).json", size: 1024 + (d * 7919) % 3072,
                content: .indexDocument(seed: SeededGenerator.derive(Self.textSeed, 4, d), number: d, shards: indexShards))
        }
        return Revision(yaml: Self.yaml(version: "1.0.1", sequence: 2), changedPath: docs[0].path, appended: "", rewritten: Array(docs.dropFirst()))
    }

    /// The second release: version 1.0.1, sequence 2, one prompt file with a line added.
    public static let revision = Revision(
        yaml: yaml(version: "1.0.1", sequence: 2), changedPath: "prompts/prompt-000.md",
        appended: "Never share the refund policy document itself; quote the relevant lines instead.\n")
}

/// The small release (`small-agent`): 10 MiB of weights and a few files; its second version
/// changes the system prompt.
public enum SmallRelease {
    /// Bumped whenever the generated bytes change.
    public static let generation = 2
    /// The weights file's size in bytes.
    public static let weightsBytes = 10 << 20
    /// The seed of the weights.
    public static let weightsSeed: UInt64 = 0x73_6D61_6C6C  // "small"

    /// The release's `airlock.yaml`.
    public static func yaml(version: String, sequence: Int) -> String {
        "name: small-agent\nversion: \(version)\nsequence: \(sequence)\ncomponents:\n  code: code/\n"
            + "  model: { path: model/, name: small-model, snapshot: 2026-10-01 }\n  prompts: prompts/\n"
    }

    /// The plan of the first version.
    public static var plan: ReleasePlan {
        let system = (0..<40).map { "Answer in plain words and cite the retrieved documents when relevant (rule \($0)).\n" }.joined()
        return ReleasePlan(
            directories: ["code", "model", "prompts"],
            files: [
                .text("airlock.yaml", yaml(version: "1.0.0", sequence: 1)),
                PlannedFile(path: "model/weights.safetensors", size: weightsBytes, content: .incompressible(seed: weightsSeed)),
                .text("model/config.json", "{\"architecture\":\"bench-small\",\"hidden_size\":512,\"layers\":4}\n"),
                .text("code/main.py", "import sys\n\ndef main():\n    print(\"small agent\", sys.argv[1:])\n\nmain()\n"),
                .text("prompts/system.md", system),
            ],
            description: "gen=\(generation) weights=\(weightsBytes)")
    }

    /// The second version: 1.0.1, sequence 2, one line added to the system prompt.
    public static let revision = Revision(
        yaml: yaml(version: "1.0.1", sequence: 2), changedPath: "prompts/system.md",
        appended: "Ask one short question when a request is unclear.\n")
}

/// A release of many small text files for the scale table: `files` documents
/// (`index/shard-NNN/doc-NNNNNN.txt`, 1,000 a folder, 200 to 2,000 bytes each, all different)
/// plus `code/main.py` and `prompts/system.md`.
public struct ScaleRelease: Sendable {
    /// Bumped whenever the generated bytes change.
    public static let generation = 2
    /// The seed of the documents.
    public static let seed: UInt64 = 20261002
    /// The number of documents.
    public let files: Int

    /// A scale release of `files` documents.
    public init(files: Int) { self.files = files }

    /// The size of document `d`.
    public static func documentSize(_ d: Int) -> Int { 200 + (d * 7919) % 1801 }

    /// The plan.
    public var plan: ReleasePlan {
        let shards = (files + 999) / 1000
        var out: [PlannedFile] = [
            .text("airlock.yaml", "name: scale-\(files)\nversion: 1.0.0\nsequence: 1\ncomponents:\n  code: code/\n  prompts: prompts/\n  index: index/\n"),
            .text("code/main.py", "import sys\n\ndef main():\n    print(\"scale agent\", sys.argv[1:])\n\nmain()\n"),
            .text("prompts/system.md", "Answer from the index; cite the document ids you used.\n"),
        ]
        out.reserveCapacity(files + 3)
        for d in 0..<files {
            out.append(
                PlannedFile(
                    path: "index/shard-\(pad(d / 1000, 3))/doc-\(pad(d, 6)).txt", size: Self.documentSize(d),
                    content: .scaleDocument(seed: SeededGenerator.derive(Self.seed, 4, d), number: d)))
        }
        return ReleasePlan(
            directories: ["code", "prompts", "index"] + (0..<shards).map { "index/shard-" + pad($0, 3) },
            files: out, description: description)
    }

    /// The description stored beside a generated copy.
    public var description: String { "gen=\(Self.generation) files=\(files) per-folder=1000 sizes=200-2000" }
}

/// `n` in decimal, zero-padded to at least `width` digits.
func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

// MARK: - Content

/// Makes the bytes of planned files.
public enum ContentGenerator {
    /// The bytes of a file whose content is text (every case but `.incompressible`), exactly
    /// `file.size` of them: the generated text cut to size, ending in a newline.
    public static func text(_ file: PlannedFile) -> [UInt8] {
        var out = Text(capacity: file.size)
        switch file.content {
        case .literal(let bytes):
            return bytes
        case .incompressible(let seed):
            var g = SeededGenerator(seed: seed)
            var bytes = [UInt8](repeating: 0, count: file.size)
            bytes.withUnsafeMutableBytes { g.fill($0) }
            return bytes
        case .code(let seed, let number):
            var g = SeededGenerator(seed: seed)
            if file.mode & 0o100 != 0 { out.append("#!/bin/sh\n") }
            while out.count < file.size {
                codeLine(&g, number, &out)
                out.newline()
            }
        case .prompt(let seed, let number):
            var g = SeededGenerator(seed: seed)
            out.append("# Prompt ")
            out.append(number)
            out.newline()
            while out.count < file.size {
                if g.below(100) < 15 {
                    out.append("\n## Section ")
                    out.append(g.below(100))
                    out.append("\n\n")
                }
                sentence(&g, &out)
                out.append(" ")
                sentence(&g, &out)
                out.append(" ")
                sentence(&g, &out)
                out.newline()
            }
        case .indexDocument(let seed, let number, let shards):
            var g = SeededGenerator(seed: seed)
            out.append("{\"id\":\"doc-")
            out.append(pad(number, 5))
            out.append("\",\"shard\":")
            out.append(number % shards)
            out.append(",\"title\":\"")
            sentence(&g, &out)
            out.append("\",\"text\":\"")
            let textStart = out.count
            var tail = Text(capacity: 160)
            tail.append("\",\"vector\":[")
            for k in 0..<12 {
                if k > 0 { tail.append(",") }
                tail.appendFixed6(g.unit() * 2 - 1)
            }
            tail.append("]}\n")
            let room = file.size - tail.count
            while out.count < room {
                sentence(&g, &out)
                out.append(" ")
            }
            if out.count > room { out.bytes.removeLast(Swift.min(out.count - room, out.count - textStart)) }
            out.bytes += tail.bytes
            return out.bytes
        case .scaleDocument(let seed, let number):
            var g = SeededGenerator(seed: seed)
            out.append("doc ")
            out.append(pad(number, 6))
            out.append(":")
            while out.count < file.size {
                out.append(" ")
                out.append(vocabulary[g.below(vocabulary.count)])
            }
        }
        return out.cut(to: file.size)
    }

    /// One line of Swift-like code.
    static func codeLine(_ g: inout SeededGenerator, _ file: Int, _ out: inout Text) {
        let r = g.below(8)
        let a = identifiers[r], b = identifiers[(r * 3 + file) % 8]
        let k = g.below(100_000)
        switch g.below(7) {
        case 0:
            out.append("    let ")
            out.append(a)
            out.append("_")
            out.append(k)
            out.append(" = try ")
            out.append(b)
            out.append("(at: ")
            out.append(k % 977)
            out.append(", limit: ")
            out.append(g.below(65536))
            out.append(")")
        case 1:
            out.append("    if ")
            out.append(a)
            out.append("_")
            out.append(k % 1000)
            out.append(" > ")
            out.append(g.below(4096))
            out.append(" { return .failure(.")
            out.append(b)
            out.append("(")
            out.append(k)
            out.append(")) }")
        case 2:
            out.append("    // ")
            out.append(a)
            out.append(": keep ")
            out.append(b)
            out.append(" under ")
            out.append(g.below(1_000_000))
            out.append(" bytes (see issue #")
            out.append(k % 5000)
            out.append(")")
        case 3:
            out.append("func ")
            out.append(b)
            out.append(k)
            out.append("(_ ")
            out.append(a)
            out.append(": inout [UInt8], count: Int = ")
            out.append(k % 256)
            out.append(") throws -> Int {")
        case 4:
            out.append("    ")
            out.append(a)
            out.append("[")
            out.append(k % 64)
            out.append("] = ")
            out.append(b)
            out.append(" &+ 0x")
            out.append(String(g.below(2_147_483_647), radix: 16))
        case 5:
            out.append("    guard ")
            out.append(a)
            out.append(".count >= ")
            out.append(k % 4096)
            out.append(" else { throw Error.short(")
            out.append(b)
            out.append(", ")
            out.append(k)
            out.append(") }")
        default:
            out.append("}")
        }
    }

    /// One sentence: 6 to 19 words, the first capitalised, sometimes a number, a full stop.
    static func sentence(_ g: inout SeededGenerator, _ out: inout Text) {
        let n = 6 + g.below(14)
        var first = vocabulary[g.below(vocabulary.count)]
        if let c = first.first, c >= 0x61, c <= 0x7A { first[0] = c - 0x20 }
        out.append(first)
        for _ in 1..<n {
            out.append(" ")
            out.append(vocabulary[g.below(vocabulary.count)])
        }
        if g.below(100) < 20 {
            out.append(" ")
            out.append(g.below(1000))
        }
        out.append(".")
    }
}

/// A byte buffer for building ASCII text quickly.
struct Text {
    var bytes: [UInt8] = []
    init(capacity: Int) { bytes.reserveCapacity(Swift.min(capacity, 1 << 26) + 256) }
    var count: Int { bytes.count }
    mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func append(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    mutating func append(_ n: Int) { append(String(n)) }
    mutating func newline() { bytes.append(0x0A) }
    /// `v` with six decimals (like printf's `%.6f`), for |v| < 1000.
    mutating func appendFixed6(_ v: Double) {
        let micro = Int((Swift.abs(v) * 1_000_000).rounded())
        if v < 0 && micro > 0 { bytes.append(0x2D) }
        append(micro / 1_000_000)
        bytes.append(0x2E)
        append(pad(micro % 1_000_000, 6))
    }
    /// The first `size` bytes, the last of them a newline (empty for size 0).
    func cut(to size: Int) -> [UInt8] {
        guard size > 0 else { return [] }
        var out = Array(bytes.prefix(size))
        if out.count < size { out += [UInt8](repeating: 0x20, count: size - out.count) }
        out[size - 1] = 0x0A
        return out
    }
}

// MARK: - Writing

/// An error while writing a dataset.
public struct DatasetError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
}

/// Writes planned releases and their revisions to disk.
public enum ReleaseWriter {
    /// Writes `plan` into the folder `root` (made with its parents; it should not exist yet).
    public static func write(_ plan: ReleasePlan, to root: String) throws {
        try makeDirectory(root)
        for d in plan.directories { try makeDirectory(root + "/" + d) }
        for f in plan.files {
            let path = root + "/" + f.path
            if let slash = path.lastIndex(of: "/") { try makeDirectory(String(path[..<slash])) }
            switch f.content {
            case .incompressible(let seed):
                try writeIncompressible(path: path, size: f.size, seed: seed, mode: f.mode)
            default:
                try write(path: path, bytes: ContentGenerator.text(f), mode: f.mode)
            }
        }
    }

    /// Makes the revision of the release at `base` in `target`: hard links to every file of
    /// `base` but `airlock.yaml` and the changed file, which are written anew.
    public static func writeRevision(_ revision: Revision, of base: String, to target: String) throws {
        try linkTree(base, target, skipping: Set(["airlock.yaml", revision.changedPath] + revision.rewritten.map(\.path)))
        try write(path: target + "/airlock.yaml", bytes: Array(revision.yaml.utf8), mode: 0o644)
        let first = try read(base + "/" + revision.changedPath)
        var st = stat()
        guard stat(base + "/" + revision.changedPath, &st) == 0 else { throw DatasetError(description: "cannot stat \(revision.changedPath)") }
        try write(path: target + "/" + revision.changedPath, bytes: first + Array(revision.appended.utf8), mode: st.st_mode & 0o7777)
        for f in revision.rewritten { try write(path: target + "/" + f.path, bytes: ContentGenerator.text(f), mode: f.mode) }
    }

    static func linkTree(_ from: String, _ to: String, skipping: Set<String>, relative: String = "") throws {
        try makeDirectory(to)
        guard let dir = opendir(from) else { throw DatasetError(description: "cannot open \(from): \(String(cString: strerror(errno)))") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names.sorted() {
            let rel = relative.isEmpty ? name : relative + "/" + name
            let src = from + "/" + name, dst = to + "/" + name
            var st = stat()
            guard lstat(src, &st) == 0 else { throw DatasetError(description: "cannot stat \(src)") }
            if st.st_mode & S_IFMT == S_IFDIR {
                try linkTree(src, dst, skipping: skipping, relative: rel)
            } else if !skipping.contains(rel) {
                guard FileSystem.link(src, dst) == 0 else { throw DatasetError(description: "cannot link \(dst): \(String(cString: strerror(errno)))") }
            }
        }
    }

    static func makeDirectory(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR { return }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex { try makeDirectory(String(path[..<slash])) }
        guard FileSystem.mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw DatasetError(description: "cannot make \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func write(path: String, bytes: [UInt8], mode: mode_t) throws {
        let fd = FileSystem.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DatasetError(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try bytes.withUnsafeBytes { try writeAll(fd, $0, path) }
        guard fchmod(fd, mode) == 0 else { throw DatasetError(description: "cannot chmod \(path)") }
    }

    static func writeIncompressible(path: String, size: Int, seed: UInt64, mode: mode_t) throws {
        let fd = FileSystem.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DatasetError(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var g = SeededGenerator(seed: seed)
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 8)
        defer { buffer.deallocate() }
        var left = size
        while left > 0 {
            let n = Swift.min(chunk, left)
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
            g.fill(part)
            try writeAll(fd, UnsafeRawBufferPointer(part), path)
            left -= n
        }
        guard fchmod(fd, mode) == 0 else { throw DatasetError(description: "cannot chmod \(path)") }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = sysWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DatasetError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// The bytes of a file.
    public static func read(_ path: String) throws -> [UInt8] {
        let fd = FileSystem.open(path, O_RDONLY)
        guard fd >= 0 else { throw DatasetError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw DatasetError(description: "cannot read \(path)") }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return out
    }
}
