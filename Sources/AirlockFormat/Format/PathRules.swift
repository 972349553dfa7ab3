import Foundation

/// The path rules of the bundle format, applied alike by the packer and every reader.
public enum PathRules {
    /// Checks one path; returns the reason it is refused, or nil when it is acceptable.
    /// The length bounds (`BundleLayout.maxPathSegmentBytes`, `maxBundlePathBytes`) make every
    /// accepted path installable under a site root of up to 1024 bytes (format.md).
    public static func problem(with path: String) -> String? {
        let utf8 = path.utf8
        if utf8.isEmpty { return "empty path" }
        if utf8.count > BundleLayout.maxBundlePathBytes { return "path longer than \(BundleLayout.maxBundlePathBytes) bytes" }
        if utf8.first == UInt8(ascii: "/") { return "absolute path" }
        // Printable ASCII (the common case) is NFC and holds no control character: only the
        // byte rules are left, checked in one pass over the bytes.
        if let answer = asciiProblem(utf8) { return answer }
        return problemInFull(path)
    }

    /// The general rules, for any path (the empty, long and absolute cases are checked first).
    package static func problemInFull(_ path: String) -> String? {
        for scalar in path.unicodeScalars {
            if scalar == "\\" { return "backslash in path" }
            if scalar.value == 0 { return "NUL in path" }
            if scalar.properties.generalCategory == .control { return "control character in path" }
        }
        // Segments split on the byte '/', never on Characters: "/" followed by a combining mark
        // is one Character, and would hide a ".." segment from a Character split.
        for segment in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.isEmpty { return "empty path segment (a leading, doubled or trailing '/')" }
            if segment.elementsEqual(".".utf8) || segment.elementsEqual("..".utf8) {
                return "'\(String(decoding: segment, as: UTF8.self))' path segment"
            }
            if segment.count > BundleLayout.maxPathSegmentBytes {
                return "path segment longer than \(BundleLayout.maxPathSegmentBytes) bytes"
            }
        }
        if !isNFC(path) { return "path not in Unicode NFC form" }
        return nil
    }

    /// The verdict on a path of printable ASCII bytes (nil: not such a path, check it in full):
    /// the same answers, in the same order, as the general rules give.
    private static func asciiProblem(_ utf8: String.UTF8View) -> String?? {
        var segmentStart = true
        var segmentLength = 0
        var dots = 0
        for b in utf8 {
            guard b >= 0x20 && b < 0x7F else { return nil }
            if b == UInt8(ascii: "\\") { return .some("backslash in path") }
        }
        for b in utf8 {
            if b == UInt8(ascii: "/") {
                if segmentStart { return .some("empty path segment (a leading, doubled or trailing '/')") }
                if dots == segmentLength && dots <= 2 { return .some("'\(String(repeating: ".", count: dots))' path segment") }
                segmentStart = true
                segmentLength = 0
                dots = 0
                continue
            }
            segmentStart = false
            segmentLength += 1
            if b == UInt8(ascii: ".") { dots += 1 }
            if segmentLength > BundleLayout.maxPathSegmentBytes {
                return .some("path segment longer than \(BundleLayout.maxPathSegmentBytes) bytes")
            }
        }
        if segmentStart { return .some("empty path segment (a leading, doubled or trailing '/')") }
        if dots == segmentLength && dots <= 2 { return .some("'\(String(repeating: ".", count: dots))' path segment") }
        return .some(nil)
    }

    /// `path` split at its last '/' byte: the folder ("" when none) and the name.
    package static func splitLast(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return ("", path) }
        return (String(decoding: path.utf8[..<slash], as: UTF8.self), String(decoding: path.utf8[path.utf8.index(after: slash)...], as: UTF8.self))
    }

    /// Validates raw bytes as a UTF-8 path.
    public static func decode(_ bytes: some Collection<UInt8>) -> String? {
        String(validating: bytes, as: UTF8.self)
    }

    package static func isNFC(_ s: String) -> Bool {
        s.precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual(s.unicodeScalars)
    }

    /// The key two paths collide on in a case-insensitive file system.
    /// Lower-upper-lower catches the pairs a single mapping misses (ß and ẞ both become "ss").
    /// A path of ASCII without capitals is its own key, and shares its storage.
    package static func foldKey(_ s: String) -> String {
        if s.utf8.allSatisfy({ $0 < 0x80 && !(0x41...0x5A).contains($0) }) { return s }
        return s.precomposedStringWithCanonicalMapping.lowercased().uppercased().lowercased()
    }

    /// Checks a whole set of paths: no two equal after case folding, none both a file and a
    /// directory prefix of another. Returns the offending path and the reason.
    ///
    /// The folded keys are sorted by bytes (O(n log n) comparisons, 4 bytes of index a path,
    /// keys shared with the paths when folding changes nothing): equal keys are then
    /// neighbours, and the paths under a folder `F/` are one run, found by binary search.
    /// However deep the paths, nothing is built per prefix.
    public static func setProblem(with paths: [String]) -> (path: String, reason: String)? {
        let keys = paths.map(foldKey)
        // A manifest is sorted by path bytes, and a path of ASCII without capitals is its own
        // key: the keys are then already in strictly increasing order, with no sort to do.
        let presorted = keys.indices.dropFirst().allSatisfy { precedes(keys[$0 - 1], keys[$0]) }
        let order =
            presorted
            ? Array(0..<Int32(keys.count))
            : (0..<Int32(keys.count)).sorted { a, b in
                let x = keys[Int(a)], y = keys[Int(b)]
                return x.utf8.elementsEqual(y.utf8) ? a < b : precedes(x, y)
            }
        for k in order.indices.dropFirst() {
            let first = Int(order[k - 1]), second = Int(order[k])
            if keys[first].utf8.elementsEqual(keys[second].utf8) {
                return (paths[second], paths[first] == paths[second] ? "duplicate path" : "differs from \(paths[first]) only by letter case")
            }
        }
        for k in order.indices {
            let file = Int(order[k])
            let prefix = keys[file] + "/"
            var lo = k + 1, hi = order.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if precedes(keys[Int(order[mid])], prefix) { lo = mid + 1 } else { hi = mid }
            }
            if lo < order.count, keys[Int(order[lo])].utf8.starts(with: prefix.utf8) {
                return (paths[file], "is a file and also a folder of \(paths[Int(order[lo])])")
            }
        }
        return nil
    }

    /// True when `a` sorts before `b` by UTF-8 bytes (the order the format uses everywhere).
    /// Native strings are compared with `memcmp`.
    public static func precedes(_ a: String, _ b: String) -> Bool {
        let fast: Bool?? = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y in
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
                return c != 0 ? c < 0 : x.count < y.count
            }
        }
        if case .some(.some(let r)) = fast { return r }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
