import AirlockFormat
import AirlockKit
import ArgumentParser

struct GCCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Remove old releases (keeping the newest, current, the rollback target and pinned ones) and unused content.")
    @Argument var name: String?
    @Option(name: .long, help: "Newest releases to keep per name (default 3).")
    var keep: Int = 3
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws { if keep < 0 { throw ValidationError("--keep must be 0 or more") } }

    func run() throws {
        let r = try SiteAdmin.gc(site: siteOptions.site, name: name, keep: keep, lockTimeout: siteOptions.lockTimeout)
        for (n, d) in r.removed { Output.say("removed \(n) \(d)") }
        Output.say("gc: \(r.removed.count) releases and \(r.objectsRemoved) unused objects removed, \(ByteCount.format(r.bytesFreed)) freed")
    }
}
