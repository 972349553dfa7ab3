import AirlockFormat
import AirlockKit
import ArgumentParser

struct HistoryCommand: SiteCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the site's hash-chained history, or check the chain.")

    @Argument var name: String?
    @Flag(
        name: .long,
        help:
            "Check the hash chain; exit 1 if a line was removed, inserted or edited. Prints the line count and the head (the last line's hash): record them elsewhere to detect a cut tail later."
    )
    var verify = false
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let site = siteOptions.site
        if verify {
            let c = try History.check(site)
            if output.json {
                Output.json(c)
            }
            if let (line, reason) = c.problem {
                throw AirlockError(.verification, .historyBroken, "the history chain breaks at line \(line): \(reason)")
            }
            if !output.json {
                Output.say("history chain OK (\(c.lines) lines, head \(c.head))")
                if c.unterminated {
                    Output.say(
                        "note: the last line lacks its newline (cut by one byte, or a kill before it was written); it is complete and counted, and the next write adds the newline"
                    )
                }
            }
            return
        }
        let entries = try History.read(site).filter { name == nil || $0.name == name }
        if output.json {
            Output.json(HistoryListing(entries))
            return
        }
        for e in entries {
            var extra = e.fields
            for k in ["seq", "at", "action", "name", "prev"] { extra[k] = nil }
            let rest = extra.keys.sorted().map { k -> String in
                let v = extra[k]!
                return "\(k)=\(v.stringValue ?? CanonicalJSON.string(v))"
            }.joined(separator: " ")
            Output.say("\(e.seq) \(e.at) \(e.action)\(e.name.map { " " + $0 } ?? "") \(rest)")
        }
    }
}
