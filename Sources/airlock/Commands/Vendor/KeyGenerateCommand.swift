import AirlockFormat
import AirlockKit
import ArgumentParser

extension KeyCommand {
    struct Generate: AirlockCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SubjectPublicKeyInfo PEM).")

        @Option(name: .long, help: "Path prefix of the two files to write.")
        var out: String

        @Option(name: .long, help: "ed25519 (default) or p256 (ECDSA P-256 with SHA-256).")
        var algorithm: KeyAlgorithm = .ed25519

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let key = try PrivateKey.generate(algorithm)
            try key.write(prefix: out)
            print(key.id)
            Output.stderr("wrote \(out).key (private, keep it secret) and \(out).pub (give it to the sites that trust you)")
        }
    }
}
