import Prometheus

/// What `airlock serve` counts, exposed at `GET /metrics` in Prometheus' text format:
///
/// - `airlock_requests_total{name, release, code}`: agent requests answered, by the release
///   that served them and the status code (release "none" for requests no runtime served);
/// - `airlock_runtime_ready{name, release}`: 1 while that release's runtime takes requests;
/// - `airlock_runtime_restarts_total{name}`: runtimes that ended and were started again.
final class ServeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// Counts one answered agent request.
    func request(name: String, release: String?, code: Int) {
        registry.makeCounter(
            name: "airlock_requests_total", labels: [("name", name), ("release", release ?? "none"), ("code", String(code))],
            help: "Agent requests answered, by release and status code"
        ).increment()
    }

    /// Records whether `release`'s runtime takes requests.
    func ready(name: String, release: String, _ ready: Bool) {
        registry.makeGauge(
            name: "airlock_runtime_ready", labels: [("name", name), ("release", release)], help: "1 while the release's runtime takes requests"
        ).set(to: ready ? 1.0 : 0.0)
    }

    /// Counts one runtime that ended and will be started again.
    func restart(name: String) {
        registry.makeCounter(name: "airlock_runtime_restarts_total", labels: [("name", name)], help: "Runtimes that ended and were started again")
            .increment()
    }

    /// The text exposition.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}
