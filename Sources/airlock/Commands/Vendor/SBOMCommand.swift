import AirlockFormat
import AirlockKit
import ArgumentParser

struct SBOMCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbom",
        abstract: "Print a CycloneDX 1.5 JSON description of a bundle (files with hashes, the model as a machine-learning-model).",
        discussion: "Reads the bundle's manifest; verifies nothing (run `airlock verify` for that).")

    @Argument(help: "The bundle.")
    var bundle: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        Output.json(SBOM.cycloneDX(try BundleSummary.read(path: bundle)))
    }
}
