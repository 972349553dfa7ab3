import AirlockFormat
import AirlockKit
import ArgumentParser

struct InspectCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show what a bundle says about itself. Verifies nothing: use `airlock verify` for that.")

    @Argument(help: "The bundle.")
    var bundle: String

    @OptionGroup var base: DeltaBaseFlags
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let s = try BundleSummary.read(path: bundle, baseManifest: base.lookup)
        if output.json {
            Output.json(s.json)
            return
        }
        let m = s.manifest
        Output.say("\(m.name) \(m.version) (sequence \(m.sequence))")
        Output.say("  NOT VERIFIED: this shows what the bundle claims; run `airlock verify \(bundle) --trust DIR` to check it")
        Output.say("  bundle id    \(s.bundleID.prefixed)")
        Output.say("  created      \(m.created)")
        Output.say("  expires      \(m.expires ?? "never")")
        Output.say("  compression  \(s.compression?.rawValue ?? "unknown")")
        Output.say("  files        \(m.files.count), \(ByteCount.format(m.totalBytes))")
        if let d = s.delta {
            Output.say(
                "  delta of     \(d.base.prefixed): omits \(d.omitted.count) files (\(ByteCount.format(s.deltaOmittedBytes))) the site must already hold"
                    + (d.isPatched ? "; its manifest is a patch against the base's" : ""))
        }
        if let serve = m.serve {
            Output.say(
                "  serve        \(serve.command) (\(serve.listen.rawValue), ready at \(serve.readyPath) within \(serve.startTimeoutSeconds) s; format v2)")
        }
        Output.say("  signers      \(s.signerKeyIDs.isEmpty ? "none" : s.signerKeyIDs.joined(separator: ", ")) (not checked)")
        if let e = m.attestations?["eval"] {
            if let a = try? EvalAttestation(json: e, source: "eval") {
                Output.say(
                    "  eval         score \(EvalAttestation.decimal(a.score)), threshold \(EvalAttestation.decimal(a.threshold)), \(a.passed)/\(a.total) cases, \(a.runs) run\(a.runs == 1 ? "" : "s"), suite \(a.suite.prefixed)"
                )
            } else {
                Output.say("  eval         an attestation airlock can not read")
            }
        } else {
            Output.say("  eval         none attested")
        }
        Output.say("  components")
        for name in BundleLayout.components {
            guard let c = m.components[name] else { continue }
            let meta = c.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            Output.say(
                "    \(Output.pad(name, 8)) \(c.digest.prefixed)  \(c.files) file\(c.files == 1 ? "" : "s")  \(ByteCount.format(c.bytes))\(meta.isEmpty ? "" : "  " + meta)"
            )
        }
    }
}
