import AirlockFormat

/// Task-sticky assignment of a rollout (docs/rollout.md): a task's bucket is the first 8 bytes
/// of SHA-256(rollout salt || task id), big-endian, mod 10,000; the task goes to the candidate
/// when its bucket is below the canary weight in basis points. The same salt and task id give
/// the same bucket in every process (never Swift's per-process `Hasher`), and raising the
/// weight only adds buckets, so no assigned task moves.
public enum Assignment {
    /// Buckets per rollout: a weight is given in basis points (1% = 100).
    public static let buckets: UInt64 = 10_000

    /// The bucket of `taskID` in the rollout salted with `salt`.
    public static func bucket(salt: [UInt8], taskID: String) -> UInt64 {
        let digest = SHA256Digest.of(salt + Array(taskID.utf8))
        var value: UInt64 = 0
        for byte in digest.bytes.prefix(8) { value = value << 8 | UInt64(byte) }
        return value % buckets
    }

    /// Whether `taskID` goes to the candidate at `weight` basis points.
    public static func isCandidate(salt: [UInt8], taskID: String, weight: UInt64) -> Bool {
        bucket(salt: salt, taskID: taskID) < weight
    }
}
