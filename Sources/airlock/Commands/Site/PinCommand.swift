import AirlockFormat
import AirlockKit
import ArgumentParser

struct PinCommand: SiteCommand {
    static let configuration = CommandConfiguration(commandName: "pin", abstract: "Keep a release through gc.")
    @OptionGroup var target: ReleaseArguments
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try SiteAdmin.setPinned(true, site: siteOptions.site, name: target.name, release: target.release, lockTimeout: siteOptions.lockTimeout)
        Output.say("\(target.name): pinned \(dir)")
    }
}
