import Foundation

/// The path rules of the bundle format, applied alike by the packer and every reader.
public enum PathRules {
    /// Checks one path; returns the reason it is refused, or nil when it is acceptable.
    public static func problem(with path: String) -> String? {
        let utf8 = path.utf8
        if utf8.isEmpty { return "empty path" }
        if utf8.count > BundleLayout.maxPathBytes { return "path longer than \(BundleLayout.maxPathBytes) bytes" }
        if utf8.first == UInt8(ascii: "/") { return "absolute path" }
        for scalar in path.unicodeScalars {
            if scalar == "\\" { return "backslash in path" }
            if scalar.value == 0 { return "NUL in path" }
            if scalar.properties.generalCategory == .control { return "control character in path" }
        }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { return "empty path segment (a leading, doubled or trailing '/')" }
            if segment == "." || segment == ".." { return "'\(segment)' path segment" }
        }
        if !isNFC(path) { return "path not in Unicode NFC form" }
        return nil
    }

    /// Validates raw bytes as a UTF-8 path.
    public static func decode(_ bytes: some Collection<UInt8>) -> String? {
        String(validating: bytes, as: UTF8.self)
    }

    static func isNFC(_ s: String) -> Bool {
        s.precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual(s.unicodeScalars)
    }

    /// The key two paths collide on in a case-insensitive file system.
    /// Lower-upper-lower catches the pairs a single mapping misses (ß and ẞ both become "ss").
    static func foldKey(_ s: String) -> String {
        s.precomposedStringWithCanonicalMapping.lowercased().uppercased().lowercased()
    }

    /// Checks a whole set of paths: no two equal after case folding, none both a file and a
    /// directory prefix of another. Returns the offending path and the reason. Linear in the
    /// total number of path segments (each path is folded once, folders are tree nodes).
    public static func setProblem(with paths: [String]) -> (path: String, reason: String)? {
        var tree = PathTree()
        for (index, p) in paths.enumerated() {
            switch tree.insertFile(foldKey(p), index: index) {
            case .none: continue
            case .some(.fileExists(let other)):
                return (p, paths[other] == p ? "duplicate path" : "differs from \(paths[other]) only by letter case")
            case .some(.folderExists):
                return (p, "is a file and also a folder of another path")
            case .some(.fileInTheWay(let other)):
                return (paths[other], "is a file and also a folder of \(p)")
            }
        }
        return nil
    }

    /// True when `a` sorts before `b` by UTF-8 bytes (the order the format uses everywhere).
    @inlinable
    public static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}

/// Paths as a tree of segments: memory and time linear in the total number of segments, however
/// deep the paths (a 4 KiB path of one-letter folders has 2,048 prefixes).
struct PathTree {
    enum Conflict: Equatable {
        /// The path is already a file (index of that file).
        case fileExists(Int)
        /// The path is already a folder of another path.
        case folderExists
        /// A folder of the path is already a file (index of that file).
        case fileInTheWay(Int)
    }

    /// A segment is kept as its own String: short ones (most) are stored inline, and no key
    /// keeps a whole path alive.
    private struct Key: Hashable {
        var parent: Int32
        var name: String
    }

    private var children: [Key: Int] = [:]
    /// Per node: the file index, or -1 for a folder. Node 0 is the root.
    private var files: [Int] = [-1]
    /// Per node: whether `markFolder` has seen it.
    private var marked: [Bool] = [false]

    /// Adds a file path; its folders become folder nodes.
    mutating func insertFile(_ path: String, index: Int) -> Conflict? {
        var node = 0
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for (k, seg) in segments.enumerated() {
            let last = k == segments.count - 1
            if let child = children[Key(parent: Int32(node), name: String(seg))] {
                if files[child] >= 0 { return last ? .fileExists(files[child]) : .fileInTheWay(files[child]) }
                if last { return .folderExists }
                node = child
            } else {
                let child = files.count
                files.append(last ? index : -1)
                marked.append(false)
                children[Key(parent: Int32(node), name: String(seg))] = child
                node = child
            }
        }
        return nil
    }

    /// The folder node for `path` (`""` is the root), or nil when it is not a folder of any file.
    func folder(_ path: Substring) -> Int? {
        var node = 0
        if path.isEmpty { return 0 }
        for seg in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard let child = children[Key(parent: Int32(node), name: String(seg))], files[child] < 0 else { return nil }
            node = child
        }
        return node
    }

    /// Marks a folder node; false when it was marked before.
    mutating func markFolder(_ node: Int) -> Bool {
        if marked[node] { return false }
        marked[node] = true
        return true
    }
}
