import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

@Suite struct JSONTests {
    @Test(arguments: [
        "{\"a\":1,\"a\":2}", "{\"a\":1,}", "[1,]", "01", "1.", "-", "\"\\ud800\"", "\"\\udc00x\"", "\"a\u{1}\"", "{} x", "\"\\x\"", "nul",
        String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func refusesInvalidJSON(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func keepsNumbersExactAndWritesCanonically() throws {
        let v = try JSONParser.parse(Array(#"{"b":[1,2.5e3,-0.5],"a":"\u00e9\/\n","big":18446744073709551616}"#.utf8))
        #expect(CanonicalJSON.string(v) == #"{"a":"é/\n","b":[1,2.5e3,-0.5],"big":18446744073709551616}"#)
        #expect(v.objectValue?["big"]?.unsignedInteger(max: .max) == nil)
        #expect(JSONValue.number("9007199254740992").unsignedInteger() == 1 << 53)
        #expect(JSONValue.number("9007199254740993").unsignedInteger() == nil)
        #expect(JSONValue.number("1e3").unsignedInteger() == nil)
        // Keys sort by UTF-8 bytes, not by Unicode-aware String comparison.
        let keys = try JSONParser.parse(Array(#"{"é":1,"z":2,"Z":3}"#.utf8))
        #expect(CanonicalJSON.string(keys) == #"{"Z":3,"z":2,"é":1}"#)
    }

    @Test func manifestRoundTripsThroughItsEncoding() throws {
        var r = Release()
        r.expires = "2030-01-01T00:00:00Z"
        let m = r.manifest
        #expect(m.encoded() == CanonicalJSON.encode(m.json))
        let parsed = try Manifest.parse(m.encoded())
        #expect(parsed == m)
        #expect(parsed.encoded() == m.encoded())
    }

    @Test func componentDigestFollowsTheFormat() {
        let m = Release().manifest
        let prompts = m.files.filter { $0.component == "prompts" }
        let text = prompts.map { "\($0.sha256.hex) \($0.modeString) \($0.path)\n" }.joined()
        #expect(m.components["prompts"]?.digest == SHA256Digest.of(Array(text.utf8)))
        #expect(m.components["prompts"]?.files == 3)
        #expect(m.sums == SHA256Digest.of(m.sumsBytes))
        #expect(String(decoding: m.sumsBytes, as: UTF8.self).hasPrefix(m.files[0].sha256.hex + "  code/agent.py\n"))
    }

    /// The allocation-free writers spell numbers, digests and summaries as the plain ones do,
    /// on a manifest whose components are not next to each other and with large sizes.
    @Test func fastWritersAgreeWithThePlainSpelling() {
        for n: UInt64 in [0, 9, 10, 99, 100, 1_234_567, UInt64(1) << 53, UInt64.max] {
            var out: [UInt8] = [0x41]
            CanonicalJSON.appendDecimal(n, to: &out)
            #expect(out == [0x41] + Array(String(n).utf8))
        }
        for seed in 0..<50 {
            let d = SHA256Digest.of(Array("digest \(seed)".utf8))
            let plain = d.bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
            #expect(d.hex == plain)
            var out: [UInt8] = [0x2A]
            d.appendHex(to: &out)
            #expect(out == [0x2A] + Array(plain.utf8))
            #expect(SHA256Digest(hex: d.hex) == d)
        }
        let files = (0..<3000).map { i in
            ManifestFile(
                path: ["prompts", "code", "index", "prompts"][i % 4] + "/f\(i)", size: UInt64(i) << 40, sha256: SHA256Digest.of(Array("\(i)".utf8)),
                executable: i % 3 == 0)
        }
        let sums = Manifest.summarize(files, metadata: ["model": ["name": "m"]])
        for name in ["prompts", "code", "index", "model"] {
            let mine = files.filter { $0.component == name }
            let text = mine.map { "\($0.sha256.hex) \($0.modeString) \($0.path)\n" }.joined()
            #expect(sums[name]?.digest == SHA256Digest.of(Array(text.utf8)), "\(name)")
            #expect(sums[name]?.files == UInt64(mine.count))
            #expect(sums[name]?.bytes == mine.reduce(0) { $0 + $1.size })
        }
        #expect(sums["model"]?.metadata == ["name": "m"])
        let lines = files.map { "\($0.sha256.hex)  \($0.path)\n" }.joined()
        #expect(Manifest.sumsDigest(files) == SHA256Digest.of(Array(lines.utf8)))
    }

    @Test func timestamps() {
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2026-01-01T00:00:00Z") == 1_767_225_600)
        #expect(Timestamp.parse("2024-02-29T23:59:59Z") != nil)
        #expect(Timestamp.parse("2023-02-29T00:00:00Z") == nil)
        #expect(Timestamp.parse("2026-01-01T00:00:00+01:00") == nil)
        #expect(Timestamp.parse("2026-01-01 00:00:00Z") == nil)
        #expect(Timestamp.format(1_767_225_600) == "2026-01-01T00:00:00Z")
        for t: Int64 in [0, 951_782_400, 4_102_444_799] { #expect(Timestamp.parse(Timestamp.format(t)) == t) }
    }
}

@Suite struct KeysTests {
    @Test(arguments: KeyAlgorithm.allCases)
    func generatedKeysSignVerifyAndRoundTrip(_ algorithm: KeyAlgorithm) throws {
        let tmp = TempDir()
        let key = try PrivateKey.generate(algorithm)
        try key.write(prefix: tmp.file("k"))
        var st = stat()
        stat(tmp.file("k.key"), &st)
        #expect(st.st_mode & 0o777 == 0o600)
        let loaded = try PrivateKey.load(path: tmp.file("k.key"))
        let pub = try PublicKey.load(path: tmp.file("k.pub"))
        #expect(loaded.id == key.id && pub.id == key.id && pub.algorithm == algorithm)
        let msg = Array("manifest".utf8)
        let sig = try loaded.sign(msg)
        #expect(pub.verify(signature: sig, over: msg))
        #expect(!pub.verify(signature: sig, over: Array("manifesT".utf8)))
        #expect(throws: AirlockError.self) { try key.write(prefix: tmp.file("k")) }
    }

    @Test func keyIDMatchesOpenSSLAndKeysFromOpenSSLWork() throws {
        let tmp = TempDir()
        for (name, args) in [("ed", ["-algorithm", "ed25519"]), ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])] {
            #expect(try run(["openssl", "genpkey"] + args + ["-out", tmp.file(name + ".key")]).status == 0)
            #expect(try run(["openssl", "pkey", "-in", tmp.file(name + ".key"), "-pubout", "-out", tmp.file(name + ".pub")]).status == 0)
            let expected = try run(["sh", "-c", "openssl pkey -pubin -in '\(tmp.file(name + ".pub"))' -outform DER | sha256sum | cut -d' ' -f1"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try keyID(ofKeyFile: tmp.file(name + ".pub")).id == expected)
            #expect(try keyID(ofKeyFile: tmp.file(name + ".key")).id == expected)
            let key = try PrivateKey.load(path: tmp.file(name + ".key"))
            let sig = try key.sign([1, 2, 3])
            #expect(try PublicKey.load(path: tmp.file(name + ".pub")).verify(signature: sig, over: [1, 2, 3]))
        }
    }

    /// One P-256 key saved with a compressed and an uncompressed point is one key, one id.
    @Test func ecKeyIDDoesNotDependOnThePointEncoding() throws {
        let tmp = TempDir()
        tmp.write("k.pub", TestKeys.ecdsa.publicKey.pem)
        let conv = try run(["openssl", "ec", "-pubin", "-in", tmp.file("k.pub"), "-conv_form", "compressed", "-pubout", "-out", tmp.file("c.pub")])
        #expect(conv.status == 0, "\(conv.stderr)")
        #expect(try FileManager.default.contents(atPath: tmp.file("c.pub")) != FileManager.default.contents(atPath: tmp.file("k.pub")))
        #expect(try PublicKey.load(path: tmp.file("c.pub")).id == TestKeys.ecdsa.id)
        try FileManager.default.createDirectory(atPath: tmp.file("trust"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: tmp.file("k.pub"), toPath: tmp.file("trust/a.pub"))
        try FileManager.default.copyItem(atPath: tmp.file("c.pub"), toPath: tmp.file("trust/b.pub"))
        #expect(try TrustStore.load(directory: tmp.file("trust")).keys.count == 1)
    }

    @Test func refusesOtherAlgorithms() throws {
        let tmp = TempDir()
        #expect(try run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", tmp.file("rsa.key")]).status == 0)
        #expect(try run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", tmp.file("p384.key")]).status == 0)
        for f in ["rsa.key", "p384.key"] {
            #expect { try PrivateKey.load(path: tmp.file(f)) } throws: { ($0 as? AirlockError)?.code == "key-algorithm-unsupported" }
        }
        tmp.write("junk.pub", "not a key")
        #expect { try PublicKey.load(path: tmp.file("junk.pub")) } throws: { ($0 as? AirlockError)?.code == "key-unreadable" }
    }

    @Test func trustStoreAndPolicy() throws {
        let tmp = TempDir()
        tmp.write("trust/vendor.pub", TestKeys.vendor.publicKey.pem)
        tmp.write("trust/second.pub", TestKeys.second.publicKey.pem)
        tmp.write(
            "trust/policy.json",
            """
            {"threshold": 2, "revoked": ["\(TestKeys.second.id)"],
             "keys": {"\(TestKeys.vendor.id)": {"expires": "2030-01-01T00:00:00Z", "label": "release-ci"}}}
            """)
        let store = try TrustStore.load(directory: tmp.file("trust"))
        #expect(Set(store.keys.keys) == [TestKeys.vendor.id, TestKeys.second.id])
        #expect(store.policy.threshold == 2)
        #expect(store.policy.revoked == [TestKeys.second.id])
        #expect(store.policy.labels[TestKeys.vendor.id] == "release-ci")
        #expect(store.unusableReason(TestKeys.vendor.id, now: Timestamp.parse("2029-12-31T23:59:59Z")!) == nil)
        #expect(store.unusableReason(TestKeys.vendor.id, now: Timestamp.parse("2030-01-01T00:00:00Z")!) == .keyExpired)
        for bad in [
            #"{"threshold": 0}"#, #"{"threshold": "2"}"#, #"{"revoked": ["ABC"]}"#, #"{"keys": {"x": {}}}"#, #"{"extra": 1}"#,
            #"{"threshold": 1, "threshold": 2}"#,
        ] {
            tmp.write("trust/policy.json", bad)
            #expect(throws: AirlockError.self, "\(bad)") { try TrustStore.load(directory: tmp.file("trust")) }
        }
        #expect { try TrustStore.load(directory: tmp.file("none")) } throws: { ($0 as? AirlockError)?.code == "trust-store-missing" }
        tmp.write("empty/readme", "x")
        #expect { try TrustStore.load(directory: tmp.file("empty")) } throws: { ($0 as? AirlockError)?.code == "trust-store-empty" }
    }
}
