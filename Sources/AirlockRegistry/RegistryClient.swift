import AirlockFormat
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// How Airlock talks to a registry: the options every registry command shares (docs/registry.md).
public struct RegistryOptions: Sendable {
    /// A PEM file of the CA certificates that sign the registry's TLS certificate (the site's
    /// CA); without it, the system's trust roots.
    public var caFile: String?
    /// A containers auth file (`{"auths": {"HOST[:PORT]": {"auth": "base64(user:password)"}}}`,
    /// as `skopeo login` and `podman login` write it); nil: no credentials.
    public var authFile: String?
    /// Plain HTTP: allowed only for a loopback registry.
    public var insecure = false
    /// How many times a request is tried again after a transient failure (a refused or cut
    /// connection, 408, 429, 5xx), with backoff doubling from `retryDelay`.
    public var retries = 4
    /// Seconds before the first retry.
    public var retryDelay: Double = 0.5
    /// Seconds to wait to connect, and for each read from the registry.
    public var connectTimeout: Double = 10
    /// Seconds a response may send nothing before the request fails (and is retried).
    public var readTimeout: Double = 60

    /// The defaults: HTTPS with the system's roots, no credentials, 4 retries.
    public init() {}
}

/// Counts of what a registry exchange moved, for reports and the benchmark.
public struct TransferStats: Sendable, Equatable {
    /// Bytes of blob content received (a resumed download counts only what it fetched).
    public var bytesReceived: UInt64 = 0
    /// Bytes of blob content sent.
    public var bytesSent: UInt64 = 0
    /// Requests that were tried again after a transient failure.
    public var retries = 0
    /// Downloads resumed with a range request after a cut.
    public var resumes = 0
}

/// One registry, spoken to over the OCI distribution API with async-http-client: the
/// `WWW-Authenticate` challenges (Basic, and the Bearer token flow), retries with backoff, and
/// redirects followed by hand (never to plain HTTP, never in a loop, credentials only to the
/// registry itself). Registry content is untrusted; callers check every digest.
public final class RegistryClient: Sendable {
    /// The registry's `HOST[:PORT]`.
    public let host: String
    let base: String
    let options: RegistryOptions
    let http: HTTPClient
    private let credentials: (user: String, password: String)?
    private let authorization = NIOLockedValueBox<String?>(nil)
    private let statsBox = NIOLockedValueBox(TransferStats())

    /// A client for `reference`'s registry. Throws `registry-insecure-refused` for `--insecure`
    /// with a registry that is not on loopback, `registry-credentials-invalid` for an auth file
    /// that cannot be used, and `registry-tls-invalid` for a CA file that cannot be read.
    public init(registry reference: RegistryReference, options: RegistryOptions) throws {
        host = reference.host
        self.options = options
        if options.insecure && !reference.isLoopback {
            throw AirlockError(
                .usage, .registryInsecureRefused,
                "--insecure (plain HTTP) is allowed only for a registry on loopback, not \(reference.host); give the registry's CA with --ca-file instead")
        }
        base = (options.insecure ? "http://" : "https://") + reference.host
        credentials = try options.authFile.flatMap { try Self.credentials(authFile: $0, host: reference.host) }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = options.caFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            } catch {
                throw AirlockError(
                    .usage, .registryTLSInvalid, "cannot read the CA certificates in \(ca): give a PEM file of the CA that signs the registry's certificate",
                    cause: "\(error)")
            }
        }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow,
            timeout: .init(connect: .milliseconds(Int64(options.connectTimeout * 1000)), read: .milliseconds(Int64(options.readTimeout * 1000))))
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Closes the client's connections.
    public func shutdown() async { try? await http.shutdown() }

    /// What this client moved so far.
    public var stats: TransferStats { statsBox.withLockedValue { $0 } }

    func count(_ update: @Sendable (inout TransferStats) -> Void) { statsBox.withLockedValue { update(&$0) } }

    // MARK: Requests

    /// A request's body, made anew for each attempt.
    typealias BodyMaker = @Sendable () throws -> HTTPClientRequest.Body?

    /// Sends a request to `pathOrURL` (a path under the registry, or an absolute URL it gave),
    /// answering authentication challenges, following redirects (GET and HEAD only) and trying
    /// again after transient failures. The response's status is not judged here, but for 401.
    func send(
        _ method: HTTPMethod, _ pathOrURL: String, headers: [(String, String)] = [], body: BodyMaker? = nil, scope: String,
        timeout: TimeAmount = .seconds(120), retryable: Bool = true
    ) async throws -> HTTPClientResponse {
        var url = absolute(pathOrURL)
        var attempt = 0
        var authenticated = false
        var visited: Set<String> = []
        while true {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (k, v) in headers { request.headers.add(name: k, value: v) }
            // Credentials go to the registry only, never to the host a redirect names.
            if isRegistryURL(url), let auth = authorization.withLockedValue({ $0 }) { request.headers.replaceOrAdd(name: "Authorization", value: auth) }
            request.body = try body?()
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: timeout)
            } catch {
                // A certificate that was not accepted will not be accepted on a second try.
                if retryable, attempt < options.retries, !(error is CancellationError), !Self.isTLSFailure(error) {
                    attempt += 1
                    count { $0.retries += 1 }
                    try await backoff(attempt)
                    continue
                }
                throw unreachable(error, url: url)
            }
            let status = response.status.code
            if status == 401, !authenticated, isRegistryURL(url) {
                let challenge = response.headers["WWW-Authenticate"].first ?? ""
                try await authenticate(challenge: challenge, scope: scope)
                authenticated = true
                continue
            }
            if [301, 302, 303, 307, 308].contains(status), method == .GET || method == .HEAD {
                guard let location = response.headers["Location"].first else { throw badRedirect("a \(status) without a Location", url: url) }
                let next = resolve(location, against: url)
                guard next.hasPrefix("https://") || (next.hasPrefix("http://") && url.hasPrefix("http://")) else {
                    throw badRedirect("a redirect from \(Self.redact(url)) to \(Self.redact(next)), which is not HTTPS", url: url)
                }
                visited.insert(url)
                guard !visited.contains(next) else { throw badRedirect("a redirect loop through \(Self.redact(next))", url: url) }
                guard visited.count <= 5 else { throw badRedirect("more than 5 redirects", url: url) }
                url = next
                continue
            }
            if retryable, [408, 429, 500, 502, 503, 504].contains(status), attempt < options.retries {
                attempt += 1
                count { $0.retries += 1 }
                try await backoff(attempt)
                continue
            }
            return response
        }
    }

    func backoff(_ attempt: Int) async throws {
        let seconds = min(options.retryDelay * Double(1 << (attempt - 1)), 8)
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
    }

    func absolute(_ pathOrURL: String) -> String {
        pathOrURL.hasPrefix("http://") || pathOrURL.hasPrefix("https://") ? pathOrURL : base + pathOrURL
    }

    func isRegistryURL(_ url: String) -> Bool { url == base || url.hasPrefix(base + "/") || url.hasPrefix(base + "?") }

    /// `location` (absolute, or a path) as a URL, relative to `url`.
    func resolve(_ location: String, against url: String) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        if let u = URL(string: location, relativeTo: URL(string: url)) { return u.absoluteString }
        return base + (location.hasPrefix("/") ? location : "/" + location)
    }

    /// A URL without its query (which may hold a signed storage token) for messages.
    static func redact(_ url: String) -> String { url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url }

    func badRedirect(_ what: String, url: String) -> AirlockError {
        AirlockError(.io, .registryRedirectInvalid, "the registry \(host) answered \(Self.redact(url)) with \(what); nothing was trusted or installed")
    }

    func unreachable(_ error: Error, url: String) -> AirlockError {
        if let e = error as? AirlockError { return e }
        let tls = Self.isTLSFailure(error)
        let hint =
            tls
            ? "its TLS certificate was not accepted: give the CA that signs it with --ca-file (or, for a registry on loopback only, --insecure for plain HTTP)"
            : "check the address, that the registry runs and that this host can reach it"
        return AirlockError(
            .io, .registryUnreachable, "cannot reach the registry at \(Self.redact(url)) after \(options.retries + 1) attempts: \(hint)", cause: "\(error)")
    }

    static func isTLSFailure(_ error: Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
    }

    /// The registry's own explanation of a failed request: its status and the first of the
    /// `errors` of its JSON body, if any.
    static func explain(_ response: HTTPClientResponse) async -> String {
        let body = (try? await response.body.collect(upTo: 64 << 10)).map { Array($0.readableBytesView) } ?? []
        var text = "HTTP \(response.status.code)"
        if let v = try? JSONParser.parse(body, maxValues: 1000), let first = v.objectValue?["errors"]?.arrayValue?.first?.objectValue {
            let code = first["code"]?.stringValue ?? ""
            let message = first["message"]?.stringValue ?? ""
            text += ": \(code) \(message)".prefix(300)
        }
        return text
    }

    // MARK: Authentication

    /// Answers a 401's challenge: Basic with the auth file's credentials, or Bearer with a token
    /// from the challenge's realm. Throws `registry-auth-failed` when that cannot be done.
    func authenticate(challenge: String, scope: String) async throws {
        let (scheme, params) = Self.parseChallenge(challenge)
        switch scheme {
        case "basic":
            guard let c = credentials else {
                throw AirlockError(
                    .io, .registryAuthFailed,
                    "the registry \(host) asks for a user name and password: give an auth file with --authfile (the format skopeo login writes)")
            }
            authorization.withLockedValue { $0 = "Basic " + Data("\(c.user):\(c.password)".utf8).base64EncodedString() }
        case "bearer":
            guard let realm = params["realm"], let realmURL = URL(string: realm), let scheme = realmURL.scheme, let realmHost = realmURL.host else {
                throw AirlockError(.io, .registryAuthFailed, "the registry \(host) asks for a token without a usable realm (\(challenge.prefix(200)))")
            }
            guard scheme == "https" || (scheme == "http" && options.insecure && RegistryReference.isLoopback(realmHost)) else {
                throw AirlockError(
                    .io, .registryAuthFailed, "the registry \(host) sends for a token to \(realm), which is not HTTPS; credentials are not sent there")
            }
            var query: [URLQueryItem] = []
            if let service = params["service"] { query.append(URLQueryItem(name: "service", value: service)) }
            query.append(URLQueryItem(name: "scope", value: params["scope"] ?? scope))
            var components = URLComponents(string: realm)
            let existing = components?.queryItems ?? []
            components?.queryItems = existing + query
            guard let tokenURL = components?.url?.absoluteString else {
                throw AirlockError(.io, .registryAuthFailed, "the registry \(host) gave a token realm that is not a URL (\(realm.prefix(200)))")
            }
            var request = HTTPClientRequest(url: tokenURL)
            if let c = credentials { request.headers.add(name: "Authorization", value: "Basic " + Data("\(c.user):\(c.password)".utf8).base64EncodedString()) }
            let response: HTTPClientResponse
            do { response = try await http.execute(request, timeout: .seconds(30)) } catch { throw unreachable(error, url: tokenURL) }
            guard response.status.code == 200 else {
                let why = await Self.explain(response)
                throw AirlockError(
                    .io, .registryAuthFailed,
                    "the token service \(Self.redact(tokenURL)) refused \(credentials == nil ? "an anonymous request" : "the credentials from --authfile") (\(why)); check the auth file's entry for \(host)"
                )
            }
            let body = Array((try await response.body.collect(upTo: 1 << 20)).readableBytesView)
            guard let o = (try? JSONParser.parse(body, maxValues: 1000))?.objectValue,
                let token = o["token"]?.stringValue ?? o["access_token"]?.stringValue, !token.isEmpty,
                token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            else { throw AirlockError(.io, .registryAuthFailed, "the token service \(Self.redact(tokenURL)) answered without a token") }
            authorization.withLockedValue { $0 = "Bearer " + token }
        default:
            throw AirlockError(
                .io, .registryAuthFailed,
                "the registry \(host) refused the request (HTTP 401) with a challenge Airlock does not answer (\(challenge.prefix(200))); it speaks Basic and Bearer"
            )
        }
    }

    /// `Bearer realm="...",service="...",scope="..."` as ("bearer", [realm: ..., ...]).
    static func parseChallenge(_ header: String) -> (String, [String: String]) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard let space = trimmed.firstIndex(of: " ") else { return (trimmed.lowercased(), [:]) }
        let scheme = trimmed[..<space].lowercased()
        var params: [String: String] = [:]
        var s = Substring(trimmed[trimmed.index(after: space)...])
        while true {
            s = s.drop { $0 == " " || $0 == "," }
            guard let eq = s.firstIndex(of: "=") else { break }
            let key = s[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            s = s[s.index(after: eq)...]
            var value = ""
            if s.first == "\"" {
                s = s.dropFirst()
                while let c = s.first {
                    s = s.dropFirst()
                    if c == "\\", let n = s.first {
                        value.append(n)
                        s = s.dropFirst()
                    } else if c == "\"" {
                        break
                    } else {
                        value.append(c)
                    }
                }
            } else {
                let end = s.firstIndex(of: ",") ?? s.endIndex
                value = s[..<end].trimmingCharacters(in: .whitespaces)
                s = s[end...]
            }
            params[key] = value
        }
        return (scheme, params)
    }

    /// The user and password the auth file holds for `host`. Throws `registry-credentials-invalid`.
    static func credentials(authFile: String, host: String) throws -> (user: String, password: String)? {
        func bad(_ why: String) -> AirlockError {
            AirlockError(
                .usage, .registryCredentialsInvalid, "\(authFile): \(why); it should be {\"auths\": {\"\(host)\": {\"auth\": \"BASE64(user:password)\"}}}")
        }
        let bytes = try FileIO.read(authFile, limit: 1 << 20, what: "registry auth file")
        guard let auths = (try? JSONParser.parse(bytes, maxValues: 100_000))?.objectValue?["auths"]?.objectValue else { throw bad("it is not an auth file") }
        let entry = auths[host] ?? auths["https://" + host] ?? auths["http://" + host]
        guard let entry else { return nil }
        guard let encoded = entry.objectValue?["auth"]?.stringValue, let data = Data(base64Encoded: encoded),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { throw bad("the entry for \(host) has no auth of the form base64(user:password)") }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }
}
