import AirlockFormat
import AirlockKit
import AirlockRollout
import ArgumentParser

struct CanaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "canary", abstract: "Try a release on a slice of the tasks, decided by airlock serve.",
        discussion: """
            `airlock serve` routes the canary's share of new tasks to the candidate, compares task success, cost and \
            human intervention with the incumbent after every outcome, aborts by itself when the candidate is worse, \
            advances through the steps when it is shown no worse, and promotes it at the last step (docs/rollout.md).
            """,
        subcommands: [Start.self, Status.self, Promote.self, Abort.self])

    struct Start: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Start a canary of RELEASE against NAME's current release (checked by the site's policy like an activation).")

        @Argument var name: String
        @Argument(help: "Release folder name, version, or unique bundle id prefix.")
        var release: String

        @Option(name: .long, help: "The weights in percent, rising, such as 1,5,25,100 (default: the site's settings).")
        var steps: String?

        @OptionGroup var egress: EgressOptions

        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            var list: [Double]? = nil
            if let steps {
                let parts = steps.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
                    throw AirlockError(.usage, .canaryInvalid, "--steps \(steps) is not a list of percentages such as 1,5,25,100")
                }
                list = parts.map { $0! }
            }
            let c = try CanaryStore.start(
                site: siteOptions.site, name: name, release: release, steps: list, allowEgress: try egress.endpoints(),
                lockTimeout: siteOptions.lockTimeout)
            let weights = c.steps.map { EvalAttestation.decimal($0) + "%" }.joined(separator: ", ")
            Output.say(
                "\(name): canary \(c.candidate) against \(c.incumbent), steps \(weights); airlock serve routes \(weights.split(separator: ",")[0]) of new tasks to it"
            )
        }
    }

    struct Status: SiteCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show NAME's canary: step, weight, and the decision's numbers.")

        @Argument var name: String
        @OptionGroup var output: JSONOption
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let book = try RolloutBook.read(site: siteOptions.site, name: name)
            guard let c = book.canary else {
                if output.json { Output.json(.object(["name": .string(name), "canary": .null])) } else { Output.say("\(name): no canary") }
                return
            }
            let decision = CanaryDecision.decide(incumbent: book.incumbentStats, candidate: book.candidateStats, settings: book.settings.decision)
            if output.json {
                var o = c.json.objectValue ?? [:]
                o["name"] = .string(name)
                o["decision"] = DecisionJSON.json(decision)
                o["settings"] = book.settings.json
                Output.json(.object(o))
                return
            }
            let step = "step \(c.step + 1) of \(c.steps.count) (\(EvalAttestation.decimal(c.steps[min(c.step, c.steps.count - 1)]))%)"
            Output.say("\(name): canary \(c.candidate) against \(c.incumbent): \(c.status.rawValue), \(step)")
            if let reason = c.reason { Output.say("  \(reason)") }
            Output.say(
                "  step tasks: incumbent \(book.incumbentStats.tasks), candidate \(book.candidateStats.tasks) of the horizon \(book.settings.decision.horizon)")
            if !decision.comparisons.isEmpty { Output.lines(decision.table()) }
        }
    }

    struct Promote: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "promote", abstract: "Promote NAME's canary now: activate the candidate (policy and health checks of activate).")

        @Argument var name: String
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let c = try CanaryStore.promote(site: siteOptions.site, name: name, reason: "promoted by hand", lockTimeout: siteOptions.lockTimeout)
            Output.say("\(name): current -> \(c.candidate) (canary promoted; \(c.incumbent) is the last-good release)")
        }
    }

    struct Abort: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "abort", abstract: "Abort NAME's canary: no new task goes to the candidate, and its tasks go to the current release.")

        @Argument var name: String
        @Option(name: .long, help: "Why (recorded in the history).")
        var reason = "aborted by hand"
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let c = try CanaryStore.abort(site: siteOptions.site, name: name, reason: reason, lockTimeout: siteOptions.lockTimeout)
            Output.say("\(name): canary of \(c.candidate) aborted; \(c.incumbent) takes every task")
        }
    }
}
