import AirlockFormat
import AirlockKit
import ArgumentParser

struct ApproveCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a release whose permissions widen, with a site approver key.",
        discussion: """
            TARGET is a bundle file (verified in full against the site's trust store first), or NAME RELEASE \
            for an installed release. The approval is a signature over the bundle id; `activate` needs it when \
            the release grants more than the current one. What widens is shown before it is signed (docs/site.md).
            """)

    @Argument(help: "A bundle file, or the NAME of an installed release.")
    var target: String

    @Argument(help: "With NAME: the release (folder, version or bundle id prefix).")
    var release: String?

    @Option(name: .long, help: "The approver's private key.")
    var key: String

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let r = try ApprovalStore.approve(
            release.map { .installed(name: target, release: $0) } ?? .bundle(target), site: siteOptions.site, keyFile: key,
            lockTimeout: siteOptions.lockTimeout)
        if output.json {
            Output.json(r)
            return
        }
        Output.say("approved \(r.label) (\(r.bundleID.prefixed)) with approver key \(r.approver.prefix(16))...")
        if r.widens.isEmpty {
            Output.say("  it grants nothing beyond the current release of \(r.name)")
        } else {
            Output.say("  beyond the current release of \(r.name), it grants:")
            for w in r.widens { Output.say("  + \(w)") }
        }
    }
}
