import AirlockFormat
import AirlockKit

#if canImport(Glibc)
import Glibc
#endif

enum Output {
    static func stderr(_ s: some StringProtocol) {
        let line = String(s) + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }

    static func error(_ e: AirlockError, verbose: Bool) {
        stderr("error: \(safe(e.message))")
        if verbose, let cause = e.cause { stderr("  cause: \(safe(cause))") }
    }

    /// `s` with every control character (newlines and terminal escapes included) written as
    /// `\u{..}`: text from a bundle can never forge a line or drive the terminal.
    static func safe(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Prints one line of human output, made safe.
    static func say(_ s: String) { print(safe(s)) }

    /// Prints text of several lines (a table, an alert), each line made safe.
    static func lines(_ s: String) {
        for line in s.split(separator: "\n", omittingEmptySubsequences: false) { say(String(line)) }
    }

    static func json(_ v: JSONValue) { print(CanonicalJSON.pretty(v)) }

    /// Prints a library result's documented JSON form.
    static func json(_ r: some JSONRepresentable) { json(r.json) }

    static func short(_ d: SHA256Digest) -> String { "sha256:" + d.hex.prefix(12) }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}
