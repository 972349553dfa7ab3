import AirlockFormat
import AirlockKit
import ArgumentParser

struct RemoveCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove an installed release (never current, the rollback target or a pinned one).")
    @OptionGroup var target: ReleaseArguments
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try SiteAdmin.remove(site: siteOptions.site, name: target.name, release: target.release, lockTimeout: siteOptions.lockTimeout)
        Output.say("\(target.name): removed \(dir) (run `airlock gc` to free content no release uses)")
    }
}
