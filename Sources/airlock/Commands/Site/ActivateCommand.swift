import AirlockFormat
import AirlockKit
import ArgumentParser

struct ActivateCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "activate", abstract: "Switch current to an installed release (pushes it on the activation stack).")

    @Argument var name: String
    @Argument(help: "Release folder name, version, or unique bundle id prefix.")
    var release: String

    @Option(name: .long, help: "Health check command to run against the new current; on failure Airlock switches back.")
    var check: String?

    @Option(name: .long, help: "Seconds the health check may take (default 30).")
    var checkTimeout: Double = 30

    @OptionGroup var egress: EgressOptions

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try Activation.activate(
            site: siteOptions.site, name: name, release: release, check: check.map { HealthCheck(command: $0, timeoutSeconds: checkTimeout) },
            allowEgress: try egress.endpoints(), lockTimeout: siteOptions.lockTimeout)
        Output.say("\(name): current -> \(dir)")
    }
}
