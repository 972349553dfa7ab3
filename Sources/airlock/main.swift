import AirlockKit
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

// Entry point: parse, run, and map every failure to one `error:` line and a documented exit code.
_ = setlocale(LC_CTYPE, "C.UTF-8")
let verbose = CommandLine.arguments.contains("--verbose")
do {
    var command = try Airlock.parseAsRoot()
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
