import AirlockFormat
import AirlockKit
import ArgumentParser

struct EvidenceCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "evidence",
        abstract: "The auditor's report for a release name: what is installed and current, signers, eval results, approvals, allowances, history chain.")

    @Argument(help: "The release name.")
    var name: String

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let r = try EvidenceReport.build(site: siteOptions.site, name: name)
        if output.json {
            Output.json(r.json)
        } else {
            Output.say("evidence for \(r.name) on \(siteOptions.site.root), \(r.generatedAt)")
            Output.say("current: \(r.current ?? "none")")
            if let trust = r.trust {
                let p = trust.policy, threshold = trust.store.policy.threshold
                let perimeter = p.perimeter.hosts + p.perimeter.networks
                Output.say(
                    "policy: \(threshold) signature\(threshold == 1 ? "" : "s"); perimeter \(perimeter.isEmpty ? "empty" : perimeter.joined(separator: ", ")); eval \(p.requireEval ? "required" + (p.minEvalScore.map { ", at least \(EvalAttestation.decimal($0))" } ?? "") : "not required"); \(p.approvalThreshold) approval\(p.approvalThreshold == 1 ? "" : "s") for widening\(p.approveFirstActivation ? " and first" : "") activations"
                )
            }
            if let p = r.historyProblem {
                Output.say("history: chain BROKEN at line \(p.line): \(p.reason)")
            } else {
                Output.say("history: \(r.historyEntries) entries, hash chain verified")
            }
            Output.say("history head: line \(r.historyEntries) is \(r.historyHead) (record both elsewhere: a history that later lacks this line was cut)")
            for rel in r.releases {
                var flags: [String] = []
                if rel.current { flags.append("current") }
                if rel.pinned { flags.append("pinned") }
                Output.say("")
                Output.say("\(rel.directory)\(flags.isEmpty ? "" : "  [\(flags.joined(separator: ", "))]")")
                Output.say("  bundle id   \(rel.bundleID.prefixed)")
                Output.say("  version     \(rel.version) (sequence \(rel.sequence)), installed \(rel.installedAt ?? "unknown")")
                for s in rel.signers { Output.say("  signed by   \(s.keyID.prefix(16))...  \(s.status)") }
                if let e = rel.eval {
                    Output.say(
                        "  eval        score \(EvalAttestation.decimal(e.score)) (threshold \(EvalAttestation.decimal(e.threshold)), \(e.passed)/\(e.total) cases, \(e.runs) run\(e.runs == 1 ? "" : "s")), suite \(e.suite.prefixed.prefix(23))..."
                    )
                } else {
                    Output.say("  eval        none attested")
                }
                Output.say("  approvals   \(rel.approvals.isEmpty ? "none" : rel.approvals.map { String($0.prefix(16)) + "..." }.joined(separator: ", "))")
                for a in rel.allowances { Output.say("  allowance   \(a.who) -> \(a.endpoint) (outside the perimeter, allowed \(a.at))") }
                for w in rel.widenings {
                    Output.say(
                        "  activated \(w.at), widening: \(w.widens.joined(separator: "; ")); approved by \(w.approvedBy.map { String($0.prefix(16)) + "..." }.joined(separator: ", "))"
                    )
                }
            }
            if !r.removed.isEmpty {
                Output.say("")
                Output.say("removed since (from the history):")
                for x in r.removed {
                    Output.say("  \(x.directory)  \(x.bundleID ?? "?")  installed \(x.installedAt), removed \(x.removedAt) (\(x.how))")
                }
            }
        }
        if r.historyProblem != nil {
            throw AirlockError(
                .verification, .historyBroken, "the site's history chain does not verify (see above); the report's history-derived fields can not be trusted")
        }
    }
}
