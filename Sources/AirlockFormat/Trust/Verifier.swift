/// The signed head of a bundle, checked: the manifest's signatures met the trust policy, the
/// manifest parsed strictly, it has not expired, and SHA256SUMS agrees with it. The reader is
/// positioned at the first payload file.
public struct VerifiedHead {
    /// The reader, positioned at the first payload file.
    public let reader: BundleReader
    /// The exact manifest bytes the signatures cover.
    public let manifestBytes: [UInt8]
    /// The manifest, parsed strictly.
    public let manifest: Manifest
    /// The bundle id: the SHA-256 of `manifestBytes`.
    public let bundleID: SHA256Digest
    /// The signature check, which met the trust policy.
    public let signatures: SignatureCheck
    /// The signature entries the bundle carries (verified or not; see `signatures`).
    public let embedded: [EmbeddedSignature]
}

/// The outcome of `Verifier.verify`.
public struct VerificationReport: Sendable {
    /// The bundle's path as given (`-` for standard input).
    public var path: String
    /// The bundle id, once the manifest was read.
    public var bundleID: SHA256Digest?
    /// The manifest, once it parsed.
    public var manifest: Manifest?
    /// The compression detected, once the manifest was read.
    public var compression: Compression?
    /// The signature check, once it ran.
    public var signatures: SignatureCheck?
    /// Payload files read and checked against the manifest.
    public var filesChecked = 0
    /// Their total size, in bytes.
    public var bytesChecked: UInt64 = 0
    /// A delta bundle: its base, and the files it expects the site to hold.
    public var delta: DeltaInfo?
    /// Files the delta bundle omits, which the site must already hold.
    public var filesExpectedAtSite = 0
    /// Their total size, in bytes.
    public var bytesExpectedAtSite: UInt64 = 0
    /// The first failure; nil when every check held.
    public var error: AirlockError?

    /// An empty report for the bundle at `path`.
    public init(path: String) { self.path = path }

    /// True when every check held.
    public var ok: Bool { error == nil }

    /// The `--json` form (docs/cli.md).
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "ok": .bool(ok),
            "bundle": .string(path),
            "bundle_id": bundleID.map { .string($0.prefixed) } ?? .null,
            "name": manifest.map { .string($0.name) } ?? .null,
            "version": manifest.map { .string($0.version) } ?? .null,
            "sequence": manifest.map { .integer($0.sequence) } ?? .null,
            "compression": compression.map { .string($0.rawValue) } ?? .null,
            "files_checked": .integer(filesChecked),
            "bytes_checked": .integer(bytesChecked),
            "threshold": signatures.map { .integer($0.threshold) } ?? .null,
            "signers": .array(signatures?.results.map(\.json) ?? []),
            "verified_signers": .array(signatures?.verifiedKeys.map { .string($0) } ?? []),
            "delta": delta.map {
                .object([
                    "base": .string($0.base.prefixed), "files_expected_at_site": .integer(filesExpectedAtSite),
                    "bytes_expected_at_site": .integer(bytesExpectedAtSite),
                ])
            } ?? .null,
        ]
        if let error {
            o["error"] = .object(["kind": .string(error.kind.rawValue), "code": .string(error.code), "message": .string(error.message)])
        } else {
            o["error"] = .null
        }
        return .object(o)
    }
}

/// Verifies bundles: every check of the format's verifier list, in order, in one streaming pass
/// from one open descriptor, writing nothing to disk.
public enum Verifier {
    /// Steps 1 to 3 of the verifier list, then SHA256SUMS: nothing of the manifest is parsed
    /// before enough trusted signatures verified over its exact bytes. Throws what
    /// `BundleReader.readManifest` and `BundleReader.readSignatures` throw; `signature-missing`,
    /// `threshold-not-met`, `signer-untrusted`, `signer-revoked`, `signer-expired` or
    /// `signature-invalid` when the signatures do not meet the trust policy (`SignatureCheck.failure`);
    /// what `Manifest.parse` throws; `bundle-expired`; and what `BundleReader.readSums(for:)` throws.
    public static func verifyHead(
        _ reader: BundleReader, trust: TrustStore, detached: [DetachedSignature] = [], now: Int64 = Timestamp.now(),
        report: inout VerificationReport
    ) throws -> VerifiedHead {
        try verifyHead(reader, trust: trust, detached: detached, now: now, report: &report, whileParsing: nil)
    }

    /// As `verifyHead`; with `whileParsing`, the manifest is parsed on a thread of its own (once
    /// the signatures verified) while `whileParsing` runs, given a function that says whether
    /// the parse ended: `verify` reads ahead then (`BundleReader.readAhead`).
    static func verifyHead(
        _ reader: BundleReader, trust: TrustStore, detached: [DetachedSignature], now: Int64,
        report: inout VerificationReport, whileParsing: ((_ parsed: () -> Bool) -> Void)?
    ) throws -> VerifiedHead {
        let manifestBytes = try reader.readManifest()
        report.compression = reader.compression
        let bundleID = SHA256Digest.of(manifestBytes)
        report.bundleID = bundleID
        let embedded = try reader.readSignatures()
        let check = SignatureCheck(manifest: manifestBytes, embedded: embedded, detached: detached, trust: trust, now: now)
        report.signatures = check
        if let failure = check.failure { throw failure }
        let manifest: Manifest
        if let whileParsing {
            let parsing = BackgroundTask(name: "airlock-parse-manifest") { try Manifest.parse(manifestBytes) }
            whileParsing { parsing.isDone }
            manifest = try parsing.value()
        } else {
            manifest = try Manifest.parse(manifestBytes)
        }
        report.manifest = manifest
        if let expires = manifest.expires, let t = Timestamp.parse(expires), now >= t {
            throw AirlockError(
                .policy, .bundleExpired,
                "the bundle expired at \(expires) (now \(Timestamp.format(now))); ask the vendor for a fresh bundle of this release")
        }
        try reader.readSums(for: manifest)
        return VerifiedHead(reader: reader, manifestBytes: manifestBytes, manifest: manifest, bundleID: bundleID, signatures: check, embedded: embedded)
    }

    /// Verifies the bundle at `path` (`-`: standard input). Never throws: the report carries the
    /// first failure.
    /// `baseManifest` finds a delta bundle's base manifest (`BundleReader.baseManifest`).
    public static func verify(
        bundle path: String, trust: TrustStore, detached: [DetachedSignature] = [], now: Int64 = Timestamp.now(),
        baseManifest: BaseManifestLookup? = nil, progress: ProgressReporter? = nil
    ) -> VerificationReport {
        verify(bundle: path, trust: trust, detached: detached, now: now, baseManifest: baseManifest, progress: progress, readAhead: .whileParsing)
    }

    /// How far `verify` reads ahead of the manifest's parse (`BundleReader.readAhead`).
    package enum ReadAhead: Sendable {
        /// Until the parse ended: what `airlock verify` does.
        case whileParsing
        /// Not at all: the manifest is parsed first, as `verifyHead` does.
        case never
        /// Up to the reader's limits, however soon the parse ended (tests: every check of an
        /// entry read ahead, whatever the timing).
        case toTheLimits
    }

    /// As `verify(bundle:…)`, reading ahead as `readAhead` says.
    package static func verify(
        bundle path: String, trust: TrustStore, detached: [DetachedSignature] = [], now: Int64 = Timestamp.now(),
        baseManifest: BaseManifestLookup? = nil, progress: ProgressReporter? = nil, readAhead: ReadAhead
    ) -> VerificationReport {
        let reader: BundleReader
        do {
            reader = try BundleReader(path: path)
            reader.baseManifest = baseManifest
        } catch {
            var report = VerificationReport(path: path)
            report.error = error as? AirlockError ?? AirlockError(.internal, .`internal`, "unexpected error: \(error)")
            return report
        }
        return verify(reader: reader, trust: trust, detached: detached, now: now, progress: progress, readAhead: readAhead)
    }

    /// Verifies the bundle `reader` reads (from its first byte), as `verify(bundle:)` does.
    /// Never throws: the report carries the first failure.
    public static func verify(
        reader: BundleReader, trust: TrustStore, detached: [DetachedSignature] = [], now: Int64 = Timestamp.now(),
        progress: ProgressReporter? = nil
    ) -> VerificationReport {
        verify(reader: reader, trust: trust, detached: detached, now: now, progress: progress, readAhead: .whileParsing)
    }

    /// As `verify(reader:…)`, reading ahead as `readAhead` says.
    package static func verify(
        reader: BundleReader, trust: TrustStore, detached: [DetachedSignature] = [], now: Int64 = Timestamp.now(),
        progress: ProgressReporter? = nil, readAhead: ReadAhead
    ) -> VerificationReport {
        var report = VerificationReport(path: reader.path)
        do {
            // Nothing is written: the digests can be checked at the end, hashed beside the reading,
            // and the reading can go on while the manifest is parsed (every entry read ahead is
            // checked against it after, in order).
            var readBytes = 0
            let head = try verifyHead(
                reader, trust: trust, detached: detached, now: now, report: &report,
                whileParsing: readAhead == .never
                    ? nil
                    : { parsed in
                        let until = readAhead == .toTheLimits ? { false } : parsed
                        reader.readAhead(until: until) { readBytes += $0 }
                    })
            reader.hashInBackground()
            progress?.start(total: head.manifest.totalBytes)
            progress?.advance(by: readBytes)
            report.delta = reader.delta
            for file in head.manifest.files {
                if reader.isOmitted(file) {
                    reader.skipOmitted(file)
                    report.filesExpectedAtSite += 1
                    report.bytesExpectedAtSite += file.size
                    continue
                }
                try reader.readPayload(file) { progress?.advance(by: $0.count) }
                report.filesChecked += 1
                report.bytesChecked += file.size
            }
            try reader.finish()
            progress?.done()
        } catch let e as AirlockError {
            progress?.done()
            report.error = e
        } catch {
            progress?.done()
            report.error = AirlockError(.internal, .`internal`, "unexpected error: \(error)")
        }
        return report
    }
}
