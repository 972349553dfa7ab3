import Foundation

/// A directory of trusted public keys (`*.pub`, SubjectPublicKeyInfo PEM) and an optional
/// `policy.json`. Keys are identified by their key id, never by file name.
public struct TrustStore: Sendable {
    /// The directory the store was loaded from (`(memory)` for one built in code).
    public var directory: String
    /// The trusted signing keys, by key id.
    public var keys: [String: PublicKey]
    /// The trust policy: `policy.json`, or the defaults when there is none.
    public var policy: TrustPolicy
    /// The site's approver keys (`approvers/*.pub`): they approve activations that widen a
    /// release's permissions, and never count as signers of a bundle.
    public var approvers: [String: PublicKey] = [:]

    /// The folder of approver keys in a trust store.
    public static let approversFolder = "approvers"

    /// A store of `keys` and `approvers`, each kept once per key id; nothing is read from disk.
    public init(keys: [PublicKey], policy: TrustPolicy = TrustPolicy(), directory: String = "(memory)", approvers: [PublicKey] = []) {
        self.directory = directory
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.policy = policy
        self.approvers = Dictionary(approvers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Loads the trust store in `directory`: every `*.pub` key, `approvers/*.pub` and `policy.json`.
    /// Throws `trust-store-missing`, `read-failed`, `trust-store-empty` and `key-role-conflict`; what
    /// `PublicKey.load` throws for each key file; and for `policy.json`, what reading it throws
    /// (`file-too-large`, `permission-denied`, ...) and `policy-invalid`.
    public static func load(directory: String) throws -> TrustStore {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw AirlockError(.key, .trustStoreMissing, "trust store \(directory) is not a directory; give --trust DIR holding the trusted *.pub keys")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw AirlockError(.io, .readFailed, "cannot list trust store \(directory); check its permissions")
        }
        var keys: [PublicKey] = []
        for name in names where name.hasSuffix(".pub") {
            keys.append(try PublicKey.load(path: directory + "/" + name))
        }
        guard !keys.isEmpty else {
            throw AirlockError(.key, .trustStoreEmpty, "trust store \(directory) holds no *.pub key; copy the vendor's public key into it")
        }
        var policy = TrustPolicy()
        let policyPath = directory + "/" + TrustPolicy.fileName
        if FileIO.exists(policyPath) {
            policy = try TrustPolicy.parse(FileIO.read(policyPath, limit: 1 << 20, what: "trust policy"), path: policyPath)
        }
        var approvers: [PublicKey] = []
        let approverDir = directory + "/" + approversFolder
        if let names = try? FileManager.default.contentsOfDirectory(atPath: approverDir) {
            for name in names.sorted() where name.hasSuffix(".pub") { approvers.append(try PublicKey.load(path: approverDir + "/" + name)) }
        }
        // One key, one role, however the files got there: a vendor key that could approve
        // would approve its own releases.
        if let both = approvers.first(where: { a in keys.contains { $0.id == a.id } }) {
            throw AirlockError(
                .key, .keyRoleConflict,
                "\(both.id) is both a signing key and an approver key in \(directory); remove it from one of them (an approver key must be another key)")
        }
        return TrustStore(keys: keys, policy: policy, directory: directory, approvers: approvers)
    }

    /// Why a trusted key's signatures do not count at `now`, or nil when they do.
    public func unusableReason(_ id: String, now: Int64) -> SignerStatus? {
        if policy.revoked.contains(id) { return .revoked }
        if let e = policy.expires[id], now >= e { return .keyExpired }
        return nil
    }
}
