import AirlockFormat
import AirlockKit
import ArgumentParser
import CAirlockSystem

#if canImport(Glibc)
import Glibc
#endif

// Entry point: parse, run, and map every failure to one `error:` line and a documented exit code.
_ = setlocale(LC_CTYPE, "C.UTF-8")
#if canImport(Glibc)
// Buffers of 256 KiB and more (manifests, file tables) are mapped on their own and returned to
// the system when freed. Without this, glibc raises the threshold after the first such free and
// later large buffers fragment the heap, which keeps peak memory well above what is live.
_ = airlock_malloc_mmap_threshold(256 << 10)
// An install keeps a few hundred folders open at once (the store's 256 shards, each staging
// thread's folders): the soft limit on descriptors goes up to the hard limit, at most 65,536, as
// the system allows any process to do.
var files = rlimit()
if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < min(files.rlim_max, 65536) {
    files.rlim_cur = min(files.rlim_max, 65536)
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
}
#endif
let arguments = Array(CommandLine.arguments.dropFirst())
if let unknown = Airlock.unknownCommand(arguments) {
    Output.stderr("error: \(unknown)")
    exit(ExitCodes.usage)
}
var verbose = false
do {
    var command = try Airlock.parseAsRoot(arguments)
    verbose = (command as? AirlockCommand)?.global.verbose ?? false
    if let c = command as? SiteCommand { try c.siteOptions.check() }
    try command.run()
} catch let error as AirlockError {
    Output.error(error, verbose: verbose)
    exit(ExitCodes.code(for: error.kind))
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let code = Airlock.exitCode(for: error)
    let message = Airlock.fullMessage(for: error)
    if code == .success {
        print(message)
        exit(0)
    }
    Output.stderr(message.hasPrefix("Error: ") ? "error: " + message.dropFirst(7) : message)
    exit(ExitCodes.usage)
}
