import COpenSSL

/// The whole OpenSSL error queue as one line, emptied as it is read.
package func openSSLErrors() -> String {
    var parts: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        parts.append(String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return parts.isEmpty ? "no OpenSSL error recorded" : parts.joined(separator: "; ")
}

/// An incremental SHA-256 over OpenSSL's EVP interface. Not thread-safe: one per thread.
package final class SHA256Hasher {
    private let ctx: OpaquePointer

    package init() {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        self.ctx = ctx
        reset()
    }

    deinit { EVP_MD_CTX_free(ctx) }

    /// SHA-256 fetched from the provider once: `EVP_sha256()` makes every initialisation look
    /// the algorithm up again, which costs more than hashing a small file.
    nonisolated(unsafe) private static let algorithm: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)

    package func reset() {
        guard EVP_DigestInit_ex2(ctx, Self.algorithm ?? EVP_sha256(), nil) == 1 else {
            fatalError("SHA-256 is unavailable in this OpenSSL: \(openSSLErrors())")
        }
    }

    /// Hashes `bytes`, in chunks small enough for OpenSSL's length type.
    package func update(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = min(left, 1 << 30)
            EVP_DigestUpdate(ctx, base, n)
            base += n
            left -= n
        }
    }

    package func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest of everything since the last reset; resets the hasher.
    package func finish() -> SHA256Digest {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        reset()
        return SHA256Digest(bytes: out)
    }
}

/// Owns an `EVP_PKEY`.
package final class PKeyHandle: @unchecked Sendable {
    package let pointer: OpaquePointer

    package init(takingOwnershipOf pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }
}

/// Owns a memory `BIO`.
package final class MemoryBIO {
    package let pointer: OpaquePointer

    package init() {
        guard let p = BIO_new(BIO_s_mem()) else { fatalError("BIO_new failed: out of memory") }
        pointer = p
    }

    /// A read-only BIO over `bytes`, which must outlive it.
    package init(readingFrom bytes: UnsafeRawBufferPointer) {
        guard let p = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { fatalError("BIO_new_mem_buf failed") }
        pointer = p
    }

    deinit { BIO_free(pointer) }

    package var contents: [UInt8] {
        var data: UnsafeMutablePointer<CChar>?
        let n = airlock_BIO_get_mem_data(pointer, &data)
        guard n > 0, let data else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: n))
    }
}

package enum OpenSSL {
    package static func generate(_ algorithm: KeyAlgorithm) throws -> PKeyHandle {
        let name = algorithm == .ed25519 ? "ED25519" : "EC"
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, name, nil) else {
            throw AirlockError(.internal, .keygenFailed, "cannot create a \(algorithm.rawValue) key context", cause: openSSLErrors())
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1 else {
            throw AirlockError(.internal, .keygenFailed, "cannot start \(algorithm.rawValue) key generation", cause: openSSLErrors())
        }
        if algorithm == .p256 {
            guard EVP_PKEY_CTX_set_group_name(ctx, "P-256") == 1 else {
                throw AirlockError(.internal, .keygenFailed, "cannot select the P-256 curve", cause: openSSLErrors())
            }
        }
        var pkey: OpaquePointer?
        guard EVP_PKEY_generate(ctx, &pkey) == 1, let pkey else {
            throw AirlockError(.internal, .keygenFailed, "key generation failed", cause: openSSLErrors())
        }
        return PKeyHandle(takingOwnershipOf: pkey)
    }

    /// The algorithm of a key Airlock accepts, or nil for any other (RSA, Ed448, other curves).
    package static func algorithm(of key: PKeyHandle) -> KeyAlgorithm? {
        if EVP_PKEY_is_a(key.pointer, "ED25519") == 1 { return .ed25519 }
        if EVP_PKEY_is_a(key.pointer, "EC") == 1 {
            var buf = [CChar](repeating: 0, count: 64)
            var len = 0
            guard EVP_PKEY_get_utf8_string_param(key.pointer, OSSL_PKEY_PARAM_GROUP_NAME, &buf, buf.count, &len) == 1
            else { return nil }
            let group = String(decoding: buf.prefix(len).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return group == "prime256v1" || group == "P-256" ? .p256 : nil
        }
        return nil
    }

    package static func useUncompressedPoints(_ key: PKeyHandle) {
        EVP_PKEY_set_utf8_string_param(key.pointer, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed")
    }

    package static func publicKeyDER(_ key: PKeyHandle) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        let n = i2d_PUBKEY(key.pointer, &out)
        guard n > 0, let out else {
            throw AirlockError(.key, .keyEncodingFailed, "cannot encode the public key", cause: openSSLErrors())
        }
        defer { airlock_OPENSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }

    package static func publicKeyPEM(_ key: PKeyHandle) throws -> [UInt8] {
        let bio = MemoryBIO()
        guard PEM_write_bio_PUBKEY(bio.pointer, key.pointer) == 1 else {
            throw AirlockError(.key, .keyEncodingFailed, "cannot write the public key as PEM", cause: openSSLErrors())
        }
        return bio.contents
    }

    /// PKCS#8 PEM, unencrypted.
    package static func privateKeyPEM(_ key: PKeyHandle) throws -> [UInt8] {
        let bio = MemoryBIO()
        guard PEM_write_bio_PrivateKey(bio.pointer, key.pointer, nil, nil, 0, nil, nil) == 1 else {
            throw AirlockError(.key, .keyEncodingFailed, "cannot write the private key as PEM", cause: openSSLErrors())
        }
        return bio.contents
    }

    package enum PEMKind { case publicKey, privateKey }

    /// Reads a PEM public key (SubjectPublicKeyInfo) or private key (PKCS#8 or traditional).
    package static func readPEM(_ pem: [UInt8], as kind: PEMKind) -> PKeyHandle? {
        ERR_clear_error()
        let key: OpaquePointer? = pem.withUnsafeBytes { raw in
            let bio = MemoryBIO(readingFrom: raw)
            switch kind {
            case .publicKey: return PEM_read_bio_PUBKEY(bio.pointer, nil, nil, nil)
            case .privateKey: return PEM_read_bio_PrivateKey(bio.pointer, nil, nil, nil)
            }
        }
        ERR_clear_error()
        return key.map { PKeyHandle(takingOwnershipOf: $0) }
    }

    package static func sign(_ message: [UInt8], with key: PKeyHandle, algorithm: KeyAlgorithm) throws -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        let digestName: String? = algorithm == .ed25519 ? nil : "SHA256"
        guard EVP_DigestSignInit_ex(ctx, nil, digestName, nil, nil, key.pointer, nil) == 1 else {
            throw AirlockError(.key, .signFailed, "cannot start signing", cause: openSSLErrors())
        }
        var len = 0
        guard message.withUnsafeBufferPointer({ EVP_DigestSign(ctx, nil, &len, $0.baseAddress, $0.count) }) == 1 else {
            throw AirlockError(.key, .signFailed, "cannot size the signature", cause: openSSLErrors())
        }
        var sig = [UInt8](repeating: 0, count: len)
        guard message.withUnsafeBufferPointer({ EVP_DigestSign(ctx, &sig, &len, $0.baseAddress, $0.count) }) == 1 else {
            throw AirlockError(.key, .signFailed, "signing failed", cause: openSSLErrors())
        }
        return Array(sig.prefix(len))
    }

    /// True only when OpenSSL says the signature is valid (`EVP_DigestVerify` returned 1).
    package static func verify(_ signature: [UInt8], over message: [UInt8], with key: PKeyHandle, algorithm: KeyAlgorithm) -> Bool {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        defer {
            EVP_MD_CTX_free(ctx)
            ERR_clear_error()
        }
        let digestName: String? = algorithm == .ed25519 ? nil : "SHA256"
        guard EVP_DigestVerifyInit_ex(ctx, nil, digestName, nil, nil, key.pointer, nil) == 1 else { return false }
        let r = signature.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                EVP_DigestVerify(ctx, sig.baseAddress, sig.count, msg.baseAddress, msg.count)
            }
        }
        return r == 1
    }
}
