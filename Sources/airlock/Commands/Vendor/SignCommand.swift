import AirlockFormat
import AirlockKit
import ArgumentParser

struct SignCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Write a detached signature over a bundle's manifest, for a second signer.",
        discussion: "Give it to verify or install with --signature FILE. Verify the bundle before you sign it: signing says you vouch for it.")

    @Argument(help: "The bundle to sign.")
    var bundle: String

    @Option(name: .long, help: "The private key to sign with.")
    var key: String

    @Option(name: .long, help: "Where to write the raw signature.")
    var out: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let k = try PrivateKey.load(path: key)
        let summary = try Signer.writeDetached(bundle: bundle, key: k, to: out)
        print("signed \(summary.manifest.name) \(summary.manifest.version) \(summary.bundleID.prefixed) with key \(k.id)")
        print("  signature  \(out)")
    }
}
