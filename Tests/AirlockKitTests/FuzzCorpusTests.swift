import AirlockRollout
import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockFuzzTargets
@testable import AirlockKit

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

    /// The seeds are documents their parsers accept, so the fuzzer starts inside the format,
    /// not at its first refusal.
    @Test func seedsAreAcceptedByTheirParsers() throws {
        for seed in FuzzTargets.seeds(for: "json") { _ = try JSONParser.parse(seed) }
        for seed in FuzzTargets.seeds(for: "manifest") { _ = try Manifest.parse(seed) }
        for seed in FuzzTargets.seeds(for: "spec") { _ = try ReleaseSpec.parse(String(decoding: seed, as: UTF8.self)) }
        for seed in FuzzTargets.seeds(for: "tools") { _ = try ToolManifest.parse(seed, source: "fuzz", hostile: true) }
        for seed in FuzzTargets.seeds(for: "policy") { _ = try TrustPolicy.parse(seed, path: "policy.json") }
        for seed in FuzzTargets.seeds(for: "journal") { #expect(TaskJournal.parse(seed[...]) != nil, "\(String(decoding: seed, as: UTF8.self))") }
        for seed in FuzzTargets.seeds(for: "outcome") {
            guard case .success = OutcomeReport.parse(seed) else {
                Issue.record("outcome seed refused: \(String(decoding: seed, as: UTF8.self))")
                continue
            }
        }
        let deltas = FuzzTargets.seeds(for: "delta")
        #expect(deltas.contains { (try? DeltaInfo.parse($0, manifest: FuzzTargets.fixedManifest)) != nil })
        #expect(deltas.contains { (try? DeltaInfo.parseHead($0)) != nil })
        let tmp = TempDir()
        let site = Site(root: tmp.path)
        for seed in FuzzTargets.seeds(for: "state") {
            try FileManager.default.createDirectory(atPath: site.path("agent"), withIntermediateDirectories: true)
            tmp.write("agent/" + SiteLayout.state, seed)
            _ = try NameState.load(site, "agent")
        }
        for seed in FuzzTargets.seeds(for: "history") {
            tmp.write(SiteLayout.history, seed)
            let c = try History.check(site)
            #expect(c.problem == nil, "\(String(describing: c.problem))")
        }
        for seed in FuzzTargets.seeds(for: "recording") {
            tmp.write("tasks.jsonl", seed)
            #expect(try !RecordingReader.readTasks(file: tmp.file("tasks.jsonl")).isEmpty)
        }
    }

    /// Each target's invariants, given a value its parser accepted and then broken by hand: a
    /// parser that let such a value through would be reported.
    @Test func invariantsReportBrokenValues() throws {
        let m = try Manifest.parse(FuzzTargets.seeds(for: "manifest")[0])
        #expect(FuzzTargets.manifestProblem(m) == nil)
        var swapped = m
        swapped.files.swapAt(0, 1)
        #expect(FuzzTargets.manifestProblem(swapped)?.contains("out of order") == true)
        var escaping = m
        escaping.files[0].path = "../etc/passwd"
        #expect(FuzzTargets.manifestProblem(escaping)?.contains("breaks a rule") == true)
        var huge = m
        huge.files[0].size = 1 << 53
        #expect(FuzzTargets.manifestProblem(huge)?.contains("2^53") == true)

        let spec = try ReleaseSpec.parse(String(decoding: FuzzTargets.seeds(for: "spec")[0], as: UTF8.self))
        #expect(FuzzTargets.specProblem(spec) == nil)
        var up = spec
        up.components[0].path = "code/../../x"
        #expect(FuzzTargets.specProblem(up) == "accepted component path code/../../x")
        var badName = spec
        badName.name = "../etc"
        #expect(FuzzTargets.specProblem(badName) != nil)

        let tools = try ToolManifest.parse(FuzzTargets.seeds(for: "tools")[0], source: "fuzz", hostile: true)
        #expect(FuzzTargets.toolsProblem(tools) == nil)
        var twice = tools
        twice.tools.append(tools.tools[0])
        #expect(FuzzTargets.toolsProblem(twice) == "accepted two tools of one name")

        var policy = TrustPolicy()
        #expect(FuzzTargets.policyProblem(policy) == nil)
        policy.threshold = 0
        #expect(FuzzTargets.policyProblem(policy) == "accepted a threshold of 0")

        let ok = TaskOutcome(succeeded: true, cost: 0.25, neededIntervention: false)
        #expect(FuzzTargets.outcomeProblem("t1", ok) == nil)
        #expect(FuzzTargets.outcomeProblem("", ok) != nil)
        #expect(FuzzTargets.outcomeProblem("t 1", ok) != nil)
        // The initializer clamps; a parser that set the field itself is what the check guards.
        for cost in [Double.nan, -1, .infinity, 0.1234567] {
            var o = ok
            o.cost = cost
            #expect(FuzzTargets.outcomeProblem("t1", o) != nil, "cost \(cost)")
        }

        let tmp = TempDir()
        let file = tmp.file("tasks.jsonl")
        tmp.write("tasks.jsonl", FuzzTargets.seeds(for: "recording")[0])
        let tasks = try RecordingReader.readTasks(file: file)
        #expect(!tasks.isEmpty && FuzzTargets.recordingProblem(tasks, file: file) == nil)
        #expect(FuzzTargets.recordingProblem(tasks + [tasks[0]], file: file) == "accepted two tasks of one id")
    }
}
