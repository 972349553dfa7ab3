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

    /// The request counters made so far, by name, release and code (each event loop keeps the
    /// ones it used, so that a request costs no lock here nor the registry's label matching).
    private let requestCounters = Mutex<[String: Counter]>([:])

    /// The counter of agent requests answered for `name` by `release` with `code`.
    func requestCounter(name: String, release: String?, code: Int) -> Counter {
        let key = "\(name) \(release ?? "none") \(code)"
        return requestCounters.withLock { cache -> Counter in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                name: "airlock_requests_total", labels: [("name", name), ("release", release ?? "none"), ("code", String(code))],
                help: "Agent requests answered, by release and status code")
            cache[key] = c
            return c
        }
    }

    /// Counts one tool call through the gateway; `tool` nil for a tool the release does not
    /// declare (the runtime picks those names: they never become labels).
    func toolCall(name: String, release: String, tool: String?, status: String) {
        registry.makeCounter(
            name: "airlock_tool_calls_total", labels: [("name", name), ("release", release), ("tool", tool ?? "undeclared"), ("result", status)],
            help: "Tool calls through the gateway, by release, tool and result"
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

    /// Counts one outcome.
    func outcome(name: String, release: String, outcome: TaskOutcome, expired: Bool) {
        let result = expired ? "expired" : outcome.succeeded ? "success" : "failure"
        registry.makeCounter(
            name: "airlock_outcomes_total", labels: [("name", name), ("release", release), ("result", result)],
            help: "Task outcomes counted, by release and result"
        ).increment()
        guard !expired else { return }
        registry.makeCounter(
            name: "airlock_task_cost_dollars_total", labels: [("name", name), ("release", release)], help: "What the reported tasks cost, in dollars"
        ).increment(by: outcome.cost)
        if outcome.neededIntervention {
            registry.makeCounter(
                name: "airlock_interventions_total", labels: [("name", name), ("release", release)], help: "Reported tasks that needed a person"
            ).increment()
        }
    }

    /// Sets the gauges of a name's rollout.
    func rollout(name: String, _ g: RolloutGauges, now: Double) {
        let weight = g.canary.map { Double($0.weight) / 100 } ?? 0
        registry.makeGauge(name: "airlock_canary_weight_percent", labels: [("name", name)], help: "The active canary's weight in percent").set(to: weight)
        for (role, stats) in [("incumbent", g.incumbent), ("candidate", g.candidate)] {
            registry.makeGauge(name: "airlock_canary_tasks", labels: [("name", name), ("role", role)], help: "Tasks counted in the canary's step")
                .set(to: Double(stats.tasks))
            registry.makeGauge(
                name: "airlock_canary_success_ratio", labels: [("name", name), ("role", role)], help: "Share of successful tasks in the canary's step"
            ).set(to: stats.success.mean)
            registry.makeGauge(
                name: "airlock_canary_interventions_ratio", labels: [("name", name), ("role", role)],
                help: "Share of tasks that needed a person in the canary's step"
            ).set(to: stats.intervention.mean)
        }
        for (release, breaker) in g.breakers {
            registry.makeGauge(
                name: "airlock_breaker_open", labels: [("name", name), ("release", release)], help: "1 while the release's breaker keeps tasks from it"
            ).set(to: breaker.allowsTasks ? 0.0 : 1.0)
            registry.makeGauge(
                name: "airlock_breaker_window_tasks", labels: [("name", name), ("release", release)], help: "Tasks in the breaker's window"
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
