import AirlockFormat
import AirlockKit
import AirlockRollout
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

/// `airlock serve`: keeps the runtime of each managed name's `current` release warm
/// (`Supervisor`) and routes agent requests to it, under `/<name>/...`, on loopback unless the
/// admin binds elsewhere.
///
/// Every agent request carries its task id in `X-Task-Id` (1 to 128 printable ASCII
/// characters); the response says which release served it in `X-Airlock-Release`. A request
/// without a task id, for a name it does not manage, or with a body over the limit gets a 4xx
/// with a JSON `{"error"}`; while no runtime of the name is ready, 503.
public enum AirlockServer {
    /// The header that names a request's task.
    public static let taskHeader = HTTPField.Name("X-Task-Id")!
    /// The header that names the release that served a response.
    public static let releaseHeader = HTTPField.Name("X-Airlock-Release")!

    /// The prefix of the daemon's own endpoints: release names start with a letter or digit,
    /// so no name's route can take it.
    public static let controlPrefix = "/_airlock"
    /// The largest outcome report, in bytes.
    public static let maxOutcomeBytes = 16 << 10

    /// Runs until SIGTERM or SIGINT; every runtime is stopped on the way out. Throws what
    /// opening the names' rollout state throws (`site-busy` when another `serve` serves one
    /// of them) and what binding the address throws.
    public static func run(_ configuration: ServeConfiguration, logger: Logger = Logger(label: "airlock.serve")) async throws {
        // Redirects are not followed: a runtime's or a webhook's 3xx must not send serve (and the
        // agent's body, or an alert) anywhere else.
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let metrics = ServeMetrics()
        let supervisor = Supervisor(site: configuration.site, names: configuration.names, client: client, logger: logger, metrics: metrics)
        do {
            try await supervisor.prepare()
        } catch {
            try? await client.shutdown()
            throw error
        }
        let router = Router()
        router.get("\(controlPrefix)/healthz") { _, _ in json(.ok, ["ok": .bool(true)]) }
        router.get("\(controlPrefix)/metrics") { _, _ in
            var buffer = ByteBuffer()
            buffer.writeBytes(metrics.exposition())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: buffer))
        }
        @Sendable func unauthorized(_ request: Request) -> Response? {
            guard let token = configuration.token, ServeToken.authorizes(request.headers[.authorization], token: token) else {
                return error(
                    .unauthorized,
                    "the control and outcome endpoints need Authorization: Bearer <the token in \(configuration.site.path(SiteLayout.serveToken))>")
            }
            return nil
        }
        router.get("\(controlPrefix)/status") { request, _ in
            if let refused = unauthorized(request) { return refused }
            return json(.ok, ["names": .object(await supervisor.status())])
        }
        router.post("\(controlPrefix)/outcomes/{name}") { request, context in
            if let refused = unauthorized(request) { return refused }
            return await outcome(request, context, configuration: configuration, supervisor: supervisor)
        }
        router.on("\(controlPrefix)/**", method: .get) { _, _ in error(.notFound, "no such endpoint; see docs/rollout.md, \"HTTP API\"") }
        // Agent requests never reach the router: the proxy in front of it answers them on the
        // event loop that read them (AgentProxy.swift).
        let proxy = AgentProxy(
            names: Set(configuration.names), table: supervisor.table, metrics: metrics, recorders: supervisor.recorders,
            maxBodyBytes: configuration.maxBodyBytes, logger: logger)
        let loops: MultiThreadedEventLoopGroup? = configuration.threads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
        // The tool gateway runs beside it, always on loopback, stopped with it.
        let gateway = supervisor.tools.application(logger: logger)
        let app = Application(
            router: router, server: HTTPServerBuilder { responder in AgentChannel(responder: responder, proxy: proxy) },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "airlock"),
            services: [gateway], eventLoopGroupProvider: loops.map { .shared($0) } ?? .singleton, logger: logger)
        let ticker = Task {
            while !Task.isCancelled {
                await supervisor.tick()
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        // Alerts are delivered apart from supervision: a slow webhook never holds up a tick.
        let deliverer = Task {
            while !Task.isCancelled {
                await supervisor.alerts.deliverPending()
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { deliverer.cancel() }
        do {
            try await app.runService()
        } catch {
            ticker.cancel()
            await supervisor.stopAll()
            try? await client.shutdown()
            try? await loops?.shutdownGracefully()
            throw error
        }
        ticker.cancel()
        await supervisor.stopAll()
        try await client.shutdown()
        try? await loops?.shutdownGracefully()
    }

    /// `POST /_airlock/outcomes/{name}` with `{"task_id", "success", "cost", "intervention",
    /// "error"?}`: counted once per task (docs/rollout.md, "HTTP API").
    static func outcome(
        _ request: Request, _ context: BasicRequestContext, configuration: ServeConfiguration, supervisor: Supervisor
    ) async
        -> Response
    {
        guard let name = context.parameters.get("name"), configuration.names.contains(name) else {
            return error(.notFound, "no release name is served here; served: \(configuration.names.joined(separator: ", "))")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxOutcomeBytes)
        } catch {
            return AirlockServer.error(.contentTooLarge, "an outcome report is at most \(maxOutcomeBytes) bytes")
        }
        let report: (task: String, outcome: TaskOutcome)
        switch parseOutcome(Array(buffer: body)) {
        case .failure(let e): return error(.badRequest, e.message)
        case .success(let r): report = r
        }
        switch await supervisor.report(name: name, task: report.task, outcome: report.outcome) {
        case .counted(let release):
            return json(.ok, ["counted": .bool(true), "task_id": .string(report.task), "release": .string(release)])
        case .refused(.unknownTask):
            return error(.notFound, "no request of task \(report.task) was routed for \(name) (or it finished more than a day ago); nothing was counted")
        case .refused(.duplicate(let expired)):
            var r = json(
                .conflict,
                [
                    "error": .string(
                        expired
                            ? "task \(report.task) had no outcome by its deadline and was counted as a failure then; this report was not counted"
                            : "task \(report.task) already reported its outcome; a task is counted once"),
                    "duplicate": .bool(true),
                ])
            r.headers[releaseHeader] = nil
            return r
        case .failed(let message):
            return error(.serviceUnavailable, message)
        }
    }

    /// Parses an outcome report (`OutcomeReport.parse`).
    static func parseOutcome(_ bytes: [UInt8]) -> Result<(task: String, outcome: TaskOutcome), OutcomeError> {
        OutcomeReport.parse(bytes).mapError { OutcomeError($0.message) }
    }

    /// Why an outcome report does not parse.
    struct OutcomeError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// 1 to 128 printable ASCII characters, no space.
    static func isTaskID(_ s: String) -> Bool { RecordingEvents.isTaskID(s) }

    static func json(_ status: HTTPResponse.Status, _ fields: [String: JSONValue]) -> Response {
        var buffer = ByteBuffer()
        buffer.writeBytes(CanonicalJSON.encode(.object(fields)) + [0x0A])
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response { json(status, ["error": .string(message)]) }
}
