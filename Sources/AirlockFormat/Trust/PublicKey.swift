/// The signature algorithms Airlock accepts. The algorithm always comes from the trusted key,
/// never from a bundle.
public enum KeyAlgorithm: String, Sendable, CaseIterable {
    /// Ed25519, 64-byte signatures.
    case ed25519
    /// ECDSA over P-256 with SHA-256, DER signatures.
    case p256
}

/// A public key Airlock can verify with.
public final class PublicKey: Sendable {
    /// The key's algorithm: Ed25519 or P-256.
    public let algorithm: KeyAlgorithm
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo: `openssl pkey -pubin -outform DER | sha256sum`.
    public let id: String
    /// The key as SubjectPublicKeyInfo PEM.
    public let pem: [UInt8]
    package let handle: PKeyHandle

    package init(handle: PKeyHandle, algorithm: KeyAlgorithm) throws {
        // One key, one id: an EC point can be encoded compressed or not; always take the
        // uncompressed form, so the same key can never count as two signers.
        if algorithm == .p256 { OpenSSL.useUncompressedPoints(handle) }
        self.handle = handle
        self.algorithm = algorithm
        self.id = SHA256Digest.of(try OpenSSL.publicKeyDER(handle)).hex
        self.pem = try OpenSSL.publicKeyPEM(handle)
    }

    /// Parses a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`). Throws `key-unreadable`,
    /// `key-algorithm-unsupported` and `key-encoding-failed`.
    public convenience init(pem: [UInt8], source: String = "the key") throws {
        let (handle, algorithm) = try readKey(
            pem, .publicKey, source: source,
            unreadable: "is not a PEM public key; give a SubjectPublicKeyInfo PEM file (`airlock key generate` writes one as PREFIX.pub)")
        try self.init(handle: handle, algorithm: algorithm)
    }

    /// Reads the PEM public key file at `path` (at most 64 KiB) and parses it as
    /// `init(pem:source:)` does. Throws `file-not-found`, `permission-denied`, `is-a-directory`,
    /// `open-failed`, `read-failed` and `file-too-large` when the file cannot be read, and what
    /// `init(pem:source:)` throws: `key-unreadable`, `key-algorithm-unsupported` and
    /// `key-encoding-failed`.
    public static func load(path: String) throws -> PublicKey {
        try PublicKey(pem: FileIO.read(path, limit: 64 << 10, what: "public key"), source: path)
    }

    /// True only when the signature verifies over `message` with this key.
    public func verify(signature: [UInt8], over message: [UInt8]) -> Bool {
        OpenSSL.verify(signature, over: message, with: handle, algorithm: algorithm)
    }
}
