import AirlockFormat
import AirlockKit
import ArgumentParser

/// `--allow-egress` values.
func parseEndpoints(_ values: [String]) throws -> [Endpoint] {
    try values.map { s in
        guard let e = Endpoint.parse(s) else {
            throw AirlockError(
                .usage, .endpointInvalid,
                "--allow-egress \(s) is not host:port (a lowercase DNS name, a dotted IPv4 address or [IPv6] in its usual lowercase form, and a port 1-65535)")
        }
        return e
    }
}

/// Options of every command that works on a site.
struct SiteOptions: ParsableArguments {
    @Option(name: .long, help: "Site root (default: $AIRLOCK_ROOT, else /var/lib/airlock).")
    var root: String?

    /// Taken only to say why it is not: the site's keys and policy come from the site.
    @Option(name: .long, help: .hidden)
    var trust: String?

    @Option(name: .long, help: "Seconds to wait for another command's site lock (default 30).")
    var lockTimeout: Double = 30

    var site: Site { Site(root: Site.resolveRoot(root)) }

    /// Run before any site command: refuses `--trust` and a site root Airlock must not use.
    func check() throws {
        if let trust {
            throw AirlockError(
                .usage, .trustOptionRefused,
                "site commands take no --trust (\(trust)): the site's keys, perimeter, approvers and eval policy are in \(site.trustDirectory), so that no command line can replace them; add a key with `airlock trust add KEY.pub` (or `--approver`), change the perimeter with `airlock trust allow`"
            )
        }
        try site.checkSafety()
    }
}

/// A command that works on a site: `main` checks its site options before it runs.
protocol SiteCommand: AirlockCommand {
    var siteOptions: SiteOptions { get }
}

/// The NAME RELEASE arguments of the commands that act on one installed release.
struct ReleaseArguments: ParsableArguments {
    @Argument(help: "The release name.")
    var name: String

    @Argument(help: "Release folder name, version, or unique bundle id prefix.")
    var release: String
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Flag(help: "On failure, also print the underlying cause.")
    var verbose = false
}

/// `--allow-egress HOST:PORT`, repeatable: the endpoints outside the site's perimeter an
/// activation (install --activate, activate, canary start) allows the release to reach.
struct EgressOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Allow the release to reach this endpoint outside the site's perimeter (repeatable; recorded in the history).", valueName: "host:port"))
    var allowEgress: [String] = []

    /// The endpoints, parsed (`endpoint-invalid` for one that is not HOST:PORT).
    func endpoints() throws -> [Endpoint] { try parseEndpoints(allowEgress) }
}

/// `--json`.
struct JSONOption: ParsableArguments {
    @Flag(help: "Print machine-readable JSON (documented in docs/cli.md) instead of text.")
    var json = false
}

extension KeyAlgorithm: ExpressibleByArgument {}
extension Compression: ExpressibleByArgument {}

/// `--base` / `--base-manifest` of the commands that read a delta bundle whose manifest is a
/// patch against its base release's (docs/format.md, "Delta bundles").
struct DeltaBaseFlags: ParsableArguments {
    @Option(name: .customLong("base"), help: "For a delta bundle that carries its manifest as a patch: its base bundle.")
    var baseBundle: String?

    @Option(name: .long, help: "For a delta bundle that carries its manifest as a patch: its base release's manifest.json.")
    var baseManifest: String?

    func validate() throws {
        if baseBundle != nil && baseManifest != nil { throw ValidationError("give --base or --base-manifest, not both") }
    }

    /// The lookup the bundle reader uses, nil when neither flag was given.
    var lookup: BaseManifestLookup? {
        if let b = baseBundle { return DeltaBase.bundle(b).lookup }
        if let m = baseManifest { return DeltaBase.manifest(m).lookup }
        return nil
    }
}
