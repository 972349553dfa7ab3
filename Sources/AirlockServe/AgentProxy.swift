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
/// connection of that same event loop (kept alive for requests without a body), and the answer
/// streamed back as it comes.
/// Control requests (`/_airlock/...`) go on to Hummingbird's router.
struct AgentProxy: Sendable {
    /// The names served.
    let names: Set<String>
    let table: RouteTable
    let metrics: ServeMetrics
    /// Per name: its task recording.
    let recorders: [String: Recorder]
    /// The largest request body, in bytes.
    let maxBodyBytes: Int
    /// How long a runtime may take to start its answer, and to send more of it.
    var responseTimeout: TimeAmount = .seconds(300)
    /// How long connecting to a runtime may take.
    var connectTimeout: TimeAmount = .seconds(5)
    let loops = LoopStates()
    let logger: Logger

    /// The request header that names a request's task.
    static let taskHeader = AirlockServer.taskHeader.rawName
    /// The response header that names the release that served it.
    static let releaseHeader = AirlockServer.releaseHeader.rawName
    /// The methods an agent route takes.
    static let methods: [HTTPMethod] = [.GET, .POST, .PUT, .PATCH, .DELETE]
    /// How much of a refused request's body is read and dropped before its connection is
    /// closed instead.
    static let lingerBytes = 16 << 20
    /// Request body bytes gathered before they are written to the runtime as one part.
    static let bodyBatchBytes = 64 << 10

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
///
/// What reaches a runtime is rebuilt from what was parsed (docs/rollout.md, "How a request
/// travels"). Only a request without a body and of an idempotent method (GET, DELETE) uses a
/// kept-alive runtime connection, and only it is sent again when such a connection turns out
/// closed before anything came back: a runtime that does not read a request's body cannot
/// leave it on a connection another request reuses, and a request that may have acted is never
/// sent twice. Any other request goes on a new connection with `Connection: close`. A chunked
/// body is gathered (up to the limit) before the task is routed, so a body over the limit
/// changes no state, and goes to the runtime with its length.
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
        let head: HTTPRequestHead
        /// The client keeps the connection after this answer.
        var keepAlive: Bool
        /// Without a body, idempotent: may use a kept-alive connection and be sent again.
        let reusable: Bool
        var backend: BackendConnection?
        /// Body bytes read and not yet written to the runtime (one part per read, or before a
        /// connection is there).
        var pendingBody: ByteBuffer?
        var bodyBytes = 0
        var requestDone = false
        var responseStarted = false
        /// The runtime's answer lets its connection serve another request.
        var backendReusable = false
        var retried = false
        /// What is recorded of it, when its task is sampled.
        var capture: Recorder.Capture?
        /// When the runtime must have started its answer or sent more of it (`LoopState`
        /// checks every second).
        var deadline: NIODeadline?

        init(name: String, target: RouteTable.Target, version: HTTPVersion, keepAlive: Bool, reusable: Bool, head: HTTPRequestHead) {
            self.name = name
            self.target = target
            self.version = version
            self.keepAlive = keepAlive
            self.reusable = reusable
            self.head = head
        }
    }

    /// A chunked agent request whose body is gathered before it is routed.
    final class Gathering {
        let name: String
        let path: String
        let task: String
        let head: HTTPRequestHead
        var body: ByteBuffer

        init(name: String, path: String, task: String, head: HTTPRequestHead, body: ByteBuffer) {
            self.name = name
            self.path = path
            self.task = task
            self.head = head
            self.body = body
        }
    }

    /// What the current request is.
    private enum Mode {
        case none
        /// A control request, for Hummingbird.
        case passthrough
        /// A request already answered here: the rest of its body is dropped.
        case discarding
        case gathering(Gathering)
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
    /// No request is started any more: the connection closes after the current answer.
    private var closing = false
    /// The last control request asked to close the connection after its answer.
    private var controlCloses = false
    /// The answer ended a `Connection: close` exchange before its request was read: close once
    /// it is.
    private var closeWhenRead = false
    private var answerWritten: EventLoopFuture<Void>?
    /// The client sent bytes that do not parse: answered with 400 once the requests before
    /// them are, then the connection closes.
    private var parseFailed = false
    /// Serve is stopping: the connection closes once the agent request in flight is answered.
    private var quiesce: Any?
    /// Body bytes of the current refused request read and dropped.
    private var discarded = 0
    /// In `channelRead`: what is written to a runtime now is flushed at `channelReadComplete`.
    private var inRead = false
    /// Parts went on to Hummingbird since the last read's end: only then does its channel need
    /// to hear of the read's end.
    private var passedOn = false
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
        if closing { return }
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
            discarded = 0
            if head.method == .CONNECT || head.headers.contains(name: "upgrade") {
                // The decoder stops parsing after such a head: nothing after it can be read.
                mode = .discarding
                refuseAndClose(.badRequest, "serve neither upgrades connections nor tunnels (CONNECT)")
            } else if AgentProxy.isControl(head.uri) {
                mode = .passthrough
                controlCloses = !head.isKeepAlive
                passOn(part, context)
            } else {
                begin(head, context: context)
            }
        case .body(let buffer):
            switch mode {
            case .passthrough:
                passOn(part, context)
            case .gathering(let g):
                guard g.body.readableBytes + buffer.readableBytes <= proxy.maxBodyBytes else {
                    mode = .discarding
                    discarded = g.body.readableBytes + buffer.readableBytes
                    answer(.payloadTooLarge, "the request body is larger than \(proxy.maxBodyBytes) bytes", name: g.name, keepAlive: g.head.isKeepAlive)
                    return
                }
                var b = buffer
                g.body.writeBuffer(&b)
            case .forwarding(let x):
                x.bodyBytes += buffer.readableBytes
                guard x.bodyBytes <= proxy.maxBodyBytes else {
                    // The decoder frames the body by its Content-Length, checked against the
                    // limit: not reached. Closed to be sure.
                    abandon()
                    context.close(promise: nil)
                    return
                }
                x.capture?.request(buffer)
                if x.pendingBody == nil {
                    x.pendingBody = buffer
                } else {
                    var b = buffer
                    x.pendingBody!.writeBuffer(&b)
                }
                if x.backend != nil && (!inRead || x.pendingBody!.readableBytes >= AgentProxy.bodyBatchBytes) { sendBody(x) }
            case .none, .discarding:
                discarded += buffer.readableBytes
                if discarded > AgentProxy.lingerBytes { context.close(promise: nil) }
            }
        case .end:
            reading = false
            switch mode {
            case .passthrough:
                passOn(part, context)
            case .gathering(let g):
                forward(name: g.name, path: g.path, task: g.task, head: g.head, body: g.body)
            case .forwarding(let x):
                x.requestDone = true
                if x.backend != nil {
                    sendBody(x)
                    x.backend!.write(.end(nil))
                    if !inRead { x.backend!.flush() }
                }
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

    private func passOn(_ part: HTTPServerRequestPart, _ context: ChannelHandlerContext) {
        passedOn = true
        context.fireChannelRead(wrapInboundOut(part))
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
        if quiesce != nil {
            // Serve is stopping: no other request starts here; Hummingbird's handler closes
            // the connection now that it is idle.
            closing = true
            queued.removeAll()
            context.fireUserInboundEventTriggered(quiesce!)
            quiesce = nil
            return
        }
        var handled = false
        while !closing && !(answering && !reading), let part = queued.popFirst() {
            handle(part, context: context)
            handled = true
        }
        if case .forwarding(let x) = mode, let c = x.backend {
            sendBody(x)
            c.flush()
        }
        // Outside a read, Hummingbird's channel takes what was passed on at a read's end.
        if handled && passedOn && !inRead {
            passedOn = false
            context.fireChannelReadComplete()
        }
        if parseFailed && queued.isEmpty && !closing {
            if !answering {
                refuseAndClose(.badRequest, "the request does not parse as HTTP/1.1")
            } else if reading {
                // The request in flight is the one that broke off.
                brokenRequest()
            }
            return
        }
        if queued.isEmpty && readDeferred && !closing {
            readDeferred = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if closing { return }
        // Not while later requests wait, nor while the runtime takes no more of the body.
        if !queued.isEmpty || parseFailed {
            readDeferred = true
        } else if case .forwarding(let x) = mode, let c = x.backend, !c.channel.isWritable {
            readDeferred = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Hummingbird's answer to a control request passes here on its way out.
        context.write(data, promise: promise)
        guard case .passthrough = mode, case .end = unwrapOutboundIn(data) else { return }
        if controlCloses {
            // Hummingbird closes the connection after this answer: nothing else starts.
            closing = true
            queued.removeAll()
            return
        }
        responded()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .forwarding(let x) = mode, let c = x.backend {
            sendBody(x)
            c.flush()
        }
        if passedOn {
            passedOn = false
            context.fireChannelReadComplete()
        }
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
        if error is HTTPParserError {
            // Answered here, in order: the requests read before the bad bytes are answered
            // first, then a 400, then the connection closes.
            parseFailed = true
            if queued.isEmpty && !draining {
                if !answering {
                    refuseAndClose(.badRequest, "the request does not parse as HTTP/1.1")
                } else if reading {
                    brokenRequest()
                }
            }
            return
        }
        if case .forwarding = mode {
            abandon()
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Serve is stopping. Hummingbird's connection handler closes a connection it thinks
        // idle, and it does not see agent requests: hold the event until this one is answered.
        if event is ChannelShouldQuiesceEvent, answering, !isPassthrough {
            quiesce = event
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private var isPassthrough: Bool {
        if case .passthrough = mode { return true }
        return false
    }

    /// The request being read broke off (bytes that do not parse): its exchange is dropped,
    /// and the client gets a 400 when no answer has started, else the connection closes.
    private func brokenRequest() {
        var started = false
        if case .forwarding(let x) = mode { started = x.responseStarted }
        abandon()
        if started {
            closing = true
            context?.close(promise: nil)
        } else {
            refuseAndClose(.badRequest, "the request does not parse as HTTP/1.1")
        }
    }

    /// The head of an agent request: checked, then routed and on its way to a runtime (or, for
    /// a chunked body, gathered first).
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
        if head.headers.contains(name: "transfer-encoding") {
            // The decoder read it as chunked (it wins over a Content-Length): gathered first.
            mode = .gathering(Gathering(name: name, path: path, task: task, head: head, body: context.channel.allocator.buffer(capacity: 0)))
            return
        }
        if let length = head.headers.first(name: "content-length") {
            // A length that does not even fit 64 bits is over the limit too.
            guard let n = UInt64(length), n <= UInt64(proxy.maxBodyBytes) else {
                answer(.payloadTooLarge, "the request body is larger than \(proxy.maxBodyBytes) bytes", name: name, keepAlive: keepAlive)
                return
            }
        }
        forward(name: name, path: path, task: task, head: head, body: nil)
    }

    /// Routes the task and sends the request on; `body` is a gathered chunked body.
    private func forward(name: String, path: String, task: String, head: HTTPRequestHead, body: ByteBuffer?) {
        let keepAlive = head.isKeepAlive
        mode = .discarding
        let target: RouteTable.Target
        switch proxy.table.route(name: name, task: task, now: Supervisor.wallNow()) {
        case .success(let t): target = t
        case .failure(let why):
            answer(.serviceUnavailable, why.message, name: name, keepAlive: keepAlive)
            return
        }
        let length = body.map { String($0.readableBytes) } ?? head.headers.first(name: "content-length")
        let hasBody = (length.flatMap { UInt64($0) } ?? 0) > 0
        let reusable = !hasBody && (head.method == .GET || head.method == .DELETE)
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "Host", value: target.runtime.host)
        headers.add(name: AgentProxy.taskHeader, value: task)
        if let type = head.headers.first(name: "content-type") { headers.add(name: "Content-Type", value: type) }
        if let length, length != "0" || head.method != .GET { headers.add(name: "Content-Length", value: length) }
        if !reusable { headers.add(name: "Connection", value: "close") }
        let x = Exchange(
            name: name, target: target, version: head.version, keepAlive: keepAlive, reusable: reusable,
            head: HTTPRequestHead(version: .http1_1, method: head.method, uri: path, headers: headers))
        if let body, body.readableBytes > 0 {
            x.pendingBody = body
            x.bodyBytes = body.readableBytes
        }
        if let recorder = proxy.recorders[name], recorder.samples(task) {
            x.capture = Recorder.Capture(
                recorder: recorder, task: task, release: target.release, method: head.method.rawValue, path: path,
                requestType: head.headers.first(name: "content-type"), requestBody: body)
        }
        x.requestDone = !reading
        mode = .forwarding(x)
        connect(x, fresh: !reusable)
    }

    // MARK: To the runtime

    private func connect(_ x: Exchange, fresh: Bool) {
        guard let local else { return }
        if !fresh, let c = local.takeIdle(x.target) {
            attach(x, c)
            return
        }
        local.connect(x.target, connectTimeout: proxy.connectTimeout) { [self] result in
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
        c.write(.head(x.head))
        sendBody(x)
        if x.requestDone { c.write(.end(nil)) }
        if !inRead { c.flush() }
        x.deadline = .now() + proxy.responseTimeout
        local?.awaitAnswer(self)
    }

    /// Writes the body bytes gathered so far to the runtime as one part.
    private func sendBody(_ x: Exchange) {
        guard let c = x.backend, let body = x.pendingBody else { return }
        x.pendingBody = nil
        c.write(.body(.byteBuffer(body)))
    }

    /// Called by `LoopState` every second while an exchange is in flight.
    func checkDeadline(_ now: NIODeadline) {
        guard case .forwarding(let x) = mode, let deadline = x.deadline, now >= deadline else { return }
        failed(x, AgentProxyError.timeout(proxy.responseTimeout))
    }

    /// The exchange is over: no deadline any more.
    private func stopWaiting(_ x: Exchange) {
        guard x.deadline != nil else { return }
        x.deadline = nil
        local?.answered(self)
    }

    // MARK: From the runtime

    func backendRead(_ part: HTTPClientResponsePart, from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, let c = x.backend, c.handler === handler, let context else { return }
        switch part {
        case .head(let h):
            if h.status == .switchingProtocols {
                failed(x, AgentProxyError.refusedAnswer("it answered 101 Switching Protocols; serve does not upgrade connections"))
                return
            }
            x.deadline = .now() + proxy.responseTimeout
            x.responseStarted = true
            var headers = HTTPHeaders()
            if let type = h.headers.first(name: "content-type") { headers.add(name: "Content-Type", value: type) }
            // A length only when the runtime framed its body by length (not chunked).
            let length = h.headers.contains(name: "transfer-encoding") ? nil : h.headers.first(name: "content-length")
            if let length { headers.add(name: "Content-Length", value: length) }
            // A 204 or 304 that declares a body: its connection is not trusted with another.
            let bodiless = h.status == .noContent || h.status == .notModified
            x.backendReusable = x.reusable && h.isKeepAlive && !(bodiless && length != nil && length != "0")
            headers.add(name: AgentProxy.releaseHeader, value: x.target.release)
            if x.version.major == 1 && x.version.minor == 0 {
                // An HTTP/1.0 client reads an answer without a length to the connection's end.
                if length == nil && !bodiless { x.keepAlive = false }
                if x.keepAlive { headers.add(name: "Connection", value: "keep-alive") }
            } else if !x.keepAlive {
                headers.add(name: "Connection", value: "close")
            }
            local?.countRequest(proxy.metrics, name: x.name, release: x.target.release, code: Int(h.status.code))
            if let c = x.capture {
                c.status = Int(h.status.code)
                c.responseType = h.headers.first(name: "content-type")
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: x.version, status: h.status, headers: headers))), promise: nil)
        case .body(let b):
            x.deadline = .now() + proxy.responseTimeout
            x.capture?.response(b)
            context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
            if !context.channel.isWritable { c.setAutoRead(false) }
        case .end:
            stopWaiting(x)
            if let c = x.capture { proxy.recorders[x.name]?.exchange(c, release: x.target.release) }
            x.backend = nil
            c.handler.owner = nil
            c.setAutoRead(true)
            if x.backendReusable && x.requestDone { local?.release(c) } else { c.close() }
            mode = x.requestDone ? .none : .discarding
            end(keepAlive: x.keepAlive)
        }
    }

    func backendReadComplete(from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, x.backend?.handler === handler else { return }
        context?.flush()
    }

    func backendWritable(from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, x.backend?.handler === handler, readDeferred, queued.isEmpty, !parseFailed, !closing else { return }
        readDeferred = false
        context?.read()
    }

    func backendFailed(_ error: any Error, from handler: BackendHandler) {
        guard case .forwarding(let x) = mode, let c = x.backend, c.handler === handler else { return }
        failed(x, error)
    }

    /// The runtime did not answer (or not all of it): a request without a body of an
    /// idempotent method is sent once more on a new connection when a kept-alive one was closed
    /// before anything came back; otherwise 502 (the client's connection is closed when the
    /// answer had started).
    private func failed(_ x: Exchange, _ error: any Error) {
        let old = x.backend
        x.backend = nil
        old?.handler.owner = nil
        old?.close()
        stopWaiting(x)
        if let old, old.reused, x.reusable, !x.responseStarted, !x.retried, !(error is AgentProxyError) {
            x.retried = true
            connect(x, fresh: true)
            return
        }
        if x.responseStarted {
            mode = .discarding
            closing = true
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
        if let c = x.backend {
            c.handler.owner = nil
            c.close()
        }
        x.backend = nil
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
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if version.major == 1 && version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        end(keepAlive: keepAlive)
    }

    /// Answers with `{"error": message}` and closes the connection once it is written; nothing
    /// else is read or started.
    private func refuseAndClose(_ status: HTTPResponseStatus, _ message: String) {
        guard let context else { return }
        closing = true
        queued.removeAll()
        closeWhenRead = false
        reading = false
        answer(status, message, name: nil, keepAlive: false)
        if answerWritten == nil { context.close(promise: nil) }
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
            closing = true
            answerWritten = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            answerWritten!.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

enum AgentProxyError: Error, CustomStringConvertible {
    case timeout(TimeAmount)
    case refusedAnswer(String)

    var description: String {
        switch self {
        case .timeout(let t): return "no answer, or no more of it, within \(t.nanoseconds / 1_000_000_000) s"
        case .refusedAnswer(let why): return why
        }
    }
}

/// A connection to a runtime, owned by its event loop's `LoopState` while idle and by one
/// exchange while in use.
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

    // Strong references, cleared by whoever lets go (a weak one would put every retain and
    // release of the proxy handler on Swift's slow reference-counting path).
    /// The handler whose exchange uses the connection; nil while idle.
    var owner: AgentProxyHandler?
    /// While idle in a `LoopState`: told when the runtime closes the connection.
    var idleIn: LoopState?
    /// Put back while its read was being processed: not lent again before that read ends
    /// (bytes the runtime sent after its answer must not become the next request's answer).
    var settling = false
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
        settling = false
        owner?.backendReadComplete(from: self)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { owner?.backendWritable(from: self) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        owner?.backendFailed(ChannelError.eof, from: self)
        owner = nil
        idleIn?.forget(self)
        idleIn = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        owner?.backendFailed(error, from: self)
        context.close(promise: nil)
    }
}

/// What one event loop keeps to itself: its kept-alive connections to the runtimes, per
/// runtime (release, process and address), and its request counters.
final class LoopState {
    let loop: any EventLoop
    private var idle: [String: [BackendConnection]] = [:]
    /// Idle connections kept per runtime at most.
    static let idleLimit = 256
    /// Runtimes whose emptied list of idle connections is kept until the next sweep.
    static let emptyListsKept = 16
    /// The request counters this loop used (`ServeMetrics.requestCounter`), found without a lock.
    private var counters: [CounterKey: Counter] = [:]
    /// The handlers whose exchange is in flight, checked every second against their deadline
    /// (cheaper than a timer per request).
    private var awaiting: [ObjectIdentifier: AgentProxyHandler] = [:]
    private var sweeper: RepeatedTask?

    struct CounterKey: Hashable {
        let name: String
        let release: String?
        let code: Int
    }

    init(loop: any EventLoop) { self.loop = loop }

    /// An idle connection to the target's runtime, if one is kept (per runtime process:
    /// `RouteTable.Ready.poolKey`).
    func takeIdle(_ target: RouteTable.Target) -> BackendConnection? {
        let key = target.runtime.poolKey
        // In place (`idle[key]!`), and an emptied list is kept: no copy and no allocation per
        // request. Lists of runtimes that are gone are dropped by `sweep`.
        guard idle[key] != nil else { return nil }
        while let i = idle[key]!.lastIndex(where: { !$0.handler.settling }) {
            let c = idle[key]!.remove(at: i)
            c.handler.idleIn = nil
            if c.channel.isActive {
                c.reused = true
                return c
            }
            c.close()
        }
        return nil
    }

    /// A new connection to the target's runtime; `done` runs on the event loop.
    func connect(
        _ target: RouteTable.Target, connectTimeout: TimeAmount, _ done: @escaping (Result<BackendConnection, any Error>) -> Void
    ) {
        let key = target.runtime.poolKey
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(BackendHandler())
                }
            }
        let connecting: EventLoopFuture<any Channel>
        switch target.address {
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

    /// Keeps `c` for the next request to its runtime.
    func release(_ c: BackendConnection) {
        guard c.channel.isActive, (idle[c.key]?.count ?? 0) < Self.idleLimit else {
            c.close()
            return
        }
        c.handler.idleIn = self
        c.handler.settling = true
        idle[c.key, default: []].append(c)
    }

    /// The runtime closed an idle connection.
    func forget(_ handler: BackendHandler) {
        for (key, list) in idle {
            if let i = list.firstIndex(where: { $0.handler === handler }) {
                var rest = list
                rest.remove(at: i)
                idle[key] = rest.isEmpty ? nil : rest
                return
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
        if idle.count > Self.emptyListsKept { idle = idle.filter { !$0.value.isEmpty } }
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
