import AirlockFormat
import AirlockKit
import ArgumentParser

/// The root command: its subcommands, grouped as `airlock --help` shows them.
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
        groupedSubcommands: [
            CommandGroup(
                name: "Vendor and auditor (bundle files)",
                subcommands: [
                    KeyCommand.self, PackCommand.self, SignCommand.self, VerifyCommand.self, InspectCommand.self, DiffCommand.self, SBOMCommand.self,
                ]),
            CommandGroup(
                name: "Site (installed releases, --root)",
                subcommands: [
                    InstallCommand.self, ActivateCommand.self, RollbackCommand.self, StatusCommand.self, HistoryCommand.self, PinCommand.self,
                    UnpinCommand.self, RemoveCommand.self, GCCommand.self, AuditCommand.self, ServeCommand.self,
                ]),
            CommandGroup(
                name: "Rollouts (airlock serve's canaries, breakers, alerts, recordings and replays)",
                subcommands: [CanaryCommand.self, BreakerCommand.self, AlertsCommand.self, RecordCommand.self, ReplayCommand.self]),
            CommandGroup(name: "Registries (bundles through a site's OCI registry)", subcommands: [PushCommand.self, PullCommand.self]),
            CommandGroup(name: "Site trust and governance", subcommands: [TrustCommand.self, ApproveCommand.self, EvidenceCommand.self]),
        ]
    )
}

/// A command that runs (not a group): it takes the global options.
protocol AirlockCommand: ParsableCommand {
    var global: GlobalOptions { get }
}

extension Airlock {
    /// When the command line names a command that does not exist (`airlock serve --help`),
    /// the message that says so; nil when every word before the first option is a command.
    static func unknownCommand(_ arguments: [String]) -> String? {
        var command: ParsableCommand.Type = Airlock.self
        var path = ["airlock"]
        for word in arguments {
            if word.hasPrefix("-") || word == "help" { return nil }
            let subcommands = command.configuration.subcommands
            if subcommands.isEmpty { return nil }
            guard let next = subcommands.first(where: { $0._commandName == word }) else {
                let names = subcommands.map { $0._commandName }.joined(separator: ", ")
                return
                    "`\(path.joined(separator: " "))` has no command \(word); its commands are \(names) (`\(path.joined(separator: " ")) --help` describes them)"
            }
            command = next
            path.append(word)
        }
        return nil
    }
}
