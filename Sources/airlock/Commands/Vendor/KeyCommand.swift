import AirlockFormat
import AirlockKit
import ArgumentParser

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Generate signing keys and show key ids.", subcommands: [Generate.self, ID.self])

}
