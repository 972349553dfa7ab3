/// The one error type of Airlock: a class of failure (which decides the exit code), a stable
/// code that tests and `--json` output name, a message that says what happened and what to do,
/// and the underlying cause when there is one.
public struct AirlockError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The class of failure. Each maps to one documented exit code of the CLI.
    public enum Kind: String, Sendable, Equatable {
        /// The bundle is malformed, tampered with, or its signatures do not meet the trust policy.
        case verification
        /// Bad arguments or input the user gave on the command line.
        case usage
        /// A file could not be read or written (missing, permissions, disk full).
        case io
        /// A trustworthy input that policy refuses (expired bundle, downgrade, ...).
        case policy
        /// The release directory or its `airlock.yaml` cannot be packed as it is.
        case invalidRelease
        /// A key or trust store that cannot be used.
        case key
        /// Another command holds the site lock.
        case busy
        /// A health check failed after a switch; Airlock switched back.
        case healthCheck
        /// `audit` found installed files that differ from their manifest.
        case drift
        /// A bug or an environment Airlock cannot work in.
        case `internal`
    }

    /// The class of failure, which decides the exit code.
    public var kind: Kind
    /// A stable identifier, e.g. `payload-hash-mismatch` (an `ErrorCode`). Documented in docs/cli.md.
    public var code: String
    /// What happened and what to do, for people.
    public var message: String
    /// The underlying cause (e.g. the `strerror` text or the OpenSSL error queue); nil when there is none.
    public var cause: String?

    /// An error of `kind` with the documented `code`.
    public init(_ kind: Kind, _ code: ErrorCode, _ message: String, cause: String? = nil) {
        self.init(kind, code.rawValue, message, cause: cause)
    }

    /// An error with a code given as text: for an error that keeps the code of another (with a
    /// new message), and for tests. Airlock's own errors use an `ErrorCode`.
    package init(_ kind: Kind, _ code: String, _ message: String, cause: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// The message, then the cause in parentheses when there is one.
    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }

    package static func verification(_ code: ErrorCode, _ message: String, cause: String? = nil) -> AirlockError {
        AirlockError(.verification, code, message, cause: cause)
    }

    package static func io(_ code: ErrorCode, _ message: String, errno err: Int32? = nil) -> AirlockError {
        AirlockError(.io, code, message, cause: err.map { String(cString: strerror($0)) })
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
