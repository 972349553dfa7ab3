import AirlockFormat
import AirlockKit
import AsyncHTTPClient
import Foundation
import Logging

/// Keeps warm, for each managed name, the runtimes of its `current` release and of its
/// last-good release (the rollback target): starts them (`Runtime`), routes to `current`'s only
/// once its ready path answers 200, starts a crashed one again with backoff, and follows the
/// pointer: when an admin activates or rolls back, the release that becomes current takes the
/// traffic as soon as its runtime is ready, at once when it was the warm last-good one, and a
/// runtime no longer wanted stops.
actor Supervisor {
    /// A runtime Airlock can route to.
    struct Target: Sendable {
        /// The release folder it serves.
        let release: String
        /// `http://127.0.0.1:<port>` or `http+unix://<socket>`, without a trailing slash.
        let baseURL: String
    }

    /// One release's runtime and its supervision.
    private struct Entry {
        var runtime: Runtime?
        var ready = false
        var failures = 0
        var restarts = 0
        var nextStart = 0.0
        var lastError: String?
    }

    private let site: Site
    private let names: [String]
    private let client: HTTPClient
    private let logger: Logger
    private let metrics: ServeMetrics
    /// Per name, per release folder.
    private var entries: [String: [String: Entry]] = [:]
    private var current: [String: String] = [:]

    init(site: Site, names: [String], client: HTTPClient, logger: Logger, metrics: ServeMetrics) {
        self.site = site
        self.names = names
        self.client = client
        self.logger = logger
        self.metrics = metrics
    }

    /// Where requests of `name` go now: `current`'s runtime once ready; nil before.
    func target(for name: String) -> Target? {
        guard let release = current[name], let e = entries[name]?[release], e.ready, let r = e.runtime else { return nil }
        return Target(release: release, baseURL: Self.baseURL(r.address))
    }

    /// What each name runs, for `/status`: the current release's runtime (release, ready, pid,
    /// restarts, last error) and the warm last-good one.
    func status() -> [String: JSONValue] {
        func describe(_ release: String, _ e: Entry?) -> [String: JSONValue] {
            [
                "release": .string(release), "ready": .bool(e?.ready ?? false), "pid": e?.runtime.map { .integer($0.pid) } ?? .null,
                "restarts": .integer(e?.restarts ?? 0), "last_error": e?.lastError.map { .string($0) } ?? .null,
            ]
        }
        var out: [String: JSONValue] = [:]
        for name in names {
            let all = entries[name] ?? [:]
            var o: [String: JSONValue] = current[name].map { describe($0, all[$0]) } ?? ["release": .null, "ready": .bool(false), "pid": .null]
            o["last_good"] = all.keys.first { $0 != current[name] }.map { .object(describe($0, all[$0])) } ?? .null
            out[name] = .object(o)
        }
        return out
    }

    /// One round of supervision; `serve` runs it every 200 ms.
    func tick() async {
        let now = Timestamp.monotonicSeconds()
        for name in names {
            let cur = site.current(name)
            if cur != current[name] { logger.info("\(name): current is \(cur ?? "none")") }
            current[name] = cur
            let lastGood = (try? site.rollbackTarget(name)) ?? nil
            let wanted = Set([cur, lastGood].compactMap { $0 })
            var all = entries[name] ?? [:]
            for (release, e) in all where !wanted.contains(release) {
                e.runtime?.stop(graceSeconds: 5)
                metrics.ready(name: name, release: release, false)
                logger.info("\(name): stopped \(release) (neither current nor last-good)")
                all[release] = nil
            }
            for release in wanted.sorted() {
                all[release] = await supervise(name: name, release: release, all[release] ?? Entry(), now: now)
            }
            entries[name] = all
        }
    }

    private func supervise(name: String, release: String, _ entry: Entry, now: Double) async -> Entry {
        var e = entry
        if let r = e.runtime, !r.isRunning {
            e.failures += 1
            e.restarts += 1
            e.lastError = "\(release) \(r.ended ?? "stopped"): \(r.outputTail(bytes: 300).trimmingCharacters(in: .whitespacesAndNewlines))"
            logger.warning("\(name): runtime \(e.lastError!)")
            metrics.ready(name: name, release: release, false)
            metrics.restart(name: name)
            e.runtime = nil
            e.ready = false
            e.nextStart = now + Self.backoff(e.failures)
        }
        if e.runtime == nil, now >= e.nextStart {
            do {
                if let spec = try site.serveSpec(name, release) {
                    e.runtime = try Runtime.start(site: site, name: name, release: release, spec: spec)
                    e.ready = false
                    logger.info("\(name): started \(release)")
                } else {
                    e.lastError = "\(release) declares no serve section"
                    e.nextStart = now + 30
                }
            } catch {
                e.failures += 1
                e.lastError = "\(error)"
                e.nextStart = now + Self.backoff(e.failures)
            }
        }
        if let r = e.runtime, !e.ready {
            e.ready = await probe(r)
            if e.ready {
                metrics.ready(name: name, release: release, true)
                logger.info("\(name): \(release) is ready")
                e.failures = 0
            }
        }
        return e
    }

    /// Seconds before starting a runtime again after `failures` failures in a row: 1, 2, 4,
    /// ... 30.
    static func backoff(_ failures: Int) -> Double { min(30, pow(2, Double(min(failures, 6) - 1))) }

    /// Stops every runtime.
    func stopAll() {
        for (name, all) in entries {
            for (_, e) in all { e.runtime?.stop(graceSeconds: 5) }
            entries[name] = [:]
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
