import AirlockFormat
import AirlockKit
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The tool gateway of `airlock serve` (docs/replay.md, "The tool gateway"): every runtime
/// `serve` starts is given a URL of its own in `AIRLOCK_TOOLS_URL`, on loopback, and calls its
/// tools there: `POST $AIRLOCK_TOOLS_URL/<tool>` with the call's JSON arguments (an object) and
/// the task's `X-Task-Id`. The URL carries a secret made for that runtime process, which tells
/// the gateway which release is calling: a tool its `tools/tools.json` does not declare is
/// refused (403, counted, alerted on), a declared one goes to the endpoint the site maps it to
/// (`tools` in `policy.json`), and every call is handed to the `observer` in order, with its
/// canonical arguments, result, status and latency.
final class ToolGateway: Sendable {
    /// A runtime allowed to call: which release of which name, and the tools it declares.
    struct Caller: Sendable {
        let name: String
        let release: String
        let declared: Set<String>
    }

    /// One call, as the gateway answered it.
    struct Call: Sendable {
        let name: String
        let release: String
        let task: String
        let tool: String
        /// The arguments' canonical JSON (`CanonicalJSON.encode`).
        let arguments: [UInt8]
        let status: Status
        /// The result (`ok`), or nil.
        let result: JSONValue?
        /// Why not (every other status).
        let error: String?
        let seconds: Double
    }

    /// How a call ended: the `result` label of `airlock_tool_calls_total`.
    enum Status: String, Sendable {
        /// The endpoint answered; `result` holds what it said.
        case ok
        /// The release does not declare the tool.
        case refused
        /// The site maps no endpoint to the tool.
        case unmapped
        /// The endpoint failed or answered something that is not JSON.
        case failed
        /// The endpoint took longer than `tools.timeout_seconds`.
        case timeout
        /// In a replay: the call does not match the next recorded call of its task.
        case divergent

        var httpStatus: HTTPResponse.Status {
            switch self {
            case .ok: return .ok
            case .refused: return .forbidden
            case .unmapped: return .serviceUnavailable
            case .failed: return .badGateway
            case .timeout: return .gatewayTimeout
            case .divergent: return .conflict
            }
        }
    }

    /// The largest arguments object a call may send.
    static let maxArgumentsBytes = 64 << 10
    /// The largest result a URL endpoint may answer.
    static let maxResultBytes = 1 << 20
    /// Refusals are alerted on at most once per release in this many seconds (the alert counts
    /// the refusals since the last one); the runtime picks the tool names, so they never key
    /// anything that grows.
    static let alertInterval = 600.0
    /// Calls of one runtime in flight at most; beyond, 429.
    static let maxCallsInFlight = 16
    /// Command endpoints running at once, over every runtime (`ToolCommand` blocks a thread).
    static let maxCommands = 8

    private let site: Site
    private let client: HTTPClient
    private let metrics: ServeMetrics
    private let alerts: AlertSender?
    private let logger: Logger
    /// Answers from a recording instead of the site's endpoints (`airlock replay`).
    private let script: ReplayScript?
    private let callers = Mutex<[String: Caller]>([:])
    private let state = Mutex<State>(State())
    /// Command endpoints run here, never on `Blocking`'s queue, which supervision waits on.
    private let commands = DispatchQueue(label: "airlock.serve.tool-commands", attributes: .concurrent)
    private let commandSlots = DispatchSemaphore(value: ToolGateway.maxCommands)

    struct State {
        var endpoints = ToolEndpoints()
        var port: Int?
        /// Per release (`name release`): when its refusals were last alerted on, and how many
        /// came since.
        var alerted: [String: (at: Double, since: Int)] = [:]
        /// Calls in flight, by runtime token.
        var inFlight: [String: Int] = [:]
    }
    private let observer: (@Sendable (Call) -> Void)?

    init(
        site: Site, client: HTTPClient, metrics: ServeMetrics, alerts: AlertSender?, logger: Logger, script: ReplayScript? = nil,
        observer: (@Sendable (Call) -> Void)? = nil
    ) {
        self.script = script
        self.site = site
        self.client = client
        self.metrics = metrics
        self.alerts = alerts
        self.logger = logger
        self.observer = observer
    }

    /// The site's tool endpoints (re-read with its policy).
    var endpoints: ToolEndpoints {
        get { state.withLock { $0.endpoints } }
        set { state.withLock { $0.endpoints = newValue } }
    }

    /// The loopback port the gateway listens on, once it does.
    var port: Int? { state.withLock { $0.port } }

    /// Lets a runtime of `release` of `name` call the tools it declares; returns the
    /// `AIRLOCK_TOOLS_URL` to give it. Call `unregister` with the same URL when it ends.
    func register(name: String, release: String, declared: Set<String>) -> String? {
        guard let port else { return nil }
        let token = Self.newToken()
        callers.withLock { $0[token] = Caller(name: name, release: release, declared: declared) }
        return "http://127.0.0.1:\(port)/t/\(token)"
    }

    /// Forgets the runtime given `url`: its calls are answered 404 from now on.
    func unregister(_ url: String?) {
        guard let url, let token = url.split(separator: "/").last else { return }
        _ = callers.withLock { $0.removeValue(forKey: String(token)) }
    }

    /// 32 random bytes in hex, from the system's generator.
    static func newToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// The gateway's server, on `127.0.0.1` at a port the system picks (`port` once bound).
    func application(logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.post("/t/{token}/{tool}") { [self] request, context in
            await handle(request, context)
        }
        router.on("/**", method: .get) { _, _ in AirlockServer.error(.notFound, "call a tool with POST $AIRLOCK_TOOLS_URL/<tool>") }
        return Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "airlock-tools"),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port
                state.withLock { $0.port = port }
            }, logger: logger)
    }

    private func handle(_ request: Request, _ context: BasicRequestContext) async -> Response {
        // From the request's head to its answer: what the gateway adds to a call (its body
        // read, its checks, the endpoint or the recording).
        let started = Timestamp.monotonicSeconds()
        guard let token = context.parameters.get("token"), let caller = callers.withLock({ $0[token] }) else {
            return AirlockServer.error(.notFound, "no runtime has this tool URL; a runtime's AIRLOCK_TOOLS_URL is its own and changes when it restarts")
        }
        guard let tool = context.parameters.get("tool"), ToolManifest.isToolName(tool) else {
            return AirlockServer.error(.badRequest, "a tool name matches ^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
        }
        guard let task = request.headers[AirlockServer.taskHeader], AirlockServer.isTaskID(task) else {
            return AirlockServer.error(.badRequest, "every tool call needs the task's id in X-Task-Id, as the agent request carried it")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.maxArgumentsBytes)
        } catch {
            return AirlockServer.error(.contentTooLarge, "a tool call's arguments are at most \(Self.maxArgumentsBytes) bytes")
        }
        guard let value = try? JSONParser.parse(Array(buffer: body)), case .object = value else {
            return AirlockServer.error(.badRequest, "the body must be the call's arguments as a JSON object")
        }
        let arguments = CanonicalJSON.encode(value)
        // A runtime that floods the gateway waits for its own calls, not others'.
        let admitted = state.withLock { s -> Bool in
            let n = s.inFlight[token, default: 0]
            guard n < Self.maxCallsInFlight else { return false }
            s.inFlight[token] = n + 1
            return true
        }
        guard admitted else {
            return AirlockServer.error(.tooManyRequests, "at most \(Self.maxCallsInFlight) tool calls of a runtime are answered at once; wait for one to end")
        }
        defer {
            state.withLock { s in
                let n = s.inFlight[token, default: 1] - 1
                s.inFlight[token] = n > 0 ? n : nil
            }
        }
        let (status, result, error) = await answer(caller: caller, tool: tool, task: task, arguments: arguments)
        let call = Call(
            name: caller.name, release: caller.release, task: task, tool: tool, arguments: arguments, status: status, result: result, error: error,
            seconds: Timestamp.monotonicSeconds() - started)
        metrics.toolCall(name: caller.name, release: caller.release, tool: status == .refused ? nil : tool, status: status.rawValue)
        script?.observe(call)
        observer?(call)
        if let result { return AirlockServer.json(.ok, ["result": result]) }
        var fields: [String: JSONValue] = ["error": .string(error ?? status.rawValue), "tool": .string(tool)]
        if status == .refused { fields["refused"] = .bool(true) }
        return AirlockServer.json(status.httpStatus, fields)
    }

    private func answer(caller: Caller, tool: String, task: String, arguments: [UInt8]) async -> (Status, JSONValue?, String?) {
        guard caller.declared.contains(tool) else {
            refused(caller: caller, tool: tool, task: task)
            return (
                .refused, nil,
                "\(caller.release) does not declare the tool \(tool) in its tools/tools.json; the site refuses tools a release does not declare"
            )
        }
        if let script { return script.answer(release: caller.release, task: task, tool: tool, arguments: arguments) }
        let endpoints = self.endpoints
        guard let target = endpoints.endpoints[tool] else {
            return (.unmapped, nil, "this site maps no endpoint to the tool \(tool) (tools.endpoints in its policy.json)")
        }
        let timeout = endpoints.timeoutSeconds
        switch target {
        case .url(let url):
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-Task-Id", value: task)
            request.headers.add(name: "X-Airlock-Tool", value: tool)
            request.headers.add(name: "X-Airlock-Name", value: caller.name)
            request.headers.add(name: "X-Airlock-Release", value: caller.release)
            request.body = .bytes(arguments)
            // The deadline covers the whole exchange: AsyncHTTPClient's own stops at the head,
            // and an endpoint could stall its body for ever.
            let client = self.client, sent = request
            let exchange: @Sendable () async throws -> (Int, ByteBuffer) = {
                let response = try await client.execute(sent, timeout: .milliseconds(Int64(timeout * 1000)))
                return (Int(response.status.code), try await response.body.collect(upTo: Self.maxResultBytes))
            }
            do {
                let (code, bytes) = try await withThrowingTaskGroup(of: (Int, ByteBuffer)?.self) { group in
                    group.addTask { try await exchange() }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
                        return nil
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next(), let answer = first else { throw HTTPClientError.deadlineExceeded }
                    return answer
                }
                guard (200..<300).contains(code) else {
                    let text = String(decoding: Array(buffer: bytes).prefix(200), as: UTF8.self)
                    return (.failed, nil, "the endpoint of \(tool) answered \(code): \(Self.oneLine(text))")
                }
                return Self.parsed(Array(buffer: bytes), tool: tool)
            } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
                return (.timeout, nil, "the endpoint of \(tool) did not answer within \(Self.seconds(timeout)) s")
            } catch let e as NIOTooManyBytesError {
                return (.failed, nil, "the endpoint of \(tool) answered more than \(Self.maxResultBytes) bytes (\(e))")
            } catch {
                return (.failed, nil, "the endpoint of \(tool) cannot be reached: \(error)")
            }
        case .command(let argv):
            let name = caller.name, release = caller.release
            let queue = commands, slots = commandSlots
            let outcome = await withCheckedContinuation { (done: CheckedContinuation<Result<ToolCommand.Result, any Error>, Never>) in
                queue.async {
                    slots.wait()
                    defer { slots.signal() }
                    done.resume(
                        returning: Result {
                            try ToolCommand.run(argv, arguments: arguments, tool: tool, task: task, name: name, release: release, timeoutSeconds: timeout)
                        })
                }
            }
            switch outcome {
            case .failure(let error): return (.failed, nil, "the command of \(tool) cannot be run: \(error)")
            case .success(.timedOut): return (.timeout, nil, "the command of \(tool) did not finish within \(Self.seconds(timeout)) s")
            case .success(.failed(let how)): return (.failed, nil, "the command of \(tool) \(Self.oneLine(how))")
            case .success(.output(let bytes)): return Self.parsed(bytes, tool: tool)
            }
        }
    }

    private static func parsed(_ bytes: [UInt8], tool: String) -> (Status, JSONValue?, String?) {
        guard let value = try? JSONParser.parse(bytes) else { return (.failed, nil, "the endpoint of \(tool) answered something that is not JSON") }
        return (.ok, value, nil)
    }

    /// Alerts on an undeclared tool, once per release and tool every `alertInterval` seconds.
    private func refused(caller: Caller, tool: String, task: String) {
        let key = "\(caller.name) \(caller.release)"
        let now = Timestamp.monotonicSeconds()
        // One alert (and one log line) per release every `alertInterval`, counting the
        // refusals in between; entries older than that are dropped as others are added.
        let due = state.withLock { s -> Int? in
            if let last = s.alerted[key], now - last.at < Self.alertInterval {
                s.alerted[key]!.since += 1
                return nil
            }
            s.alerted = s.alerted.filter { now - $0.value.at < Self.alertInterval }
            let since = s.alerted[key]?.since ?? 0
            s.alerted[key] = (now, 0)
            return since
        }
        guard let since = due else { return }
        let earlier = since > 0 ? " (and \(since) refused calls before it)" : ""
        logger.warning("\(caller.name): \(caller.release) called the undeclared tool \(tool) (task \(task)); refused\(earlier)")
        guard let alerts else { return }
        alerts.queue(
            event: "tool-refused", name: caller.name,
            reason:
                "\(caller.release) called the tool \(tool), which its tools/tools.json does not declare (task \(task)); the call was refused\(earlier). Further refusals by this release are counted in airlock_tool_calls_total{result=\"refused\"} and alerted again after \(Int(Self.alertInterval / 60)) minutes at the earliest",
            from: nil, to: caller.release, decision: nil)
    }

    private static func oneLine(_ s: String) -> String { AlertCommand.oneLine(s) }

    private static func seconds(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(s) }
}
