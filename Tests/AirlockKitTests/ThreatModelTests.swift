import AirlockFuzzTargets
import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// The "Signatures and trust" and "Archive" rows of threat-model.md, one crafted bundle each.
/// Hostile manifests are signed with the TRUSTED key: a compromised build pipeline is in scope,
/// so no check may rely on the signature alone.
struct ThreatRow: CustomTestStringConvertible, Sendable {
    var name: String
    var expected: String
    /// Words the refusal's message must hold, when the code alone does not tell this row's
    /// check from another that refuses with the same code.
    var message: String? = nil
    var build: @Sendable () throws -> [UInt8]
    var trust: @Sendable () -> TrustStore = { TestKeys.trust() }
    var detached: @Sendable () -> [DetachedSignature] = { [] }
    var testDescription: String { name }
}

private let vendor = TestKeys.vendor

/// `bytes` compressed by the zstd tool with a 2^27 window: from a pipe zstd does not know the
/// size, so its frame keeps the window asked for.
private func zstdLongWindow(_ bytes: [UInt8]) throws -> [UInt8] {
    let dir = TempDir()
    let p = dir.write("in.tar", bytes)
    _ = try run(["sh", "-c", "zstd -q -1 --long=27 -c < \"$0\" > \"$0.zst\"", p])
    return Array(FileManager.default.contents(atPath: p + ".zst")!)
}
private let release = Release()

/// A well-formed bundle whose entries `edit` may change.
private func bundle(_ r: Release = release, signers: [PrivateKey] = [vendor], edit: (inout [TarBuilder.Entry]) -> Void = { _ in }) -> [UInt8] {
    var e = r.entries(signers: signers)
    edit(&e)
    return TarBuilder.build(e)
}

/// A bundle whose manifest is the given JSON, validly signed by the trusted key.
private func signedManifest(_ json: String, payload: [TarBuilder.Entry] = []) -> [UInt8] {
    let bytes = Array(json.utf8)
    var e = [
        TarBuilder.Entry(BundleLayout.manifestEntry, bytes), TarBuilder.Entry(BundleLayout.signaturesPrefix + vendor.id + ".sig", try! vendor.sign(bytes)),
    ]
    e.append(TarBuilder.Entry(BundleLayout.sumsEntry, []))
    e += payload
    return TarBuilder.build(e)
}

/// The manifest of `release` as a JSON object, to edit and re-encode.
private func manifestObject(_ r: Release = release) -> [String: JSONValue] { r.manifest.json.objectValue! }

private func encode(_ o: [String: JSONValue]) -> String { CanonicalJSON.string(.object(o)) }

/// A release whose one extra file has a hostile path, signed: the manifest check must refuse it.
private func manifestWithPath(_ path: String) -> [UInt8] {
    var o = manifestObject()
    var files = o["files"]!.arrayValue!
    files.append(.object(["path": .string(path), "size": .integer(1), "sha256": .string(SHA256Digest.of([0x41]).hex), "mode": .string("0644")]))
    o["files"] = .array(files)
    return signedManifest(encode(o))
}

/// A well-formed, signed bundle with one extra tar entry of a hostile name in its payload.
private func entryNamed(_ raw: [UInt8], type: UInt8 = UInt8(ascii: "0")) -> [UInt8] {
    bundle { e in
        var x = TarBuilder.Entry(rawName: raw, [0x41])
        x.type = type
        e.insert(x, at: 3)
    }
}

private func payloadIndex(_ e: [TarBuilder.Entry], _ path: String) -> Int {
    e.firstIndex { $0.name.elementsEqual(("payload/" + path).utf8) }!
}

let signatureRows: [ThreatRow] = [
    ThreatRow(
        name: "payload byte flipped", expected: "payload-hash-mismatch",
        build: {
            bundle { e in e[payloadIndex(e, "model/weights.bin")].data[100] ^= 1 }
        }),
    ThreatRow(
        name: "manifest edited without re-signing", expected: "signature-invalid",
        build: {
            bundle { e in
                var m = e[0].data
                let i = m.firstIndex(of: UInt8(ascii: "7"))!
                m[i] = UInt8(ascii: "8")
                e[0].data = m
            }
        }),
    ThreatRow(
        name: "signature over other bytes", expected: "signature-invalid",
        build: {
            bundle { e in e[1].data = try! vendor.sign(Array("something else".utf8)) }
        }),
    ThreatRow(name: "empty signature", expected: "signature-invalid", build: { bundle { e in e[1].data = [] } }),
    ThreatRow(name: "truncated signature", expected: "signature-invalid", build: { bundle { e in e[1].data.removeLast(10) } }),
    ThreatRow(name: "signature with trailing bytes", expected: "signature-invalid", build: { bundle { e in e[1].data += [0] } }),
    ThreatRow(
        name: "ECDSA signature with trailing bytes", expected: "signature-invalid",
        build: {
            bundle(signers: [TestKeys.ecdsa]) { e in e[1].data += [0] }
        }, trust: { TestKeys.trust([TestKeys.ecdsa]) }),
    ThreatRow(name: "signature by an untrusted key", expected: "signer-untrusted", build: { bundle(signers: [TestKeys.stranger]) }),
    ThreatRow(
        name: "untrusted signature named after a trusted key id", expected: "signature-invalid",
        build: {
            bundle(signers: [TestKeys.stranger]) { e in e[1].name = Array((BundleLayout.signaturesPrefix + vendor.id + ".sig").utf8) }
        }),
    ThreatRow(
        name: "signature by a revoked key", expected: "signer-revoked", build: { bundle() },
        trust: {
            var p = TrustPolicy()
            p.revoked = [vendor.id]
            return TestKeys.trust(policy: p)
        }),
    ThreatRow(
        name: "signature by an expired key", expected: "signer-expired", build: { bundle() },
        trust: {
            var p = TrustPolicy()
            p.expires[vendor.id] = Timestamp.parse("2020-01-01T00:00:00Z")!
            return TestKeys.trust(policy: p)
        }),
    ThreatRow(
        name: "one valid signature repeated as an entry to fake a threshold of 2", expected: "signature-entry-duplicate",
        build: {
            bundle { e in e.insert(e[1], at: 2) }
        },
        trust: {
            var p = TrustPolicy()
            p.threshold = 2
            return TestKeys.trust([vendor, TestKeys.second], policy: p)
        }),
    ThreatRow(
        name: "one valid signature repeated as detached signatures to fake a threshold of 2", expected: "threshold-not-met", build: { bundle() },
        trust: {
            var p = TrustPolicy()
            p.threshold = 2
            return TestKeys.trust([vendor, TestKeys.second], policy: p)
        },
        detached: {
            let sig = try! vendor.sign(release.manifest.encoded())
            return [DetachedSignature(source: "a.sig", bytes: sig), DetachedSignature(source: "b.sig", bytes: sig)]
        }),
    ThreatRow(
        name: "ECDSA malleability: two different valid signatures by one key count once", expected: "threshold-not-met",
        build: {
            bundle(signers: [TestKeys.ecdsa])
        },
        trust: {
            var p = TrustPolicy()
            p.threshold = 2
            return TestKeys.trust([TestKeys.ecdsa, TestKeys.second], policy: p)
        },
        detached: {
            // ECDSA is randomised: a fresh signature has other bytes and is just as valid.
            [DetachedSignature(source: "again.sig", bytes: try! TestKeys.ecdsa.sign(release.manifest.encoded()))]
        }),
    ThreatRow(
        name: "freeze: expires in the past", expected: "bundle-expired",
        build: {
            var r = release
            r.expires = "2021-01-01T00:00:00Z"
            return bundle(r)
        }),
    ThreatRow(
        name: "mix-and-match: a manifest with the payload of another bundle", expected: "payload-hash-mismatch",
        build: {
            var other = release
            other.files[4].data = Array("You are a pirate captain\n".utf8)  // same length: only the hash differs
            var e = release.entries(signers: [vendor])
            let theirs = other.entries(signers: [vendor])
            e.replaceSubrange(3..., with: theirs[3...])
            return TarBuilder.build(e)
        }),
    ThreatRow(
        name: "manifest with duplicate JSON keys", expected: "manifest-invalid",
        build: {
            let m = String(decoding: release.manifest.encoded(), as: UTF8.self)
            return signedManifest(m.replacingOccurrences(of: "\"name\":\"support-agent\"", with: "\"name\":\"support-agent\",\"name\":\"evil\""))
        }),
    ThreatRow(
        name: "manifest with a huge number", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            o["sequence"] = .number("18446744073709551616")
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest with a size above 2^53", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            var files = o["files"]!.arrayValue!
            var f = files[0].objectValue!
            f["size"] = .number("9007199254740993")
            files[0] = .object(f)
            o["files"] = .array(files)
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest with a decimal size", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            o["sequence"] = .number("7.0")
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest with a wrong type", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            o["sequence"] = .string("7")
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest with an unknown field", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            o["run_as_root"] = .bool(true)
            return signedManifest(encode(o))
        }),
    ThreatRow(name: "manifest that is not JSON", expected: "manifest-invalid", build: { signedManifest("{\"format\":") }),
    ThreatRow(
        name: "manifest of another format version", expected: "format-unsupported",
        build: {
            var o = manifestObject()
            o["format"] = .string("airlock.bundle/v3")  // a version this Airlock does not read
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest whose component digest lies", expected: "component-summary-mismatch",
        build: {
            var o = manifestObject()
            var comps = o["components"]!.objectValue!
            var code = comps["code"]!.objectValue!
            code["digest"] = .string(SHA256Digest.of([1]).prefixed)
            comps["code"] = .object(code)
            o["components"] = .object(comps)
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest whose sizes add up past 2^64", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            var files: [JSONValue] = []
            for i in 0..<2050 {
                files.append(
                    .object([
                        "path": .string("model/w\(10000 + i)"), "size": .number("9007199254740992"), "sha256": .string(SHA256Digest.of([]).hex),
                        "mode": .string("0644"),
                    ]))
            }
            o["files"] = .array(files)
            return signedManifest(encode(o))
        }),
    ThreatRow(name: "manifest with a path that is only a component", expected: "manifest-invalid", build: { manifestWithPath("zcode") }),
    ThreatRow(
        name: "manifest with no file", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            o["files"] = .array([])
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest of millions of tiny JSON values", expected: "manifest-invalid",
        build: {
            var o = manifestObject()
            o["health"] = .object(["x": .array(Array(repeating: .number("0"), count: 4_100_000))])
            return signedManifest(encode(o))
        }),
    ThreatRow(
        name: "manifest with a setuid mode", expected: "manifest-invalid",
        build: {
            signedManifest(String(decoding: release.manifest.encoded(), as: UTF8.self).replacingOccurrences(of: "\"0755\"", with: "\"4755\""))
        }),
]

private let hostilePaths: [(String, String)] = [
    ("../x", "dot-dot"), ("/abs/x", "absolute"), ("code/../../x", "escaping"), ("code/./a", "dot segment"), ("code//b", "double slash"),
    ("code/trailing/", "trailing slash"), ("code\\evil", "backslash"), ("code/bell\u{07}", "control character"),
    ("code/e\u{301}", "NFD"),
    ("code/" + String(repeating: "a", count: BundleLayout.maxPathSegmentBytes + 1), "file name of 256 bytes"),
    ("code/" + String(repeating: "a", count: BundleLayout.maxPathSegmentBytes + 1) + "/x", "folder name of 256 bytes"),
    (pathOfExactly(BundleLayout.maxBundlePathBytes + 1, from: "index"), "2049 bytes, one over the bound"),
    (String(repeating: "a/", count: 2049) + "x", "4099 bytes, over the old 4096 bound"),
]

let archiveRows: [ThreatRow] =
    hostilePaths.map { path, label in
        ThreatRow(name: "manifest path: \(label)", expected: "path-invalid", build: { manifestWithPath(path) })
    }
    + hostilePaths.map { path, label in
        ThreatRow(name: "entry name: \(label)", expected: "path-invalid", build: { entryNamed(Array(("payload/" + path).utf8)) })
    }
    + [
        ThreatRow(
            name: "entry name: NUL (through a pax path)", expected: "path-invalid",
            build: {
                bundle { e in
                    var x = TarBuilder.Entry("payload/code/x", [0x41])
                    x.pax = [("path", Array("payload/code/a\u{0}b".utf8))]
                    e.insert(x, at: 3)
                }
            }),
        ThreatRow(name: "entry name: invalid UTF-8", expected: "path-invalid", build: { entryNamed(Array("payload/code/".utf8) + [0xC3, 0x28]) }),
        ThreatRow(name: "entry outside payload/", expected: "entry-unexpected", build: { entryNamed(Array("etc/passwd".utf8)) }),
        ThreatRow(name: "absolute entry outside payload/", expected: "entry-unexpected", build: { entryNamed(Array("/etc/passwd".utf8)) }),
        ThreatRow(
            name: "manifest: NFC/NFD twins", expected: "path-invalid",
            build: {
                manifestWithPath("prompts/re\u{301}ponse.md")
            }),
        ThreatRow(
            name: "manifest: case-fold twins", expected: "path-conflict",
            build: {
                var r = release
                r.files.append(Release.File(path: "prompts/System.md", data: [1]))
                return bundle(r)
            }),
        ThreatRow(
            name: "manifest: case-fold twins ß and ẞ", expected: "path-conflict",
            build: {
                var r = release
                r.files.append(Release.File(path: "prompts/\u{DF}.md", data: [1]))
                r.files.append(Release.File(path: "prompts/\u{1E9E}.md", data: [2]))
                return bundle(r)
            }),
        ThreatRow(
            name: "manifest: 400 paths of 1,000 folders each cost linear time", expected: "payload-missing",
            build: {
                // Checked folder by folder this would be quadratic. (2,011 bytes a path: the
                // 2048-byte bound allows at most 1,017 one-byte folders under index/.)
                let files = (0..<400).map { i in
                    ManifestFile(
                        path: "index/" + String(repeating: "d/", count: 1000) + "f\(1000 + i)", size: 0, sha256: SHA256Digest.of([]), executable: false)
                }
                let m = Manifest(name: "deep", version: "1", sequence: 1, created: "2026-11-26T00:00:00Z", expires: nil, componentMetadata: [:], files: files)
                let bytes = m.encoded()
                return TarBuilder.build([
                    TarBuilder.Entry(BundleLayout.manifestEntry, bytes),
                    TarBuilder.Entry(BundleLayout.signaturesPrefix + vendor.id + ".sig", try! vendor.sign(bytes)),
                    TarBuilder.Entry(BundleLayout.sumsEntry, m.sumsBytes),
                ])
            }),
        ThreatRow(
            name: "manifest: a path both a file and a folder", expected: "path-conflict",
            build: {
                var r = release
                r.files.append(Release.File(path: "prompts/system.md/x", data: [1]))
                return bundle(r)
            }),
        ThreatRow(
            name: "entry: case-fold twin of a listed file", expected: "entry-unexpected",
            build: {
                entryNamed(Array("payload/prompts/SYSTEM.md".utf8))
            }),
        ThreatRow(
            name: "symlink to /etc", expected: "entry-type",
            build: {
                bundle { e in
                    var x = TarBuilder.Entry("payload/code/etc")
                    x.type = UInt8(ascii: "2")
                    x.linkname = Array("/etc".utf8)
                    e.insert(x, at: 3)
                    e.insert(TarBuilder.Entry("payload/code/etc/passwd", [0x41]), at: 4)
                }
            }),
        ThreatRow(
            name: "symlink to ../outside", expected: "entry-type",
            build: {
                bundle { e in
                    var x = TarBuilder.Entry("payload/code/out")
                    x.type = UInt8(ascii: "2")
                    x.linkname = Array("../../outside".utf8)
                    e.insert(x, at: 3)
                }
            }),
        ThreatRow(
            name: "a directory replaced by a symlink later in the stream", expected: "entry-type",
            build: {
                bundle { e in
                    e.insert(.directory("payload/prompts/"), at: 4)
                    var x = TarBuilder.Entry("payload/prompts")
                    x.type = UInt8(ascii: "2")
                    x.linkname = Array("/tmp".utf8)
                    e.insert(x, at: 5)
                }
            }),
        ThreatRow(
            name: "hardlink entry", expected: "entry-type",
            build: {
                bundle { e in
                    var x = TarBuilder.Entry("payload/code/passwd")
                    x.type = UInt8(ascii: "1")
                    x.linkname = Array("/etc/passwd".utf8)
                    e.insert(x, at: 3)
                }
            }),
        ThreatRow(
            name: "hardlink disguised as type 0 with a link name", expected: "tar-invalid",
            build: {
                bundle { e in e[3].linkname = Array("payload/model/weights.bin".utf8) }
            }),
        ThreatRow(name: "character device", expected: "entry-type", build: { entryNamed(Array("payload/code/tty".utf8), type: UInt8(ascii: "3")) }),
        ThreatRow(name: "block device", expected: "entry-type", build: { entryNamed(Array("payload/code/sda".utf8), type: UInt8(ascii: "4")) }),
        ThreatRow(name: "FIFO", expected: "entry-type", build: { entryNamed(Array("payload/code/fifo".utf8), type: UInt8(ascii: "6")) }),
        ThreatRow(name: "setuid mode in the tar header", expected: "entry-mode", build: { bundle { e in e[3].mode = 0o4755 } }),
        ThreatRow(name: "setgid mode in the tar header", expected: "entry-mode", build: { bundle { e in e[3].mode = 0o2755 } }),
        ThreatRow(name: "sticky mode in the tar header", expected: "entry-mode", build: { bundle { e in e[3].mode = 0o1755 } }),
        ThreatRow(name: "mode differing from the manifest", expected: "payload-mode-mismatch", build: { bundle { e in e[3].mode = 0o644 } }),
        ThreatRow(name: "owner uid in the tar header", expected: "entry-owner", build: { bundle { e in e[3].uid = 1000 } }),
        ThreatRow(name: "owner name in the tar header", expected: "entry-owner", build: { bundle { e in e[3].uname = Array("mallory".utf8) } }),
        ThreatRow(name: "owner in a pax record", expected: "entry-owner", build: { bundle { e in e[3].pax = [("uid", Array("1000".utf8))] } }),
        ThreatRow(
            name: "xattr security.capability", expected: "pax-record",
            build: {
                bundle { e in e[3].pax = [("SCHILY.xattr.security.capability", [1, 0, 0, 2])] }
            }),
        ThreatRow(name: "ACL", expected: "pax-record", build: { bundle { e in e[3].pax = [("SCHILY.acl.access", Array("user::rwx".utf8))] } }),
        ThreatRow(name: "unknown pax record", expected: "pax-record", build: { bundle { e in e[3].pax = [("comment", Array("hi".utf8))] } }),
        ThreatRow(name: "global pax header", expected: "entry-type", build: { entryNamed(Array("pax_global_header".utf8), type: UInt8(ascii: "g")) }),
        ThreatRow(
            name: "duplicate entry (the last would win)", expected: "entry-duplicate",
            build: {
                bundle { e in
                    var evil = e[3]
                    evil.data = Array("#!/bin/sh\nrm -rf /\n".utf8)
                    e.insert(evil, at: 4)
                }
            }),
        ThreatRow(name: "duplicate last entry", expected: "entry-duplicate", build: { bundle { e in e.append(e[e.count - 1]) } }),
        ThreatRow(
            name: "sparse entry claiming terabytes (GNU type S)", expected: "entry-type",
            build: {
                bundle { e in
                    var x = TarBuilder.Entry("payload/model/sparse")
                    x.type = UInt8(ascii: "S")
                    x.declaredSize = 1 << 40
                    e.insert(x, at: 3)
                }
            }),
        ThreatRow(
            name: "sparse entry claiming terabytes (pax GNU.sparse)", expected: "pax-record",
            build: {
                bundle { e in
                    e[payloadIndex(e, "model/weights.bin")].pax = [("GNU.sparse.realsize", Array("1099511627776".utf8))]
                }
            }),
        ThreatRow(
            name: "entry larger than the manifest says", expected: "payload-size-mismatch",
            build: {
                bundle { e in e[payloadIndex(e, "model/weights.bin")].data += [0] }
            }),
        ThreatRow(
            name: "entry claiming a terabyte against the manifest", expected: "payload-size-mismatch",
            build: {
                bundle { e in e[payloadIndex(e, "model/weights.bin")].declaredSize = 1 << 40 }
            }),
        ThreatRow(
            name: "decompression bomb: gigabytes of zeros after the archive", expected: "trailing-data",
            build: {
                // 64 MiB of zeros compress to a few KiB; the reader stops after 1 MiB of padding.
                var t = bundle()
                t += [UInt8](repeating: 0, count: 64 << 20)
                return try zstdCompress(t)
            }),
        ThreatRow(
            // zstd's decoder accepts windows up to 128 MiB and allocates the window when it reads
            // the frame header, before any signature is checked; a bundle's frames use at most
            // 8 MiB (docs/format.md). Found by the bundle fuzz target (80 MiB asked).
            name: "decompression bomb: a zstd frame asking for a 128 MiB window", expected: "compression-invalid",
            message: "asks for a window of 134217728 bytes",
            build: {
                try zstdLongWindow(bundle() + [UInt8](repeating: 0, count: 64 << 20))
            }),
        ThreatRow(
            name: "a single-segment zstd frame declaring 64 MiB of content (its window)", expected: "compression-invalid",
            message: "asks for a window of 67108864 bytes",
            build: {
                // Descriptor 0xE0: single segment, an 8-byte content size, no checksum; then one
                // empty raw last block.
                [0x28, 0xB5, 0x2F, 0xFD, 0xE0] + withUnsafeBytes(of: UInt64(64 << 20).littleEndian, Array.init) + [0x01, 0x00, 0x00]
            }),
        ThreatRow(
            // libarchive once read a stream that began with a skippable frame as zstd while the
            // frame walker stood aside, so the window limit and the frame rules were skipped.
            name: "a skippable zstd frame before the first frame (then a 128 MiB window)", expected: "compression-invalid",
            message: "begins with a skippable zstd frame",
            build: {
                [0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0] + (try zstdLongWindow(bundle()))
            }),
        ThreatRow(
            // A filter chain would decode the inner stream too (with zstd's own 128 MiB window).
            name: "a bundle compressed twice (zstd of zstd with a 128 MiB window)", expected: "compression-invalid",
            message: "compressed more than once",
            build: {
                try zstdCompress(zstdLongWindow(bundle()))
            }),
        ThreatRow(
            name: "the input the bundle fuzz target found: a frame header asking for an 80 MiB window", expected: "compression-invalid",
            message: "asks for a window of 83886080 bytes",
            build: {
                Array(Data(base64Encoded: "KLUv/QCC/Pz8/Pz8/Pz8/Ab8/PwtLS0tLS0tLS0tLXG9uQGArHH8/Pz8/Pz8/Pz8Bvz8/C0tLS0tLS0tLS0tcb25AYCscfIB8gE=")!)
            }),
        ThreatRow(
            name: "10^6 entries: a flood of repeated directory entries stops at the first repeat", expected: "entry-duplicate",
            build: {
                var t = TarBuilder()
                for x in release.entries(signers: [vendor]) { t.add(x) }
                let dir = t.header(
                    name: Array("payload/code/".utf8), type: UInt8(ascii: "5"), mode: 0o755, uid: 0, gid: 0, uname: [], gname: [], linkname: [], size: 0)
                for _ in 0..<20_000 { t.bytes += dir }
                t.end()
                return t.bytes
            }),
        ThreatRow(
            name: "an extra file not in the manifest", expected: "entry-unexpected",
            build: {
                bundle { e in e.append(TarBuilder.Entry("payload/tools/extra.json", [0x7B, 0x7D])) }
            }),
        ThreatRow(name: "a file missing", expected: "payload-missing", build: { bundle { e in e.remove(at: payloadIndex(e, "prompts/system.md")) } }),
        ThreatRow(name: "files out of order", expected: "payload-missing", build: { bundle { e in e.swapAt(3, 4) } }),
        ThreatRow(
            name: "a file replaced by a directory", expected: "entry-unexpected",
            build: {
                bundle { e in e[payloadIndex(e, "tools/tools.json")] = .directory("payload/tools/tools.json/") }
            }),
        ThreatRow(name: "data after the end of the archive", expected: "trailing-data", build: { bundle() + Array("#!/bin/sh\n".utf8) }),
        ThreatRow(
            name: "data after the compressed stream of a small bundle", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + Array("extra".utf8)
            }),
        ThreatRow(
            name: "data after the compressed stream of a larger bundle", expected: "trailing-data",
            build: {
                var big = release
                big.files[1].data = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
                return try zstdCompress(bundle(big)) + Array("extra".utf8)
            }),
        ThreatRow(
            name: "a bundle compressed twice (gzip of zstd)", expected: "compression-invalid",
            build: {
                try gzipCompress(try zstdCompress(bundle()))
            }),
        ThreatRow(
            name: "a skippable zstd frame carrying hidden data", expected: "compression-invalid",
            build: {
                try zstdCompress(bundle()) + [0x50, 0x2A, 0x4D, 0x18, 5, 0, 0, 0] + Array("hello".utf8)
            }),
        ThreatRow(
            name: "a skippable zstd frame of other magic", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + [0x51, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 0, 0, 0, 0]
            }),
        ThreatRow(
            name: "a skippable zstd frame larger than 64 KiB", expected: "compression-invalid",
            build: {
                try zstdCompress(bundle()) + [0x50, 0x2A, 0x4D, 0x18, 0x01, 0x00, 0x01, 0x00] + [UInt8](repeating: 0, count: 65537)
            }),
        ThreatRow(
            name: "more than 16 skippable zstd frames", expected: "compression-invalid",
            build: {
                try zstdCompress(bundle()) + (0..<17).flatMap { _ in [0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0] as [UInt8] }
            }),
        ThreatRow(
            name: "a skippable zstd frame cut short", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + [0x50, 0x2A, 0x4D]
            }),
        ThreatRow(
            name: "a second zstd frame carrying data after the end of the archive", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + zstdCompress(Array("#!/bin/sh\necho owned\n".utf8))
            }),
        ThreatRow(
            name: "a second zstd frame carrying more zeros than the padding allows", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + zstdCompress([UInt8](repeating: 0, count: (1 << 20) + 4096))
            }),
        ThreatRow(
            // A bundle may be several zstd frames (docs/format.md): a magic number begins one,
            // which ends before its header: a frame cut short after the end of the archive is
            // something that follows it (TarReader.afterEnd).
            name: "a zstd magic number after the stream", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + [0x28, 0xB5, 0x2F, 0xFD]
            }),
        ThreatRow(
            // The tar's end was decoded before the cut showed: still a truncated bundle, since
            // the member that holds the archive's end is the one cut short.
            name: "a gzip bundle cut in its trailer", expected: "bundle-truncated",
            build: {
                Array(try gzipCompress(bundle()).dropLast(4))
            }),
        ThreatRow(
            name: "a zstd bundle cut in its checksum", expected: "bundle-truncated",
            build: {
                Array(try zstdCompress(bundle()).dropLast(2))
            }),
        ThreatRow(
            name: "a gzip bundle whose CRC does not match", expected: "compression-invalid",
            build: {
                var z = try gzipCompress(bundle())
                z[z.count - 8] ^= 0x01
                return z
            }),
        ThreatRow(
            name: "a second gzip member after the bundle", expected: "trailing-data",
            build: {
                try gzipCompress(bundle()) + gzipCompress(Array("#!/bin/sh\necho owned\n".utf8))
            }),
        ThreatRow(
            name: "an empty zstd frame", expected: "not-a-bundle",
            build: { [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x48, 0x01, 0x00, 0x00] }),
        ThreatRow(
            name: "an empty gzip member", expected: "not-a-bundle",
            build: {
                try gzipCompress([])
            }),
        ThreatRow(
            name: "a gzip header carrying a file name", expected: "compression-invalid",
            build: {
                try gzipCompress(bundle(), name: true)
            }),
        ThreatRow(
            name: "a lone zero block as the end marker", expected: "tar-invalid",
            build: {
                TarBuilder.build(release.entries(signers: [vendor]), end: false) + [UInt8](repeating: 0, count: 512)
            }),
        ThreatRow(
            name: "corrupt compressed data", expected: "compression-invalid",
            build: {
                var z = try zstdCompress(bundle())
                for i in 20..<60 { z[i] ^= 0x5A }
                return z
            }),
        ThreatRow(
            name: "a second compressed archive after the first", expected: "trailing-data",
            build: {
                try zstdCompress(bundle()) + zstdCompress(TarBuilder.build([TarBuilder.Entry("payload/code/evil", [1])]))
            }),
        ThreatRow(name: "truncated archive", expected: "bundle-truncated", build: { Array(bundle().prefix(3000)) }),
        ThreatRow(
            name: "truncated compressed archive", expected: "bundle-truncated",
            build: {
                let z = try zstdCompress(bundle())
                return Array(z.prefix(z.count - 40))
            }),
        ThreatRow(
            name: "archive without an end marker", expected: "bundle-truncated", build: { TarBuilder.build(release.entries(signers: [vendor]), end: false) }),
        ThreatRow(
            name: "a ZIP file renamed .airlock", expected: "not-a-bundle",
            build: {
                [0x50, 0x4B, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0] + [UInt8](repeating: 0x41, count: 600)
            }),
        ThreatRow(
            name: "a RAR file renamed .airlock", expected: "not-a-bundle", build: { Array("Rar!\u{1A}\u{07}\u{00}".utf8) + [UInt8](repeating: 7, count: 600) }),
        ThreatRow(
            name: "an ISO image renamed .airlock", expected: "not-a-bundle",
            build: {
                [UInt8](repeating: 0, count: 32768) + [1] + Array("CD001".utf8) + [UInt8](repeating: 0x20, count: 2042)
            }),
        ThreatRow(name: "an empty file", expected: "not-a-bundle", build: { [] }),
        ThreatRow(
            name: "a corrupt header checksum", expected: "tar-invalid",
            build: {
                var t = bundle()
                t[10] ^= 0x20
                return t
            }),
        ThreatRow(name: "manifest not first", expected: "manifest-not-first", build: { bundle { e in e.swapAt(0, 2) } }),
        ThreatRow(
            name: "a directory entry before the manifest", expected: "manifest-not-first", build: { bundle { e in e.insert(.directory("airlock/"), at: 0) } }),
        ThreatRow(name: "signatures after the payload", expected: "signature-missing", build: { bundle { e in e.append(e.remove(at: 1)) } }),
        ThreatRow(
            name: "signatures after the payload, with a valid detached signature", expected: "entry-order",
            build: {
                bundle { e in e.append(e.remove(at: 1)) }
            }, detached: { [DetachedSignature(source: "vendor.sig", bytes: try! vendor.sign(release.manifest.encoded()))] }),
        ThreatRow(
            name: "SHA256SUMS disagreeing with the manifest", expected: "sums-mismatch",
            build: {
                bundle { e in e[2].data[0] = e[2].data[0] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0") }
            }),
        ThreatRow(name: "SHA256SUMS missing", expected: "sums-missing", build: { bundle { e in e.remove(at: 2) } }),
        ThreatRow(
            name: "a huge manifest", expected: "entry-too-large",
            build: {
                var t = TarBuilder()
                var m = TarBuilder.Entry(BundleLayout.manifestEntry)
                m.declaredSize = 65 << 20
                t.add(m)
                return t.bytes
            }),
    ]
    + ["../../etc", ".", ".objects", "Current", "a/b", ""].map { name in
        ThreatRow(
            name: "release name \"\(name)\" that tries to escape", expected: "manifest-invalid",
            build: {
                var o = manifestObject()
                o["name"] = .string(name)
                return signedManifest(encode(o))
            })
    }
    + ["../1", "1/2", ".hidden", ""].map { version in
        ThreatRow(
            name: "release version \"\(version)\" that tries to escape", expected: "manifest-invalid",
            build: {
                var o = manifestObject()
                o["version"] = .string(version)
                return signedManifest(encode(o))
            })
    }

@Suite struct ThreatModelTests {
    @Test(arguments: signatureRows)
    func signaturesAndTrust(_ row: ThreatRow) throws {
        let report = verify(try row.build(), trust: row.trust(), detached: row.detached())
        #expect(report.error?.code == row.expected, "\(row.name): \(report.error?.description ?? "accepted")")
        #expect(!report.ok)
    }

    @Test(arguments: archiveRows)
    func archive(_ row: ThreatRow) throws {
        let report = verify(try row.build(), trust: row.trust(), detached: row.detached())
        #expect(report.error?.code == row.expected, "\(row.name): \(report.error?.description ?? "accepted")")
        if let words = row.message { #expect(report.error?.description.contains(words) == true, "\(row.name): \(report.error?.description ?? "accepted")") }
        #expect(!report.ok)
    }

    /// Every row's input of at most the bundle fuzz target's length, written where `make fuzz`
    /// seeds that target from (`.build-fuzz/work/seeds/bundle-threats`, docs/fuzzing.md): the
    /// fuzzer starts from the hostile inputs someone thought of. Each is refused by the
    /// target's check without a finding.
    @Test func rowsSeedTheBundleFuzzTarget() throws {
        let dir = FuzzCorpusTests.root + "/.build-fuzz/work/seeds/bundle-threats"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let target = try #require(FuzzTargets.named("bundle"))
        var written = 0
        for (i, row) in (signatureRows + archiveRows).enumerated() {
            let bytes = try row.build()
            guard bytes.count <= target.maxLength else { continue }
            let name = String(row.name.unicodeScalars.map { $0.properties.isAlphabetic || ("0"..."9").contains($0) ? Character($0) : "-" }.prefix(60))
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + String(1000 + i).dropFirst() + "-" + name))
            #expect(target.check(bytes) == nil, "\(row.name)")
            written += 1
        }
        #expect(written >= 120, "only \(written) rows fit the target's length")
    }

    /// The frame walker holds back the header byte that shows a window over 8 MiB, so the
    /// decoder never has a whole header to allocate from, whether the header comes in one read
    /// or byte by byte, and in a frame after a small one.
    @Test func windowOverTheLimitStopsBeforeTheHeaderIsComplete() throws {
        let small: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x48, 0x01, 0x00, 0x00]  // 512 KiB window, one empty raw last block
        let windowed: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x88, 0x01, 0x00, 0x00]  // 2^27
        let single: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xE0] + withUnsafeBytes(of: UInt64((8 << 20) + 1).littleEndian, Array.init) + [0x01, 0x00, 0x00]
        for (bytes, kept) in [(windowed, 5), (single, 12), (small + windowed, 9 + 5), (small + single, 9 + 12)] {
            var whole = ZstdFrameWalker()
            let used = bytes.withUnsafeBytes { whole.feed($0, atEOF: false) }
            #expect(used == kept && whole.failure?.contains("window") == true)
            // One byte a read, as a pipe may give them: what the walker holds back is given
            // again with the next byte, as DecompressedStream does.
            var split = ZstdFrameWalker()
            var given = 0
            var held: [UInt8] = []
            for b in bytes where split.failure == nil {
                held.append(b)
                let n = held.withUnsafeBytes { split.feed($0, atEOF: false) }
                given += n
                held.removeFirst(n)
            }
            #expect(given == kept && split.failure?.contains("window") == true)
        }
        var exact = ZstdFrameWalker()
        let eight: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x68, 0x01, 0x00, 0x00]  // 2^23: allowed
        #expect(eight.withUnsafeBytes { exact.feed($0, atEOF: true) } == eight.count && exact.failure == nil)
    }

    /// The baseline every row starts from verifies: each row fails only because of its change.
    @Test func baselineBundlesVerify() throws {
        #expect(verify(bundle()).ok)
        #expect(verify(try zstdCompress(bundle())).ok)
        // The largest window a bundle may use, 8 MiB: what zstd -19 asks for when it does not
        // know the size (the most `airlock pack --level` writes).
        let dir = TempDir()
        let tar = dir.write("in.tar", bundle())
        _ = try run(["sh", "-c", "zstd -q -19 -c < \"$0\" > \"$0.zst\"", tar])
        let level19 = Array(FileManager.default.contents(atPath: tar + ".zst")!)
        #expect(level19[4] == 0x04 && level19[5] == 0x68, "window descriptor \(level19[5]), not 2^23")
        #expect(verify(level19).ok)
        #expect(verify(bundle(signers: [TestKeys.ecdsa]), trust: TestKeys.trust([TestKeys.ecdsa])).ok)
        var p = TrustPolicy()
        p.threshold = 2
        let two = verify(bundle(signers: [vendor, TestKeys.second]), trust: TestKeys.trust([vendor, TestKeys.second], policy: p))
        #expect(two.ok, "\(two.error?.description ?? "")")
        #expect(two.signatures?.verifiedKeys.count == 2)
        // Directory entries for prefixes of listed paths carry no meaning and are accepted once.
        let withDirs = bundle { e in
            e.insert(.directory("payload/"), at: 3)
            e.insert(.directory("payload/code/"), at: 4)
        }
        #expect(verify(withDirs).ok)
        // Up to 1 MiB of zero padding after the end marker is allowed.
        #expect(verify(bundle() + [UInt8](repeating: 0, count: 1 << 20)).ok)
    }

    /// Exactly at the path bounds verifies: a 255-byte file name, a 255-byte folder name and a
    /// path of exactly 2048 bytes (every segment at most 255), in the manifest and as entries.
    @Test func pathsAtTheBoundsVerify() throws {
        var long = release
        let segment = String(repeating: "s", count: BundleLayout.maxPathSegmentBytes)
        let longest = pathOfExactly(BundleLayout.maxBundlePathBytes, from: "index")
        #expect(longest.utf8.count == 2048 && PathRules.problem(with: longest) == nil)
        long.files += [
            Release.File(path: "code/" + segment, data: [1]),
            Release.File(path: "prompts/" + segment + "/x", data: [2]),
            Release.File(path: longest, data: [3]),
        ]
        let r = verify(bundle(long))
        #expect(r.ok, "\(r.error?.description ?? "")")
        #expect(r.filesChecked == long.files.count)
    }
}
