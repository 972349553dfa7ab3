import AirlockFormat
import AirlockKit
import AirlockRegistry
import ArgumentParser

struct VerifyCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a bundle's signatures against a trust store and every byte against its manifest.",
        discussion:
            "One streaming pass; writes nothing to disk. Exit 0 only when every check holds. `-` reads standard input; oci://HOST/REPOSITORY:TAG streams the bundle from a registry (docs/registry.md)."
    )

    @Argument(help: "The bundle file, - for standard input, or oci://HOST/REPOSITORY:TAG.")
    var bundle: String

    @Option(name: .long, help: "Trust store: a directory of trusted *.pub keys and an optional policy.json.")
    var trust: String

    @Option(name: .long, help: "A detached signature file (repeatable).")
    var signature: [String] = []

    @OptionGroup var base: DeltaBaseFlags
    @OptionGroup var registry: RegistryFlags
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        // The whole policy.json is checked, the site's fields too (docs/trust.md).
        let store = try SiteTrust.load(directory: trust).store
        let detached = try signature.map { try DetachedSignature.load(path: $0) }
        let progress = ProgressReporter.forTerminal(label: "verifying")
        var report: VerificationReport
        if RegistryReference.isRegistry(bundle) {
            let reference = try RegistryReference.parse(bundle)
            report = try registry.withClient(reference) { client in
                let (stream, reader) = try RegistryBundleStream.open(reference, client: client)
                reader.baseManifest = base.lookup
                var report = Verifier.verify(reader: reader, trust: store, detached: detached, progress: progress)
                // The download stops once the reader is closed; then its outcome is known.
                reader.close()
                if let e = report.error { report.error = stream.outcome(of: e) as? AirlockError ?? e }
                return report
            }
        } else {
            report = Verifier.verify(bundle: bundle, trust: store, detached: detached, baseManifest: base.lookup, progress: progress)
        }
        if output.json {
            Output.json(report.json)
        } else {
            for line in Self.describe(report, store: store) { Output.say(line) }
        }
        if let e = report.error {
            Output.error(e, verbose: global.verbose)
            throw ExitCode(ExitCodes.code(for: e.kind))
        }
    }

    static func describe(_ r: VerificationReport, store: TrustStore) -> [String] {
        var lines: [String] = []
        if let m = r.manifest, r.ok {
            lines.append("OK \(m.name) \(m.version) (sequence \(m.sequence)) \(r.bundleID!.prefixed)")
        } else {
            lines.append("FAILED \(r.path)" + (r.bundleID.map { " \($0.prefixed)" } ?? ""))
        }
        if let s = r.signatures {
            lines.append("  signatures: \(s.verifiedKeys.count) of \(s.threshold) required trusted keys verified")
            for x in s.results {
                let label = x.keyID.flatMap { store.policy.labels[$0] }.map { " (\($0))" } ?? ""
                lines.append("    \(x.status.rawValue): \(x.keyID ?? "no trusted key")\(label) [\(x.source)]")
            }
        }
        if r.ok {
            lines.append("  checked \(r.filesChecked) files, \(ByteCount.format(r.bytesChecked))")
            if let d = r.delta {
                lines.append(
                    "  delta bundle of \(d.base.prefixed): \(r.filesExpectedAtSite) files (\(ByteCount.format(r.bytesExpectedAtSite))) are expected at the site, not in this bundle"
                )
            }
        }
        return lines
    }
}
