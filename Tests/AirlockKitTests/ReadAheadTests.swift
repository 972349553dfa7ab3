import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

/// `airlock verify` reads on while the manifest is parsed (`BundleReader.readAhead`): the entries
/// it takes then are checked after, in order. None of that may change an outcome: every hostile
/// bundle is refused with the same code and the same message whether nothing was read ahead or
/// as much as the reader's limits allow, and what verifies one way verifies the other.
@Suite struct ReadAheadTests {
    /// The three ways, from one file: each row's outcome is the same.
    private func outcomes(
        _ bytes: [UInt8], trust: TrustStore = TestKeys.trust(), detached: [DetachedSignature] = [], base: BaseManifestLookup? = nil
    )
        -> [VerificationReport]
    {
        let dir = TempDir()
        let path = dir.write("bundle.airlock", bytes)
        // One clock for the three: a message that names the time ("expired at …, now …") must
        // not differ because a second passed between two of them.
        let now = Timestamp.now()
        return [Verifier.ReadAhead.never, .toTheLimits, .whileParsing].map {
            Verifier.verify(bundle: path, trust: trust, detached: detached, now: now, baseManifest: base, readAhead: $0)
        }
    }

    private func expectSame(_ reports: [VerificationReport], _ label: String) {
        let first = reports[0]
        for r in reports.dropFirst() {
            #expect(r.error?.code == first.error?.code, "\(label): \(r.error?.description ?? "accepted") vs \(first.error?.description ?? "accepted")")
            #expect(r.error?.message == first.error?.message, "\(label)")
            #expect(r.filesChecked == first.filesChecked && r.bytesChecked == first.bytesChecked, "\(label)")
            #expect(r.filesExpectedAtSite == first.filesExpectedAtSite, "\(label)")
        }
    }

    @Test(arguments: signatureRows + archiveRows)
    func everyThreatRowEndsTheSame(_ row: ThreatRow) throws {
        let reports = outcomes(try row.build(), trust: row.trust(), detached: row.detached())
        expectSame(reports, row.name)
        #expect(reports.allSatisfy { $0.error?.code == row.expected }, "\(row.name)")
    }

    /// A release of `count` small index documents besides the standard files: more than the
    /// reader takes ahead (`maxAheadEntries`).
    private func manyFiles(_ count: Int) -> Release {
        var r = Release()
        r.files += (0..<count).map { Release.File(path: "index/doc-\(100_000 + $0).txt", data: Array("document \($0)\n".utf8)) }
        return r
    }

    @Test func aReleaseLargerThanTheLimitsVerifiesAndItsFirstDamagedFileIsNamed() throws {
        let count = BundleReader.maxAheadEntries + 900
        let r = manyFiles(count)
        let good = TarBuilder.build(r.entries(signers: [TestKeys.vendor]))
        for bytes in [good, try zstdCompress(good)] {
            let reports = outcomes(bytes)
            expectSame(reports, "intact")
            #expect(reports.allSatisfy { $0.ok && $0.filesChecked == r.files.count }, "\(reports.map { $0.error?.description ?? "ok" })")
        }
        // One file damaged inside what is read ahead, one past it: the first in the manifest's
        // order is the one named, whichever was hashed first.
        for damaged in [[10], [count - 5], [10, count - 5], [count - 5, count - 4]] {
            var e = r.entries(signers: [TestKeys.vendor])
            for k in damaged { e[e.firstIndex { $0.name.elementsEqual("payload/index/doc-\(100_000 + k).txt".utf8) }!].data[0] ^= 0x20 }
            let reports = outcomes(try zstdCompress(TarBuilder.build(e)))
            expectSame(reports, "damaged \(damaged)")
            #expect(reports.allSatisfy { $0.error?.code == "payload-hash-mismatch" && $0.error!.message.contains("doc-\(100_000 + damaged[0]).txt") })
        }
    }

    /// Faults that meet in one bundle are reported in the order the reader meets them, read
    /// ahead or not: a payload entry misnamed and cut short, SHA256SUMS of the wrong size and
    /// cut short, a file damaged before an entry the manifest does not list (a damaged file is
    /// reported first: the digests are checked before what follows the last file).
    @Test func faultsThatMeetAreReportedInTheSameOrder() throws {
        let r = Release()
        func cut(_ edit: (inout [TarBuilder.Entry]) -> Void) -> [UInt8] {
            var e = r.entries(signers: [TestKeys.vendor])
            edit(&e)
            return TarBuilder.build(e, end: false)
        }
        let cases: [(String, [UInt8], String)] = [
            (
                "misnamed and cut short",
                cut { e in
                    e[4].name = Array("payload/code/other.py".utf8)
                    e[4].declaredSize = UInt64(e[4].data.count + 4096)
                    e.removeSubrange(5...)
                }, "entry-unexpected"
            ),
            (
                "named right, of another size and cut short",
                cut { e in
                    e[4].declaredSize = UInt64(e[4].data.count + 4096)
                    e.removeSubrange(5...)
                }, "payload-size-mismatch"
            ),
            (
                "SHA256SUMS of another size, cut short",
                cut { e in
                    e[2].declaredSize = UInt64(e[2].data.count + 4096)
                    e.removeSubrange(3...)
                }, "sums-mismatch"
            ),
            (
                "SHA256SUMS of its size, cut short",
                cut { e in
                    e[2].declaredSize = UInt64(e[2].data.count)
                    e[2].data = []
                    e.removeSubrange(3...)
                }, "bundle-truncated"
            ),
            (
                "damaged, then an entry not listed",
                {
                    var e = r.entries(signers: [TestKeys.vendor])
                    e[4].data[0] ^= 1
                    e.append(TarBuilder.Entry("payload/tools/extra.json", [0x41]))
                    return TarBuilder.build(e)
                }(), "payload-hash-mismatch"
            ),
            (
                "damaged, then a file listed twice",
                {
                    var e = r.entries(signers: [TestKeys.vendor])
                    e[3].data[0] ^= 1
                    e.append(e[e.count - 1])
                    return TarBuilder.build(e)
                }(), "payload-hash-mismatch"
            ),
        ]
        for (label, bytes, code) in cases {
            let reports = outcomes(bytes)
            expectSame(reports, label)
            #expect(reports[0].error?.code == code, "\(label): \(reports[0].error?.description ?? "accepted")")
        }
    }

    /// `count` zero bytes as one zstd frame of RLE blocks, 4 bytes a 128 KiB block: no content
    /// size, a 128 KiB window.
    private func zeroFrame(_ count: UInt64) -> [UInt8] {
        var out: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38]
        var left = count
        while left > 0 {
            let n = min(left, 1 << 17)
            left -= n
            let header = UInt32(n) << 3 | 1 << 1 | (left == 0 ? 1 : 0)
            out += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), 0x00]
        }
        return out
    }

    /// A genuine signed head followed by an entry whose pax size says 8 GiB of zeros (256 KiB of
    /// RLE blocks): the manifest refuses that size before a byte of it is read, and reading
    /// ahead must not read it either (it would decompress and hash 8 GiB before the refusal):
    /// SHA256SUMS longer than the manifest, and a payload file past the budget, are left for
    /// their checks.
    @Test func anEntryOfAHostileSizeIsNotReadAhead() throws {
        let r = Release()
        let huge = Array(String(8 << 30).utf8)
        var sums = r.entries(signers: [TestKeys.vendor])
        sums.removeSubrange(2...)
        var s = TarBuilder.Entry(BundleLayout.sumsEntry, [])
        s.pax = [("size", huge)]
        sums.append(s)
        var payload = r.entries(signers: [TestKeys.vendor])
        payload.removeSubrange(4...)
        payload[3].data = []
        payload[3].pax = [("size", huge)]
        for (label, entries, code) in [("SHA256SUMS", sums, "sums-mismatch"), ("a payload file", payload, "payload-size-mismatch")] {
            let bytes = try zstdCompress(TarBuilder.build(entries, end: false)) + zeroFrame(8 << 30)
            let dir = TempDir()
            let path = dir.write("bundle.airlock", bytes)
            var reports: [VerificationReport] = []
            for mode in [Verifier.ReadAhead.never, .toTheLimits, .whileParsing] {
                let reader = try BundleReader(path: path)
                reports.append(Verifier.verify(reader: reader, trust: TestKeys.trust(), readAhead: mode))
                #expect(reader.bytesDecompressed < 512 << 20, "\(label), \(mode): \(reader.bytesDecompressed) bytes read")
                reader.close()
            }
            expectSame(reports, label)
            #expect(reports[0].error?.code == code, "\(label): \(reports[0].error?.description ?? "accepted")")
        }
    }

    /// Delta bundles, whose reading differs after SHA256SUMS (v1: a hint follows it) or has no
    /// SHA256SUMS at all (v2: the manifest is a patch), verify the same way read ahead or not.
    @Test func deltaBundlesVerifyTheSame() throws {
        let tmp = TempDir()
        let v1 = Release()
        let v2 = v1.with(version: "2.4.0", sequence: 8) { $0[4].data = Array("You are a careful support agent.\n".utf8) }
        func pack(_ r: Release, as name: String, base: DeltaBase? = nil, fullManifest: Bool = false) throws -> String {
            var o = PackOptions(keys: [TestKeys.vendor])
            o.output = tmp.file(name)
            o.sourceDateEpoch = 1_767_225_600
            o.base = base
            o.fullManifestDelta = fullManifest
            return try Packer.pack(directory: r.writeDirectory(in: tmp, at: "src-" + name), options: o).path
        }
        let base = try pack(v1, as: "v1.airlock")
        let baseManifest = try BundleSummary.read(path: base).manifestBytes
        for full in [true, false] {
            let delta = try pack(v2, as: "v2-\(full).airlock", base: .bundle(base), fullManifest: full)
            let bytes = Array(FileManager.default.contents(atPath: delta)!)
            let reports = outcomes(bytes, base: { _, _ in baseManifest })
            expectSame(reports, "delta, full manifest: \(full)")
            #expect(reports.allSatisfy { $0.ok && $0.filesExpectedAtSite > 0 }, "\(reports.map { $0.error?.description ?? "ok" })")
        }
    }
}
