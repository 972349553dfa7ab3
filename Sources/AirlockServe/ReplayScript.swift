import AirlockFormat
import AirlockKit
import Synchronization

/// The tool gateway's answers in a replay (docs/replay.md, "Replay"): per release and task, a
/// call that matches the next recorded call of the task (the same tool, the same canonical
/// arguments) gets the recorded answer; any other call is a divergence, answered 409 and kept.
/// Every call a runtime makes is kept, in order, for the comparison.
final class ReplayScript: Sendable {
    /// A recorded call.
    struct Recorded: Sendable, Equatable {
        let tool: String
        /// Canonical JSON.
        let arguments: [UInt8]
        let status: ToolGateway.Status
        let result: JSONValue?
        let error: String?
    }

    /// A call a runtime made in the replay.
    struct Observed: Sendable, Equatable {
        let tool: String
        let arguments: [UInt8]
        /// How the gateway answered it: `ok` and the others as recorded, `divergent`, or
        /// `refused` for a tool the release does not declare.
        let status: ToolGateway.Status
    }

    private let recorded: [String: [Recorded]]
    private let state = Mutex<(cursors: [String: Int], observed: [String: [Observed]], seconds: [Double])>(([:], [:], []))
    /// Call durations kept for the report, at most.
    static let maxTimings = 1_000_000

    /// The script of `tasks`' recorded calls.
    init(_ tasks: [RecordedTask]) {
        var r: [String: [Recorded]] = [:]
        for t in tasks {
            r[t.task] = t.toolCalls.map { c in
                let status = c["status"]?.stringValue.flatMap(ToolGateway.Status.init(rawValue:)) ?? .failed
                return Recorded(
                    tool: c["tool"]?.stringValue ?? "", arguments: CanonicalJSON.encode(c["arguments"] ?? .object([:])), status: status,
                    result: c["result"].flatMap { $0 == .null ? nil : $0 }, error: c["error"]?.stringValue)
            }
        }
        recorded = r
    }

    static func key(_ release: String, _ task: String) -> String { release + " " + task }

    /// The recorded calls of `task`, in order.
    func recordedCalls(_ task: String) -> [Recorded] { recorded[task] ?? [] }

    /// The calls `release` made for `task`, in order.
    func observed(release: String, task: String) -> [Observed] { state.withLock { $0.observed[Self.key(release, task)] ?? [] } }

    /// Forgets what `release` did for `task` (before the task is fed to it again).
    func reset(release: String, task: String) {
        state.withLock {
            $0.cursors[Self.key(release, task)] = nil
            $0.observed[Self.key(release, task)] = nil
        }
    }

    /// The answer to a declared tool's call.
    func answer(release: String, task: String, tool: String, arguments: [UInt8]) -> (ToolGateway.Status, JSONValue?, String?) {
        let key = Self.key(release, task)
        let calls = recorded[task] ?? []
        let next = state.withLock { s -> Recorded? in
            let i = s.cursors[key] ?? 0
            guard i < calls.count, calls[i].tool == tool, calls[i].arguments == arguments else { return nil }
            s.cursors[key] = i + 1
            return calls[i]
        }
        guard let next else {
            let expected = state.withLock { s in (s.cursors[key] ?? 0) < calls.count ? calls[s.cursors[key] ?? 0] : nil }
            let what = expected.map { "the recording's next call of this task is \($0.tool) \(String(decoding: $0.arguments, as: UTF8.self))" }
            return (.divergent, nil, "replay: this call does not match the recording; " + (what ?? "the recording has no more calls for this task"))
        }
        if next.status == .ok, let result = next.result { return (.ok, result, nil) }
        return (next.status, nil, next.error ?? "as recorded: \(next.status.rawValue)")
    }

    /// Keeps a call the gateway answered (every status).
    func observe(_ call: ToolGateway.Call) {
        let status = call.status
        state.withLock {
            $0.observed[Self.key(call.release, call.task), default: []].append(Observed(tool: call.tool, arguments: call.arguments, status: status))
            if $0.seconds.count < Self.maxTimings { $0.seconds.append(call.seconds) }
        }
    }

    /// How long the gateway took per call: count, p50, p99 and max in milliseconds.
    func timings() -> (calls: Int, p50: Double, p99: Double, max: Double) {
        let s = state.withLock { $0.seconds }.sorted()
        guard !s.isEmpty else { return (0, 0, 0, 0) }
        func q(_ p: Double) -> Double { s[min(s.count - 1, Int((p * Double(s.count)).rounded(.up)) - 1)] * 1000 }
        return (s.count, q(0.5), q(0.99), s.last! * 1000)
    }
}
