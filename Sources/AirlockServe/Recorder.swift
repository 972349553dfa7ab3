import AirlockFormat
import AirlockKit
import AirlockRollout
import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization

/// Records a name's sampled tasks while its recording is on (docs/replay.md, "Recording"):
/// each exchange (the request, the answer, and the tool calls the gateway saw for the task
/// while it was answered) and each outcome, as lines of the name's `RecordingWriter`. The
/// event loops and the gateway hand events over; the compression and the writes run on a
/// queue of the recorder's own, so routing never waits for them, and what waits for that
/// queue is bounded (`maxQueuedBytes`): past it an event is dropped and counted.
final class Recorder: Sendable {
    let name: String
    private let site: Site
    private let logger: Logger
    private let queue: DispatchQueue
    private let state = Mutex<State>(State())
    /// Recording is on (read without the lock).
    private let on = Atomic<Bool>(false)
    private let writer = WriterBox()

    struct State {
        var settings: RecordingSettings?
        /// Sampled tasks with an exchange in flight (how many), by task, and the release it went to.
        var inFlight: [String: (release: String, count: Int)] = [:]
        /// Tool calls of those tasks not yet part of an exchange, by task, with their size.
        var calls: [String: (list: [JSONValue], bytes: Int)] = [:]
        var pendingBytes = 0
        var queuedBytes = 0
        var dropped = 0
        var recorded = 0
    }

    /// The writer, used on `queue` only.
    private final class WriterBox: @unchecked Sendable {
        var writer: RecordingWriter?
        var settings: RecordingSettings?
    }

    /// Events waiting for the disk, in bytes at most.
    static let maxQueuedBytes = 64 << 20
    /// Tool calls waiting for their exchange, in bytes at most: per task, and in all.
    static let maxPendingBytesPerTask = 4 << 20
    static let maxPendingBytes = 64 << 20
    /// The most of an answer recorded (an answer beyond it is recorded `truncated`).
    static let maxResponseBytes = 1 << 20

    init(site: Site, name: String, logger: Logger) {
        self.site = site
        self.name = name
        self.logger = logger
        queue = DispatchQueue(label: "airlock.serve.recorder.\(name)")
    }

    /// Recording on with `settings`, or off (nil).
    func adopt(_ settings: RecordingSettings?) {
        on.store(settings?.enabled == true, ordering: .releasing)
        let changed = state.withLock { s -> Bool in
            defer { s.settings = settings }
            if settings?.enabled != true {
                s.calls = [:]
                s.pendingBytes = 0
            }
            return s.settings != settings
        }
        guard changed else { return }
        logger.info("\(name): recording \(settings.flatMap { $0.enabled ? "on, \(EvalAttestation.decimal($0.sample * 100))% of tasks" : nil } ?? "off")")
        queue.async { [self, site, name, logger] in
            guard let settings else {
                writer.writer?.sync()
                writer.writer = nil
                writer.settings = nil
                return
            }
            writer.settings = settings
            if let w = writer.writer {
                w.adopt(settings)
            } else {
                do {
                    writer.writer = try RecordingWriter(site: site, name: name, settings: settings)
                } catch {
                    logger.error("\(name): cannot record tasks: \(error)")
                }
            }
        }
    }

    /// Whether `task` is recorded now.
    /// Asked for every agent request: while recording is off, without a lock (the event loops
    /// would otherwise take turns on it).
    func samples(_ task: String) -> Bool {
        guard on.load(ordering: .acquiring) else { return false }
        return state.withLock { $0.settings }?.samples(task) ?? false
    }

    /// What `airlock serve`'s status shows.
    var status: JSONValue {
        state.withLock { s in
            guard let settings = s.settings, settings.enabled else { return .null }
            return .object([
                "sample": .number(EvalAttestation.decimal(settings.sample)), "recorded": .integer(s.recorded), "dropped": .integer(s.dropped),
            ])
        }
    }

    /// A sampled exchange of `task` went to `release`: its tool calls are kept until it ends.
    func begin(task: String, release: String) {
        state.withLock { s in
            let n = s.inFlight[task]?.count ?? 0
            s.inFlight[task] = (release, n + 1)
        }
    }

    /// An exchange of `task` ended without being recorded (it failed, or the client left).
    func forget(task: String) {
        state.withLock { s in Self.leave(&s, task) }
    }

    private static func leave(_ s: inout State, _ task: String) {
        guard let f = s.inFlight[task] else { return }
        if f.count > 1 {
            s.inFlight[task] = (f.release, f.count - 1)
            return
        }
        s.inFlight[task] = nil
        if let c = s.calls.removeValue(forKey: task) { s.pendingBytes -= c.bytes }
    }

    /// A tool call the gateway answered: kept for the task's exchange when an exchange of the
    /// task is in flight to the calling release (a runtime cannot fill the recording, nor this
    /// memory, with calls of tasks it was not given), within the per-task and total bounds.
    func toolCall(_ call: ToolGateway.Call) {
        guard on.load(ordering: .acquiring) else { return }
        guard state.withLock({ $0.inFlight[call.task]?.release == call.release }) else { return }
        let json = Self.json(call)
        let size = CanonicalJSON.encode(json).count
        state.withLock { s in
            guard s.inFlight[call.task]?.release == call.release else { return }
            let held = s.calls[call.task]?.bytes ?? 0
            guard held + size <= Self.maxPendingBytesPerTask, s.pendingBytes + size <= Self.maxPendingBytes else {
                s.dropped += 1
                return
            }
            var entry = s.calls.removeValue(forKey: call.task) ?? ([], 0)
            entry.list.append(json)
            entry.bytes += size
            s.calls[call.task] = entry
            s.pendingBytes += size
        }
    }

    static func json(_ call: ToolGateway.Call) -> JSONValue {
        let arguments = (try? JSONParser.parse(call.arguments)) ?? .object([:])
        return .object([
            "tool": .string(call.tool), "arguments": arguments, "status": .string(call.status.rawValue), "result": call.result ?? .null,
            "error": call.error.map { .string($0) } ?? .null, "ms": .number(EvalAttestation.decimal((call.seconds * 1e6).rounded() / 1e3)),
        ])
    }

    /// One exchange the runtime answered, with the tool calls of its task since the last one.
    /// The line is made on the recorder's queue, not on the event loop that ended the exchange.
    func exchange(_ c: Capture, release: String) {
        c.recorded = true
        let (calls, callBytes) = state.withLock { s -> ([JSONValue], Int) in
            let entry = s.calls.removeValue(forKey: c.task)
            if let entry { s.pendingBytes -= entry.bytes }
            Self.leave(&s, c.task)
            return (entry?.list ?? [], entry?.bytes ?? 0)
        }
        let task = c.task, method = c.method, path = c.path, requestType = c.requestType, requestBody = c.requestBody
        let status = c.status, responseType = c.responseType, responseBody = c.responseBody, truncated = c.truncated
        let at = Timestamp.format(Timestamp.now())
        // Bodies escaped or in base64 take at most about twice their size.
        let estimate = 2 * (requestBody.readableBytes + responseBody.readableBytes) + callBytes + 512
        write(estimate: estimate) {
            var request: [String: JSONValue] = ["method": .string(method), "path": .string(path), "content_type": requestType.map { .string($0) } ?? .null]
            Self.body(requestBody, into: &request)
            var response: [String: JSONValue] = [
                "status": .integer(status), "content_type": responseType.map { .string($0) } ?? .null, "truncated": .bool(truncated),
            ]
            Self.body(responseBody, into: &response)
            let exchange: JSONValue = .object([
                "at": .string(at), "release": .string(release), "request": .object(request), "response": .object(response), "tool_calls": .array(calls),
            ])
            return RecordingEvents.exchange(task: task, exchange)
        }
    }

    /// The outcome of a task (recorded only when its task is sampled).
    func outcome(task: String, release: String, _ outcome: TaskOutcome) {
        guard samples(task) else { return }
        let line = RecordingEvents.outcome(task: task, release: release, outcome)
        write(estimate: line.count) { line }
    }

    /// Makes what was written durable (each supervision tick).
    func sync() {
        queue.async { [writer] in writer.writer?.sync() }
    }

    /// Deletes what is past the retention, and syncs (every few seconds).
    func maintain() {
        queue.async { [writer] in
            writer.writer?.enforce(adding: 0)
            writer.writer?.sync()
        }
    }

    /// Queues a line (`make` runs on the recorder's queue) when `estimate` more bytes fit in
    /// what waits for the disk.
    private func write(estimate size: Int, _ make: @escaping @Sendable () -> [UInt8]) {
        let accepted = state.withLock { s -> Bool in
            guard s.settings?.enabled == true, s.queuedBytes + size <= Self.maxQueuedBytes else {
                s.dropped += 1
                return false
            }
            s.queuedBytes += size
            return true
        }
        guard accepted else { return }
        queue.async { [self] in
            var ok = false
            if let w = writer.writer {
                do {
                    try w.append(make())
                    ok = true
                } catch {
                    logger.error("\(name): cannot write a recorded task: \(error)")
                }
            }
            state.withLock { s in
                s.queuedBytes -= size
                if ok { s.recorded += 1 } else { s.dropped += 1 }
            }
        }
    }

    /// A body as text when it is UTF-8, else in base64.
    private static func body(_ b: ByteBuffer, into o: inout [String: JSONValue]) {
        let bytes = Array(b.readableBytesView)
        if let text = String(validating: bytes, as: UTF8.self) {
            o["body"] = .string(text)
        } else {
            o["body_base64"] = .string(Data(bytes).base64EncodedString())
        }
    }

    /// What the proxy keeps of a sampled exchange as it passes.
    final class Capture {
        let recorder: Recorder
        /// Handed to `exchange`; otherwise, when it goes, its task's calls are forgotten.
        var recorded = false
        let task: String
        let method: String
        let path: String
        let requestType: String?
        var requestBody: ByteBuffer
        var status = 0
        var responseType: String?
        var responseBody = ByteBuffer()
        var truncated = false

        init(recorder: Recorder, task: String, release: String, method: String, path: String, requestType: String?, requestBody: ByteBuffer?) {
            self.recorder = recorder
            self.task = task
            recorder.begin(task: task, release: release)
            self.method = method
            self.path = path
            self.requestType = requestType
            self.requestBody = requestBody ?? ByteBuffer()
        }

        deinit { if !recorded { recorder.forget(task: task) } }

        func request(_ b: ByteBuffer) {
            var b = b
            requestBody.writeBuffer(&b)
        }

        func response(_ b: ByteBuffer) {
            guard !truncated else { return }
            var b = b
            if responseBody.readableBytes + b.readableBytes > Recorder.maxResponseBytes {
                truncated = true
                if let cut = b.readSlice(length: Recorder.maxResponseBytes - responseBody.readableBytes) {
                    var c = cut
                    responseBody.writeBuffer(&c)
                }
                return
            }
            responseBody.writeBuffer(&b)
        }
    }
}
