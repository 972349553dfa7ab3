import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension SiteAdmin {
    /// Trusts a signer's key; with `approver`, makes it a site approver instead (`approvers/`),
    /// which approves activations and never counts as a bundle's signer.
    public static func trustAdd(site: Site, keyFile: String, approver: Bool = false, lockTimeout: Double = 30) throws -> PublicKey {
        let key = try PublicKey.load(path: keyFile)
        let lock = try site.lockForWriting(command: "trust add", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        // One key, one role: a vendor who could approve would approve its own releases.
        if let store = try? TrustStore.load(directory: site.trustDirectory) {
            if approver, store.keys[key.id] != nil {
                throw AirlockError(.key, .keyRoleConflict, "\(key.id) signs bundles on this site; an approver key must be another key")
            }
            if !approver, store.approvers[key.id] != nil {
                throw AirlockError(.key, .keyRoleConflict, "\(key.id) is one of the site's approvers; a signing key must be another key")
            }
        }
        var dir = site.trustDirectory
        if approver {
            dir += "/" + TrustStore.approversFolder
            if Sys.mkdir(dir, 0o755) != 0 && errno != EEXIST { throw AirlockError.io(.writeFailed, "cannot create \(dir)", errno: errno) }
        }
        try FileIO.writeAtomically(dir + "/" + key.id + ".pub", key.pem, mode: 0o644)
        try History.append(site, action: approver ? "approver-add" : "trust-add", ["key_id": .string(key.id), "algorithm": .string(key.algorithm.rawValue)])
        return key
    }

    /// Adds hosts (`kb.internal:443`, `*.corp.internal`) or networks (`10.0.0.0/8`) to the
    /// site's perimeter, or removes them (`remove`), rewriting `policy.json` atomically.
    public static func perimeter(site: Site, entries: [String], remove: Bool = false, lockTimeout: Double = 30) throws -> Perimeter {
        let lock = try site.lockForWriting(command: "trust perimeter", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let path = site.trustDirectory + "/" + SiteLayout.policy
        var file =
            FileIO.exists(path) ? try TrustPolicy.parse(FileIO.read(path, limit: 1 << 20, what: "trust policy", siteFile: true), path: path) : TrustPolicy()
        var policy = try SitePolicy.parse(file.siteFields, path: path)
        for e in entries {
            let isNetwork = e.contains("/")
            if let why = isNetwork ? Perimeter.networkProblem(e) : Perimeter.hostRuleProblem(e) {
                throw AirlockError(.usage, .perimeterEntryInvalid, "\(e) \(why)")
            }
            if remove {
                guard policy.perimeter.hosts.contains(e) || policy.perimeter.networks.contains(e) else {
                    throw AirlockError(.usage, .perimeterEntryUnknown, "\(e) is not in the perimeter; `airlock trust list` shows it")
                }
                policy.perimeter.hosts.removeAll { $0 == e }
                policy.perimeter.networks.removeAll { $0 == e }
            } else if isNetwork {
                if !policy.perimeter.networks.contains(e) { policy.perimeter.networks.append(e) }
            } else if !policy.perimeter.hosts.contains(e) {
                policy.perimeter.hosts.append(e)
            }
        }
        file.siteFields = policy.fields
        // The policy must still read: a webhook or a tool endpoint that the removal leaves
        // outside the perimeter is named, and nothing is written.
        do {
            _ = try SitePolicy.parse(file.siteFields, path: path)
        } catch let e as AirlockError {
            throw AirlockError(
                .usage, .perimeterEntryInvalid,
                "removing \(entries.joined(separator: " ")) would leave the policy invalid: \(e.message); change or remove what still reaches it first (nothing was changed)"
            )
        }
        try FileIO.writeAtomically(path, Array(CanonicalJSON.pretty(file.json).utf8) + [0x0A], mode: 0o644)
        try History.append(site, action: remove ? "perimeter-remove" : "perimeter-add", ["entries": .array(entries.map { .string($0) })])
        return policy.perimeter
    }

    /// Stops trusting a signing key or an approver key (by id or unique id prefix).
    public static func trustRemove(site: Site, keyID prefix: String, lockTimeout: Double = 30) throws -> String {
        let lock = try site.lockForWriting(command: "trust remove", timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let store = try SiteTrust.load(directory: site.trustDirectory).store
        let all = Array(store.keys.keys) + Array(store.approvers.keys)
        let matches = Set(all.filter { $0.hasPrefix(prefix.lowercased()) })
        guard matches.count == 1, let id = matches.first else {
            throw AirlockError(
                .usage, .keyUnknown,
                matches.isEmpty
                    ? "no trusted or approver key id starts with \(prefix); `airlock trust list` shows them"
                    : "\(prefix) matches \(matches.count) keys; give more of the id")
        }
        let isApprover = store.approvers[id] != nil
        let dir = isApprover ? site.trustDirectory + "/" + TrustStore.approversFolder : site.trustDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasSuffix(".pub") {
            let p = dir + "/" + name
            if (try? PublicKey.load(path: p))?.id == id { _ = Sys.unlink(p) }
        }
        FileIO.syncParentDirectory(of: dir + "/x")
        try History.append(site, action: isApprover ? "approver-remove" : "trust-remove", ["key_id": .string(id)])
        return id
    }
}
