import AirlockFormat
import AirlockKit
import AirlockRegistry
import ArgumentParser

struct PullCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download a bundle from an OCI registry to a file, checking the layer's digest.",
        discussion: """
            The layer goes to FILE.<digest16>.partial and is renamed to FILE once its size and digest \
            match the manifest's; an interrupted pull resumes where it stopped when run again. The \
            bundle's signatures are not checked here: `airlock verify FILE --trust DIR` does that \
            (or `airlock install oci://...` streams, verifies and installs in one pass).
            """)

    @Argument(help: "The bundle: [oci://]HOST[:PORT]/REPOSITORY:TAG or ...@sha256:DIGEST.")
    var reference: String

    @Option(name: .long, help: "The file to write.")
    var out: String

    @OptionGroup var registry: RegistryFlags
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let source = try RegistryReference.parse(reference)
        let r = try registry.withClient(source) { client in
            try Registry.blocking { try await Registry.pull(source, to: out, client: client) }
        }
        if output.json {
            Output.json(r)
            return
        }
        let a = r.resolved.manifest.annotations
        let what = [a[OCIArtifact.Annotation.name], a[OCIArtifact.Annotation.version]].compactMap { $0 }.joined(separator: " ")
        Output.say(
            "pulled \(what.isEmpty ? "a bundle" : what) to \(r.path): \(ByteCount.format(r.resolved.manifest.layer.size)), layer digest matches"
                + (r.resumedFrom > 0 ? " (resumed at \(ByteCount.format(r.resumedFrom)))" : ""))
        Output.say("  pinned \(r.resolved.pinned)")
        Output.say("  not yet verified: airlock verify \(r.path) --trust DIR")
    }
}
