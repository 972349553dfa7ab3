import AirlockFormat
import AirlockKit
import ArgumentParser

/// `--allow-egress` values.
func parseEndpoints(_ values: [String]) throws -> [Endpoint] {
    try values.map { s in
        guard let e = Endpoint.parse(s) else {
            throw AirlockError(.usage, "endpoint-invalid", "--allow-egress \(s) is not host:port (a lowercase DNS name, a dotted IPv4 address or [IPv6] in its usual lowercase form, and a port 1-65535)")
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
                .usage, "trust-option-refused",
                "site commands take no --trust (\(trust)): the site's keys, perimeter, approvers and eval policy are in \(site.trustDirectory), so that no command line can replace them; add a key with `airlock trust add KEY.pub` (or `--approver`), change the perimeter with `airlock trust allow`")
        }
        try site.checkSafety()
    }
}

/// A command that works on a site: `main` checks its options before it runs.
protocol SiteCommand {
    var siteOptions: SiteOptions { get }
}

extension InstallCommand: SiteCommand {}
extension ActivateCommand: SiteCommand {}
extension RollbackCommand: SiteCommand {}
extension StatusCommand: SiteCommand {}
extension HistoryCommand: SiteCommand {}
extension PinCommand: SiteCommand {}
extension UnpinCommand: SiteCommand {}
extension RemoveCommand: SiteCommand {}
extension GCCommand: SiteCommand {}
extension AuditCommand: SiteCommand {}
extension TrustCommand.Allow: SiteCommand {}
extension TrustCommand.Disallow: SiteCommand {}
extension TrustCommand.Add: SiteCommand {}
extension TrustCommand.List: SiteCommand {}
extension TrustCommand.Remove: SiteCommand {}
extension ApproveCommand: SiteCommand {}
extension EvidenceCommand: SiteCommand {}

struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Verify a bundle and install it beside the releases already on the site.",
        discussion: "`-` reads the bundle from standard input (e.g. `cat bundle.part-* | airlock install -`).")

    @Argument(help: "The bundle (or - for standard input).")
    var bundle: String

    @Flag(name: .long, help: "Switch current to it once installed.")
    var activate = false

    @Option(name: .long, help: "A detached signature file (repeatable).")
    var signature: [String] = []

    @Flag(name: .long, help: "Allow a lower sequence than the highest installed (logged).")
    var allowDowngrade = false

    @Flag(name: .long, help: "For a release already installed: verify the bundle again and restore every file from it (after `audit` found drift).")
    var repair = false

    @Option(name: .long, help: "With --activate: a health check command to run against the new current.")
    var check: String?

    @Option(name: .long, help: "Seconds the health check may take (default 30).")
    var checkTimeout: Double = 30

    @Option(name: .long, help: ArgumentHelp("Allow the release to reach this endpoint outside the site's perimeter (repeatable; recorded in the history).", valueName: "host:port"))
    var allowEgress: [String] = []

    @Option(name: .long, help: "Seconds a read from a pipe (`-`) may wait for data before the install fails (default 60; 0: no limit).")
    var readTimeout: Double = 60

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        var o = InstallOptions()
        o.allowEgress = try parseEndpoints(allowEgress)
        o.activate = activate
        o.detached = try signature.map { try DetachedSignature.load(path: $0) }
        o.allowDowngrade = allowDowngrade
        o.repair = repair
        o.lockTimeout = siteOptions.lockTimeout
        o.readTimeout = readTimeout
        o.check = check.map { HealthCheck(command: $0, timeoutSeconds: checkTimeout) }
        let r = try Installer.install(bundle: bundle, site: siteOptions.site, options: o)
        if output.json {
            Output.json(.object([
                "name": .string(r.name), "release": .string(r.release), "bundle_id": .string(r.bundleID.prefixed),
                "already_installed": .bool(r.alreadyInstalled), "activated": .bool(r.activated), "files": .integer(r.files),
                "files_shared": .integer(r.filesShared), "bytes_written": .integer(r.bytesWritten),
                "allowances": .array(r.allowances.map { .object(["who": .string($0.who), "endpoint": .string($0.endpoint.description)]) }),
            ]))
            return
        }
        for a in r.allowances { Output.say("allowed by --allow-egress: \(a.who) reaches \(a.endpoint), outside the perimeter (recorded)") }
        if r.alreadyInstalled && repair {
            Output.say("repaired \(r.name) \(r.release) (\(r.bundleID.prefixed)) from its bundle: \(r.files) files verified and restored")
        } else if r.alreadyInstalled {
            Output.say("\(r.name) \(r.release) is already installed (\(r.bundleID.prefixed)); nothing copied")
        } else {
            Output.say("installed \(r.name) \(r.release) (\(r.bundleID.prefixed)): \(r.files) files, \(r.filesShared) shared with earlier releases, \(ByteCount.format(r.bytesWritten)) written")
        }
        if r.activated { Output.say("current -> \(r.release)") }
    }
}

struct ActivateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activate", abstract: "Switch current to an installed release (pushes it on the activation stack).")

    @Argument var name: String
    @Argument(help: "Release folder name, version, or unique bundle id prefix.")
    var release: String

    @Option(name: .long, help: "Health check command to run against the new current; on failure Airlock switches back.")
    var check: String?

    @Option(name: .long, help: "Seconds the health check may take (default 30).")
    var checkTimeout: Double = 30

    @Option(name: .long, help: ArgumentHelp("Allow the release to reach this endpoint outside the site's perimeter (repeatable; recorded in the history).", valueName: "host:port"))
    var allowEgress: [String] = []

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try Activation.activate(
            site: siteOptions.site, name: name, release: release, check: check.map { HealthCheck(command: $0, timeoutSeconds: checkTimeout) },
            allowEgress: try parseEndpoints(allowEgress), lockTimeout: siteOptions.lockTimeout)
        Output.say("\(name): current -> \(dir)")
    }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Switch current back to the release active before it (pops the activation stack).")

    @Argument var name: String

    @Option(name: .long, help: "Activate this release instead of the previous one.")
    var to: String?

    @Option(name: .long, help: ArgumentHelp("With --to a release not on the activation stack: allow it to reach this endpoint outside the perimeter (repeatable; recorded).", valueName: "host:port"))
    var allowEgress: [String] = []

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let r = try Activation.rollback(
            site: siteOptions.site, name: name, to: to, allowEgress: try parseEndpoints(allowEgress), lockTimeout: siteOptions.lockTimeout)
        Output.say("\(name): current -> \(r.to) (was \(r.from ?? "nothing"))")
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show installed releases, current and rollback targets.")

    @Argument var name: String?
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let all = try SiteAdmin.status(site: siteOptions.site, name: name)
        if output.json {
            Output.json(.object(["root": .string(siteOptions.site.root), "names": .array(all.map(\.json))]))
            return
        }
        if all.isEmpty { Output.say("no release is installed at \(siteOptions.site.root)") }
        for s in all {
            Output.say("\(s.name): current \(s.current ?? "none"), rollback target \(s.rollbackTarget ?? "none")")
            for r in s.releases {
                var marks: [String] = []
                if r.directory == s.current { marks.append("current") }
                if r.directory == s.rollbackTarget { marks.append("rollback target") }
                if r.pinned { marks.append("pinned") }
                Output.say("  \(r.directory == s.current ? "*" : " ") \(Output.pad(r.directory, 28)) seq \(r.sequence)  \(Output.short(r.bundleID))  \(ByteCount.format(r.bytes))  installed \(r.installedAt ?? "?")\(marks.isEmpty ? "" : "  [" + marks.joined(separator: ", ") + "]")")
            }
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the site's hash-chained history, or check the chain.")

    @Argument var name: String?
    @Flag(name: .long, help: "Check the hash chain; exit 1 if a line was removed, inserted or edited. Prints the line count and the head (the last line's hash): record them elsewhere to detect a cut tail later.")
    var verify = false
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let site = siteOptions.site
        if verify {
            let c = try History.check(site)
            if output.json {
                Output.json(.object([
                    "root": .string(site.root), "verified": .bool(c.problem == nil), "lines": .integer(c.lines), "head": .string(c.head),
                    "unterminated": .bool(c.unterminated),
                    "problem": c.problem.map { .object(["line": .integer($0.line), "reason": .string($0.reason)]) } ?? .null,
                ]))
            }
            if let (line, reason) = c.problem {
                throw AirlockError(.verification, "history-broken", "the history chain breaks at line \(line): \(reason)")
            }
            if !output.json {
                Output.say("history chain OK (\(c.lines) lines, head \(c.head))")
                if c.unterminated { Output.say("note: the last line lacks its newline (cut by one byte, or a kill before it was written); it is complete and counted, and the next write adds the newline") }
            }
            return
        }
        let entries = try History.read(site).filter { name == nil || $0.name == name }
        if output.json {
            Output.json(.array(entries.map { .object($0.fields) }))
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

/// The NAME RELEASE arguments of the commands that act on one installed release.
struct ReleaseArguments: ParsableArguments {
    @Argument(help: "The release name.")
    var name: String

    @Argument(help: "Release folder name, version, or unique bundle id prefix.")
    var release: String
}

struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pin", abstract: "Keep a release through gc.")
    @OptionGroup var target: ReleaseArguments
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try SiteAdmin.setPinned(true, site: siteOptions.site, name: target.name, release: target.release, lockTimeout: siteOptions.lockTimeout)
        Output.say("\(target.name): pinned \(dir)")
    }
}

struct UnpinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Let gc remove a release again.")
    @OptionGroup var target: ReleaseArguments
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try SiteAdmin.setPinned(false, site: siteOptions.site, name: target.name, release: target.release, lockTimeout: siteOptions.lockTimeout)
        Output.say("\(target.name): unpinned \(dir)")
    }
}

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove an installed release (never current, the rollback target or a pinned one).")
    @OptionGroup var target: ReleaseArguments
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = try SiteAdmin.remove(site: siteOptions.site, name: target.name, release: target.release, lockTimeout: siteOptions.lockTimeout)
        Output.say("\(target.name): removed \(dir) (run `airlock gc` to free content no release uses)")
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Remove old releases (keeping the newest, current, the rollback target and pinned ones) and unused content.")
    @Argument var name: String?
    @Option(name: .long, help: "Newest releases to keep per name (default 3).")
    var keep: Int = 3
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws { if keep < 0 { throw ValidationError("--keep must be 0 or more") } }

    func run() throws {
        let r = try SiteAdmin.gc(site: siteOptions.site, name: name, keep: keep, lockTimeout: siteOptions.lockTimeout)
        for (n, d) in r.removed { Output.say("removed \(n) \(d)") }
        Output.say("gc: \(r.removed.count) releases and \(r.objectsRemoved) unused objects removed, \(ByteCount.format(r.bytesFreed)) freed")
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Re-hash an installed release against its manifest; exit 1 on any drift.")
    @Argument var name: String
    @Argument(help: "Release (default: current).")
    var release: String?
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let r = try SiteAdmin.audit(site: siteOptions.site, name: name, release: release)
        if output.json {
            Output.json(r.json)
        } else {
            Output.say("\(r.clean ? "OK" : "DRIFT") \(name) \(r.release): \(r.filesChecked) files checked")
            for p in r.modified { Output.say("  modified: \(p)") }
            for p in r.missing { Output.say("  missing: \(p)") }
            for p in r.extra { Output.say("  extra: \(p)") }
            for p in r.modeChanged { Output.say("  mode changed: \(p)") }
        }
        if !r.clean {
            Output.error(AirlockError(.drift, "drift", "\(name) \(r.release) differs from its manifest; restore it with `airlock install BUNDLE --repair` (its bundle id is in `airlock status`)"), verbose: false)
            throw ExitCode(ExitCodes.verification)
        }
    }
}

struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust", abstract: "Manage the site's trust store.", subcommands: [Add.self, List.self, Remove.self, Allow.self, Disallow.self])

    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add hosts or networks to the site's perimeter (what releases may reach).",
            discussion: "ENTRY is host[:port] (kb.internal:443), *.suffix[:port] (*.corp.internal) or a CIDR block (10.0.0.0/8). An empty perimeter, the default, allows nothing.")
        @Argument(help: "host[:port], *.suffix[:port] or CIDR.") var entries: [String]
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let p = try SiteAdmin.perimeter(site: siteOptions.site, entries: entries, lockTimeout: siteOptions.lockTimeout)
            Output.say("perimeter: \((p.hosts + p.networks).joined(separator: ", "))")
        }
    }

    struct Disallow: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove hosts or networks from the site's perimeter.")
        @Argument(help: "Entries as they were added.") var entries: [String]
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let p = try SiteAdmin.perimeter(site: siteOptions.site, entries: entries, remove: true, lockTimeout: siteOptions.lockTimeout)
            let all = p.hosts + p.networks
            Output.say("perimeter: \(all.isEmpty ? "empty (no release may reach any endpoint)" : all.joined(separator: ", "))")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Trust a public key (stored as <keyid>.pub).")
        @Argument var key: String
        @Flag(name: .long, help: "Add a site approver key (approves activations that widen permissions) rather than a signer.")
        var approver = false
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let k = try SiteAdmin.trustAdd(site: siteOptions.site, keyFile: key, approver: approver, lockTimeout: siteOptions.lockTimeout)
            if approver {
                Output.say("added approver \(k.id) (\(k.algorithm.rawValue))")
            } else {
                Output.say("trusted \(k.id) (\(k.algorithm.rawValue)); check it against the id the vendor published")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List trusted keys and the policy.")
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var output: JSONOption
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let trust = try SiteTrust.load(directory: siteOptions.site.trustDirectory)
            let store = trust.store
            if output.json {
                Output.json(.object([
                    "keys": .array(store.keys.values.sorted { $0.id < $1.id }.map { .object(["key_id": .string($0.id), "algorithm": .string($0.algorithm.rawValue)]) }),
                    "approvers": .array(store.approvers.values.sorted { $0.id < $1.id }.map { .object(["key_id": .string($0.id), "algorithm": .string($0.algorithm.rawValue)]) }),
                    "policy": trust.policyJSON,
                ]))
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
            Output.say("require eval: \(p.requireEval ? "yes" : "no"); approvals for widening activations: \(p.approvalThreshold)\(p.approveFirstActivation ? ", first activations too" : "")")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop trusting a key (by id or unique id prefix).")
        @Argument var keyID: String
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let id = try SiteAdmin.trustRemove(site: siteOptions.site, keyID: keyID, lockTimeout: siteOptions.lockTimeout)
            Output.say("removed \(id) from the trust store")
        }
    }
}

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a release whose permissions widen, with a site approver key.",
        discussion: """
            TARGET is a bundle file (verified in full against the site's trust store first), or NAME RELEASE \
            for an installed release. The approval is a signature over the bundle id; `activate` needs it when \
            the release grants more than the current one. What widens is shown before it is signed (docs/site.md).
            """)

    @Argument(help: "A bundle file, or the NAME of an installed release.")
    var target: String

    @Argument(help: "With NAME: the release (folder, version or bundle id prefix).")
    var release: String?

    @Option(name: .long, help: "The approver's private key.")
    var key: String

    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var output: JSONOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let site = siteOptions.site
        let trust = try TrustStore.load(directory: site.trustDirectory)
        let privateKey = try PrivateKey.load(path: key)
        let bundleID: SHA256Digest, name: String, label: String
        let widens: [String]
        if let release {
            let dir = try Activation.resolve(site: site, name: target, release)
            (bundleID, widens) = try ReleaseGrants.widening(site: site, name: target, release: dir)
            name = target
            label = "\(target) \(dir)"
        } else {
            let report = Verifier.verify(bundle: target, trust: trust)
            if let e = report.error { throw e }
            let summary = try BundleSummary.read(path: target)
            bundleID = summary.bundleID
            name = summary.manifest.name
            label = "\(name) \(summary.manifest.version)"
            widens = try ReleaseGrants.widening(site: site, bundle: summary)
        }
        let id = try ApprovalStore.approve(site: site, bundleID: bundleID, name: name, key: privateKey, trust: trust, lockTimeout: siteOptions.lockTimeout)
        if output.json {
            Output.json(.object([
                "name": .string(name), "bundle_id": .string(bundleID.prefixed), "approver": .string(id), "widens": .array(widens.map { .string($0) }),
            ]))
            return
        }
        Output.say("approved \(label) (\(bundleID.prefixed)) with approver key \(id.prefix(16))...")
        if widens.isEmpty {
            Output.say("  it grants nothing beyond the current release of \(name)")
        } else {
            Output.say("  beyond the current release of \(name), it grants:")
            for w in widens { Output.say("  + \(w)") }
        }
    }
}
