import AirlockKit
import AirlockRollout
import Prometheus
import Synchronization

/// What `airlock serve` counts, exposed at `GET /metrics` in Prometheus' text format:
///
/// - `airlock_requests_total{name, release, code}`: agent requests answered, by the release
///   that served them and the status code (release "none" for requests no runtime served);
/// - `airlock_runtime_ready{name, release}`: 1 while that release's runtime takes requests;
/// - `airlock_runtime_restarts_total{name}`: runtimes that ended and were started again;
/// - `airlock_outcomes_total{name, release, result}`: outcomes counted, `result` success,
///   failure or expired (no report by the deadline);
/// - `airlock_task_cost_dollars_total{name, release}` and
///   `airlock_interventions_total{name, release}`: what the reported tasks cost and how many
///   needed a person;
/// - `airlock_canary_weight_percent{name}`: the active canary's weight (0: none);
/// - `airlock_canary_tasks{name, role}`, `airlock_canary_success_ratio{name, role}` and
///   `airlock_canary_interventions_ratio{name, role}`: the canary's current step, role
///   `incumbent` or `candidate`;
/// - `airlock_breaker_open{name, release}`: 1 while the release's breaker keeps tasks from it;
/// - `airlock_breaker_window_tasks{name, release}`: the tasks in its window;
/// - `airlock_tool_calls_total{name, release, tool, result}`: tool calls through the gateway,
///   `result` ok, refused (not declared; `tool` is then "undeclared"), unmapped, failed or
///   timeout.
final class ServeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// A metric's name and help text, as the registry takes them (the name whole: the
    /// descriptor's other parts are left empty).
    static func metric(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The request counters made so far, by name, release and code (each event loop keeps the
    /// ones it used, so that a request costs no lock here nor the registry's label matching).
    private let requestCounters = Mutex<[String: Counter]>([:])

    /// The counter of agent requests answered for `name` by `release` with `code`.
    func requestCounter(name: String, release: String?, code: Int) -> Counter {
        let key = "\(name) \(release ?? "none") \(code)"
        return requestCounters.withLock { cache -> Counter in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                descriptor: Self.metric("airlock_requests_total", help: "Agent requests answered, by release and status code"),
                labels: [("name", name), ("release", release ?? "none"), ("code", String(code))])
            cache[key] = c
            return c
        }
    }

    /// Counts one tool call through the gateway; `tool` nil for a tool the release does not
    /// declare (the runtime picks those names: they never become labels).
    func toolCall(name: String, release: String, tool: String?, status: String) {
        registry.makeCounter(
            descriptor: Self.metric("airlock_tool_calls_total", help: "Tool calls through the gateway, by release, tool and result"),
            labels: [("name", name), ("release", release), ("tool", tool ?? "undeclared"), ("result", status)]
        ).increment()
    }

    /// Records whether `release`'s runtime takes requests.
    func ready(name: String, release: String, _ ready: Bool) {
        registry.makeGauge(
            descriptor: Self.metric("airlock_runtime_ready", help: "1 while the release's runtime takes requests"),
            labels: [("name", name), ("release", release)]
        ).set(to: ready ? 1.0 : 0.0)
    }

    /// Counts one runtime that ended and will be started again.
    func restart(name: String) {
        registry.makeCounter(
            descriptor: Self.metric("airlock_runtime_restarts_total", help: "Runtimes that ended and were started again"), labels: [("name", name)]
        )
        .increment()
    }

    /// Counts one outcome.
    func outcome(name: String, release: String, outcome: TaskOutcome, expired: Bool) {
        let result = expired ? "expired" : outcome.succeeded ? "success" : "failure"
        registry.makeCounter(
            descriptor: Self.metric("airlock_outcomes_total", help: "Task outcomes counted, by release and result"),
            labels: [("name", name), ("release", release), ("result", result)]
        ).increment()
        guard !expired else { return }
        registry.makeCounter(
            descriptor: Self.metric("airlock_task_cost_dollars_total", help: "What the reported tasks cost, in dollars"),
            labels: [("name", name), ("release", release)]
        ).increment(by: outcome.cost)
        if outcome.neededIntervention {
            registry.makeCounter(
                descriptor: Self.metric("airlock_interventions_total", help: "Reported tasks that needed a person"),
                labels: [("name", name), ("release", release)]
            ).increment()
        }
    }

    /// Sets the gauges of a name's rollout.
    func rollout(name: String, _ g: RolloutGauges, now: Double) {
        let weight = g.canary.map { Double($0.weight) / 100 } ?? 0
        registry.makeGauge(descriptor: Self.metric("airlock_canary_weight_percent", help: "The active canary's weight in percent"), labels: [("name", name)])
            .set(to: weight)
        for (role, stats) in [("incumbent", g.incumbent), ("candidate", g.candidate)] {
            registry.makeGauge(
                descriptor: Self.metric("airlock_canary_tasks", help: "Tasks counted in the canary's step"), labels: [("name", name), ("role", role)]
            )
            .set(to: Double(stats.tasks))
            registry.makeGauge(
                descriptor: Self.metric("airlock_canary_success_ratio", help: "Share of successful tasks in the canary's step"),
                labels: [("name", name), ("role", role)]
            ).set(to: stats.success.mean)
            registry.makeGauge(
                descriptor: Self.metric("airlock_canary_interventions_ratio", help: "Share of tasks that needed a person in the canary's step"),
                labels: [("name", name), ("role", role)]
            ).set(to: stats.intervention.mean)
        }
        for (release, breaker) in g.breakers {
            registry.makeGauge(
                descriptor: Self.metric("airlock_breaker_open", help: "1 while the release's breaker keeps tasks from it"),
                labels: [("name", name), ("release", release)]
            ).set(to: breaker.allowsTasks ? 0.0 : 1.0)
            registry.makeGauge(
                descriptor: Self.metric("airlock_breaker_window_tasks", help: "Tasks in the breaker's window"), labels: [("name", name), ("release", release)]
            ).set(to: Double(breaker.totals(at: now).tasks))
        }
    }

    /// What the rollout gauges show, copied out of the book under the route table's lock.
    struct RolloutGauges {
        let canary: Canary?
        let incumbent: ReleaseStats
        let candidate: ReleaseStats
        let breakers: [String: Breaker]

        init(_ book: RolloutBook) {
            canary = book.canary
            incumbent = book.incumbentStats
            candidate = book.candidateStats
            breakers = book.breakers
        }
    }

    /// The text exposition.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}
