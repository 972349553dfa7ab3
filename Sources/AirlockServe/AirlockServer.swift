import AirlockFormat
import AirlockKit
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

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

    /// Runs until SIGTERM or SIGINT; every runtime is stopped on the way out. Throws what
    /// binding the address throws.
    public static func run(_ configuration: ServeConfiguration, logger: Logger = Logger(label: "airlock.serve")) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let metrics = ServeMetrics()
        let supervisor = Supervisor(site: configuration.site, names: configuration.names, client: client, logger: logger, metrics: metrics)
        let router = Router()
        router.get("/healthz") { _, _ in json(.ok, ["ok": .bool(true)]) }
        router.get("/metrics") { _, _ in
            var buffer = ByteBuffer()
            buffer.writeBytes(metrics.exposition())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: buffer))
        }
        router.get("/status") { request, _ in
            guard let token = configuration.token, ServeToken.authorizes(request.headers[.authorization], token: token) else {
                return error(.unauthorized, "the control endpoints need Authorization: Bearer <the token in \(configuration.site.path(SiteLayout.serveToken))>")
            }
            return json(.ok, ["names": .object(await supervisor.status())])
        }
        for method: HTTPRequest.Method in [.get, .post, .put, .patch, .delete] {
            router.on("/{name}/**", method: method) { request, context in
                let name = context.parameters.get("name") ?? ""
                let response = try await forward(request, context, configuration: configuration, supervisor: supervisor, client: client)
                if configuration.names.contains(name) {
                    metrics.request(name: name, release: response.headers[releaseHeader], code: response.status.code)
                }
                return response
            }
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "airlock"),
            logger: logger)
        let ticker = Task {
            while !Task.isCancelled {
                await supervisor.tick()
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        do {
            try await app.runService()
        } catch {
            ticker.cancel()
            await supervisor.stopAll()
            try? await client.shutdown()
            throw error
        }
        ticker.cancel()
        await supervisor.stopAll()
        try await client.shutdown()
    }

    static func json(_ status: HTTPResponse.Status, _ fields: [String: JSONValue]) -> Response {
        var buffer = ByteBuffer()
        buffer.writeBytes(CanonicalJSON.encode(.object(fields)) + [0x0A])
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response { json(status, ["error": .string(message)]) }

    static func forward(
        _ request: Request, _ context: BasicRequestContext, configuration: ServeConfiguration, supervisor: Supervisor, client: HTTPClient
    ) async throws -> Response {
        guard let name = context.parameters.get("name"), configuration.names.contains(name) else {
            return error(.notFound, "no release name is served at this path; served: \(configuration.names.joined(separator: ", "))")
        }
        guard let task = request.headers[taskHeader], (1...128).contains(task.utf8.count), task.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        else {
            return error(.badRequest, "every request needs its task id in X-Task-Id (1 to 128 printable ASCII characters)")
        }
        guard let target = await supervisor.target(for: name) else {
            return error(.serviceUnavailable, "no runtime of \(name) is ready yet; try again shortly")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch {
            return AirlockServer.error(.contentTooLarge, "the request body is larger than \(configuration.maxBodyBytes) bytes")
        }
        var path = "/" + context.parameters.getCatchAll().joined(separator: "/")
        if let query = request.uri.query, !query.isEmpty { path += "?" + query }
        var outgoing = HTTPClientRequest(url: target.baseURL + path)
        outgoing.method = .init(rawValue: request.method.rawValue)
        if let type = request.headers[.contentType] { outgoing.headers.add(name: "Content-Type", value: type) }
        outgoing.headers.add(name: "X-Task-Id", value: task)
        outgoing.body = .bytes(body)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(outgoing, timeout: .seconds(300))
        } catch {
            return AirlockServer.error(.badGateway, "\(name) \(target.release) did not answer: \(error)")
        }
        let answer = try await response.body.collect(upTo: 16 << 20)
        var headers: HTTPFields = [releaseHeader: target.release]
        if let type = response.headers.first(name: "Content-Type") { headers[.contentType] = type }
        return Response(status: .init(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: answer))
    }
}
