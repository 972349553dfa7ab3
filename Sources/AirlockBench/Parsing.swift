import Foundation

/// Readers of the tools' output the benchmark needs: strace logs, `openssl speed`, `zstd -b`,
/// `openssl dgst`, `tar -tv`, `du -sk` and `airlock install --json`. Each returns `nil` (or
/// skips a line) when the text is not what it expects, rather than guessing.
public enum ToolOutput {
    /// The pointer switch in an `strace -f -ttt -T` log of one `airlock rollback` or `activate`:
    /// the wall time from the start of the symlink(2) of the new pointer (`.current.tmp-...`) to
    /// the end of the fsync(2) that follows its rename(2), and the sum of those three calls'
    /// own times, both in ms.
    public static func straceSwitch(_ log: String) -> (windowMs: Double, syscallsMs: Double)? {
        var start: Double?, renamed = false, end: Double?, sum = 0.0
        for raw in log.split(separator: "\n") {
            let fields = raw.split(separator: " ", omittingEmptySubsequences: true)
            guard let last = fields.last, last.hasPrefix("<"), last.hasSuffix(">"),
                let duration = Double(last.dropFirst().dropLast())
            else { continue }
            let ts = fields.first { $0.contains(".") && Double($0) != nil }.flatMap { Double($0) }
            let line = String(raw)
            if start == nil {
                if (line.contains("symlink(") || line.contains("symlinkat(")) && line.contains(".current.tmp-") {
                    guard let ts else { continue }
                    start = ts
                    sum = duration
                }
            } else if !renamed {
                if line.contains("rename") && line.contains(".current.tmp-") {
                    renamed = true
                    sum += duration
                }
            } else if end == nil && line.contains(" fsync(") {
                guard let ts else { continue }
                end = ts + duration
                sum += duration
            }
        }
        guard let start, let end else { return nil }
        return ((end - start) * 1000, sum * 1000)
    }

    /// MB/s (10^6 bytes per second) from `openssl speed -evp sha256 -bytes N`: the last figure
    /// of its `sha256` line, which is in thousands of bytes per second.
    public static func opensslSpeed(_ output: String) -> Double? {
        for line in output.split(separator: "\n").reversed() where line.lowercased().hasPrefix("sha256 ") {
            guard var v = line.split(separator: " ").last.map(String.init) else { continue }
            if v.hasSuffix("k") { v.removeLast() }
            if let x = Double(v) { return x * 1000 / 1e6 }
        }
        return nil
    }

    /// Compression and decompression MB/s and the ratio from `zstd -b`: the last complete
    /// progress line (`... (x3.1),  400.1 MB/s, 1200.2 MB/s`); lines are separated by `\r`.
    public static func zstdBench(_ output: String) -> (compress: Double, decompress: Double, ratio: Double)? {
        let lines = output.split(whereSeparator: { $0 == "\r" || $0 == "\n" })
        for line in lines.reversed() {
            let fields = line.split(separator: " ").map { String($0) }
            var speeds: [Double] = []
            for (i, f) in fields.enumerated() where f.hasPrefix("MB/s") && i > 0 {
                if let x = Double(fields[i - 1]) { speeds.append(x) }
            }
            guard speeds.count == 2, let open = line.range(of: "(x"), let close = line[open.upperBound...].firstIndex(of: ")"),
                let ratio = Double(line[open.upperBound..<close])
            else { continue }
            return (speeds[0], speeds[1], ratio)
        }
        return nil
    }

    /// `openssl dgst -sha256` lines (`SHA2-256(ROOT/path)= hex`) as `hex  path` lines with the
    /// `ROOT/` prefix taken off, sorted: the form of a bundle's SHA256SUMS.
    public static func normalizedSums(_ output: String, root: String) -> [String] {
        let prefix = root.hasSuffix("/") ? root : root + "/"
        var out: [String] = []
        for line in output.split(separator: "\n") {
            guard let open = line.firstIndex(of: "("), let close = line.range(of: ")= ", options: .backwards) else { continue }
            let algorithm = line[..<open]
            guard algorithm == "SHA2-256" || algorithm == "SHA256" else { continue }
            let hash = line[close.upperBound...]
            guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit }) else { continue }
            var path = String(line[line.index(after: open)..<close.lowerBound])
            if path.hasPrefix(prefix) { path.removeFirst(prefix.count) } else if path.hasPrefix("./") { path.removeFirst(2) }
            out.append("\(hash)  \(path)")
        }
        return out.sorted()
    }

    /// The members of a `tar -tv` listing: size and name (GNU tar's format: mode, owner, size,
    /// date, time, name). Folders end in `/`.
    public static func tarListing(_ output: String) -> [(size: Int, name: String)] {
        output.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6, let size = Int(f[2]) else { return nil }
            return (size, String(f[5]))
        }
    }

    /// The figure of `du -sk` (KiB) on its last line.
    public static func duKiB(_ output: String) -> Int? {
        output.split(separator: "\n").last.flatMap { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).first }.flatMap { Int($0) }
    }

    /// The bundle id (`sha256:` and 64 hex digits) found in a command's output, if any.
    public static func bundleIDs(_ output: String) -> Set<String> {
        var found: Set<String> = []
        var rest = output[...]
        while let r = rest.range(of: "sha256:") {
            let hex = rest[r.upperBound...].prefix(64)
            if hex.count == 64 && hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) { found.insert("sha256:" + hex) }
            rest = rest[r.upperBound...]
        }
        return found
    }
}

/// What `airlock install --json` reports.
public struct InstallReport: Equatable, Sendable {
    /// The release's folder name.
    public var release: String
    /// Files installed.
    public var files: Int
    /// Files taken from earlier releases.
    public var filesShared: Int
    /// Bytes written.
    public var bytesWritten: Int

    /// Reads the report from the command's standard output.
    public init?(json: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let release = object["release"] as? String,
            let files = (object["files"] as? NSNumber)?.intValue,
            let shared = (object["files_shared"] as? NSNumber)?.intValue,
            let written = (object["bytes_written"] as? NSNumber)?.intValue
        else { return nil }
        self.release = release
        self.files = files
        self.filesShared = shared
        self.bytesWritten = written
    }
}
