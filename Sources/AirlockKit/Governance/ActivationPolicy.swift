import AirlockFormat

/// The site's policy for a release it is asked to run, in one place (docs/site.md,
/// "Permissions and approvals"):
///
/// - every endpoint the release reaches (its tools, its model) is inside the site's perimeter,
///   or allowed for this release by the admin (recorded with it);
/// - with `require_eval`, the release carries a passing eval attestation, at or above the site's
///   `min_eval_score`;
/// - an activation that widens what the release may reach over the baseline (what the site last
///   had active for the name) carries `approvals.threshold` verified site approvals.
///
/// Install asks for the first two, activate and `rollback --to` for all three. The caller reads
/// the facts from the site and gives the trust it loaded once for the command; the policy reads
/// nothing itself.
public struct ActivationPolicy: Sendable {
    /// The site's policy; the defaults when the site has no trust store.
    public let policy: SitePolicy
    /// Where the policy lives, named in refusals.
    public let trustDirectory: String

    /// A policy that checks against `policy`, naming `trustDirectory` in its refusals.
    public init(policy: SitePolicy, trustDirectory: String) {
        self.policy = policy
        self.trustDirectory = trustDirectory
    }

    /// The policy of the site trust loaded for the command; nil (no trust store) gives the
    /// defaults, whose empty perimeter allows no endpoint.
    public init(trust: SiteTrust?, trustDirectory: String) {
        self.init(policy: trust?.policy ?? SitePolicy(), trustDirectory: trustDirectory)
    }

    /// What an activation's check found, recorded in its history line.
    public struct Decision: Sendable {
        /// What the release grants beyond the baseline, in words (empty: nothing widened).
        public var escalations: [String] = []
        /// The approver key ids whose approvals let the widening through.
        public var approvers: [String] = []
        /// The endpoints allowed for the release now (`allowEgress`), by whom they are reached.
        public var allowed: [(who: String, endpoint: Endpoint)] = []

        /// A decision with nothing widened, approved or allowed; the checks fill it in.
        public init() {}
    }

    /// The release being activated, as the site knows it.
    public struct Candidate {
        /// `NAME RELEASE`, for messages.
        public var description: String
        /// What the release grants: its tools' permissions and its model endpoint.
        public var grants: Grants
        /// Endpoints allowed for this release before (at install or an earlier activation).
        public var recordedAllowances: Set<String>
        /// Its passing eval score (nil: none passing) and whether it carries an attestation at
        /// all; asked only when the site requires an eval.
        public var eval: () throws -> (score: Double?, attested: Bool)

        /// The release being activated; `eval` is called only when the site requires an eval.
        public init(description: String, grants: Grants, recordedAllowances: Set<String>, eval: @escaping () throws -> (score: Double?, attested: Bool)) {
            self.description = description
            self.grants = grants
            self.recordedAllowances = recordedAllowances
            self.eval = eval
        }
    }

    /// What the candidate is measured against: the release the site last had active for the
    /// name, or nothing (a first activation).
    public struct Baseline {
        /// Nil: a first activation. Otherwise the release, in words, for messages.
        public var description: String?
        /// Whether the baseline is the candidate itself (a re-activation widens nothing).
        public var isCandidate: Bool
        /// What the baseline grants; asked only when there is a baseline.
        public var grants: () throws -> Grants

        /// The baseline; `grants` is called only when there is one and it is not the candidate.
        public init(description: String?, isCandidate: Bool, grants: @escaping () throws -> Grants) {
            self.description = description
            self.isCandidate = isCandidate
            self.grants = grants
        }
    }

    /// The perimeter check: every endpoint in `grants` is inside the perimeter, recorded for the
    /// release, or in `allowEgress` (returned, to be recorded). Throws `egress-outside-perimeter`.
    public func checkEndpoints(
        _ grants: Grants, allowEgress: [Endpoint], recorded: Set<String> = [], context: String = ""
    ) throws -> [(who: String, endpoint: Endpoint)] {
        try policy.perimeter.check(grants, allowEgress: allowEgress, recorded: recorded, context: context, trustDirectory: trustDirectory)
    }

    /// The eval requirement for a release whose passing score is `score` (nil: none passing;
    /// `attested`: it carries an attestation at all). Throws `eval-missing`, `eval-failed` or
    /// `eval-below-site-minimum`.
    public func checkEval(score: Double?, attested: Bool, what: String) throws {
        guard policy.requireEval else { return }
        guard let score else {
            throw AirlockError(
                .policy, attested ? .evalFailed : .evalMissing,
                attested
                    ? "the site's policy requires a passing eval and \(what)'s attestation records a score below its threshold"
                    : "the site's policy requires a passing eval attestation and \(what) carries none; ask the vendor for a bundle packed with an eval gate (airlock.yaml `eval:`)"
            )
        }
        if let floor = policy.minEvalScore, score < floor {
            throw AirlockError(
                .policy, .evalBelowSiteMinimum,
                "\(what)'s attested eval score \(EvalAttestation.decimal(score)) is below the site's minimum \(EvalAttestation.decimal(floor)) (policy.json min_eval_score)"
            )
        }
    }

    /// The checks of an activation, in order: the perimeter, the eval, then approvals of what
    /// widens. `approvals` gives the approver key ids whose approvals of the release verify;
    /// it is asked only when something widens. `command` names the release for the approver
    /// (`NAME RELEASE`). Throws what `checkEndpoints` and `checkEval` throw, and
    /// `approval-required`.
    public func checkActivation(
        _ candidate: Candidate, against baseline: Baseline, allowEgress: [Endpoint], approvals: () throws -> [String]
    ) throws -> Decision {
        var decision = Decision()
        decision.allowed = try checkEndpoints(
            candidate.grants, allowEgress: allowEgress, recorded: candidate.recordedAllowances, context: "\(candidate.description): ")
        if policy.requireEval {
            let (score, attested) = try candidate.eval()
            try checkEval(score: score, attested: attested, what: candidate.description)
        }
        if baseline.description != nil {
            if !baseline.isCandidate { decision.escalations = Grants.escalations(from: try baseline.grants(), to: candidate.grants) }
        } else if policy.approveFirstActivation {
            decision.escalations = Grants.escalations(from: Grants(), to: candidate.grants)
        }
        if decision.escalations.isEmpty { return decision }
        decision.approvers = try approvals()
        guard decision.approvers.count >= policy.approvalThreshold else {
            throw AirlockError(
                .policy, .approvalRequired,
                "activating \(candidate.description) widens its permissions over \(baseline.description ?? "nothing (first activation)"): \(decision.escalations.joined(separator: "; ")). It needs \(policy.approvalThreshold) site approval(s) and has \(decision.approvers.count): an approver runs `airlock approve \(candidate.description) --key APPROVER.key`, then activate again"
            )
        }
        return decision
    }
}
