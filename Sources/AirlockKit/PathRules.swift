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
    static func foldKey(_ s: String) -> String {
        s.precomposedStringWithCanonicalMapping.uppercased().lowercased()
    }

    /// Checks a whole set of paths: no two equal after case folding, none both a file and a
    /// directory prefix of another. Returns the offending path and the reason.
    public static func setProblem(with paths: [String]) -> (path: String, reason: String)? {
        var files: [String: String] = [:]
        files.reserveCapacity(paths.count)
        for p in paths {
            let k = foldKey(p)
            if let other = files.updateValue(p, forKey: k) {
                return (p, other == p ? "duplicate path" : "differs from \(other) only by letter case")
            }
        }
        var seenDirs = Set<String>()
        for p in paths {
            var prefix = Substring("")
            let segments = p.split(separator: "/", omittingEmptySubsequences: false)
            for seg in segments.dropLast() {
                prefix = prefix.isEmpty ? seg : Substring(prefix + "/" + seg)
                let k = foldKey(String(prefix))
                if !seenDirs.insert(k).inserted { continue }
                if let file = files[k] { return (file, "is a file and also a folder of \(p)") }
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
