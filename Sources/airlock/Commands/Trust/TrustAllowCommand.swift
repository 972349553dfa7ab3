import AirlockFormat
import AirlockKit
import ArgumentParser

extension TrustCommand {
    struct Allow: SiteCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add hosts or networks to the site's perimeter (what releases may reach).",
            discussion:
                "ENTRY is host[:port] (kb.internal:443), *.suffix[:port] (*.corp.internal) or a CIDR block (10.0.0.0/8). An empty perimeter, the default, allows nothing."
        )
        @Argument(help: "host[:port], *.suffix[:port] or CIDR.") var entries: [String]
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let p = try SiteAdmin.perimeter(site: siteOptions.site, entries: entries, lockTimeout: siteOptions.lockTimeout)
            Output.say("perimeter: \((p.hosts + p.networks).joined(separator: ", "))")
        }
    }
}
