import AirlockFormat
import AirlockKit
import ArgumentParser

extension TrustCommand {
    struct Add: SiteCommand {
        static let configuration = CommandConfiguration(abstract: "Trust a public key (stored as <keyid>.pub).")
        @Argument var key: String
        @Flag(name: .long, help: "Add a site approver key (approves activations that widen permissions) rather than a signer.")
        var approver = false
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let k = try SiteAdmin.trustAdd(site: siteOptions.site, keyFile: key, approver: approver, lockTimeout: siteOptions.lockTimeout)
            if approver {
                Output.say("added approver \(k.id) (\(k.algorithm.rawValue))")
            } else {
                Output.say("trusted \(k.id) (\(k.algorithm.rawValue)); check it against the id the vendor published")
            }
        }
    }
}
