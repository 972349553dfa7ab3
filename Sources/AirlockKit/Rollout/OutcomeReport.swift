import AirlockFormat
import AirlockRollout

/// A task's outcome as `airlock serve` takes it (`POST .../outcome`, docs/rollout.md): parsed
/// here, away from the HTTP server, so that the fuzz targets reach it (docs/fuzzing.md).
public enum OutcomeReport {
    /// Why an outcome report does not parse.
    public struct Failure: Error, Sendable {
        /// What is wrong, and the shape an outcome has.
        public let message: String
        init(_ message: String) { self.message = message }
    }

    /// Parses an outcome report: `task_id` (as `X-Task-Id`), `success` (boolean), `cost`
    /// (dollars, finite, 0 to 1,000,000), `intervention` (boolean), optional `error` (a string
    /// of at most 1,000 characters); no other field.
    public static func parse(_ bytes: [UInt8]) -> Result<(task: String, outcome: TaskOutcome), Failure> {
        let shape = "an outcome is {\"task_id\": \"...\", \"success\": true, \"cost\": 0.012, \"intervention\": false, \"error\": \"...\" (optional)}"
        guard let value = try? JSONParser.parse(bytes, maxValues: 64), let o = value.objectValue else {
            return .failure(Failure("the body is not a JSON object; \(shape)"))
        }
        for key in o.keys where !["task_id", "success", "cost", "intervention", "error"].contains(key) {
            return .failure(Failure("unknown field \"\(key)\"; \(shape)"))
        }
        guard let task = o["task_id"]?.stringValue, RecordingEvents.isTaskID(task) else {
            return .failure(Failure("task_id must be the task's id as sent in X-Task-Id (1 to 128 printable ASCII characters); \(shape)"))
        }
        guard let success = o["success"]?.boolValue else { return .failure(Failure("success must be true or false; \(shape)")) }
        guard case .number(let text)? = o["cost"], let cost = Double(text), cost.isFinite, cost >= 0, cost <= TaskOutcome.maximumCost else {
            return .failure(Failure("cost must be a number of dollars from 0 to 1000000; \(shape)"))
        }
        guard let intervention = o["intervention"]?.boolValue else { return .failure(Failure("intervention must be true or false; \(shape)")) }
        if let e = o["error"] {
            if case .null = e {
            } else if e.stringValue == nil || e.stringValue!.count > 1000 {
                return .failure(Failure("error must be a string of at most 1000 characters; \(shape)"))
            }
        }
        // To the micro-dollar the journal keeps, so that a replay gives the same sums.
        let kept = (cost * 1_000_000).rounded() / 1_000_000
        return .success((task, TaskOutcome(succeeded: success, cost: kept, neededIntervention: intervention)))
    }
}
