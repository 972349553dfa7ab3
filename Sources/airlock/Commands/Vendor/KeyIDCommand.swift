import AirlockFormat
import AirlockKit
import ArgumentParser

extension KeyCommand {
    struct ID: AirlockCommand {
        static let configuration = CommandConfiguration(commandName: "id", abstract: "Print the key id of a PEM public or private key.")

        @Argument(help: "A PEM public or private key file.")
        var file: String

        @OptionGroup var global: GlobalOptions

        func run() throws {
            print(try keyID(ofKeyFile: file).id)
        }
    }
}
