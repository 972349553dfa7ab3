import AirlockFormat
import AirlockKit
import ArgumentParser

extension TrustCommand {
    struct List: SiteCommand {
        static let configuration = CommandConfiguration(abstract: "List trusted keys and the policy.")
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var output: JSONOption
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let trust = try SiteTrust.load(directory: siteOptions.site.trustDirectory)
            let store = trust.store
            if output.json {
                Output.json(TrustListing(trust))
                return
            }
            for k in store.keys.values.sorted(by: { $0.id < $1.id }) {
                var notes: [String] = [k.algorithm.rawValue]
                if let l = store.policy.labels[k.id] { notes.append(l) }
                if store.policy.revoked.contains(k.id) { notes.append("REVOKED") }
                if let e = store.policy.expires[k.id] { notes.append("expires \(Timestamp.format(e))") }
                Output.say("\(k.id)  \(notes.joined(separator: ", "))")
            }
            for k in store.approvers.values.sorted(by: { $0.id < $1.id }) { Output.say("\(k.id)  \(k.algorithm.rawValue), approver") }
            let p = trust.policy
            Output.say("threshold: \(store.policy.threshold)")
            let perimeter = p.perimeter.hosts + p.perimeter.networks
            Output.say("perimeter: \(perimeter.isEmpty ? "empty (no release may reach any endpoint)" : perimeter.joined(separator: ", "))")
            Output.say(
                "require eval: \(p.requireEval ? "yes" : "no"); approvals for widening activations: \(p.approvalThreshold)\(p.approveFirstActivation ? ", first activations too" : "")"
            )
        }
    }
}
