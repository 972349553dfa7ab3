import AirlockFormat
import AirlockKit
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// `airlock replay`: recorded real tasks fed to a candidate release and to a baseline, each in
/// staging (loopback, a tool gateway of its own in replay mode), and their decisions compared
/// with the recording and with each other (docs/replay.md, "Replay").
public enum Replay {
    /// What to replay.
    public struct Options: Sendable {
        /// The release name.
        public var name: String
        /// The candidate: a release folder, version or bundle id prefix.
        public var candidate: String
        /// The baseline (default: `current`).
        public var baseline: String?
        /// A file of recorded tasks (`airlock record export`); nil: the site's recordings.
        public var tasksFile: String?
        /// Only the last N tasks.
        public var last: Int?
        /// The candidate's share of diverged tasks beyond the noise floor that still passes;
        /// nil: the site policy's `replay.threshold`, else 0.
        public var threshold: Double?
        /// Seconds a task may take on one runtime before it is killed and the task counted as a
        /// timeout.
        public var taskTimeoutSeconds: Double = 60

        /// Options for `name` and `candidate`; the rest at their defaults.
        public init(name: String, candidate: String) {
            self.name = name
            self.candidate = candidate
        }
    }

    /// How one runtime did on one task.
    public struct Run: Sendable {
        /// The tool calls it made, in order, as the gateway answered them.
        var calls: [ReplayScript.Observed] = []
        /// Each exchange's answer: status and body (at most 1 MiB).
        var answers: [(status: Int, body: [UInt8])] = []
        /// It took longer than the task timeout (and was killed).
        var timedOut = false
        /// It could not be reached or answered nothing usable.
        var error: String?
        /// Where it first differs from the recording, nil when it does not.
        var divergence: String?
        /// Whether its last answer equals the recording's, byte for byte (and status).
        var exactAnswer = false
    }

    /// One task's result.
    public struct TaskResult: Sendable {
        let task: RecordedTask
        let baseline: Run
        let candidate: Run
        /// The candidate diverged from the recording where the baseline did not.
        var candidateOnly: Bool { candidate.divergence != nil && baseline.divergence == nil }
        /// Where the candidate first differs from the baseline.
        let versusBaseline: String?
    }

    /// Runs the replay. Throws what resolving the releases and reading the tasks throw
    /// (`release-unknown`, `recording-damaged`, ...), and `replay-invalid` when there is nothing
    /// to replay or a release cannot run; in those cases nothing is written to the site.
    public static func run(site: Site, options: Options, logger: Logger) async throws -> ReplayReport {
        let name = options.name
        let began = Date()
        try site.requireInstalled(name)
        let candidate = try Activation.resolve(site: site, name: name, options.candidate)
        guard let baseline = try options.baseline.map({ try Activation.resolve(site: site, name: name, $0) }) ?? site.current(name) else {
            throw AirlockError(.usage, .replayInvalid, "\(name) has no current release to compare with; name one with --baseline")
        }
        guard baseline != candidate else {
            throw AirlockError(.usage, .replayInvalid, "the candidate and the baseline are the same release (\(candidate)); a replay compares two releases")
        }
        var specs: [String: ServeSpec] = [:]
        for r in [baseline, candidate] {
            guard let spec = try site.serveSpec(name, r) else {
                throw AirlockError(.usage, .replayInvalid, "\(r) declares no serve section, so it cannot be run for a replay")
            }
            specs[r] = spec
        }
        var tasks: [RecordedTask]
        var dropped = 0
        if let file = options.tasksFile {
            tasks = try RecordingReader.readTasks(file: file)
        } else {
            let read = try RecordingReader.read(site: site, name: name, last: options.last)
            tasks = read.tasks
            dropped = read.dropped
        }
        if let last = options.last { tasks = Array(tasks.suffix(last)) }
        guard !tasks.isEmpty else {
            throw AirlockError(
                .usage, .replayInvalid,
                options.tasksFile.map { "\($0) holds no task" }
                    ?? "\(name) has no recorded task; record some first (`airlock record on \(name) --sample 10%`) or give --tasks FILE")
        }
        let threshold = try options.threshold ?? Supervisor.sitePolicy(site).replay.threshold
        let change = try ReleaseChange(site: site, name: name, from: baseline, to: candidate)

        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let script = ReplayScript(tasks)
        let gateway = ToolGateway(site: site, client: client, metrics: ServeMetrics(), alerts: nil, logger: logger, script: script)
        let group = ServiceGroup(configuration: .init(services: [gateway.application(logger: logger)], logger: logger))
        let serving = Task { try await group.run() }
        /// Stops the gateway and the client, waiting for both.
        func shutdown() async {
            await group.triggerGracefulShutdown()
            _ = try? await serving.value
            try? await client.shutdown()
        }
        var results: [TaskResult] = []
        do {
            let deadline = Date().addingTimeInterval(10)
            while gateway.port == nil && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            guard gateway.port != nil else { throw AirlockError(.io, .replayInvalid, "the replay's tool gateway did not start listening") }
            let declared = try [baseline, candidate].reduce(into: [String: Set<String>]()) {
                $0[$1] = try ReleaseGrants.declaredTools(site: site, name: name, release: $1)
            }
            // The two releases replay side by side, each task after the other on its runtime.
            async let b = feed(
                site: site, name: name, release: baseline, spec: specs[baseline]!, declared: declared[baseline]!, tasks: tasks, script: script,
                gateway: gateway, client: client, timeout: options.taskTimeoutSeconds)
            async let c = feed(
                site: site, name: name, release: candidate, spec: specs[candidate]!, declared: declared[candidate]!, tasks: tasks, script: script,
                gateway: gateway, client: client, timeout: options.taskTimeoutSeconds)
            let (baselineRuns, candidateRuns) = try await (b, c)
            for (i, t) in tasks.enumerated() {
                let base = judge(baselineRuns[i], against: t)
                let cand = judge(candidateRuns[i], against: t)
                results.append(TaskResult(task: t, baseline: base, candidate: cand, versusBaseline: compare(cand, base)))
            }
        } catch {
            await shutdown()
            throw error
        }
        await shutdown()
        return ReplayReport(
            name: name, baseline: change.from, candidate: change.to, change: change, results: results, threshold: threshold, dropped: dropped,
            source: options.tasksFile ?? RecordingStore.directory(site: site, name: name), gateway: script.timings(),
            seconds: Date().timeIntervalSince(began))
    }

    /// Feeds every task to a runtime of `release`, in order; a runtime that takes longer than
    /// `timeout` on a task is killed and started again for the next one.
    static func feed(
        site: Site, name: String, release: String, spec: ServeSpec, declared: Set<String>, tasks: [RecordedTask], script: ReplayScript,
        gateway: ToolGateway, client: HTTPClient, timeout: Double
    ) async throws -> [Run] {
        var runtime: (Runtime, String)?
        defer {
            if let (r, url) = runtime {
                r.stop(graceSeconds: 2)
                gateway.unregister(url)
            }
        }
        func start() async throws -> (Runtime, String) {
            guard let url = gateway.register(name: name, release: release, declared: declared) else {
                throw AirlockError(.io, .replayInvalid, "the replay's tool gateway is not listening")
            }
            let r: Runtime
            do {
                r = try Runtime.start(site: site, name: name, release: release, spec: spec, environment: ["AIRLOCK_TOOLS_URL=\(url)"])
            } catch {
                gateway.unregister(url)
                throw error
            }
            let deadline = Date().addingTimeInterval(Double(spec.startTimeoutSeconds))
            while Date() < deadline {
                if !r.isRunning { break }
                if let address = r.connectAddress {
                    let request = HTTPClientRequest(url: Supervisor.baseURL(address) + spec.readyPath)
                    if let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok { return (r, url) }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let tail = r.outputTail(bytes: 300).trimmingCharacters(in: .whitespacesAndNewlines)
            r.stop(graceSeconds: 0)
            gateway.unregister(url)
            throw AirlockError(
                .io, .replayInvalid,
                "\(release) did not answer ready on \(spec.readyPath) within \(spec.startTimeoutSeconds) s" + (tail.isEmpty ? "" : ": \(tail)"))
        }
        var runs: [Run] = []
        for t in tasks {
            if runtime == nil || !(runtime!.0.isRunning) {
                if let (r, url) = runtime {
                    r.stop(graceSeconds: 0)
                    gateway.unregister(url)
                }
                runtime = try await start()
            }
            script.reset(release: release, task: t.task)
            var run = Run()
            let deadline = Date().addingTimeInterval(timeout)
            for x in t.exchanges {
                guard let (r, _) = runtime, let address = r.connectAddress, let o = x.objectValue, let req = o["request"]?.objectValue else { break }
                var request = HTTPClientRequest(url: Supervisor.baseURL(address) + (req["path"]?.stringValue ?? "/"))
                request.method = .init(rawValue: req["method"]?.stringValue ?? "GET")
                request.headers.add(name: "X-Task-Id", value: t.task)
                if let type = req["content_type"]?.stringValue { request.headers.add(name: "Content-Type", value: type) }
                if let body = Self.body(req) { request.body = .bytes(body) }
                let left = deadline.timeIntervalSinceNow
                do {
                    guard left > 0 else { throw HTTPClientError.deadlineExceeded }
                    let response = try await client.execute(request, timeout: .milliseconds(Int64(left * 1000)))
                    let body = try await response.body.collect(upTo: Recorder.maxResponseBytes + 1)
                    run.answers.append((Int(response.status.code), Array(buffer: body)))
                } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout {
                    run.timedOut = true
                    r.stop(graceSeconds: 0)  // killed: the next task gets a new runtime
                    break
                } catch {
                    run.error = "\(release) did not answer: \(error)"
                    break
                }
            }
            run.calls = script.observed(release: release, task: t.task)
            runs.append(run)
        }
        return runs
    }

    /// A recorded body's bytes.
    static func body(_ o: [String: JSONValue]) -> [UInt8]? {
        if let text = o["body"]?.stringValue { return text.isEmpty ? nil : Array(text.utf8) }
        if let b64 = o["body_base64"]?.stringValue, let data = Data(base64Encoded: b64) { return [UInt8](data) }
        return nil
    }

    /// `run` with where it first differs from the recording of `task`.
    static func judge(_ run: Run, against task: RecordedTask) -> Run {
        var r = run
        let recordedCalls = task.toolCalls.map { c in (c["tool"]?.stringValue ?? "", CanonicalJSON.encode(c["arguments"] ?? .object([:]))) }
        let last = task.exchanges.last?.objectValue?["response"]?.objectValue ?? [:]
        let recordedStatus = Int(last["status"]?.unsignedInteger(max: 999) ?? 0)
        let recordedBody = body(last) ?? []
        if r.timedOut {
            r.divergence = "timed out"
            return r
        }
        if let e = r.error {
            r.divergence = e
            return r
        }
        for (i, pair) in zip(recordedCalls.indices, zip(recordedCalls, r.calls)) {
            let (want, got) = pair
            if want.0 != got.tool || want.1 != got.arguments {
                r.divergence =
                    "tool call \(i + 1): \(describe(got.tool, got.arguments, got.status)) where the recording has \(want.0) \(String(decoding: want.1, as: UTF8.self))"
                return r
            }
        }
        if r.calls.count > recordedCalls.count {
            let extra = r.calls[recordedCalls.count]
            r.divergence = "tool call \(recordedCalls.count + 1): \(describe(extra.tool, extra.arguments, extra.status)), which the recording does not have"
            return r
        }
        if r.calls.count < recordedCalls.count {
            let missing = recordedCalls[r.calls.count]
            r.divergence = "tool call \(r.calls.count + 1) missing: the recording has \(missing.0) \(String(decoding: missing.1, as: UTF8.self))"
            return r
        }
        guard r.answers.count == task.exchanges.count, let answer = r.answers.last else {
            r.divergence = "answered \(r.answers.count) of \(task.exchanges.count) requests"
            return r
        }
        r.exactAnswer = answer.status == recordedStatus && answer.body == recordedBody
        if answer.status != recordedStatus {
            r.divergence = "answer: status \(answer.status) where the recording has \(recordedStatus)"
        } else if normalized(answer.body) != normalized(recordedBody) {
            r.divergence = "answer: differs from the recording's"
        }
        return r
    }

    static func describe(_ tool: String, _ arguments: [UInt8], _ status: ToolGateway.Status) -> String {
        "\(tool) \(String(decoding: arguments, as: UTF8.self))" + (status == .refused ? " (refused: not declared)" : "")
    }

    /// Where `a` first differs from `b`: the calls, then the last answer; nil when they agree.
    static func compare(_ a: Run, _ b: Run) -> String? {
        if a.timedOut != b.timedOut { return a.timedOut ? "the candidate timed out" : "the baseline timed out" }
        for (i, (x, y)) in zip(a.calls, b.calls).enumerated() where x.tool != y.tool || x.arguments != y.arguments {
            return "tool call \(i + 1)"
        }
        if a.calls.count != b.calls.count { return "tool call \(min(a.calls.count, b.calls.count) + 1)" }
        guard let x = a.answers.last, let y = b.answers.last else { return a.answers.count == b.answers.count ? nil : "answer" }
        return x.status == y.status && normalized(x.body) == normalized(y.body) ? nil : "answer"
    }

    /// An answer after the documented normalisation (docs/replay.md, "Matching"): JSON is
    /// re-encoded canonically (keys sorted, no insignificant white space) with every string's
    /// runs of white space collapsed to one space and its ends trimmed; other text gets the same
    /// white-space treatment.
    static func normalized(_ body: [UInt8]) -> [UInt8] {
        func squeeze(_ s: String) -> String { s.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ") }
        func walk(_ v: JSONValue) -> JSONValue {
            switch v {
            case .string(let s): return .string(squeeze(s))
            case .array(let a): return .array(a.map(walk))
            case .object(let o): return .object(o.mapValues(walk))
            default: return v
            }
        }
        if let v = try? JSONParser.parse(body) { return CanonicalJSON.encode(walk(v)) }
        return Array(squeeze(String(decoding: body, as: UTF8.self)).utf8)
    }
}
