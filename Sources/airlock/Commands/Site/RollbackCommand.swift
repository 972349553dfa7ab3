import AirlockFormat
import AirlockKit
import ArgumentParser

struct RollbackCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Switch current back to the release active before it (pops the activation stack).")

    @Argument var name: String

    @Option(name: .long, help: "Activate this release instead of the previous one.")
    var to: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --to a release not on the activation stack: allow it to reach this endpoint outside the perimeter (repeatable; recorded).",
            valueName: "host:port"))
    var allowEgress: [String] = []

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let r = try Activation.rollback(
            site: siteOptions.site, name: name, to: to, allowEgress: try parseEndpoints(allowEgress), lockTimeout: siteOptions.lockTimeout)
        Output.say("\(name): current -> \(r.to) (was \(r.from ?? "nothing"))")
    }
}
