import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockFuzzTargets

/// The fuzz targets' checks (docs/fuzzing.md) on their seeds and on every committed input that
/// once found a bug (Fuzz/regressions/TARGET/): each must be handled without a finding, so a
/// parser that breaks on a known input fails the ordinary suite, not only `make fuzz`.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test(arguments: FuzzTargets.all.map(\.name))
    func seedsAndCommittedInputsPass(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let seeds = FuzzTargets.seeds(for: name)
        #expect(!seeds.isEmpty && seeds.allSatisfy { !$0.isEmpty && $0.count <= target.maxLength }, "\(name): seeds missing or too long")
        for (i, seed) in seeds.enumerated() {
            #expect(target.check(seed) == nil, "\(name) seed \(i)")
        }
        let dir = Self.root + "/Fuzz/regressions/" + name
        for file in (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? [] {
            let data = try #require(FileManager.default.contents(atPath: dir + "/" + file))
            #expect(target.check(Array(data)) == nil, "\(name): Fuzz/regressions/\(name)/\(file)")
        }
    }

    /// The bundle seeds are whole bundles: the verifier reads them up to the signatures, which a
    /// key the fuzz trust store does not hold made; trusted, they verify to the last byte. The
    /// tar seeds are read to their end-of-archive marker.
    @Test func bundleSeedsAreWholeBundles() throws {
        for seed in FuzzTargets.seeds(for: "bundle") {
            let tmp = TempDir()
            tmp.write("b.airlock", seed)
            let report = Verifier.verify(bundle: tmp.file("b.airlock"), trust: FuzzTargets.trust)
            #expect(report.error?.code == "signer-untrusted", "\(report.error?.description ?? "verified")")
        }
        for seed in FuzzTargets.seeds(for: "tar") {
            let reader = TarReader(stream: DecompressedStream(pieces: [Array(seed.dropFirst())]))
            defer { reader.close() }
            var entries = 0
            while try reader.nextEntry() != nil { entries += 1 }
            try reader.finish()
            #expect(entries == 3 + FuzzTargets.fixedManifest.files.count)
        }
    }

    /// The checks can fail: what breaks an invariant is reported, not swallowed.
    @Test func checksReportWhatBreaksTheirInvariants() throws {
        let bundle = try #require(FuzzTargets.named("bundle"))
        let trusted = FuzzTargets.bundleBytes(.zstd, signedBy: FuzzTargets.trustedKey)
        #expect(bundle.check(trusted) == "a bundle nobody trusted signed verified")
        #expect(bundle.check(FuzzTargets.bundleBytes(.zstd)) == nil)
        let names = FuzzTargets.all.map(\.name)
        #expect(Set(names).count == names.count)
    }
}
