import AirlockFormat
import AirlockKit
import ArgumentParser

struct AlertsCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts", abstract: "Show the site's latest alerts (canary aborts, holds, promotions, breaker trips, crash loops).",
        discussion: "Reads <root>/.alerts.jsonl, which airlock serve appends every alert to (docs/rollout.md, \"Alerts\").")

    @Argument(help: "Only the alerts of this name.")
    var name: String?
    @Option(name: .long, help: "How many of the latest alerts to show (default 10).")
    var last = 10
    @OptionGroup var output: JSONOption
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        var alerts = try AlertLog.read(site: siteOptions.site, limit: name == nil ? max(1, last) : 100_000)
        if let name { alerts = alerts.filter { $0.objectValue?["name"]?.stringValue == name } }
        alerts = Array(alerts.suffix(max(1, last)))
        if output.json {
            Output.json(.array(alerts))
            return
        }
        if alerts.isEmpty { Output.say("no alerts") }
        for a in alerts {
            let o = a.objectValue ?? [:]
            Output.lines("[\(o["at"]?.stringValue ?? "?")] " + (o["text"]?.stringValue ?? CanonicalJSON.string(a)))
            Output.say("")
        }
    }
}
