import AirlockFormat
import AirlockKit
import AirlockRegistry
import ArgumentParser
import Foundation

/// The options of every command that talks to an OCI registry (docs/registry.md).
struct RegistryFlags: ParsableArguments {
    @Option(
        name: .long,
        help:
            "PEM file of the CA that signs the registry's TLS certificate (default: the system's roots; for a site command, the site's trust/registry-ca.pem when it exists)."
    )
    var caFile: String?

    @Option(name: .long, help: "Registry credentials: a containers auth file as `skopeo login` writes it (default: $REGISTRY_AUTH_FILE).")
    var authfile: String?

    @Flag(name: .long, help: "Plain HTTP, for a registry on loopback only.")
    var insecure = false

    @Option(name: .long, help: "Times a request is tried again after a transient failure, with backoff (default 4).")
    var retries = 4

    /// The options, with the site's CA file as the default when `site` is given and holds one.
    func options(site: Site? = nil) throws -> RegistryOptions {
        var o = RegistryOptions()
        o.caFile = caFile
        if o.caFile == nil, let site {
            let siteCA = site.trustDirectory + "/registry-ca.pem"
            if FileManager.default.fileExists(atPath: siteCA) { o.caFile = siteCA }
        }
        o.authFile = authfile ?? ProcessInfo.processInfo.environment["REGISTRY_AUTH_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        o.insecure = insecure
        guard (0...20).contains(retries) else { throw AirlockError(.usage, .registryReferenceInvalid, "--retries takes 0 to 20, not \(retries)") }
        o.retries = retries
        return o
    }

    /// Runs `body` with a client for `reference`'s registry, and closes the client after it.
    func withClient<T>(_ reference: RegistryReference, site: Site? = nil, _ body: (RegistryClient) throws -> T) throws -> T {
        let client = try RegistryClient(registry: reference, options: options(site: site))
        defer { try? Registry.blocking { await client.shutdown() } }
        return try body(client)
    }
}
