import AirlockRollout
import Testing

/// Task-sticky assignment (`Assignment`): the same salt and task id give the same bucket in
/// every process, the split matches the weight, raising the weight moves no task.
@Suite struct AssignmentTests {
    static let salt = Array("rollout-2026-11-30".utf8)
    static let taskIDs = (0..<100_000).map { "task-\($0)" }
    static let buckets = taskIDs.map { Assignment.bucket(salt: salt, taskID: $0) }

    /// Buckets computed outside Swift (Python's hashlib: the first 8 bytes of SHA-256 of salt ||
    /// task id, big-endian, mod 10,000), so that no change of algorithm goes unnoticed.
    @Test(arguments: [("salt-1", "task-42", 8250), ("rollout-2026-11-30", "t-0", 2587), ("", "", 1652)])
    func bucketIsTheDocumentedHash(salt: String, taskID: String, bucket: UInt64) {
        #expect(Assignment.bucket(salt: Array(salt.utf8), taskID: taskID) == bucket)
    }

    @Test func sameSaltAndTaskGiveTheSameBucket() {
        for id in Self.taskIDs.prefix(1000) {
            let first = Assignment.bucket(salt: Self.salt, taskID: id)
            #expect(Assignment.bucket(salt: Self.salt, taskID: id) == first)
            #expect(Assignment.isCandidate(salt: Self.salt, taskID: id, weight: 500) == (first < 500))
        }
    }

    @Test func splitAt500BasisPointsIsWithinHalfAPoint() {
        let share = Double(Self.buckets.filter { $0 < 500 }.count) / Double(Self.buckets.count)
        #expect(abs(share - 0.05) <= 0.005, "share at 500 bp: \(share)")
        #expect(Self.buckets.allSatisfy { $0 < Assignment.buckets })
    }

    @Test func raisingTheWeightMovesNoCandidateTask() {
        for (id, bucket) in zip(Self.taskIDs, Self.buckets) where Assignment.isCandidate(salt: Self.salt, taskID: id, weight: 100) {
            #expect(bucket < 100)
            #expect(Assignment.isCandidate(salt: Self.salt, taskID: id, weight: 500))
        }
        let at100 = Self.buckets.filter { $0 < 100 }.count
        let at500 = Self.buckets.filter { $0 < 500 }.count
        #expect(at100 > 0 && at100 < at500)
    }

    @Test func anotherSaltPicksAnotherSet() {
        let other = Array("rollout-2026-12-01".utf8)
        let first = Set(zip(Self.taskIDs, Self.buckets).filter { $0.1 < 500 }.map(\.0))
        let second = Set(Self.taskIDs.filter { Assignment.isCandidate(salt: other, taskID: $0, weight: 500) })
        #expect(first != second)
        // Independent 5% samples of 100,000 share about 250 tasks.
        #expect(first.intersection(second).count < 500, "overlap \(first.intersection(second).count)")
    }
}
