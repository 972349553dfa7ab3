import AirlockFormat
import AirlockKit
import AirlockServe
import ArgumentParser
import Dispatch

struct ServeCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the current release of each NAME and route agent requests to it (the site daemon).",
        discussion: """
            Keeps each name's current release running (its airlock.yaml `serve` section), routes requests under \
            /NAME/... that carry X-Task-Id to it once it answers ready, restarts a crashed runtime with backoff and \
            follows `current` when it moves. Listens on 127.0.0.1:8470 unless --listen says otherwise. Stops on \
            SIGTERM or SIGINT, with every runtime it started.
            """)

    @Argument(help: "The release names to serve.")
    var names: [String]

    @Option(name: .long, help: "HOST:PORT to listen on (default 127.0.0.1:8470; another host is an explicit choice).")
    var listen = "127.0.0.1:8470"

    @Option(name: .long, help: "Threads that read, route and forward requests (default: one per core).")
    var threads: Int?

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads \(threads) is not a number of threads from 1 to 256") }
    }

    func run() throws {
        let site = siteOptions.site
        for name in names { try site.requireInstalled(name) }
        var configuration = ServeConfiguration(site: site, names: names)
        configuration.token = try ServeToken.load(site: site, create: true, lockTimeout: siteOptions.lockTimeout)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (1...65535).contains(port) else {
            throw AirlockError(.usage, .endpointInvalid, "--listen \(listen) is not HOST:PORT (for example 127.0.0.1:8470)")
        }
        configuration.threads = threads
        configuration.host = String(listen[..<colon])
        configuration.port = port
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await AirlockServer.run(configuration) } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error {
            throw AirlockError(.io, .createFailed, "airlock serve stopped: \(error)")
        }
    }

    /// How the server ended, handed from its task to the command's thread.
    final class Outcome: @unchecked Sendable {
        var error: (any Error)?
    }
}
