import AirlockFormat
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// What `airlock push` stored.
public struct PushResult: Sendable, JSONRepresentable {
    /// Where: the repository and the tag.
    public var reference: RegistryReference
    /// The image manifest's digest: `REPOSITORY@DIGEST` fetches exactly these bytes.
    public var digest: SHA256Digest
    /// The release name, version and sequence (from the bundle's manifest).
    public var name: String, version: String, sequence: UInt64
    /// The bundle id.
    public var bundleID: SHA256Digest
    /// The layer: the bundle file's digest and size.
    public var layer: OCIDescriptor
    /// For a delta bundle, its base's bundle id.
    public var deltaBase: SHA256Digest?
    /// What the push moved.
    public var stats: TransferStats

    /// The `--json` form of `airlock push` (docs/cli.md).
    public var json: JSONValue {
        var pinned = reference
        pinned.digest = digest
        var o: [String: JSONValue] = [
            "reference": .string(reference.description), "pinned": .string(pinned.description), "digest": .string(digest.prefixed),
            "name": .string(name), "version": .string(version), "sequence": .integer(sequence), "bundle_id": .string(bundleID.prefixed),
            "layer_digest": .string(layer.digest.prefixed), "layer_size": .integer(layer.size), "layer_media_type": .string(layer.mediaType),
            "bytes_sent": .integer(stats.bytesSent), "retries": .integer(stats.retries),
        ]
        if let deltaBase { o["delta_base"] = .string(deltaBase.prefixed) }
        return .object(o)
    }
}

extension Registry {
    /// The tag a bundle is pushed under when none is given: its version; for a delta bundle,
    /// `<version>-delta-<first 12 hex digits of the base's bundle id>`.
    public static func defaultTag(version: String, deltaBase: SHA256Digest?) -> String {
        let tag = RegistryReference.tag(forVersion: version)
        guard let deltaBase else { return tag }
        return String(tag.prefix(128 - 19)) + "-delta-" + deltaBase.hex.prefix(12)
    }

    /// Pushes the bundle at `path` to `reference` (its tag, or the default tag) as an OCI
    /// artifact (docs/registry.md): the bundle's manifest as the config blob, the bundle file as
    /// the one layer, streamed from disk and hashed as it is sent, then the image manifest. The
    /// bundle's structure is checked first (not its signatures: the site checks those). Throws
    /// what `BundleReader` throws for a file that is not a bundle, `registry-*` errors, and
    /// `read-failed`.
    public static func push(
        bundle path: String, to target: RegistryReference, client: RegistryClient, baseManifest: BaseManifestLookup? = nil
    ) async throws -> PushResult {
        guard target.digest == nil else {
            throw AirlockError(.usage, .registryReferenceInvalid, "\(target) names a digest; push to a repository and an optional :TAG")
        }
        // The head: what the config and the annotations say.
        let head = try BundleHead.read(path, baseManifest: baseManifest)
        var reference = target
        reference.tag = target.tag ?? defaultTag(version: head.manifest.version, deltaBase: head.delta?.base)
        let bundleID = SHA256Digest.of(head.manifestBytes)
        let config = OCIDescriptor(mediaType: OCIArtifact.configMediaType, digest: bundleID, size: UInt64(head.manifestBytes.count))
        try await uploadBlob(head.manifestBytes, digest: bundleID, reference: reference, client: client)

        let fd = Sys.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIO.openFailure(path, what: "bundle", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw AirlockError(.usage, .registryPushInvalid, "\(path) is not a regular file; push a bundle file (airlock pack writes one)")
        }
        let size = UInt64(st.st_size)
        let fileName = String(path.split(separator: "/").last ?? "bundle.airlock")
        let layerDigest = try await uploadLayer(fd: fd, size: size, path: path, reference: reference, client: client)
        let layer = OCIDescriptor(
            mediaType: OCIArtifact.layerMediaType(head.compression), digest: layerDigest, size: size, annotations: [OCIArtifact.Annotation.title: fileName])
        var annotations = [
            OCIArtifact.Annotation.name: head.manifest.name, OCIArtifact.Annotation.version: head.manifest.version,
            OCIArtifact.Annotation.sequence: String(head.manifest.sequence), OCIArtifact.Annotation.bundleID: bundleID.prefixed,
            OCIArtifact.Annotation.created: head.manifest.created,
        ]
        if let d = head.delta { annotations[OCIArtifact.Annotation.deltaBase] = d.base.prefixed }
        let manifest = OCIBundleManifest(config: config, layer: layer, annotations: annotations)
        let bytes = manifest.encoded()
        let response = try await client.send(
            .PUT, "/v2/\(reference.repository)/manifests/\(reference.tag!)", headers: [("Content-Type", OCIArtifact.manifestMediaType)],
            body: { .bytes(ByteBuffer(bytes: bytes)) }, scope: pushScope(reference))
        try await check(response, reference: reference, what: "upload", client: client)
        return PushResult(
            reference: reference, digest: SHA256Digest.of(bytes), name: head.manifest.name, version: head.manifest.version, sequence: head.manifest.sequence,
            bundleID: bundleID, layer: layer, deltaBase: head.delta?.base, stats: client.stats)
    }

    /// Uploads a small blob in one request, unless the registry holds it already.
    static func uploadBlob(_ bytes: [UInt8], digest: SHA256Digest, reference: RegistryReference, client: RegistryClient) async throws {
        let head = try await client.send(.HEAD, "/v2/\(reference.repository)/blobs/\(digest.prefixed)", scope: pushScope(reference))
        if head.status.code == 200 { return }
        let location = try await startUpload(reference: reference, client: client)
        let response = try await client.send(
            .PUT, withDigest(location, digest), headers: [("Content-Type", "application/octet-stream")],
            body: { .bytes(ByteBuffer(bytes: bytes)) }, scope: pushScope(reference))
        try await check(response, reference: reference, what: "upload", client: client)
        client.count { $0.bytesSent += UInt64(bytes.count) }
    }

    static func startUpload(reference: RegistryReference, client: RegistryClient) async throws -> String {
        let response = try await client.send(.POST, "/v2/\(reference.repository)/blobs/uploads/", scope: pushScope(reference))
        try await check(response, reference: reference, what: "upload", client: client)
        guard let location = response.headers["Location"].first else {
            throw AirlockError(.io, .registryError, "the registry \(client.host) started an upload for \(reference) without a Location")
        }
        return location
    }

    static func withDigest(_ location: String, _ digest: SHA256Digest) -> String {
        location + (location.contains("?") ? "&" : "?") + "digest=" + digest.prefixed.replacingOccurrences(of: ":", with: "%3A")
    }

    /// Streams the bundle file in one PATCH, hashing each chunk as it is read, then closes the
    /// upload with its digest. A failure part way starts a new upload (a registry appends a
    /// streamed PATCH, so one cannot be sent twice), up to the client's retries.
    static func uploadLayer(fd: Int32, size: UInt64, path: String, reference: RegistryReference, client: RegistryClient) async throws -> SHA256Digest {
        var attempt = 0
        while true {
            let hasher = LayerHasher()
            let sent = SentCounter()
            do {
                let location = try await startUpload(reference: reference, client: client)
                let chunks = FileChunks(fd: fd, size: size, path: path, hasher: hasher, sent: sent)
                let patched = try await client.send(
                    .PATCH, location, headers: [("Content-Type", "application/octet-stream")],
                    body: { .stream(chunks, length: .known(Int64(size))) }, scope: pushScope(reference), timeout: .hours(24), retryable: false)
                try await check(patched, reference: reference, what: "upload", client: client)
                guard sent.value == size else { throw AirlockError(.io, .readFailed, "\(path) changed while it was pushed; push it again") }
                let digest = hasher.finish()
                let next = patched.headers["Location"].first ?? location
                let done = try await client.send(
                    .PUT, withDigest(next, digest), headers: [("Content-Length", "0")], scope: pushScope(reference), retryable: false)
                try await check(done, reference: reference, what: "upload", client: client)
                client.count { $0.bytesSent += size }
                return digest
            } catch let e as AirlockError where e.code == ErrorCode.registryUnreachable.rawValue && attempt < client.options.retries {
                attempt += 1
                try await client.backoff(attempt)
            }
        }
    }
}

final class SentCounter: @unchecked Sendable {
    var value: UInt64 = 0
}

/// A bundle file as the chunks of a streamed upload, each hashed as it is read.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let fd: Int32
    let size: UInt64
    let path: String
    let hasher: LayerHasher
    let sent: SentCounter

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: FileChunks
        var offset: UInt64 = 0

        mutating func next() async throws -> ByteBuffer? {
            guard offset < source.size else { return nil }
            let want = Int(Swift.min(1 << 20, source.size - offset))
            var buffer = ByteBufferAllocator().buffer(capacity: want)
            let at = offset
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { p -> Int in
                let got = Sys.retryingInterrupts { pread(source.fd, p.baseAddress, want, off_t(at)) }
                guard got >= 0 else { throw AirlockError(.io, .readFailed, "cannot read \(source.path)", cause: String(cString: strerror(errno))) }
                return got
            }
            guard n > 0 else { throw AirlockError(.io, .readFailed, "\(source.path) became shorter while it was pushed; push it again") }
            buffer.withUnsafeReadableBytes { source.hasher.update($0) }
            offset += UInt64(n)
            source.sent.value = offset
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}

/// What `push` reads of a bundle before it uploads: the manifest, the delta entry, the compression.
struct BundleHead {
    var manifestBytes: [UInt8]
    var manifest: Manifest
    var delta: DeltaInfo?
    var compression: Compression

    static func read(_ path: String, baseManifest: BaseManifestLookup?) throws -> BundleHead {
        let reader = try BundleReader(path: path)
        reader.baseManifest = baseManifest
        let bytes = try reader.readManifest()
        _ = try reader.readSignatures()
        let manifest = try Manifest.parse(bytes)
        try reader.readSums(for: manifest)
        return BundleHead(manifestBytes: bytes, manifest: manifest, delta: reader.delta, compression: reader.compression ?? .none)
    }
}
