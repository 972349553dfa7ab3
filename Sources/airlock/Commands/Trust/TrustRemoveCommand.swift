import AirlockFormat
import AirlockKit
import ArgumentParser

extension TrustCommand {
    struct Remove: SiteCommand {
        static let configuration = CommandConfiguration(abstract: "Stop trusting a key (by id or unique id prefix).")
        @Argument var keyID: String
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let id = try SiteAdmin.trustRemove(site: siteOptions.site, keyID: keyID, lockTimeout: siteOptions.lockTimeout)
            Output.say("removed \(id) from the trust store")
        }
    }
}
