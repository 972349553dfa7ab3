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
        stderr("error: \(e.message)")
        if verbose, let cause = e.cause { stderr("  cause: \(cause)") }
    }

    static func json(_ v: JSONValue) { print(CanonicalJSON.pretty(v)) }

    static func short(_ d: SHA256Digest) -> String { "sha256:" + d.hex.prefix(12) }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}
