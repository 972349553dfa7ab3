import Foundation
import Testing

@testable import AirlockFormat

/// The error codes are a contract (docs/cli.md): every one is a constant of `ErrorCode`, and
/// every constant is documented.
@Suite struct ErrorCodeDocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyCodeIsDocumentedInTheCLIReference() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/cli.md"), encoding: .utf8)
        let missing = ErrorCode.allCases.filter { !doc.contains("`\($0.rawValue)`") }
        #expect(missing.isEmpty, "error codes missing from docs/cli.md: \(missing.map(\.rawValue).joined(separator: ", "))")
        #expect(Set(ErrorCode.allCases.map(\.rawValue)).count == ErrorCode.allCases.count)
    }

    /// No error is made from a string: `AirlockError(kind, "code", ...)`, `.io("code", ...)` and
    /// `.verification("code", ...)` with a literal would be a code the enum (and the docs) do not
    /// know.
    @Test func noErrorIsMadeFromAStringLiteral() throws {
        let sources = Self.root.appendingPathComponent("Sources")
        let literal = try Regex(#"AirlockError\(\s*\.[a-zA-Z]+,\s*""#)
        let helper = try Regex(#"\.(io|verification)\(\s*""#)
        var offenders: [String] = []
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let url as URL in files where url.pathExtension == "swift" {
            let text = try String(contentsOf: url, encoding: .utf8)
            if text.contains(literal) || text.contains(helper) { offenders.append(url.lastPathComponent) }
        }
        #expect(offenders.isEmpty, "errors made from a string literal in: \(offenders.joined(separator: ", "))")
        #expect(ErrorCode.allCases.count > 100)
    }
}
