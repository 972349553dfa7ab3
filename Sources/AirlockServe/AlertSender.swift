import AirlockFormat
import AirlockKit
import AirlockRollout
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// Sends the site's alerts (docs/rollout.md, "Alerts"): each one is appended at once to
/// `<root>/.alerts.jsonl`, then POSTed to the site's webhook and handed to its command when
/// the site's policy names them. An alert says what happened and why, with its numbers, which
/// releases, which of the five components changed between them (digests, files) and what
/// their permissions gain or lose, and the metrics that decided.
final class AlertSender: Sendable {
    private let site: Site
    private let client: HTTPClient
    private let logger: Logger
    private let state = Mutex<(settings: AlertSettings, queue: [JSONValue])>((AlertSettings(), []))

    init(site: Site, client: HTTPClient, logger: Logger) {
        self.site = site
        self.client = client
        self.logger = logger
    }

    /// Where alerts go besides the file.
    var settings: AlertSettings {
        get { state.withLock { $0.settings } }
        set { state.withLock { $0.settings = newValue } }
    }

    /// Makes the alert, writes it to the file and queues its delivery.
    func queue(
        event: String, name: String, reason: String, from: String?, to: String?, decision: CanaryDecision?, trip: BreakerTrip? = nil
    ) {
        let alert = Self.make(site: site, event: event, name: name, reason: reason, from: from, to: to, decision: decision, trip: trip)
        do {
            try AlertLog.append(site: site, alert)
        } catch {
            logger.error("cannot write the alert to \(site.path(SiteLayout.alerts)): \(error)")
        }
        logger.warning("ALERT \(event) \(name): \(reason)")
        state.withLock { $0.queue.append(alert) }
    }

    /// The alert's JSON.
    static func make(
        site: Site, event: String, name: String, reason: String, from: String?, to: String?, decision: CanaryDecision?, trip: BreakerTrip?
    ) -> JSONValue {
        var o: [String: JSONValue] = [
            "at": .string(Timestamp.format(Timestamp.now())), "event": .string(event), "name": .string(name), "reason": .string(reason),
        ]
        func side(_ release: String?) -> JSONValue {
            guard let release else { return .null }
            var s: [String: JSONValue] = ["release": .string(release)]
            if let m = try? site.manifestBytes(name, release), let parsed = try? Manifest.parse(m) {
                s["version"] = .string(parsed.version)
                s["bundle_id"] = .string(SHA256Digest.of(m).prefixed)
            }
            return .object(s)
        }
        o["from"] = side(from)
        o["to"] = side(to)
        var text = ["\(event) \(name): \(reason)"]
        if let from, let to {
            if let change = try? ReleaseChange(site: site, name: name, from: from, to: to) {
                o["change"] = change.json
                text.append(change.summary())
            } else {
                o["change"] = .null
            }
        }
        if let decision {
            o["metrics"] = DecisionJSON.json(decision)
            text.append(decision.table())
        }
        if let trip {
            o["breaker"] = BreakerRecord(state: .tripped(trip), since: trip.at).json
        }
        o["text"] = .string(text.joined(separator: "\n"))
        return .object(o)
    }

    /// Delivers the queued alerts to the webhook and the command, if any.
    func deliverPending() async {
        let (settings, queued) = state.withLock { s -> (AlertSettings, [JSONValue]) in
            let q = s.queue
            s.queue = []
            return (s.settings, q)
        }
        for alert in queued {
            if let url = settings.webhook {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: CanonicalJSON.encode(alert)))
                do {
                    let response = try await client.execute(request, timeout: .seconds(Int64(settings.timeoutSeconds)))
                    _ = try? await response.body.collect(upTo: 64 << 10)
                    if !(200..<300).contains(Int(response.status.code)) {
                        logger.error("the alert webhook \(url) answered \(response.status.code)")
                    }
                } catch {
                    logger.error("cannot deliver an alert to the webhook \(url): \(error)")
                }
            }
            if let command = settings.command {
                let timeout = settings.timeoutSeconds
                let logger = self.logger
                await Blocking.run {
                    do { try AlertCommand.run(command, alert: alert, timeoutSeconds: timeout) } catch { logger.error("the alert command failed: \(error)") }
                }
            }
        }
    }
}
