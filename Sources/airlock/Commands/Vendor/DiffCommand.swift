import AirlockFormat
import AirlockKit
import ArgumentParser

struct DiffCommand: AirlockCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show which components and files changed between two bundles (from their manifests; verifies nothing).")

    @Argument(help: "The older bundle.")
    var a: String

    @Argument(help: "The newer bundle.")
    var b: String

    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let diff = try BundleDiff(a, b)
        let d = diff.release, permissions = diff.permissions
        if output.json {
            Output.json(diff)
            return
        }
        let ma = d.a.manifest, mb = d.b.manifest
        Output.say("\(ma.name) \(ma.version) (sequence \(ma.sequence)) -> \(mb.name) \(mb.version) (sequence \(mb.sequence))  [manifests not verified]")
        for s in [d.a, d.b] where s.delta != nil {
            Output.say("\(s.path) is a delta bundle of \(s.delta!.base.prefixed) (\(s.delta!.omitted.count) files omitted)")
        }
        if d.changedComponents.isEmpty {
            Output.say("no component changed" + (d.a.bundleID == d.b.bundleID ? " (same bundle id)" : ""))
        } else {
            Output.say("changed components: \(d.changedComponents.joined(separator: ", "))")
        }
        for c in d.components where c.status != "unchanged" {
            let x = c.before.map(Output.short) ?? "-", y = c.after.map(Output.short) ?? "-"
            Output.say("  \(Output.pad(c.name, 8)) \(c.status): \(x) -> \(y)")
        }
        if let unknown = permissions.unknown {
            Output.say("permissions: unknown (\(unknown))")
        } else if permissions.widened.isEmpty && permissions.narrowed.isEmpty {
            Output.say("permissions: unchanged")
        } else {
            Output.say("permissions (an activation that widens them needs a site approval):")
            for w in permissions.widened { Output.say("  + \(w)") }
            for n in permissions.narrowed { Output.say("  - \(n)") }
        }
        if d.added.isEmpty && d.removed.isEmpty && d.changed.isEmpty { return }
        Output.say("files:")
        for f in d.removed { Output.say("  - \(f.path)  \(ByteCount.format(f.size))") }
        for f in d.added { Output.say("  + \(f.path)  \(ByteCount.format(f.size))") }
        for c in d.changed {
            let x = c.before!, y = c.after!
            let mode = x.modeString != y.modeString ? "  mode \(x.modeString) -> \(y.modeString)" : ""
            Output.say("  ~ \(c.path)  \(ByteCount.format(x.size)) -> \(ByteCount.format(y.size))\(mode)")
        }
    }
}
