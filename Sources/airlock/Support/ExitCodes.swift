import AirlockFormat

/// The exit status of each kind of failure (docs/cli.md).
enum ExitCodes {
    static let verification: Int32 = 1
    static let usage: Int32 = 2
    static let io: Int32 = 3
    static let policy: Int32 = 4
    static let invalidRelease: Int32 = 5
    static let key: Int32 = 6
    static let busy: Int32 = 7
    static let healthCheck: Int32 = 8
    static let `internal`: Int32 = 70

    static func code(for kind: AirlockError.Kind) -> Int32 {
        switch kind {
        case .verification: return verification
        case .usage: return usage
        case .io: return io
        case .policy: return policy
        case .invalidRelease: return invalidRelease
        case .key: return key
        case .busy: return busy
        case .healthCheck: return healthCheck
        case .drift: return verification
        case .internal: return `internal`
        }
    }
}
