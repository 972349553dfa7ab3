import AirlockFormat
import AirlockKit
import AirlockRegistry
import ArgumentParser

struct InstallCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Verify a bundle and install it beside the releases already on the site.",
        discussion: """
            `-` reads the bundle from standard input (e.g. `cat bundle.part-* | airlock install -`). \
            oci://HOST[:PORT]/REPOSITORY:TAG (or @sha256:DIGEST) streams it from a registry into the same \
            one-pass verifier and installer, with no copy on disk; the layer's digest must match its \
            manifest's before the release is committed (docs/registry.md).
            """)

    @Argument(help: "The bundle file, - for standard input, or oci://HOST/REPOSITORY:TAG.")
    var bundle: String

    @Flag(name: .long, help: "Switch current to it once installed.")
    var activate = false

    @Option(name: .long, help: "A detached signature file (repeatable).")
    var signature: [String] = []

    @Flag(name: .long, help: "Allow a lower sequence than the highest installed (logged).")
    var allowDowngrade = false

    @Flag(name: .long, help: "For a release already installed: verify the bundle again and restore every file from it (after `audit` found drift).")
    var repair = false

    @Option(name: .long, help: "With --activate: a health check command to run against the new current.")
    var check: String?

    @Option(name: .long, help: "Seconds the health check may take (default 30).")
    var checkTimeout: Double = 30

    @OptionGroup var egress: EgressOptions

    @Option(name: .long, help: "Seconds a read from a pipe (`-`) may wait for data before the install fails (default 60; 0: no limit).")
    var readTimeout: Double = 60

    @OptionGroup var registry: RegistryFlags
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        var o = InstallOptions()
        o.allowEgress = try egress.endpoints()
        o.activate = activate
        o.detached = try signature.map { try DetachedSignature.load(path: $0) }
        o.allowDowngrade = allowDowngrade
        o.repair = repair
        o.lockTimeout = siteOptions.lockTimeout
        o.readTimeout = readTimeout
        o.check = check.map { HealthCheck(command: $0, timeoutSeconds: checkTimeout) }
        let r: InstallResult
        if RegistryReference.isRegistry(bundle) {
            let reference = try RegistryReference.parse(bundle)
            r = try registry.withClient(reference, site: siteOptions.site) { client in
                let (stream, reader) = try RegistryBundleStream.open(reference, client: client)
                do {
                    let r = try Installer.install(reader: reader, site: siteOptions.site, options: o)
                    reader.close()
                    return r
                } catch {
                    // The download stops once the reader is closed; then its outcome is known.
                    reader.close()
                    throw stream.outcome(of: error)
                }
            }
        } else {
            r = try Installer.install(bundle: bundle, site: siteOptions.site, options: o)
        }
        if output.json {
            Output.json(r)
            return
        }
        for a in r.allowances { Output.say("allowed by --allow-egress: \(a.who) reaches \(a.endpoint), outside the perimeter (recorded)") }
        if r.alreadyInstalled && repair {
            Output.say("repaired \(r.name) \(r.release) (\(r.bundleID.prefixed)) from its bundle: \(r.files) files verified and restored")
        } else if r.alreadyInstalled {
            Output.say("\(r.name) \(r.release) is already installed (\(r.bundleID.prefixed)); nothing copied")
        } else {
            Output.say(
                "installed \(r.name) \(r.release) (\(r.bundleID.prefixed)): \(r.files) files, \(r.filesShared) shared with earlier releases, \(ByteCount.format(r.bytesWritten)) written"
            )
        }
        if r.activated { Output.say("current -> \(r.release)") }
    }

}
