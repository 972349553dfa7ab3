import AirlockFormat
import AirlockKit
import ArgumentParser

struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust", abstract: "Manage the site's trust store.", subcommands: [Add.self, List.self, Remove.self, Allow.self, Disallow.self])
}
