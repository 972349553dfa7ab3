import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

private struct ActivationFailed: Error {
    let error: AirlockError
    init(_ e: AirlockError) { error = e }
}

/// Installs bundles on a site (site-layout.md): verifies the manifest's signatures first, then
/// extracts and hashes in one pass from one open descriptor into `.staging/`, commits the new
/// content objects, links the release tree to them and renames it into
/// `<name>/releases/<version>-<id12>/` only when every file matched.
public enum Installer {
    /// The bundle is read, verified and staged before the site lock is taken: a stream that
    /// stalls (or never authenticates) blocks no rollback. The lock is held only to commit the
    /// staged release (and to activate it, or to write a refusal to the history).
    ///
    /// What the user named is checked before what the site lacks: a bundle that cannot be
    /// opened fails first (`file-not-found`, `is-a-directory`, ...), before the site root is
    /// made or its trust store read. Then the site root (`site-unsafe`, `site-owner`), the trust
    /// store (`trust-store-missing`, `trust-store-empty`, `policy-invalid`), verification
    /// (`signature-*`, `threshold-not-met`, `payload-hash-mismatch`, ...), the site's policy
    /// (`egress-outside-perimeter`, `eval-*`, `downgrade`, `sequence-reused`,
    /// `release-collision`, `delta-base-missing`), the options (`already-installed`,
    /// `delta-repair`), staging (`disk-full`, `read-only`, `link-limit`, `stream-stalled`, ...)
    /// and the lock (`site-busy`); with `activate`, what `Activation.activate` throws. A refusal
    /// is written to the history.
    public static func install(bundle: String, site: Site, options: InstallOptions = InstallOptions()) throws -> InstallResult {
        try install(reader: BundleReader(path: bundle, readTimeout: options.readTimeout), site: site, options: options)
    }

    /// Installs the bundle `reader` reads (from its first byte), as `install(bundle:)` does; the
    /// history names it by the reader's `path`. A reader with a completion check (a registry
    /// layer's digest) is checked before the release is committed.
    public static func install(reader: BundleReader, site: Site, options: InstallOptions = InstallOptions()) throws -> InstallResult {
        let bundle = reader.path
        try site.prepare()
        try SiteSafety.check(site, writing: true)
        var lock: SiteLock?
        defer { withExtendedLifetime(lock) {} }
        // The site's trust, loaded once for the whole command (verify, perimeter, eval, activation).
        let trust = try SiteTrust.load(directory: site.trustDirectory)
        let policy = ActivationPolicy(trust: trust, trustDirectory: site.trustDirectory)
        var report = VerificationReport(path: bundle)
        do {
            var state: NameState?
            var result = try installStaged(
                reader: reader, site: site, trust: trust.store, policy: policy, options: options, report: &report, lock: &lock, state: &state)
            if options.activate {
                if lock == nil { lock = try site.lockForWriting(command: "install", timeout: options.lockTimeout) }
                do {
                    try Activation.activateLocked(
                        site: site, name: result.name, release: result.release, check: options.check, allowEgress: options.allowEgress,
                        state: state)
                } catch let e as AirlockError {
                    // Installed, not activated: the activation wrote its own history line.
                    let done = result.alreadyInstalled ? "\(result.name) \(result.release) is installed" : "installed \(result.name) \(result.release)"
                    throw ActivationFailed(AirlockError(e.kind, e.code, "\(done), but not activated: \(e.message)", cause: e.cause))
                }
                result.activated = true
            }
            return result
        } catch let failed as ActivationFailed {
            throw failed.error
        } catch let e as AirlockError {
            var fields: [String: JSONValue] = ["bundle": .string(bundle), "reason": .string(e.code), "message": .string(e.message)]
            if let id = report.bundleID { fields["bundle_id"] = .string(id.prefixed) }
            if let v = report.manifest?.version { fields["version"] = .string(v) }
            if e.kind != .healthCheck && e.kind != .busy && e.code != "site-unsafe" {
                if lock == nil { lock = try? site.lockForWriting(command: "install", timeout: options.lockTimeout) }
                if lock != nil {
                    try? History.append(
                        site, action: e.kind == .verification || e.kind == .policy ? "refuse" : "install-failed", name: report.manifest?.name, fields)
                }
            }
            throw e
        }
    }

    /// Files of this size and more are written by a `BackgroundFileWriter` (direct I/O from a
    /// thread of its own); smaller ones with plain writes.
    static let backgroundWriteBytes: UInt64 = 8 << 20

    private static func installStaged(
        reader: BundleReader, site: Site, trust: TrustStore, policy: ActivationPolicy, options: InstallOptions, report: inout VerificationReport,
        lock: inout SiteLock?, state committed: inout NameState?
    ) throws -> InstallResult {
        if reader.baseManifest == nil { reader.baseManifest = { [site] id, name in site.installedManifest(id, name: name) } }
        let head = try Verifier.verifyHead(reader, trust: trust, detached: options.detached, now: options.now, report: &report)
        Sys.step("install.head-verified")
        let m = head.manifest
        let eval = try m.attestations?["eval"].map { try EvalAttestation(json: $0, source: "the manifest's attestations.eval") }
        let evalScore = eval.flatMap { $0.isPassing ? $0.score : nil }
        try policy.checkEval(score: evalScore, attested: eval != nil, what: "this bundle")
        let dir = SiteLayout.releaseDirectory(version: m.version, bundleID: head.bundleID)
        var result = InstallResult(name: m.name, release: dir, bundleID: head.bundleID, alreadyInstalled: false, activated: false)

        // Already installed: nothing new to check, nothing to copy.
        let target = site.releaseDirectory(m.name, dir)
        if FileIO.isDirectory(target) {
            let installed = try site.manifestBytes(m.name, dir)
            guard installed == head.manifestBytes else {
                throw AirlockError(.policy, .releaseCollision, "\(target) holds another release with the same version and id prefix; remove it first")
            }
            result.alreadyInstalled = true
            if !options.allowEgress.isEmpty && !options.activate && !options.repair {
                throw AirlockError(
                    .usage, .alreadyInstalled,
                    "\(m.name) \(dir) is already installed, so --allow-egress has nothing to apply to; allow an endpoint for an installed release when you activate it: airlock activate \(m.name) \(dir) --allow-egress HOST:PORT"
                )
            }
            if !options.repair { return result }
        }
        let repairing = result.alreadyInstalled
        // Checked now, before the bundle streams, and again under the lock.
        let store = try ObjectStore(site: site)
        var downgrade =
            repairing
            ? nil
            : try checkSequence(
                site: site, manifest: m, bundleID: head.bundleID, allowDowngrade: options.allowDowngrade,
                highestRecorded: (try? NameState.load(site, m.name))?.highestSequence ?? 0)
        if let delta = reader.delta {
            // A delta takes the files it omits from the site's store: all of them must be there
            // before anything is written (their content is checked as they are taken).
            if repairing {
                throw AirlockError(.usage, .deltaRepair, "a repair needs the full bundle of the release, not a delta bundle")
            }
            let missing = try m.files.filter { try reader.isOmitted($0) && !store.looksIntact(ObjectStore.Object($0.sha256, executable: $0.executable), $0) }
            if let first = missing.first {
                throw AirlockError(
                    .policy, .deltaBaseMissing,
                    "this delta bundle omits \(delta.omitted.count) files and the site lacks \(missing.count) of them (e.g. \(first.path)): install its base release (bundle id \(delta.base.prefixed)) first, or install the full bundle"
                )
            }
        }

        let staging = try Staging(site: site)
        defer { staging.remove() }
        // The release tree is built in staging as the bundle streams: new content is written
        // straight at its payload path; content the site already holds is compared byte for
        // byte with the stream and hardlinked from the store. New content joins the store only
        // after the whole bundle verified.
        // Indices into the manifest, not paths or hash tables: 100,000 files cost a few
        // integers each here.
        let previous = Self.previousWithSameContent(m.files)
        var fresh = [Bool](repeating: false, count: m.files.count)
        // Per file given to `writer`: which of its threads made it (-1: staged by this thread).
        var madeBy = [Int8](repeating: -1, count: m.files.count)
        var newObjects: [Int] = []
        // Of those, the ones whose stored copy differed from the stream: the store's is replaced.
        var replacing: Set<Int> = []
        // New files below the size that goes to a writer of its own are created and written
        // by `writer`'s threads, each folder's in order, while this one decompresses and
        // hashes the next.
        let writer = StagingWriters(payload: staging.payloadFD, what: "the staging area of \(site.root)")
        defer { writer.stop() }
        for (index, file) in m.files.enumerated() {
            let object = ObjectStore.Object(file.sha256, executable: file.executable)
            let earlier = Int(previous[index])
            if reader.isOmitted(file) {
                // Omitted by a delta: the site's copy, hashed against the manifest first.
                reader.skipOmitted(file)
                guard let stored = try store.locate(object) else {
                    throw Staging.failure("opening \(store.path(of: object))", ENOENT)
                }
                try staging.stageFromStore(object: stored, file: file, at: try staging.place(file.path))
                result.filesShared += 1
            } else if earlier >= 0, fresh[earlier] {
                // The same content twice in this release, the first written here: one file.
                try reader.readPayload(file)
                let by = try writer.link(
                    from: m.files[earlier].path, to: file.path, executable: file.executable, madeBy: madeBy[earlier] < 0 ? nil : Int(madeBy[earlier]))
                madeBy[index] = Int8(by)
                fresh[index] = true
                result.filesShared += 1
            } else if !repairing, try store.looksIntact(object, file), let stored = try store.locate(object),
                case let compared = try staging.stageByComparing(object: stored, file: file, reader: reader, at: try staging.place(file.path)),
                compared != .missing
            {
                if compared == .linked {
                    result.filesShared += 1
                } else {
                    // The stored copy differed from the stream: `stageByComparing` wrote a fresh
                    // one, which replaces it in the store.
                    fresh[index] = true
                    newObjects.append(index)
                    replacing.insert(index)
                    result.bytesWritten += file.size
                }
            } else {
                if file.size >= Self.backgroundWriteBytes {
                    // A large file goes to the disk from a thread of its own, past the page
                    // cache, while this one decompresses and hashes the next bytes.
                    let fd = try staging.create(try staging.place(file.path))
                    do {
                        let large = BackgroundFileWriter(fileDescriptor: fd, path: "the staging area of \(site.root)")
                        do {
                            try reader.readPayload(file) { try large.write($0) }
                            try large.close()
                        } catch {
                            large.abandon()
                            throw error
                        }
                        try staging.finishFile(fd, executable: file.executable)
                    } catch {
                        close(fd)
                        throw error
                    }
                    close(fd)
                } else {
                    madeBy[index] = Int8(try writer.create(file.path, executable: file.executable))
                    try reader.readPayload(file) { try writer.write($0) }
                    try writer.finish()
                }
                fresh[index] = true
                newObjects.append(index)
                result.bytesWritten += file.size
            }
            result.files += 1
        }
        staging.adoptFolders(try writer.drain())
        // The writers' threads and folders are not needed past here.
        writer.stop()
        try reader.finish()
        Sys.step("install.verified")

        // The perimeter: every endpoint the verified release reaches (its tools, its model)
        // must be inside the site's, or allowed by the admin for this install.
        let grants = try ReleaseGrants.make(
            toolManifest: try staging.readFile(ToolManifest.path, limit: ToolManifest.maxBytes), source: ToolManifest.path, known: m,
            recordedModelEndpoint: nil, manifest: { m })
        // A repair keeps the allowances the release was installed (or activated) with.
        let recorded = repairing ? Set(try NameState.load(site, m.name).policy[dir]?.allowances ?? []) : []
        result.allowances = try policy.checkEndpoints(grants, allowEgress: options.allowEgress, recorded: recorded)

        // The rest of the release: the signed manifest and the signatures it was installed with.
        var signatureFiles: [String: [UInt8]] = [:]
        for s in head.embedded { signatureFiles[s.keyID] = s.bytes }
        for (sig, result) in zip(options.detached, head.signatures.results.suffix(options.detached.count)) {
            if let id = result.keyID, result.status == .verified, signatureFiles[id] == nil { signatureFiles[id] = sig.bytes }
        }
        if repairing {
            // Keep every signature the release was installed with.
            for name in FileIO.entries(ofDirectory: target + "/" + SiteLayout.releaseSignatures) ?? [] {
                let id = String(name.dropLast(BundleLayout.signatureSuffix.count))
                if name.hasSuffix(BundleLayout.signatureSuffix), signatureFiles[id] == nil, SHA256Digest(hex: id) != nil,
                    let bytes = try? FileIO.read(
                        target + "/" + SiteLayout.releaseSignatures + "/" + name, limit: BundleLayout.maxSignatureBytes, what: "signature", siteFile: true)
                {
                    signatureFiles[id] = bytes
                }
            }
        }
        try staging.writeReleaseFiles(manifest: head.manifestBytes, signatures: signatureFiles.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) })
        // Everything staged reaches the disk before any of it becomes visible.
        try staging.syncFileSystem()

        // Only now the site lock; what other commands did meanwhile is checked again under it.
        lock = try site.lockForWriting(command: "install", timeout: options.lockTimeout)
        Sys.step("install.locked")
        // The name's state, read once under the lock: for the sequence check, the commit and
        // the activation that may follow.
        var state = try NameState.load(site, m.name)
        if !repairing {
            if FileIO.isDirectory(target) {
                // Installed by another command while this one staged: the same bytes, or refused.
                guard try site.manifestBytes(m.name, dir) == head.manifestBytes else {
                    throw AirlockError(.policy, .releaseCollision, "\(target) holds another release with the same version and id prefix; remove it first")
                }
                result.alreadyInstalled = true
                return result
            }
            downgrade = try checkSequence(
                site: site, manifest: m, bundleID: head.bundleID, allowDowngrade: options.allowDowngrade, highestRecorded: state.highestSequence)
        }

        var created: [ObjectStore.Object] = []
        do {
            // New content joins the store: linked on two threads, then, in manifest order, what
            // could not simply be linked (an object there already, or a file with as many links
            // as the file system allows) is replaced or copied, and any other failure reported.
            try store.reopenForCommit()
            let objects = newObjects.map { ObjectStore.Object(m.files[$0].sha256, executable: m.files[$0].executable) }
            var links: [Staging.StoreLink] = []
            links.reserveCapacity(objects.count)
            for (index, object) in zip(newObjects, objects) {
                links.append(Staging.StoreLink(rel: m.files[index].path, shard: try store.shardCreating(object), name: object.name))
            }
            let linked = staging.linkIntoStore(links)
            for (object, outcome) in zip(objects, linked) {
                if case .linked = outcome { created.append(object) }
            }
            for ((index, object), outcome) in zip(zip(newObjects, objects), linked) {
                switch outcome {
                case .linked: continue
                case .folderFailed(let error): throw error
                case .failed(let err) where err == EEXIST || err == EMLINK:
                    let stored = ObjectStore.Located(folder: try store.shardCreating(object), name: object.name, path: store.path(of: object))
                    // Content that was not in the store when this install looked, and is now: another
                    // install committed it meanwhile, and the release shares its file when it is intact.
                    if err == EEXIST, !repairing, !replacing.contains(index), try staging.adoptStored(m.files[index].path, object: stored) {
                        continue
                    }
                    if try staging.commitObject(m.files[index].path, to: stored) { created.append(object) }
                case .failed(let err):
                    throw Staging.failure("adding \(store.path(of: object)) to the site's object store", err)
                }
            }
            Sys.step("install.objects")
            for d in [site.nameDirectory(m.name), site.releasesDirectory(m.name)] {
                if Sys.mkdir(d, 0o755) == 0 {
                    try FileIO.fsyncPath(String(d[..<d.lastIndex(of: "/")!]))
                } else if errno != EEXIST {
                    throw Staging.failure("creating \(d)")
                }
            }
            try staging.syncFileSystem()
            Sys.step("install.staged")

            // The state knows the release (install time, declared check, highest sequence)
            // before it appears; entries for a release that never appeared are dropped later.
            if !repairing {
                state.installedAt[dir] = Timestamp.format(Timestamp.now())
                state.health[dir] = HealthCheck(manifest: m)
                state.policy[dir] = PolicyRecord(
                    modelEndpoint: m.components["model"]?.metadata["endpoint"] ?? "", allowances: result.allowances.map(\.endpoint.description),
                    evalScore: evalScore.map(EvalAttestation.decimal) ?? (eval != nil ? "failed" : ""))
            }
            if repairing {
                for a in result.allowances where !(state.policy[dir]?.allowances ?? []).contains(a.endpoint.description) {
                    state.policy[dir, default: PolicyRecord()].allowances.append(a.endpoint.description)
                }
            }
            state.highestSequence = max(state.highestSequence, m.sequence)
            try state.save(site, m.name)
            committed = state

            // Appear, complete, in one rename; a repair swaps the verified tree with the
            // drifted one in one exchange, so the release never goes missing.
            try staging.commitTree(to: target, exchange: repairing)
            try FileIO.fsyncPath(site.releasesDirectory(m.name))
            Sys.step("install.renamed")
        } catch {
            // Content committed for a release that did not appear goes again.
            for object in created { store.remove(object) }
            throw error
        }

        var fields: [String: JSONValue] = [
            "release": .string(dir), "bundle_id": .string(head.bundleID.prefixed), "version": .string(m.version),
            "sequence": .integer(m.sequence), "files": .integer(result.files), "files_shared": .integer(result.filesShared),
            "bytes_written": .integer(result.bytesWritten),
        ]
        if let downgrade { fields["downgrade_from_sequence"] = .integer(downgrade) }
        if !result.allowances.isEmpty {
            fields["allowed_egress"] = .array(result.allowances.map { .string("\($0.who) -> \($0.endpoint)") })
        }
        try History.append(site, action: repairing ? "repair" : "install", name: m.name, fields)
        for (who, endpoint) in result.allowances {
            try History.append(
                site, action: "allowance", name: m.name,
                ["release": .string(dir), "bundle_id": .string(head.bundleID.prefixed), "who": .string(who), "endpoint": .string(endpoint.description)])
        }
        return result
    }

    /// For each file, the index of the nearest earlier file with the same content (digest and
    /// mode), or -1. One sort of 4-byte indices: O(n log n) time, 4 bytes a file.
    static func previousWithSameContent(_ files: [ManifestFile]) -> [Int32] {
        var order = (0..<Int32(files.count)).map { $0 }
        order.sort { a, b in
            let x = files[Int(a)], y = files[Int(b)]
            if x.sha256 != y.sha256 { return x.sha256 < y.sha256 }
            if x.executable != y.executable { return !x.executable }
            return a < b
        }
        var previous = [Int32](repeating: -1, count: files.count)
        for k in order.indices.dropFirst() {
            let a = files[Int(order[k - 1])], b = files[Int(order[k])]
            if a.sha256 == b.sha256, a.executable == b.executable { previous[Int(order[k])] = order[k - 1] }
        }
        return previous
    }

    /// Downgrade protection: a lower sequence than the highest installed for the name needs
    /// `allowDowngrade` (and is logged); the same sequence with other content is always refused.
    /// `highestRecorded`: the highest sequence the name's state records (releases removed
    /// since still count).
    static func checkSequence(site: Site, manifest m: Manifest, bundleID: SHA256Digest, allowDowngrade: Bool, highestRecorded mark: UInt64) throws -> UInt64? {
        var highest: (UInt64, String)?
        for dir in site.releases(m.name) {
            guard let bytes = try? site.manifestBytes(m.name, dir),
                let other = try? Manifest.parse(bytes)
            else { continue }
            if other.sequence == m.sequence && SHA256Digest.of(bytes) != bundleID {
                throw AirlockError(
                    .policy, .sequenceReused,
                    "\(m.name) sequence \(m.sequence) is already installed as \(dir) with other content; a vendor never reuses a sequence: ask for a bundle with a new sequence"
                )
            }
            if highest == nil || other.sequence > highest!.0 { highest = (other.sequence, dir) }
        }
        // Releases removed since still count: removing one does not open the door to a downgrade.
        if mark > (highest?.0 ?? 0) { highest = (mark, "an earlier release (since removed)") }
        if let (seq, dir) = highest, m.sequence < seq {
            guard allowDowngrade else {
                throw AirlockError(
                    .policy, .downgrade,
                    "\(m.name) \(m.version) has sequence \(m.sequence), lower than \(dir) (sequence \(seq)) installed here; pass --allow-downgrade if you mean to install an older release"
                )
            }
            return seq
        }
        return nil
    }
}
