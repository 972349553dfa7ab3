import AirlockFormat
import AirlockKit
import AirlockServe
import ArgumentParser
import Dispatch
import Foundation
import Logging

struct ReplayCommand: SiteCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay recorded real tasks against CANDIDATE and a baseline, and report where their decisions diverge.",
        discussion: """
            Starts CANDIDATE and the baseline (default: current) on loopback, each with a tool gateway that answers \
            from the recording, feeds them every recorded task, and compares their tool calls and final answers \
            with the recording and with each other (docs/replay.md). Exit status 0 when the candidate's divergence \
            beyond the noise floor (the baseline's own) is within the threshold, 1 when it is not.
            """)

    @Argument var name: String
    @Argument(help: "The candidate: release folder, version, or unique bundle id prefix.")
    var candidate: String
    @Option(name: .long, help: "The baseline (default: the current release).")
    var baseline: String?
    @Option(name: .long, help: "A file of recorded tasks (`airlock record export`); default: the site's recordings of NAME.")
    var tasks: String?
    @Option(name: .long, help: "Only the last N recorded tasks.")
    var last: Int?
    @Option(
        name: .long, help: "The share of tasks (0 to 1) the candidate may diverge on beyond the noise floor (default: the site's replay_threshold, else 0).")
    var threshold: Double?
    @Option(name: .long, help: "Seconds a task may take on a runtime before it is killed and counted as a timeout (default 60).")
    var taskTimeout: Double = 60
    @Option(name: .long, help: "Write the report as one self-contained HTML page to this file.")
    var html: String?
    @OptionGroup var output: JSONOption
    @OptionGroup var siteOptions: SiteOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let last, last < 1 { throw ValidationError("--last must be at least 1") }
        if let threshold, !(0...1).contains(threshold) { throw ValidationError("--threshold is a share of tasks from 0 to 1") }
        if !(1...3600).contains(taskTimeout) { throw ValidationError("--task-timeout must be from 1 to 3600 seconds") }
    }

    func run() throws {
        let site = siteOptions.site
        var options = Replay.Options(name: name, candidate: candidate)
        options.baseline = baseline
        options.tasksFile = tasks
        options.last = last
        options.threshold = threshold
        options.taskTimeoutSeconds = taskTimeout
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        var logger = Logger(label: "airlock.replay")
        logger.logLevel = .warning
        let opts = options
        Task {
            do { box.report = try await Replay.run(site: site, options: opts, logger: logger) } catch { box.error = error }
            done.signal()
        }
        done.wait()
        if let error = box.error { throw error }
        guard let report = box.report else { return }
        if let html {
            do {
                try Data(report.html.utf8).write(to: URL(fileURLWithPath: html), options: .atomic)
            } catch {
                throw AirlockError(.io, .writeFailed, "cannot write the HTML report to \(html): \(error)")
            }
        }
        // Kept for `canary start` under require_replay: the summary, without the tasks.
        var summary = report.json.objectValue ?? [:]
        summary["diverged"] = nil
        summary["at"] = .string(Timestamp.format(Timestamp.now()))
        try ReplayStore.save(
            site: site, name: name, candidate: report.candidate.bundleID, summary: .object(summary), lockTimeout: siteOptions.lockTimeout)
        if output.json {
            Output.json(report.json)
        } else {
            Output.lines(report.text)
            if let html { Output.say("HTML report: \(html)") }
        }
        if !report.passed { throw ExitCode(ExitCodes.verification) }
    }

    /// The replay's result, handed from its task to the command's thread.
    final class Box: @unchecked Sendable {
        var report: ReplayReport?
        var error: (any Error)?
    }
}
