import AirlockFormat
import AirlockKit
import AirlockRollout
import ArgumentParser
import Foundation

struct BreakerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "breaker", abstract: "Show, reset or open the circuit breakers of a name's running releases.",
        subcommands: [Status.self, Reset.self, Open.self])

    struct Status: SiteCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the breakers of NAME's releases and their windows.")

        @Argument var name: String
        @OptionGroup var output: JSONOption
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let site = siteOptions.site
            let book = try RolloutBook.read(site: site, name: name)
            let records = try BreakerStore.load(site: site, name: name)
            let now = Date().timeIntervalSince1970
            var releases = Set(book.breakers.keys).union(records.keys)
            if let c = site.current(name) { releases.insert(c) }
            var out: [String: JSONValue] = [:]
            for release in releases.sorted() {
                var o = (records[release] ?? BreakerRecord(state: book.settings.breakerMetricsOnly ? .metricsOnly : .closed, since: 0)).json.objectValue ?? [:]
                if records[release] == nil { o["since"] = .null }
                let t = book.breakers[release]?.totals(at: now) ?? BreakerTotals()
                o["window_totals"] = .object([
                    "tasks": .integer(t.tasks), "errors": .integer(t.errors), "interventions": .integer(t.interventions),
                    "cost": .number(EvalAttestation.decimal(t.cost)),
                ])
                out[release] = .object(o)
            }
            if output.json {
                Output.json(.object(["name": .string(name), "breakers": .object(out), "settings": book.settings.json]))
                return
            }
            Output.say("\(name): breakers (window \(EvalAttestation.decimal(book.settings.window.seconds)) s)")
            for release in out.keys.sorted() {
                let o = out[release]!.objectValue!
                let t = book.breakers[release]?.totals(at: now) ?? BreakerTotals()
                Output.say(
                    "  \(Output.pad(release, 28)) \(Output.pad(o["state"]!.stringValue!, 13)) window: \(t.tasks) tasks, \(t.errors) failed, \(t.interventions) needed a person, cost $\(String(format: "%.4f", t.cost))"
                )
                if let r = o["reason"]?.stringValue {
                    let numbers = o["observed"].flatMap { Double(CanonicalJSON.string($0)) }.map {
                        String(format: " %.4g > limit %@", $0, CanonicalJSON.string(o["limit"]!))
                    }
                    Output.say("    \(r)" + (numbers ?? ""))
                }
            }
        }
    }

    struct Reset: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset", abstract: "Close the breaker of RELEASE (default: every open breaker of NAME); its window starts empty.")

        @Argument var name: String
        @Argument(help: "Release folder name, version, or unique bundle id prefix.")
        var release: String?
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let site = siteOptions.site
            try site.requireInstalled(name)
            let targets: [String]
            if let release {
                targets = [try Activation.resolve(site: site, name: name, release)]
            } else {
                targets = try BreakerStore.load(site: site, name: name).filter { $0.value.word == "tripped" || $0.value.word == "forced-open" }.keys.sorted()
                if targets.isEmpty { Output.say("\(name): no breaker is open") }
            }
            for t in targets {
                try BreakerStore.update(site: site, name: name, release: t, action: "breaker-reset", fields: ["by": .string("airlock breaker reset")]) { _ in
                    BreakerRecord(state: .closed, since: Date().timeIntervalSince1970)
                }
                Output.say("\(name): breaker of \(t) closed")
            }
        }
    }

    struct Open: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "open", abstract: "Open the breaker of RELEASE by hand: no new task goes to it (a current release drains to last-good).")

        @Argument var name: String
        @Argument(help: "Release folder name, version, or unique bundle id prefix.")
        var release: String
        @Option(name: .long, help: "Why (recorded in the history).")
        var reason = "opened by hand"
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let site = siteOptions.site
            let dir = try Activation.resolve(site: site, name: name, release)
            let now = Date().timeIntervalSince1970
            try BreakerStore.update(site: site, name: name, release: dir, action: "breaker-open", fields: ["reason": .string(reason)]) { _ in
                BreakerRecord(state: .forcedOpen(reason: reason, at: now), since: now)
            }
            Output.say("\(name): breaker of \(dir) open (\(reason))")
        }
    }
}
