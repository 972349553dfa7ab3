import AirlockFormat
import AirlockKit
import ArgumentParser

struct StatusCommand: SiteCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show installed releases, current and rollback targets.")

    @Argument var name: String?
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let status = try SiteAdmin.siteStatus(site: siteOptions.site, name: name)
        let all = status.names
        if output.json {
            Output.json(status)
            return
        }
        if all.isEmpty { Output.say("no release is installed at \(siteOptions.site.root)") }
        for s in all {
            Output.say("\(s.name): current \(s.current ?? "none"), rollback target \(s.rollbackTarget ?? "none")")
            for r in s.releases {
                var marks: [String] = []
                if r.directory == s.current { marks.append("current") }
                if r.directory == s.rollbackTarget { marks.append("rollback target") }
                if r.pinned { marks.append("pinned") }
                Output.say(
                    "  \(r.directory == s.current ? "*" : " ") \(Output.pad(r.directory, 28)) seq \(r.sequence)  \(Output.short(r.bundleID))  \(ByteCount.format(r.bytes))  installed \(r.installedAt ?? "?")\(marks.isEmpty ? "" : "  [" + marks.joined(separator: ", ") + "]")"
                )
            }
        }
    }
}
