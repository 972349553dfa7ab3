import AirlockFormat
import AirlockKit
import ArgumentParser

extension TrustCommand {
    struct Disallow: SiteCommand {
        static let configuration = CommandConfiguration(abstract: "Remove hosts or networks from the site's perimeter.")
        @Argument(help: "Entries as they were added.") var entries: [String]
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let p = try SiteAdmin.perimeter(site: siteOptions.site, entries: entries, remove: true, lockTimeout: siteOptions.lockTimeout)
            let all = p.hosts + p.networks
            Output.say("perimeter: \(all.isEmpty ? "empty (no release may reach any endpoint)" : all.joined(separator: ", "))")
        }
    }
}
