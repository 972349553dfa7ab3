/// A private key Airlock can sign with.
public final class PrivateKey: Sendable {
    /// The key's algorithm: Ed25519 or P-256.
    public let algorithm: KeyAlgorithm
    /// The matching public key.
    public let publicKey: PublicKey
    package let handle: PKeyHandle

    private init(handle: PKeyHandle, algorithm: KeyAlgorithm) throws {
        self.handle = handle
        self.algorithm = algorithm
        self.publicKey = try PublicKey(handle: handle, algorithm: algorithm)
    }

    /// The key id: that of its public key.
    public var id: String { publicKey.id }

    /// A new random key of `algorithm`. Throws `keygen-failed` and `key-encoding-failed`.
    public static func generate(_ algorithm: KeyAlgorithm) throws -> PrivateKey {
        try PrivateKey(handle: OpenSSL.generate(algorithm), algorithm: algorithm)
    }

    /// Parses a PEM private key: PKCS#8 (`openssl genpkey`) or a traditional EC key. Throws
    /// `key-unreadable`, `key-algorithm-unsupported` and `key-encoding-failed`.
    public convenience init(pem: [UInt8], source: String = "the key") throws {
        let (handle, algorithm) = try readKey(
            pem, .privateKey, source: source,
            unreadable: "is not an unencrypted PEM private key; give the PREFIX.key file that `airlock key generate` or `openssl genpkey` wrote")
        try self.init(handle: handle, algorithm: algorithm)
    }

    /// Reads the PEM private key file at `path` (at most 64 KiB) and parses it as
    /// `init(pem:source:)` does. Throws `file-not-found`, `permission-denied`, `is-a-directory`,
    /// `open-failed`, `read-failed` and `file-too-large` when the file cannot be read, and what
    /// `init(pem:source:)` throws: `key-unreadable`, `key-algorithm-unsupported` and
    /// `key-encoding-failed`.
    public static func load(path: String) throws -> PrivateKey {
        try PrivateKey(pem: FileIO.read(path, limit: 64 << 10, what: "private key"), source: path)
    }

    /// PKCS#8 PEM. Throws `key-encoding-failed`.
    public func pem() throws -> [UInt8] { try OpenSSL.privateKeyPEM(handle) }

    /// Signs the exact bytes of `message` (Ed25519 one-shot, or ECDSA P-256 over SHA-256). Throws
    /// `sign-failed`.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try OpenSSL.sign(message, with: handle, algorithm: algorithm)
    }

    /// Writes `PREFIX.key` (mode 0600) and `PREFIX.pub`; refuses to overwrite either. Throws
    /// `key-exists`, `key-encoding-failed`, and `create-failed`, `disk-full` or `write-failed` when a
    /// file cannot be written.
    public func write(prefix: String) throws {
        let keyPath = prefix + ".key", pubPath = prefix + ".pub"
        for p in [keyPath, pubPath] where FileIO.exists(p) {
            throw AirlockError(.usage, .keyExists, "\(p) already exists; choose another --out prefix or remove the old key first")
        }
        try FileIO.writeAtomically(keyPath, try pem(), mode: 0o600)
        try FileIO.writeAtomically(pubPath, publicKey.pem, mode: 0o644)
    }
}

/// Parses a PEM key and checks that it is Ed25519 or P-256.
func readKey(_ pem: [UInt8], _ kind: OpenSSL.PEMKind, source: String, unreadable: String) throws -> (PKeyHandle, KeyAlgorithm) {
    guard let handle = OpenSSL.readPEM(pem, as: kind) else {
        throw AirlockError(.key, .keyUnreadable, "\(source) \(unreadable)")
    }
    guard let algorithm = OpenSSL.algorithm(of: handle) else {
        throw AirlockError(.key, .keyAlgorithmUnsupported, "\(source) is neither an Ed25519 nor a P-256 key; Airlock accepts only those")
    }
    return (handle, algorithm)
}

/// Reads the key id of a PEM public or private key file. Throws `file-not-found`, `permission-denied`,
/// `is-a-directory`, `open-failed`, `read-failed` and `file-too-large` when the file cannot be read,
/// and `key-unreadable`, `key-algorithm-unsupported` and `key-encoding-failed`.
public func keyID(ofKeyFile path: String) throws -> (id: String, algorithm: KeyAlgorithm, isPrivate: Bool) {
    let pem = try FileIO.read(path, limit: 64 << 10, what: "key")
    if OpenSSL.readPEM(pem, as: .publicKey) != nil {
        let k = try PublicKey(pem: pem, source: path)
        return (k.id, k.algorithm, false)
    }
    let k = try PrivateKey(pem: pem, source: path)
    return (k.id, k.algorithm, true)
}
