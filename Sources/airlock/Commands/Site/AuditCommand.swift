import AirlockFormat
import AirlockKit
import ArgumentParser

struct AuditCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Re-hash an installed release against its manifest; exit 1 on any drift.")
    @Argument var name: String
    @Argument(help: "Release (default: current).")
    var release: String?
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let r = try SiteAdmin.audit(site: siteOptions.site, name: name, release: release)
        if output.json {
            Output.json(r.json)
        } else {
            Output.say("\(r.clean ? "OK" : "DRIFT") \(name) \(r.release): \(r.filesChecked) files checked")
            for p in r.modified { Output.say("  modified: \(p)") }
            for p in r.missing { Output.say("  missing: \(p)") }
            for p in r.extra { Output.say("  extra: \(p)") }
            for p in r.modeChanged { Output.say("  mode changed: \(p)") }
        }
        if !r.clean {
            Output.error(
                AirlockError(
                    .drift, .drift,
                    "\(name) \(r.release) differs from its manifest; restore it with `airlock install BUNDLE --repair` (its bundle id is in `airlock status`)"),
                verbose: false)
            throw ExitCode(ExitCodes.verification)
        }
    }
}
