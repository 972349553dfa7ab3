import AirlockFormat
import AirlockKit
import ArgumentParser

struct Airlock: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airlock",
        abstract: "Signed, content-addressed releases of AI agents for networks the internet cannot reach.",
        discussion: """
            Exit codes: 0 success, 1 verification or trust failure, 2 usage, 3 I/O error, \
            4 refused by policy (expired bundle, downgrade, ...), 5 release refused at pack time, \
            6 unusable key or trust store, 7 site busy (another command holds the lock), \
            8 health check failed (switched back), 70 internal error. See docs/cli.md.
            """,
        version: BundleLayout.toolVersion,
        subcommands: [
            KeyCommand.self, PackCommand.self, SignCommand.self, VerifyCommand.self, InspectCommand.self, DiffCommand.self,
            InstallCommand.self, ActivateCommand.self, RollbackCommand.self, StatusCommand.self, HistoryCommand.self,
            PinCommand.self, UnpinCommand.self, RemoveCommand.self, GCCommand.self, AuditCommand.self, TrustCommand.self, ApproveCommand.self, EvidenceCommand.self, SBOMCommand.self,
        ]
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Flag(help: "On failure, also print the underlying cause.")
    var verbose = false
}

struct JSONOption: ParsableArguments {
    @Flag(help: "Print machine-readable JSON (documented in docs/cli.md) instead of text.")
    var json = false
}

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
