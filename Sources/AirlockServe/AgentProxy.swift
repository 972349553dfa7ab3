import AirlockFormat
import AirlockKit
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOPosix
import Prometheus
import Synchronization

/// How agent requests (`/<name>/...`) are proxied: on the event loop that read the request,
/// routed by the `RouteTable` (one lock, no hop to another thread), sent to the runtime over a
/// kept-alive connection of that same event loop, and the answer streamed back as it comes.
/// Control requests (`/_airlock/...`) go on to Hummingbird's router.
struct AgentProxy: Sendable {
    /// The names served.
    let names: Set<String>
    let table: RouteTable
    let metrics: ServeMetrics
    /// The largest request body, in bytes.
    let maxBodyBytes: Int
    /// How long a runtime may take to start its answer.
    var responseTimeout: TimeAmount = .seconds(300)
    /// How long connecting to a runtime may take.
    var connectTimeout: TimeAmount = .seconds(5)
    let loops = LoopStates()
    let logger: Logger

    /// The request header that names a request's task.
    static let taskHeader = "X-Task-Id"
    /// The response header that names the release that served it.
    static let releaseHeader = "X-Airlock-Release"
    /// The methods an agent route takes.
    static let methods: [HTTPMethod] = [.GET, .POST, .PUT, .PATCH, .DELETE]
    /// A request body up to this size is kept until the answer starts, so that a request sent
    /// on a kept-alive connection the runtime had just closed can be sent again on a new one.
    static let retryableBytes = 64 << 10
    /// How much of a refused request's body is read and dropped before its connection closes
    /// anyway, when the client asked to close it after the answer.
    static let lingerBytes = 16 << 20

    /// The name and the runtime's path (with the query) of `/<name>/<path>?<query>`; nil when
    /// the path names no release.
    static func split(_ uri: String) -> (name: String, path: String)? {
        let u = uri.utf8
        guard u.first == UInt8(ascii: "/") else { return nil }
        let afterSlash = u.index(after: u.startIndex)
        let end = u[afterSlash...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? u.endIndex
        guard end > afterSlash else { return nil }
        let name = String(uri[afterSlash..<end])
        let rest = String(uri[end...])
        return (name, rest.isEmpty || rest.utf8.first == UInt8(ascii: "?") ? "/" + rest : rest)
    }

    /// True for the daemon's own endpoints, which Hummingbird's router answers.
    static func isControl(_ uri: String) -> Bool {
        let prefix = AirlockServer.controlPrefix
        guard uri.hasPrefix(prefix) else { return false }
        let next = uri.utf8.dropFirst(prefix.utf8.count).first
        return next == nil || next == UInt8(ascii: "/") || next == UInt8(ascii: "?")
    }
}

/// The server side of a connection: NIO's HTTP/1 server pipeline (one request at a time per
/// connection), then the `AgentProxyHandler`, then Hummingbird's own handlers for the control
/// requests the proxy passes on.
struct AgentChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let proxy: AgentProxy

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            // Pipelining assistance: the next request of a connection is read only once the
            // answer to the one before has ended, whichever handler answered it.
            // No pipelining assistance: it stops reading the connection after every request (two
            // epoll_ctl calls per request); the proxy keeps requests in order itself.
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
            try pipeline.addHandler(AgentProxyHandler(proxy))
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

/// Answers agent requests itself (errors with a JSON `{"error"}`, or the runtime's answer) and
/// passes control requests on. Runs on its connection's event loop only.
final class AgentProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// One agent request on its way to a runtime and back.
    final class Exchange {
        let name: String
        let target: RouteTable.Target
        let version: HTTPVersion
        /// The client keeps the connection after this answer.
        let keepAlive: Bool
        var backend: BackendConnection?
        /// Parts read before a connection to the runtime was there.
        var waiting: [HTTPClientRequestPart]
        /// Everything sent to the runtime so far, while it is small enough to send again.
        var sent: [HTTPClientRequestPart]? = []
        var sentBytes = 0
        var bodyBytes = 0
        var requestDone = false
        var responseStarted = false
        var backendKeepAlive = false
        var retried = false
        /// When the runtime must have started its answer (`LoopState` checks every second).
        var deadline: NIODeadline?

        init(name: String, target: RouteTable.Target, version: HTTPVersion, keepAlive: Bool, head: HTTPRequestHead) {
            self.name = name
            self.target = target
            self.version = version
            self.keepAlive = keepAlive
            self.waiting = [.head(head)]
        }
    }

    /// What the current request is.
    private enum Mode {
        case none
        /// A control request, for Hummingbird.
        case passthrough
        /// A request already answered here: the rest of its body is dropped.
        case discarding
        case forwarding(Exchange)
    }

    private let proxy: AgentProxy
    private var mode = Mode.none
    /// The current request's parts are still coming.
    private var reading = false
    /// The current request's answer has not ended yet.
    private var answering = false
    /// Parts of later requests (a client that pipelines), read while the current request was
    /// still being answered: handled in order once it is. While any wait, the connection is not
    /// read further.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var readDeferred = false
    private var draining = false
    /// The answer ended a `Connection: close` exchange before its request was read: close once
    /// it is.
    private var closeWhenRead = false
    private var answerWritten: EventLoopFuture<Void>?
    /// Body bytes of refused requests read and dropped.
    private var discarded = 0
    /// In `channelRead`: what is written to a runtime now is flushed at `channelReadComplete`.
    private var inRead = false
    private var context: ChannelHandlerContext?
    private var local: LoopState?

    init(_ proxy: AgentProxy) { self.proxy = proxy }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        local = proxy.loops.state(on: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandon()
        self.context = nil
    }

    // MARK: From the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A request starts only once the one before is read and answered: HTTP/1.1 answers
        // in order, whichever side (this proxy or Hummingbird) answers.
        if !queued.isEmpty || (!reading && answering) {
            queued.append(part)
            return
        }
        inRead = true
        handle(part, context: context)
        inRead = false
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            reading = true
            answering = true
            if AgentProxy.isControl(head.uri) {
                mode = .passthrough
                context.fireChannelRead(wrapInboundOut(part))
            } else {
                begin(head, context: context)
            }
        case .body(let buffer):
            switch mode {
            case .passthrough:
                context.fireChannelRead(wrapInboundOut(part))
            case .forwarding(let x):
                x.bodyBytes += buffer.readableBytes
                guard x.bodyBytes <= proxy.maxBodyBytes else {
                    if x.responseStarted {
                        abandon()
                        context.close(promise: nil)
                    } else {
                        close(x.backend)
                        x.backend = nil
                        stopWaiting(x)
                        mode = .discarding
                        answer(.payloadTooLarge, "the request body is larger than \(proxy.maxBodyBytes) bytes", name: x.name, keepAlive: x.keepAlive)
                    }
                    return
                }
                send(x, .body(.byteBuffer(buffer)))
            case .none, .discarding:
                discarded += buffer.readableBytes
                if closeWhenRead && discarded > AgentProxy.lingerBytes { context.close(promise: nil) }
            }
        case .end:
            reading = false
            switch mode {
            case .passthrough:
                context.fireChannelRead(wrapInboundOut(part))
            case .forwarding(let x):
                x.requestDone = true
                send(x, .end(nil))
                if !inRead { x.backend?.flush() }
            case .none, .discarding:
                break
            }
            if closeWhenRead {
                let close = { context.close(promise: nil) }
                if let answered = answerWritten { answered.assumeIsolated().whenComplete { _ in close() } } else { close() }
                return
            }
            if !answering { finished() }
        }
    }

    /// The current answer has ended.
    private func responded() {
        answering = false
        if !reading { finished() }
    }

    /// The current request is read and answered: the next one may start.
    private func finished() {
        mode = .none
        guard !draining, let context else { return }
        draining = true
        defer { draining = false }
        var handled = false
        while !(answering && !reading), let part = queued.popFirst() {
            handle(part, context: context)
            handled = true
        }
        if case .forwarding(let x) = mode { x.backend?.flush() }
        // Outside a read, Hummingbird's channel takes what was passed on at a read's end.
        if handled && !inRead { context.fireChannelReadComplete() }
        if queued.isEmpty && readDeferred {
            readDeferred = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if queued.isEmpty { context.read() } else { readDeferred = true }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Hummingbird's answer to a control request passes here on its way out.
        context.write(data, promise: promise)
        if case .passthrough = mode, case .end = unwrapOutboundIn(data) { responded() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .forwarding(let x) = mode { x.backend?.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .forwarding(let x) = mode { x.backend?.setAutoRead(true) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandon()
        queued.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .forwarding = mode {
            abandon()
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    /// The head of an agent request: checked, routed, and on its way to a runtime.
    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        mode = .discarding
        let keepAlive = head.isKeepAlive
        guard let (name, path) = AgentProxy.split(head.uri), proxy.names.contains(name) else {
            answer(
                .notFound, "no release name is served at this path; served: \(proxy.names.sorted().joined(separator: ", "))", name: nil,
                keepAlive: keepAlive)
            return
        }
        guard AgentProxy.methods.contains(head.method) else {
            answer(.methodNotAllowed, "an agent route takes GET, POST, PUT, PATCH and DELETE", name: name, keepAlive: keepAlive)
            return
        }
        let tasks = head.headers[AgentProxy.taskHeader]
        guard tasks.count == 1, let task = tasks.first, AirlockServer.isTaskID(task) else {
            answer(.badRequest, "every request needs its task id in X-Task-Id (1 to 128 printable ASCII characters)", name: name, keepAlive: keepAlive)
            return
        }
        let length = head.headers.first(name: "content-length")
        if let length, let n = Int(length), n > proxy.maxBodyBytes {
            answer(.payloadTooLarge, "the request body is larger than \(proxy.maxBodyBytes) bytes", name: name, keepAlive: keepAlive)
            return
        }
        let target: RouteTable.Target
        switch proxy.table.route(name: name, task: task, now: Supervisor.wallNow()) {
        case .success(let t): target = t
        case .failure(let why):
            answer(.serviceUnavailable, why.message, name: name, keepAlive: keepAlive)
            return
        }
        var headers = HTTPHeaders()
        switch target.address {
        case .port(let p): headers.add(name: "Host", value: "127.0.0.1:\(p)")
        case .socket: headers.add(name: "Host", value: "localhost")
        }
        headers.add(name: AgentProxy.taskHeader, value: task)
        if let type = head.headers.first(name: "content-type") { headers.add(name: "Content-Type", value: type) }
        // The body is framed as it was read: chunked when the request said so (it then wins over
        // a Content-Length, as the decoder read it), else by its length.
        if head.headers.contains(name: "transfer-encoding") {
            headers.add(name: "Transfer-Encoding", value: "chunked")
        } else if let length {
            headers.add(name: "Content-Length", value: length)
        }
        let x = Exchange(
            name: name, target: target, version: head.version, keepAlive: keepAlive,
            head: HTTPRequestHead(version: .http1_1, method: head.method, uri: path, headers: headers))
        mode = .forwarding(x)
        connect(x, fresh: false)
    }

    // MARK: To the runtime

    private func connect(_ x: Exchange, fresh: Bool) {
        guard let local else { return }
        local.acquire(x.target.address, fresh: fresh, connectTimeout: proxy.connectTimeout) { [self] result in
            guard case .forwarding(let current) = mode, current === x else {
                // The client went away or the request was answered meanwhile.
                if case .success(let c) = result { c.close() }
                return
            }
            switch result {
            case .failure(let error):
                failed(x, error)
            case .success(let c):
                attach(x, c)
            }
        }
    }

    private func attach(_ x: Exchange, _ c: BackendConnection) {
        x.backend = c
        c.handler.owner = self
        let parts = x.waiting
        x.waiting = []
        for part in parts { send(x, part) }
        if !inRead { c.flush() }
        x.deadline = .now() + proxy.responseTimeout
        local?.awaitAnswer(self)
    }

    /// Called by `LoopState` every second while an answer is awaited.
    func checkDeadline(_ now: NIODeadline) {
        guard case .forwarding(let x) = mode, !x.responseStarted, let deadline = x.deadline, now >= deadline else { return }
        failed(x, AgentProxyError.timeout(proxy.responseTimeout))
    }

    /// The exchange no longer awaits the start of an answer.
    private func stopWaiting(_ x: Exchange) {
        guard x.deadline != nil else { return }
        x.deadline = nil
        local?.answered(self)
    }

    private func send(_ x: Exchange, _ part: HTTPClientRequestPart) {
        guard let c = x.backend else {
            x.waiting.append(part)
            return
        }
        c.write(part)
        if x.sent != nil {
            if case .body(.byteBuffer(let b)) = part { x.sentBytes += b.readableBytes }
            if x.sentBytes > AgentProxy.retryableBytes { x.sent = nil } else { x.sent!.append(part) }
        }
    }

    // MARK: From the runtime

    func backendRead(_ part: HTTPClientResponsePart, from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, let c = x.backend, c.handler === handler, let context else { return }
        switch part {
        case .head(let h):
            stopWaiting(x)
            x.responseStarted = true
            x.backendKeepAlive = h.isKeepAlive
            var headers = HTTPHeaders()
            if let type = h.headers.first(name: "content-type") { headers.add(name: "Content-Type", value: type) }
            // A length only when the runtime framed its body by length (not chunked).
            if !h.headers.contains(name: "transfer-encoding"), let length = h.headers.first(name: "content-length") {
                headers.add(name: "Content-Length", value: length)
            }
            headers.add(name: AgentProxy.releaseHeader, value: x.target.release)
            if !x.keepAlive { headers.add(name: "Connection", value: "close") }
            local?.countRequest(proxy.metrics, name: x.name, release: x.target.release, code: Int(h.status.code))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: x.version, status: h.status, headers: headers))), promise: nil)
        case .body(let b):
            context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
            if !context.channel.isWritable { c.setAutoRead(false) }
        case .end:
            x.backend = nil
            c.handler.owner = nil
            c.setAutoRead(true)
            if x.backendKeepAlive && x.requestDone { local?.release(c) } else { c.close() }
            mode = x.requestDone ? .none : .discarding
            end(keepAlive: x.keepAlive)
        }
    }

    func backendReadComplete(from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, x.backend?.handler === handler else { return }
        context?.flush()
    }

    func backendFailed(_ error: any Error, from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, let c = x.backend, c.handler === handler else { return }
        failed(x, error)
    }

    /// The runtime did not answer (or not all of it): send the request again once on a new
    /// connection when a kept-alive one was closed before anything came back, else 502 (the
    /// client's connection is closed when the answer had started).
    private func failed(_ x: Exchange, _ error: any Error) {
        let old = x.backend
        x.backend = nil
        old?.handler.owner = nil
        old?.close()
        if let old, old.reused, !x.responseStarted, !x.retried, !(error is AgentProxyError), let sent = x.sent {
            x.retried = true
            stopWaiting(x)
            x.waiting = sent + x.waiting
            x.sent = []
            x.sentBytes = 0
            connect(x, fresh: true)
            return
        }
        stopWaiting(x)
        if x.responseStarted {
            mode = .discarding
            context?.close(promise: nil)
            return
        }
        proxy.logger.debug("\(x.name): \(x.target.release) did not answer: \(error)")
        mode = x.requestDone ? .none : .discarding
        answer(.badGateway, "\(x.name) \(x.target.release) did not answer: \(error)", name: x.name, keepAlive: x.keepAlive, version: x.version)
    }

    /// Drops the exchange in progress (the client went away or broke the protocol).
    private func abandon() {
        guard case .forwarding(let x) = mode else { return }
        mode = .discarding
        stopWaiting(x)
        close(x.backend)
        x.backend = nil
    }

    private func close(_ c: BackendConnection?) {
        guard let c else { return }
        c.handler.owner = nil
        c.close()
    }

    // MARK: Answers

    /// Answers with `{"error": message}`; counted in the metrics when `name` is served.
    private func answer(
        _ status: HTTPResponseStatus, _ message: String, name: String?, keepAlive: Bool, version: HTTPVersion = .http1_1
    ) {
        guard let context else { return }
        if let name { local?.countRequest(proxy.metrics, name: name, release: nil, code: Int(status.code)) }
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 16)
        body.writeBytes(CanonicalJSON.encode(.object(["error": .string(message)])) + [0x0A])
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        end(keepAlive: keepAlive)
    }

    /// Ends an answer written here; the connection closes after it when the client asked.
    private func end(keepAlive: Bool) {
        guard let context else { return }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            responded()
        } else if reading {
            // Answered before the request's body was read (a refusal): the rest is read and
            // dropped before the connection closes, so that the client, still sending, gets to
            // read the answer instead of a reset (at most `AgentProxy.lingerBytes`).
            queued.removeAll()
            closeWhenRead = true
            answerWritten = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        } else {
            queued.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

enum AgentProxyError: Error, CustomStringConvertible {
    case timeout(TimeAmount)

    var description: String {
        switch self {
        case .timeout(let t): return "no answer within \(t.nanoseconds / 1_000_000_000) s"
        }
    }
}

/// A connection to a runtime, owned by its event loop's `LoopState` while idle and by one exchange
/// while in use.
final class BackendConnection {
    let channel: any Channel
    let handler: BackendHandler
    let key: String
    /// Taken from the idle connections (it served a request before).
    var reused = false

    init(channel: any Channel, handler: BackendHandler, key: String) {
        self.channel = channel
        self.handler = handler
        self.key = key
    }

    func write(_ part: HTTPClientRequestPart) {
        guard let context = handler.context else { return }
        context.write(handler.wrapOutboundOut(part), promise: nil)
    }

    func flush() { handler.context?.flush() }

    func setAutoRead(_ on: Bool) { try? channel.syncOptions?.setOption(.autoRead, value: on) }

    func close() { channel.close(promise: nil) }
}

/// The runtime's side of a connection: hands the answer to the exchange that owns it.
final class BackendHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    weak var owner: AgentProxyHandler?
    /// While idle in a `LoopState`: told when the runtime closes the connection.
    weak var idleIn: LoopState?
    fileprivate(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let owner else {
            // Bytes from a runtime nobody asked: the connection is not reused.
            context.close(promise: nil)
            return
        }
        owner.backendRead(unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.backendReadComplete(from: self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        owner?.backendFailed(ChannelError.eof, from: self)
        idleIn?.forget(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        owner?.backendFailed(error, from: self)
        context.close(promise: nil)
    }
}

/// What one event loop keeps to itself: its kept-alive connections to the runtimes, per
/// runtime address, and its request counters.
final class LoopState {
    let loop: any EventLoop
    private var idle: [String: [BackendConnection]] = [:]
    /// Idle connections kept per runtime at most.
    static let idleLimit = 256
    /// The request counters this loop used (`ServeMetrics.requestCounter`), found without a lock.
    private var counters: [CounterKey: Counter] = [:]

    /// The handlers whose exchange awaits the start of an answer, checked every second against
    /// their deadline (cheaper than a timer per request).
    private var awaiting: [ObjectIdentifier: AgentProxyHandler] = [:]
    private var sweeper: RepeatedTask?

    struct CounterKey: Hashable {
        let name: String
        let release: String?
        let code: Int
    }

    init(loop: any EventLoop) { self.loop = loop }

    static func key(_ address: Runtime.Address) -> String {
        switch address {
        case .port(let p): return "tcp:\(p)"
        case .socket(let path): return "unix:\(path)"
        }
    }

    /// An idle connection to `address` (unless `fresh`), or a new one; `done` runs on the
    /// event loop, at once for an idle connection.
    func acquire(
        _ address: Runtime.Address, fresh: Bool, connectTimeout: TimeAmount,
        _ done: @escaping (Result<BackendConnection, any Error>) -> Void
    ) {
        let key = Self.key(address)
        if !fresh {
            while let c = idle[key]?.popLast() {
                c.handler.idleIn = nil
                if c.channel.isActive {
                    c.reused = true
                    done(.success(c))
                    return
                }
                c.close()
            }
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(BackendHandler())
                }
            }
        let connecting: EventLoopFuture<any Channel>
        switch address {
        case .port(let p):
            connecting = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(host: "127.0.0.1", port: Int(p))
        case .socket(let path):
            connecting = bootstrap.connect(unixDomainSocketPath: path)
        }
        connecting.assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                done(.failure(error))
            case .success(let channel):
                do {
                    let handler = try channel.pipeline.syncOperations.handler(type: BackendHandler.self)
                    done(.success(BackendConnection(channel: channel, handler: handler, key: key)))
                } catch {
                    channel.close(promise: nil)
                    done(.failure(error))
                }
            }
        }
    }

    func awaitAnswer(_ handler: AgentProxyHandler) {
        awaiting[ObjectIdentifier(handler)] = handler
        if sweeper == nil {
            let bound = NIOLoopBound(self, eventLoop: loop)
            sweeper = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in bound.value.sweep() }
        }
    }

    func answered(_ handler: AgentProxyHandler) { awaiting[ObjectIdentifier(handler)] = nil }

    private func sweep() {
        guard !awaiting.isEmpty else { return }
        let now = NIODeadline.now()
        for handler in Array(awaiting.values) { handler.checkDeadline(now) }
    }

    /// Counts one answered agent request.
    func countRequest(_ metrics: ServeMetrics, name: String, release: String?, code: Int) {
        let key = CounterKey(name: name, release: release, code: code)
        if let c = counters[key] {
            c.increment()
            return
        }
        let c = metrics.requestCounter(name: name, release: release, code: code)
        counters[key] = c
        c.increment()
    }

    /// Keeps `c` for the next request to its runtime.
    func release(_ c: BackendConnection) {
        guard c.channel.isActive, (idle[c.key]?.count ?? 0) < Self.idleLimit else {
            c.close()
            return
        }
        c.handler.idleIn = self
        idle[c.key, default: []].append(c)
    }

    /// The runtime closed an idle connection.
    func forget(_ handler: BackendHandler) {
        for (key, list) in idle {
            if let i = list.firstIndex(where: { $0.handler === handler }) {
                idle[key]!.remove(at: i)
                return
            }
        }
    }
}

/// One `LoopState` per event loop, each used only on its loop.
final class LoopStates: Sendable {
    private let states = Mutex<[ObjectIdentifier: NIOLoopBound<LoopState>]>([:])

    /// The state of `loop`; called on `loop`.
    func state(on loop: any EventLoop) -> LoopState {
        let id = ObjectIdentifier(loop)
        if let p = states.withLock({ $0[id] }) { return p.value }
        let made = NIOLoopBound(LoopState(loop: loop), eventLoop: loop)
        return states.withLock { all in
            if let p = all[id] { return p }
            all[id] = made
            return made
        }.value
    }
}
