import Foundation
import Testing

/// Rules of the code base that the compiler does not check (docs/architecture.md): C functions
/// are reached through declared headers, and the file-system calls go through the `Internal/`
/// layers, which retry `EINTR` in one place.
@Suite struct SourceRulesTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources")

    /// Every Swift file under Sources/, with its path relative to Sources/ and its lines of
    /// code: comment lines and the text of multi-line string literals are left out.
    static func files() throws -> [(path: String, lines: [String])] {
        var out: [(String, [String])] = []
        let e = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let url as URL in e where url.pathExtension == "swift" {
            let rel = String(url.path.dropFirst(sources.path.count + 1))
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var code: [String] = []
            var inText = false
            for line in lines {
                let quotes = line.components(separatedBy: "\"\"\"").count - 1
                if inText || line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                    code.append("")
                } else {
                    code.append(line)
                }
                if quotes % 2 == 1 { inText.toggle() }
            }
            out.append((rel, code))
        }
        #expect(out.count > 50)
        return out
    }

    @Test func noSilgenName() throws {
        let offenders = try Self.files().filter { $0.lines.contains { $0.contains("@_silgen_name") } }.map(\.path)
        #expect(offenders.isEmpty, "@_silgen_name in \(offenders)")
    }

    @Test func fileSystemCallsOnlyInInternal() throws {
        let call = try Regex(#"(^|[^.A-Za-z_])(open|openat|link|linkat|rename|renameat|mkdir|mkdirat|symlink|symlinkat|unlink|unlinkat)\("#)
        let declaration = try Regex(#"func (open|link|rename|mkdir|symlink|unlink)[a-z]*\("#)
        var offenders: [String] = []
        for (path, lines) in try Self.files() where !path.contains("/Internal/") {
            for (i, line) in lines.enumerated() {
                // Text in quotes (a message, strace output the benchmark reads) is not a call.
                let code = line.replacing(try Regex(#""[^"]*""#), with: "\"\"")
                if code.contains(call) && !code.contains(declaration) {
                    offenders.append("\(path):\(i + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        #expect(offenders.isEmpty, "file-system calls outside Internal/:\n\(offenders.joined(separator: "\n"))")
    }
}
