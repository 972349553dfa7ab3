import AirlockFormat
import AirlockKit
import ArgumentParser
import Foundation

struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record", abstract: "Record a sample of a name's real tasks (requests, tool calls, answers, outcomes) for replay.",
        subcommands: [On.self, Off.self, Status.self, Export.self, Purge.self])

    struct On: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "on",
            abstract: "Record a share of NAME's tasks from now on (airlock serve picks it up within seconds).",
            discussion: "What is stored, where and for how long: docs/replay.md, \"Recording\".")

        @Argument var name: String
        @Option(name: .long, help: "The share of tasks recorded, such as 10% or 0.1 (by a salted hash of the task id).")
        var sample: String
        @Option(name: .long, help: "The most the recordings take on disk, compressed, in MiB (default 1024).")
        var maxMb: Int = Int(RecordingSettings.defaultMaxBytes >> 20)
        @Option(name: .long, help: "Recordings older than this are deleted (default 7).")
        var retentionDays: Int = RecordingSettings.defaultRetentionDays
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let share: Double
            if sample.hasSuffix("%"), let p = Double(sample.dropLast()) {
                share = p / 100
            } else if let x = Double(sample) {
                share = x
            } else {
                throw AirlockError(.usage, .recordInvalid, "--sample takes a share such as 10% or 0.1, not \(sample)")
            }
            guard maxMb >= 1, maxMb <= 1 << 22 else { throw AirlockError(.usage, .recordInvalid, "--max-mb must be from 1 to 4194304") }
            let s = try RecordingStore.on(
                site: siteOptions.site, name: name, sample: share, maxBytes: Int64(maxMb) << 20, retentionDays: retentionDays,
                lockTimeout: siteOptions.lockTimeout)
            Output.say(
                "\(name): recording \(EvalAttestation.decimal(s.sample * 100))% of tasks, at most \(maxMb) MiB, kept \(s.retentionDays) days, in \(RecordingStore.directory(site: siteOptions.site, name: name))"
            )
        }
    }

    struct Off: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "off", abstract: "Stop recording NAME's tasks; what was recorded stays until its retention or `record purge`.")

        @Argument var name: String
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let was = try RecordingStore.off(site: siteOptions.site, name: name, lockTimeout: siteOptions.lockTimeout)
            Output.say(was ? "\(name): recording off" : "\(name): recording was not on")
        }
    }

    struct Status: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Show whether NAME's tasks are recorded, and what the recordings hold.")

        @Argument var name: String
        @OptionGroup var output: JSONOption
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let site = siteOptions.site
            try site.requireInstalled(name)
            let settings = try RecordingStore.load(site: site, name: name)
            let segments = RecordingWriter.segments(RecordingStore.directory(site: site, name: name))
            let bytes = segments.reduce(Int64(0)) { $0 + $1.size }
            var o: [String: JSONValue] = [
                "name": .string(name), "on": .bool(settings?.enabled == true), "segments": .integer(segments.count), "bytes": .integer(Int(bytes)),
                "oldest": segments.first.map { .string(Timestamp.format(Int64($0.started))) } ?? .null,
            ]
            if let s = settings {
                o["sample"] = .number(EvalAttestation.decimal(s.sample))
                o["max_bytes"] = .integer(Int(s.maxBytes))
                o["retention_days"] = .integer(s.retentionDays)
                o["since"] = .string(s.since)
            }
            if output.json {
                Output.json(.object(o))
                return
            }
            if let s = settings, s.enabled {
                Output.say(
                    "\(name): recording \(EvalAttestation.decimal(s.sample * 100))% of tasks since \(s.since), at most \(s.maxBytes >> 20) MiB, kept \(s.retentionDays) days"
                )
            } else {
                Output.say("\(name): recording off" + (settings.map { "; what was recorded is kept \($0.retentionDays) days" } ?? ""))
            }
            Output.say(
                "  \(segments.count) segments, \(bytes) bytes" + (segments.first.map { ", the oldest from \(Timestamp.format(Int64($0.started)))" } ?? ""))
        }
    }

    struct Export: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "export", abstract: "Write NAME's recorded tasks to a file, one JSON task a line (the input of `airlock replay --tasks`).")

        @Argument var name: String
        @Option(name: .long, help: "The file to write (refused if it exists); .gz compresses it.")
        var out: String
        @Option(name: .long, help: "Only the last N tasks recorded.")
        var last: Int?
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let site = siteOptions.site
            try site.requireInstalled(name)
            if let last, last < 1 { throw AirlockError(.usage, .recordInvalid, "--last must be at least 1") }
            let read = try RecordingReader.read(site: site, name: name, last: last)
            let tasks = read.tasks
            try RecordingExport.write(tasks, to: out)
            let note = read.dropped > 0 ? " (\(read.dropped) task events cut short by a stop of serve were dropped)" : ""
            Output.say("\(name): \(tasks.count) recorded tasks written to \(out)\(note)")
        }
    }

    struct Purge: SiteCommand {
        static let configuration = CommandConfiguration(
            commandName: "purge", abstract: "Delete everything recorded of NAME now (recording stays on if it is).")

        @Argument var name: String
        @OptionGroup var siteOptions: SiteOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let (segments, bytes) = try RecordingStore.purge(site: siteOptions.site, name: name, lockTimeout: siteOptions.lockTimeout)
            Output.say("\(name): deleted \(segments) recording segments (\(bytes) bytes)")
        }
    }
}
