import AirlockFormat
import AirlockKit
import ArgumentParser

struct UnpinCommand: SiteCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Let gc remove a release again.")
    @OptionGroup var target: ReleaseArguments
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try SiteAdmin.setPinned(false, site: siteOptions.site, name: target.name, release: target.release, lockTimeout: siteOptions.lockTimeout)
        Output.say("\(target.name): unpinned \(dir)")
    }
}
