import AirlockFormat
import AirlockKit
import AsyncHTTPClient
import Foundation
import Logging

/// Keeps the runtime of each managed name's `current` release warm: starts it (`Runtime`),
/// routes to it only once its ready path answers 200, starts it again with backoff when it
/// crashes, and follows `current` when an admin activates or rolls back: the new release's
/// runtime starts, takes the traffic once ready, and the old one stops.
actor Supervisor {
    /// A runtime Airlock can route to.
    struct Target: Sendable {
        /// The release folder it serves.
        let release: String
        /// `http://127.0.0.1:<port>` or `http+unix://<socket>`, without a trailing slash.
        let baseURL: String
    }

    private struct Managed {
        var runtime: Runtime?
        var ready = false
        var failures = 0
        var nextStart = 0.0
        var lastError: String?
    }

    private let site: Site
    private let names: [String]
    private let client: HTTPClient
    private let logger: Logger
    private let metrics: ServeMetrics
    private var managed: [String: Managed] = [:]

    init(site: Site, names: [String], client: HTTPClient, logger: Logger, metrics: ServeMetrics) {
        self.metrics = metrics
        self.site = site
        self.names = names
        self.client = client
        self.logger = logger
    }

    /// Where requests of `name` go now; nil while no runtime of it is ready.
    func target(for name: String) -> Target? {
        guard let m = managed[name], m.ready, let r = m.runtime else { return nil }
        return Target(release: r.release, baseURL: Self.baseURL(r.address))
    }

    /// What each name runs, for `/status`: release, ready, failures, last error.
    func status() -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for name in names {
            let m = managed[name]
            out[name] = .object([
                "release": m?.runtime.map { .string($0.release) } ?? .null, "ready": .bool(m?.ready ?? false),
                "pid": m?.runtime.map { .integer($0.pid) } ?? .null,
                "restarts": .integer(m?.failures ?? 0), "last_error": m?.lastError.map { .string($0) } ?? .null,
            ])
        }
        return out
    }

    /// One round of supervision; `serve` runs it every 200 ms.
    func tick() async {
        let now = Timestamp.monotonicSeconds()
        for name in names {
            var m = managed[name] ?? Managed()
            let current = site.current(name)
            if let r = m.runtime, r.release != current {
                // `current` moved: serve the new release from now on.
                logger.info("\(name): current is now \(current ?? "none"); stopping \(r.release)")
                r.stop(graceSeconds: 5)
                metrics.ready(name: name, release: r.release, false)
                m = Managed()
            }
            if let r = m.runtime, !r.isRunning {
                m.failures += 1
                m.lastError = "\(r.release) \(r.ended ?? "stopped"): \(r.outputTail(bytes: 300).trimmingCharacters(in: .whitespacesAndNewlines))"
                logger.warning("\(name): runtime \(m.lastError!)")
                metrics.ready(name: name, release: r.release, false)
                metrics.restart(name: name)
                m.runtime = nil
                m.ready = false
                m.nextStart = now + min(30, pow(2, Double(min(m.failures, 5)) - 1))
            }
            if m.runtime == nil, let current, now >= m.nextStart {
                do {
                    if let spec = try site.serveSpec(name, current) {
                        m.runtime = try Runtime.start(site: site, name: name, release: current, spec: spec)
                        m.ready = false
                        logger.info("\(name): started \(current)")
                    } else {
                        m.lastError = "\(current) declares no serve section"
                        m.nextStart = now + 30
                    }
                } catch {
                    m.failures += 1
                    m.lastError = "\(error)"
                    m.nextStart = now + min(30, pow(2, Double(min(m.failures, 5)) - 1))
                }
            }
            if let r = m.runtime, !m.ready {
                m.ready = await probe(r)
                if m.ready {
                    metrics.ready(name: name, release: r.release, true)
                    logger.info("\(name): \(r.release) is ready")
                    m.failures = 0
                }
            }
            managed[name] = m
        }
    }

    /// Stops every runtime.
    func stopAll() {
        for (name, m) in managed {
            m.runtime?.stop(graceSeconds: 5)
            managed[name] = Managed()
        }
    }

    private func probe(_ r: Runtime) async -> Bool {
        let request = HTTPClientRequest(url: Self.baseURL(r.address) + r.spec.readyPath)
        guard let response = try? await client.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 64 << 10)
        return response.status.code == 200
    }

    static func baseURL(_ address: Runtime.Address) -> String {
        switch address {
        case .port(let p): return "http://127.0.0.1:\(p)"
        case .socket(let path):
            return "http+unix://" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path)
        }
    }
}
