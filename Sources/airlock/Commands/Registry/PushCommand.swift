import AirlockFormat
import AirlockKit
import AirlockRegistry
import ArgumentParser

struct PushCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Store a bundle in an OCI registry, as an artifact sites pull and install.",
        discussion: """
            The image manifest's config is the bundle's signed manifest.json and its one layer is the \
            bundle file, streamed from disk. The tag defaults to the release version (a delta bundle: \
            VERSION-delta-BASEID12). Prints the digest that pins exactly what was pushed. See docs/registry.md.
            """)

    @Argument(help: "The bundle file.")
    var bundle: String

    @Argument(help: "Where: [oci://]HOST[:PORT]/REPOSITORY[:TAG].")
    var reference: String

    @OptionGroup var base: DeltaBaseFlags
    @OptionGroup var registry: RegistryFlags
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let target = try RegistryReference.parse(reference)
        let r = try registry.withClient(target) { client in
            try Registry.blocking { try await Registry.push(bundle: bundle, to: target, client: client, baseManifest: base.lookup) }
        }
        if output.json {
            Output.json(r)
            return
        }
        var pinned = r.reference
        pinned.digest = r.digest
        Output.say("pushed \(r.name) \(r.version) (sequence \(r.sequence), \(r.bundleID.prefixed)) to \(r.reference)")
        if let base = r.deltaBase { Output.say("  delta bundle of \(base.prefixed): a site installs it over that release") }
        Output.say("  layer  \(r.layer.digest.prefixed) \(ByteCount.format(r.layer.size)) (\(r.layer.mediaType))")
        Output.say("  pinned \(pinned)")
    }
}
