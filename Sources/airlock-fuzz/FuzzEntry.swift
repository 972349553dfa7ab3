import AirlockFuzzTargets
import CAirlockSystem
import Foundation

// Built two ways (docs/fuzzing.md). `make fuzz` builds it with `-sanitize=fuzzer,address` and
// AIRLOCK_LIBFUZZER: libFuzzer supplies `main`, and AIRLOCK_FUZZ_TARGET names the parser.
// A plain build gives a command that runs saved inputs through a target, to replay a finding.

#if AIRLOCK_LIBFUZZER
nonisolated(unsafe) private var selected: FuzzTarget?

/// libFuzzer's set-up hook: picks the target AIRLOCK_FUZZ_TARGET names (`list` prints them;
/// with AIRLOCK_FUZZ_SEEDS, writes the target's seeds there and stops).
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    let env = ProcessInfo.processInfo.environment
    let name = env["AIRLOCK_FUZZ_TARGET"] ?? ""
    if name == "list" {
        // For scripts/fuzz.sh: name, -max_len and memory bound of every target.
        let lines = FuzzTargets.all.map { "\($0.name)\t\($0.maxLength)\t\($0.memoryMB)\n" }.joined()
        FileHandle.standardOutput.write(Data(lines.utf8))
        exit(0)
    }
    guard let target = FuzzTargets.named(name) else {
        FileHandle.standardError.write(
            Data("airlock-fuzz: set AIRLOCK_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n".utf8))
        exit(2)
    }
    if let dir = env["AIRLOCK_FUZZ_SEEDS"] {
        // Writes the target's seeds into `dir` and stops (scripts/fuzz.sh).
        for (i, seed) in FuzzTargets.seeds(for: name).enumerated() {
            guard FileManager.default.createFile(atPath: "\(dir)/seed-\(i)", contents: Data(seed)) else { exit(2) }
        }
        exit(0)
    }
    selected = target
    return 0
}

/// AddressSanitizer's defaults for this binary: no leak report at exit (the Swift runtime's
/// caches live until the process ends and would read as leaks); memory blow-ups are caught by
/// libFuzzer's -malloc_limit_mb and -rss_limit_mb instead.
@_cdecl("__asan_default_options")
public func asanDefaultOptions() -> UnsafePointer<CChar> {
    UnsafeRawPointer(("detect_leaks=0" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
}

/// The program's entry: SwiftPM links an executable's `main` to this symbol, which hands the
/// command line to libFuzzer's driver.
@_cdecl("airlock_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    var count = argc
    var values: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &values) { fuzzOne($0, $1) }
}

/// libFuzzer's entry point: one input through the chosen target; a finding is a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let target = selected else { return 0 }
    let bytes = count > 0 && start != nil ? Array(UnsafeBufferPointer(start: start, count: count)) : []
    if let finding = target.check(bytes) {
        // A finding is a crash for libFuzzer, which saves the input.
        fatalError("airlock-fuzz \(target.name): \(finding)")
    }
    return 0
}
#else
@main
struct AirlockFuzzReplay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.first == "--list" {
            for t in FuzzTargets.all { print("\(t.name)\t\(t.maxLength)\t\(t.summary)") }
            return
        }
        guard args.count >= 2, let target = FuzzTargets.named(args[0]) else {
            FileHandle.standardError.write(
                Data(
                    "usage: airlock-fuzz TARGET FILE-OR-FOLDER... (replays saved inputs), airlock-fuzz --list; targets: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n"
                        .utf8))
            exit(2)
        }
        var files: [String] = []
        for a in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: a, isDirectory: &isDir) else {
                FileHandle.standardError.write(Data("airlock-fuzz: \(a) does not exist\n".utf8))
                exit(2)
            }
            if isDir.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: a)) ?? []
                files += names.sorted().map { a + "/" + $0 }
            } else {
                files.append(a)
            }
        }
        var findings = 0
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else { continue }
            if let finding = target.check(Array(data)) {
                print("\(f): \(finding)")
                findings += 1
            }
        }
        print("\(target.name): \(files.count) inputs, \(findings) findings")
        exit(findings == 0 ? 0 : 1)
    }
}
#endif
