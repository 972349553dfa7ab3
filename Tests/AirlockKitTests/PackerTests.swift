import Foundation
import Testing

@testable import AirlockFormat
@testable import AirlockKit

@Suite struct PackerTests {
    private func pack(
        _ dir: String, out: String, epoch: Int64 = 1_767_225_600, keys: [PrivateKey] = [TestKeys.vendor], configure: (inout PackOptions) -> Void = { _ in }
    ) throws -> PackResult {
        var o = PackOptions(keys: keys)
        o.output = out
        o.sourceDateEpoch = epoch
        configure(&o)
        return try Packer.pack(directory: dir, options: o)
    }

    @Test func packedBundleVerifiesAndKeepsNamesModesAndEmptyFiles() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        let r = try pack(rel, out: tmp.file("b.airlock"))
        let report = Verifier.verify(bundle: r.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")
        #expect(report.filesChecked == Release.standardFiles.count)
        let m = r.manifest
        #expect(m.files.map(\.path) == Release().manifestFiles.map(\.path))
        #expect(m.files.first { $0.path == "code/agent.py" }?.executable == true)
        #expect(m.files.first { $0.path == "prompts/empty.txt" }?.size == 0)
        #expect(m.files.contains { $0.path == "prompts/r\u{E9}ponse.md" })
        #expect(m.components["model"]?.metadata == ["name": "qwen2.5-7b-instruct", "snapshot": "2026-10-01"])
        #expect(m.created == "2026-01-01T00:00:00Z")
        #expect(r.bundleID == SHA256Digest.of(m.encoded()))
    }

    /// `--level` 19 is the most pack offers: its frames ask for the largest window a reader
    /// accepts (8 MiB, docs/format.md); 20 and above are refused before anything is written.
    @Test func level19VerifiesAndLevel20IsRefused() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        // 9 MiB of bytes that compress a little, so the payload frame keeps its full window.
        let big = (0..<(9 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) & 0x3F }
        FileManager.default.createFile(atPath: rel + "/model/big.bin", contents: Data(big))
        let r = try pack(rel, out: tmp.file("b.airlock")) { $0.level = 19 }
        let report = Verifier.verify(bundle: r.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")
        #expect(throws: AirlockError.self) { try pack(rel, out: tmp.file("c.airlock")) { $0.level = 20 } }
    }

    @Test func sameInputsAndEpochGiveIdenticalBytes() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        for compression in Compression.allCases {
            let a = try pack(rel, out: tmp.file("a.airlock")) { $0.compression = compression }
            // A different worker count must not change a byte.
            let b = try pack(rel, out: tmp.file("b.airlock")) {
                $0.compression = compression
                $0.compressionThreads = 1
                $0.threads = 1
            }
            #expect(a.bundleID == b.bundleID)
            let x = FileManager.default.contents(atPath: a.path), y = FileManager.default.contents(atPath: b.path)
            #expect(x == y, "\(compression) bundles differ")
            #expect(Verifier.verify(bundle: a.path, trust: TestKeys.trust()).ok)
        }
        let later = try pack(rel, out: tmp.file("c.airlock"), epoch: 1_767_225_601)
        #expect(later.bundleID != (try pack(rel, out: tmp.file("d.airlock")).bundleID))
    }

    /// A zstd bundle is packed in one pass: the payload frame first, the head frame put in front
    /// afterwards and padded to 4 KiB by a skippable frame of zeros (docs/format.md). The bytes
    /// are the same whether the file system inserts the head (ext4) or the head and a copy of
    /// the payload go to a new file (tmpfs), and standard tools read the frames as one stream.
    @Test func onePassBundlesAreFramedAndTheSameOnEveryFileSystem() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        let a = try pack(rel, out: tmp.file("a.airlock"))
        let bytes = Array(FileManager.default.contents(atPath: a.path)!)
        // The head frame, then the padding frame, which ends on a 4 KiB boundary.
        #expect(bytes.prefix(4) == [0x28, 0xB5, 0x2F, 0xFD])
        let skip = try #require((0..<(bytes.count - 8)).first { bytes[$0..<$0 + 4] == [0x50, 0x2A, 0x4D, 0x18] })
        let padding = Int(bytes[skip + 4]) | Int(bytes[skip + 5]) << 8 | Int(bytes[skip + 6]) << 16 | Int(bytes[skip + 7]) << 24
        #expect((skip + 8 + padding) % 4096 == 0 && bytes[(skip + 8)..<(skip + 8 + padding)].allSatisfy { $0 == 0 })
        #expect(bytes[(skip + 8 + padding)..<(skip + 12 + padding)] == [0x28, 0xB5, 0x2F, 0xFD])
        let frames = try run(["zstd", "-lv", a.path])
        #expect(frames.stdout.contains("# Zstandard Frames: 2") && frames.stdout.contains("# Skippable Frames: 1"), "\(frames.stdout)")
        #expect(try run(["sh", "-c", "zstd -dc '\(a.path)' | tar -tf - | head -1"]).stdout == "airlock/manifest.json\n")
        // On tmpfs (no FALLOC_FL_INSERT_RANGE): the same bytes.
        let shm = "/dev/shm/airlock-pack-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: shm) }
        let b = try pack(rel, out: shm + "/b.airlock")
        #expect(FileManager.default.contents(atPath: b.path) == Data(bytes))
        #expect(Verifier.verify(bundle: b.path, trust: TestKeys.trust()).ok)
        // Only the bundle is left behind, in both folders.
        #expect(try FileManager.default.contentsOfDirectory(atPath: shm) == ["b.airlock"])
    }

    /// A payload over one frame: every 2 MiB of the tar stream is a zstd frame of its own that
    /// declares its size (so its window is at most that), the bytes are the same
    /// for any worker count, and standard tools read the frames as one stream.
    @Test func aLargePayloadIsFramesOf2MiBTheSameForAnyWorkerCount() throws {
        let tmp = TempDir()
        var release = Release()
        // 7 MiB that do not compress (a file straddles four frames), text, and many small files.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let noise = (0..<(7 << 20)).map { _ -> UInt8 in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        release.files.append(Release.File(path: "model/big.bin", data: noise))
        release.files.append(Release.File(path: "index/text.md", data: Array(String(repeating: "retrieval text, line after line\n", count: 40_000).utf8)))
        for i in 0..<300 { release.files.append(Release.File(path: "index/doc-\(i).md", data: Array("document \(i)\n".utf8))) }
        let rel = release.writeDirectory(in: tmp)
        let one = try pack(rel, out: tmp.file("one.airlock")) { $0.compressionThreads = 1 }
        let three = try pack(rel, out: tmp.file("three.airlock")) { $0.compressionThreads = 3 }
        let two = try pack(rel, out: tmp.file("two.airlock"))
        let bytes = try #require(FileManager.default.contents(atPath: two.path))
        #expect(FileManager.default.contents(atPath: one.path) == bytes)
        #expect(FileManager.default.contents(atPath: three.path) == bytes)
        #expect(Verifier.verify(bundle: two.path, trust: TestKeys.trust()).ok)
        // The tar stream's size, and the frames zstd finds: the head's, then one per 2 MiB.
        let stream = Int(try run(["sh", "-c", "zstd -dc '\(two.path)' | wc -c"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))!
        let listing = try run(["zstd", "-lv", two.path]).stdout
        let frames = try #require(listing.split(separator: "\n").first { $0.contains("# Zstandard Frames:") }.flatMap { Int($0.split(separator: " ").last!) })
        #expect(try run(["sh", "-c", "tar --zstd -tf '\(two.path)' | grep -c '^payload/'"]).stdout == "\(release.files.count)\n")
        // Every frame declares its size; the payload's are 2 MiB each but the last: what a
        // reader's window needs.
        let walked = try FramedPayloadWriterTests.frameSizes(Array(bytes))
        #expect(walked.count == frames, "\(listing)")
        #expect(walked.allSatisfy { $0 != nil })
        #expect(walked.reduce(0) { $0 + Int($1 ?? 0) } == stream)
        let payload = walked.dropFirst().map { Int($0 ?? 0) }
        #expect(payload.count == (payload.reduce(0, +) + FramedPayloadWriter.frameSize - 1) / FramedPayloadWriter.frameSize && payload.count >= 4)
        #expect(payload.dropLast().allSatisfy { $0 == FramedPayloadWriter.frameSize })
    }

    @Test func ecdsaBundlesKeepTheirIDButNotTheirBytes() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        let a = try pack(rel, out: tmp.file("a.airlock"), keys: [TestKeys.ecdsa])
        let b = try pack(rel, out: tmp.file("b.airlock"), keys: [TestKeys.ecdsa])
        #expect(a.bundleID == b.bundleID)
        #expect(Verifier.verify(bundle: a.path, trust: TestKeys.trust([TestKeys.ecdsa])).ok)
    }

    @Test func systemTarListsTheBundle() throws {
        let tmp = TempDir()
        let r = try pack(Release().writeDirectory(in: tmp), out: tmp.file("b.airlock"))
        let listing = try run(["tar", "--zstd", "-tf", r.path])
        #expect(listing.status == 0, "\(listing.stderr)")
        let names = listing.stdout.split(separator: "\n").map(String.init)
        #expect(names.first == "airlock/manifest.json")
        #expect(names[1] == "airlock/signatures/\(TestKeys.vendor.id).sig")
        #expect(names[2] == "airlock/SHA256SUMS")
        #expect(Array(names[3...]) == Release().manifestFiles.map { "payload/" + $0.path })
        let verbose = try run(["tar", "--zstd", "-tvf", r.path]).stdout
        #expect(verbose.contains("-rwxr-xr-x 0/0"))
    }

    @Test func twoSignersMeetAThresholdOfTwo() throws {
        let tmp = TempDir()
        let r = try pack(Release().writeDirectory(in: tmp), out: tmp.file("b.airlock"), keys: [TestKeys.vendor, TestKeys.ecdsa])
        var p = TrustPolicy()
        p.threshold = 2
        #expect(Verifier.verify(bundle: r.path, trust: TestKeys.trust([TestKeys.vendor, TestKeys.ecdsa], policy: p)).ok)
        // The same bundle with only one of the two keys trusted falls short.
        let one = Verifier.verify(bundle: r.path, trust: TestKeys.trust([TestKeys.vendor], policy: p))
        #expect(one.error?.code == "threshold-not-met")
    }

    @Test func detachedSignatureFromASecondSignerCounts() throws {
        let tmp = TempDir()
        let r = try pack(Release().writeDirectory(in: tmp), out: tmp.file("b.airlock"))
        _ = try Signer.writeDetached(bundle: r.path, key: TestKeys.second, to: tmp.file("second.sig"))
        var p = TrustPolicy()
        p.threshold = 2
        let trust = TestKeys.trust([TestKeys.vendor, TestKeys.second], policy: p)
        #expect(Verifier.verify(bundle: r.path, trust: trust).error?.code == "threshold-not-met")
        let both = Verifier.verify(bundle: r.path, trust: trust, detached: [try DetachedSignature.load(path: tmp.file("second.sig"))])
        #expect(both.ok, "\(both.error?.description ?? "")")
        #expect(Set(both.signatures!.verifiedKeys) == [TestKeys.vendor.id, TestKeys.second.id])
    }

    // MARK: Refusals at pack time, each naming the file

    private func refusal(_ setup: (TempDir, String) throws -> Void, configure: (inout PackOptions) -> Void = { _ in }) throws -> AirlockError {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        try setup(tmp, rel)
        do {
            _ = try pack(rel, out: tmp.file("b.airlock"), configure: configure)
        } catch let e as AirlockError {
            #expect(!FileManager.default.fileExists(atPath: tmp.file("b.airlock")), "a refused pack left a bundle")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.contains(".tmp-") }
            #expect(leftovers.isEmpty)
            return e
        }
        Issue.record("pack accepted it")
        return AirlockError(.internal, "none", "")
    }

    @Test func refusesSymlinksUnlessAskedAndThenOnlyInsideTheRelease() throws {
        let e = try refusal { _, rel in try FileManager.default.createSymbolicLink(atPath: rel + "/code/link.py", withDestinationPath: "agent.py") }
        #expect(e.code == "release-file-refused")
        #expect(e.message.contains("code/link.py"))
        let outside = try refusal(
            { _, rel in try FileManager.default.createSymbolicLink(atPath: rel + "/code/passwd", withDestinationPath: "/etc/passwd") },
            configure: { $0.followInternalSymlinks = true })
        #expect(outside.message.contains("outside the release"))

        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        try FileManager.default.createSymbolicLink(atPath: rel + "/code/link.py", withDestinationPath: "agent.py")
        let r = try pack(rel, out: tmp.file("b.airlock")) { $0.followInternalSymlinks = true }
        let link = r.manifest.files.first { $0.path == "code/link.py" }
        #expect(link?.sha256 == r.manifest.files.first { $0.path == "code/agent.py" }?.sha256)
        #expect(Verifier.verify(bundle: r.path, trust: TestKeys.trust()).ok)
    }

    @Test func refusesComponentsReachedThroughASymlink() throws {
        let e = try refusal { tmp, rel in
            tmp.write("outside/code/secret.txt", "secret")
            try FileManager.default.createSymbolicLink(atPath: rel + "/lnk", withDestinationPath: tmp.file("outside"))
            tmp.write("release/airlock.yaml", "name: a\nversion: 1\nsequence: 1\ncomponents:\n  code: lnk/code\n")
        }
        #expect(e.message.contains("symlink"))
    }

    @Test func refusesAnOutputThatIsPartOfTheRelease() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        let before = FileManager.default.contents(atPath: rel + "/prompts/system.md")
        #expect { try pack(rel, out: rel + "/prompts/system.md") } throws: { ($0 as? AirlockError)?.code == "output-is-source" }
        #expect(FileManager.default.contents(atPath: rel + "/prompts/system.md") == before)
        #expect { try pack(rel, out: rel + "/prompts/new.airlock") } throws: { ($0 as? AirlockError)?.code == "output-in-release" }
    }

    @Test func refusesSpecialFiles() throws {
        let e = try refusal { _, rel in #expect(mkfifo(rel + "/code/pipe", 0o644) == 0) }
        #expect(e.message.contains("code/pipe") && e.message.contains("FIFO"))
    }

    /// The scan visits a folder's entries in the format's order (a folder counting as its name
    /// and "/"), so names with bytes below "/" ("a-b", "a.txt" beside the folder "a") land where
    /// the byte order of whole paths puts them, in the manifest and in the payload.
    @Test func namesSortingAroundAFolderKeepTheByteOrderOfWholePaths() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        for name in ["a/x", "a-b", "a.txt", "a0", "a/b/c", "a/b-c", "a!", "b"] { tmp.write("release/prompts/set/" + name, name) }
        let r = try pack(rel, out: tmp.file("b.airlock"))
        let paths = r.manifest.files.map(\.path)
        #expect(paths == paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        let set = paths.filter { $0.hasPrefix("prompts/set/") }.map { String($0.dropFirst(12)) }
        #expect(set == ["a!", "a-b", "a.txt", "a/b-c", "a/b/c", "a/x", "a0", "b"])
        let report = Verifier.verify(bundle: r.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")
    }

    /// Without an eval gate, pack scans on a thread of its own while it packs the files found
    /// so far (`ScanFeed`). What only the scan's end can show, found after the payload began (a
    /// 4 MiB file comes first), still stops the pack and leaves no bundle: two names that differ
    /// only by letter case, a FIFO, an invalid tool manifest in the last folder.
    @Test func refusalsFoundWhileThePayloadIsWrittenLeaveNoBundle() throws {
        let big = String(repeating: "0123456789abcdef", count: 1 << 18)
        let cases: [(String, (TempDir, String) throws -> Void, String)] = [
            (
                "letter case",
                { tmp, _ in
                    tmp.write("release/tools/Notes.md", "a")
                    tmp.write("release/tools/notes.md", "b")
                }, "release-file-refused"
            ),
            ("fifo", { _, rel in #expect(mkfifo(rel + "/tools/zz-pipe", 0o644) == 0) }, "release-file-refused"),
            ("tool manifest", { tmp, _ in tmp.write("release/tools/tools.json", "{\"tools\": {}}") }, "tools-invalid"),
        ]
        for (name, setup, code) in cases {
            let e = try refusal { tmp, rel in
                tmp.write("release/code/aaa-large.bin", big)
                try setup(tmp, rel)
            }
            #expect(e.code == code, "\(name): \(e.code) \(e.message)")
        }
    }

    /// The components are walked in the order of their paths in the bundle ("index" second,
    /// although the spec lists it last), whatever the order of airlock.yaml.
    @Test func componentsDeclaredOutOfOrderPackInBundleOrder() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        tmp.write("release/index/doc-1.txt", "one")
        tmp.write("release/index/sub/doc-2.txt", "two")
        tmp.write("release/airlock.yaml", try String(contentsOfFile: rel + "/airlock.yaml", encoding: .utf8) + "  index: index/\n")
        let a = try pack(rel, out: tmp.file("a.airlock"))
        #expect(a.manifest.files.map(\.path).contains("index/sub/doc-2.txt"))
        let yaml = try String(contentsOfFile: rel + "/airlock.yaml", encoding: .utf8)
        let header = yaml.components(separatedBy: "components:\n")[0]
        let lines = yaml.components(separatedBy: "components:\n")[1].split(separator: "\n")
        #expect(lines.count > 2)
        tmp.write("release/airlock.yaml", header + "components:\n" + lines.reversed().joined(separator: "\n") + "\n")
        let b = try pack(rel, out: tmp.file("b.airlock"))
        #expect(a.bundleID == b.bundleID)
        #expect(FileManager.default.contents(atPath: tmp.file("a.airlock")) == FileManager.default.contents(atPath: tmp.file("b.airlock")))
        #expect(Verifier.verify(bundle: b.path, trust: TestKeys.trust()).ok)
    }

    /// A file that changes after the scan is refused when it is read, whether it is small (read
    /// in one call, hashed by the reading thread) or large (read in chunks).
    @Test func aFileChangedAfterTheScanIsRefused() throws {
        for size in [100, 3 << 20] {
            let tmp = TempDir()
            let rel = Release().writeDirectory(in: tmp)
            tmp.write("release/model/big.bin", String(repeating: "w", count: size))
            let spec = try ReleaseSpec.load(directory: rel)
            let sources = try Packer.scan(directory: rel, spec: spec, followInternalSymlinks: false)
            let big = try #require(sources.first { $0.path == "model/big.bin" })
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            var read = 0
            try Packer.read(big, buffer: buffer) { read += $0.count }
            #expect(read == size)
            let h = try #require(FileHandle(forWritingAtPath: rel + "/model/big.bin"))
            h.seekToEndOfFile()
            h.write(Data("more".utf8))
            try h.close()
            #expect { try Packer.read(big, buffer: buffer) { _ in } } throws: { ($0 as? AirlockError)?.code == "release-changed" }
        }
    }

    /// What pack reads is the file it scanned: a folder swapped for a symlink to one outside
    /// the release, or a file swapped for a FIFO, after the scan is refused before a byte of it
    /// is read, and the FIFO does not hang the pack.
    @Test func aFileOrFolderSwappedAfterTheScanIsNotRead() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        tmp.write("release/code/lib/util.py", "print('in the release')\n")
        tmp.write("outside/lib/util.py", "SECRET=1\n")
        let spec = try ReleaseSpec.load(directory: rel)
        let sources = try Packer.scan(directory: rel, spec: spec, followInternalSymlinks: false)
        let util = try #require(sources.first { $0.path == "code/lib/util.py" })
        let pipe = try #require(sources.first { $0.path == "code/agent.py" })
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }

        try FileManager.default.removeItem(atPath: rel + "/code/lib")
        try FileManager.default.createSymbolicLink(atPath: rel + "/code/lib", withDestinationPath: tmp.file("outside/lib"))
        var read: [UInt8] = []
        #expect { try Packer.read(util, buffer: buffer) { read += $0 } } throws: { ($0 as? AirlockError)?.code == "release-changed" }
        #expect(read.isEmpty, "read \(read.count) bytes of a file outside the release")

        try FileManager.default.removeItem(atPath: rel + "/code/agent.py")
        #expect(mkfifo(rel + "/code/agent.py", 0o644) == 0)
        let start = Timestamp.monotonicSeconds()
        #expect { try Packer.read(pipe, buffer: buffer) { _ in } } throws: { ($0 as? AirlockError)?.code == "release-changed" }
        #expect(Timestamp.monotonicSeconds() - start < 5)
    }

    /// As root every file is readable; the CLI tests run this case as an unprivileged user.
    @Test(.enabled(if: getuid() != 0)) func refusesUnreadableFiles() throws {
        let e = try refusal { _, rel in chmod(rel + "/code/agent.py", 0o000) }
        #expect(e.message.contains("code/agent.py"))
    }

    @Test func refusesNamesThatBreakThePathRules() throws {
        let bad = try refusal { tmp, rel in tmp.write("release/prompts/back\\slash.md", "x") }
        #expect(bad.message.contains("backslash"))
        let nfd = try refusal { tmp, _ in tmp.write("release/prompts/e\u{301}.md", "x") }
        #expect(nfd.message.contains("NFC"))
        let twins = try refusal { tmp, _ in tmp.write("release/prompts/SYSTEM.md", "x") }
        #expect(twins.message.contains("letter case"))
        let control = try refusal { tmp, _ in tmp.write("release/prompts/a\u{1}b.md", "x") }
        #expect(control.message.contains("control"))
    }

    /// A bundle path over 2048 bytes is refused at pack time, naming the file and the limit.
    @Test func refusesAPathLongerThanTheBound() throws {
        let long = pathOfExactly(BundleLayout.maxBundlePathBytes + 1, from: "code")
        let e = try refusal { tmp, _ in tmp.write("release/" + long, "x") }
        #expect(e.code == "release-file-refused")
        #expect(e.message.contains("path longer than 2048 bytes") && e.message.contains(String(long.suffix(40))), "\(e.message)")
    }

    /// A 256-byte file name is refused at pack time. Linux file systems cap a name at 255 bytes
    /// (NAME_MAX), so such a file can usually not be made: then the rule pack applies to every
    /// name it reads (PathRules.problem) is checked instead.
    @Test func refusesAFileNameOf256Bytes() throws {
        let name = String(repeating: "n", count: BundleLayout.maxPathSegmentBytes + 1)
        #expect(PathRules.problem(with: "code/" + name) == "path segment longer than 255 bytes")
        var made = false
        let e = try refusal { _, rel in
            let fd = open(rel + "/code/" + name, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 {
                close(fd)
                made = true
            } else {
                #expect(errno == ENAMETOOLONG)
                // The file system refuses the name itself; make pack fail for a known reason.
                #expect(mkfifo(rel + "/code/fifo", 0o644) == 0)
            }
        }
        #expect(e.message.contains(made ? "path segment longer than 255 bytes" : "FIFO"), "\(e.message)")
    }

    /// A 255-byte file name (NAME_MAX) packs and verifies (PathBoundsTests installs one).
    @Test func packsAndVerifiesAFileNameOf255Bytes() throws {
        let tmp = TempDir()
        var r = Release()
        let path = "code/" + String(repeating: "n", count: BundleLayout.maxPathSegmentBytes)
        r.files.append(Release.File(path: path, data: Array("x".utf8)))
        let packed = try pack(r.writeDirectory(in: tmp), out: tmp.file("b.airlock"))
        #expect(packed.manifest.files.contains { $0.path == path })
        let report = Verifier.verify(bundle: packed.path, trust: TestKeys.trust())
        #expect(report.ok, "\(report.error?.description ?? "")")
        #expect(report.filesChecked == r.files.count)
    }

    @Test func refusesMissingComponentFoldersAndBadSpecs() throws {
        let missing = try refusal { _, rel in try FileManager.default.removeItem(atPath: rel + "/tools") }
        #expect(missing.code == "component-missing")
        let unknown = try refusal { tmp, rel in
            let yaml = try String(contentsOfFile: rel + "/airlock.yaml", encoding: .utf8)
            tmp.write("release/airlock.yaml", yaml + "run_as: root\n")
        }
        #expect(unknown.code == "release-spec-invalid" && unknown.message.contains("run_as"))
    }

    @Test func outputNeverReplacedByAFailedPack() throws {
        let tmp = TempDir()
        let rel = Release().writeDirectory(in: tmp)
        let good = try pack(rel, out: tmp.file("b.airlock"))
        let before = FileManager.default.contents(atPath: good.path)
        tmp.write("release/code/pipe-target", "x")
        #expect(mkfifo(rel + "/code/zz-fifo", 0o644) == 0)
        #expect(throws: AirlockError.self) { try pack(rel, out: tmp.file("b.airlock")) }
        #expect(FileManager.default.contents(atPath: good.path) == before)
    }
}

@Suite struct ReleaseSpecTests {
    @Test func parsesTheDocumentedExample() throws {
        let s = try ReleaseSpec.parse(
            """
            name: support-agent
            version: 2.3.0
            sequence: 7
            expires: 2027-06-01T00:00:00Z
            components:
              code: code/
              model: { path: model/, name: qwen2.5-7b-instruct, snapshot: 2026-10-01 }
              prompts: prompts/
              tools: tools/
              index: index/
            """)
        #expect(s.name == "support-agent" && s.version == "2.3.0" && s.sequence == 7 && s.expires == "2027-06-01T00:00:00Z")
        #expect(s.components.map(\.name) == ["code", "model", "prompts", "tools", "index"])
        #expect(s.components[1].metadata == ["name": "qwen2.5-7b-instruct", "snapshot": "2026-10-01"])
        #expect(s.components[0].path == "code")
    }

    @Test(arguments: [
        ("name: a\nversion: 1\nsequence: 1\ncomponents: {code: code/}\nextra: 1\n", "unknown key \"extra\""),
        ("name: a\nname: b\nversion: 1\nsequence: 1\ncomponents: {code: code/}\n", "duplicated key"),
        ("name: A\nversion: 1\nsequence: 1\ncomponents: {code: code/}\n", "name \"A\""),
        ("name: a\nversion: 1\nsequence: 0\ncomponents: {code: code/}\n", "sequence"),
        ("name: a\nversion: 1\nsequence: 1.5\ncomponents: {code: code/}\n", "sequence"),
        ("name: a\nversion: 1\nsequence: 1\ncomponents: {weights: w/}\n", "unknown component"),
        ("name: a\nversion: 1\nsequence: 1\ncomponents: {code: ../outside}\n", "inside the release"),
        ("name: a\nversion: 1\nsequence: 1\ncomponents: {code: {path: code/, name: x}}\n", "unknown key \"name\""),
        ("name: a\nversion: 1\nsequence: 1\ncomponents: {}\n", "at least one"),
        ("name: a\nversion: 1\nsequence: 1\nexpires: tomorrow\ncomponents: {code: code/}\n", "expires"),
        ("version: 1\nsequence: 1\ncomponents: {code: code/}\n", "missing \"name\""),
    ])
    func refusesBadSpecs(_ yaml: String, _ expected: String) {
        #expect {
            try ReleaseSpec.parse(yaml)
        } throws: { error in
            (error as? AirlockError).map { $0.code == "release-spec-invalid" && $0.message.contains(expected) } ?? false
        }
    }
}
