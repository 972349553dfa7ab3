import AirlockFormat
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A bundle's image manifest as a registry served it, checked.
public struct ResolvedBundle: Sendable {
    /// What was asked for.
    public var reference: RegistryReference
    /// The manifest's digest (computed here from its bytes, never taken from a header).
    public var digest: SHA256Digest
    /// The manifest, parsed and checked.
    public var manifest: OCIBundleManifest

    /// The reference pinned to the manifest's digest: what to write down to fetch these bytes again.
    public var pinned: RegistryReference {
        var r = reference
        r.digest = digest
        return r
    }
}

/// The registry operations of `push`, `pull`, `install oci://` and `verify oci://`.
public enum Registry {
    static let manifestAccept = [
        OCIArtifact.manifestMediaType, "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ].joined(separator: ", ")

    static func pullScope(_ r: RegistryReference) -> String { "repository:\(r.repository):pull" }
    static func pushScope(_ r: RegistryReference) -> String { "repository:\(r.repository):pull,push" }

    /// Fetches and checks the image manifest `reference` names. Throws `registry-not-found`,
    /// `registry-auth-failed`, `registry-error`, `registry-manifest-invalid` (not an Airlock
    /// bundle, oversized, or bytes that do not hash to the digest asked for) and what
    /// `RegistryClient.send` throws.
    public static func resolve(_ reference: RegistryReference, client: RegistryClient) async throws -> ResolvedBundle {
        guard let ref = reference.reference else {
            throw AirlockError(.usage, .registryReferenceInvalid, "\(reference) names no tag or digest: add :TAG or @sha256:DIGEST")
        }
        let response = try await client.send(
            .GET, "/v2/\(reference.repository)/manifests/\(ref)", headers: [("Accept", manifestAccept)], scope: pullScope(reference), timeout: .seconds(60))
        try await check(response, reference: reference, what: "manifest", client: client)
        if let length = response.headers["Content-Length"].first.flatMap({ Int($0) }), length > OCIArtifact.maxManifestBytes {
            throw AirlockError(
                .verification, .registryManifestInvalid,
                "\(reference) is not an Airlock bundle: its manifest is \(length) bytes, more than the \(OCIArtifact.maxManifestBytes) allowed")
        }
        let bytes: [UInt8]
        do {
            bytes = Array(try await response.body.collect(upTo: OCIArtifact.maxManifestBytes).readableBytesView)
        } catch let e as NIOTooManyBytesError {
            throw AirlockError(
                .verification, .registryManifestInvalid,
                "\(reference) is not an Airlock bundle: its manifest is more than the \(OCIArtifact.maxManifestBytes) bytes allowed", cause: "\(e)")
        } catch {
            throw client.unreachable(error, url: "\(reference)")
        }
        let digest = SHA256Digest.of(bytes)
        if let want = reference.digest, want != digest {
            throw AirlockError(
                .verification, .registryManifestInvalid,
                "the registry served a manifest for \(reference) whose bytes hash to \(digest.prefixed), not to the digest asked for; nothing was trusted")
        }
        let manifest = try OCIBundleManifest.parse(bytes, contentType: response.headers["Content-Type"].first, source: reference.description)
        return ResolvedBundle(reference: reference, digest: digest, manifest: manifest)
    }

    /// Throws for any status but 2xx: `registry-not-found` (404), `registry-auth-failed` (401,
    /// 403), `registry-error` (the rest), each with the registry's own explanation.
    static func check(_ response: HTTPClientResponse, reference: RegistryReference, what: String, client: RegistryClient) async throws {
        let code = response.status.code
        guard !(200..<300).contains(code) else { return }
        let why = await RegistryClient.explain(response)
        switch code {
        case 404:
            throw AirlockError(
                .usage, .registryNotFound, "the registry \(client.host) has no \(what) for \(reference) (\(why)); check the repository and the tag")
        case 401, 403:
            throw AirlockError(
                .io, .registryAuthFailed,
                "the registry \(client.host) refused access to \(reference) (\(why)); check --authfile and that its user may \(what == "upload" ? "push to" : "pull from") \(reference.repository)"
            )
        default:
            throw AirlockError(.io, .registryError, "the registry \(client.host) failed the \(what) request for \(reference) (\(why))")
        }
    }

    /// Streams the layer `resolved` describes to `sink`, from byte `offset` on (the caller holds
    /// the bytes before it, already fed to `hasher`), resuming with range requests after a cut
    /// connection. Each byte is hashed once; the size and digest are checked at the end
    /// (`registry-digest-mismatch`, also as soon as the registry sends more than the size).
    /// `sink` takes each buffer as it arrived (it may keep it) on a cooperative thread, and may
    /// block (a full `ByteFeed`).
    public static func download(
        _ resolved: ResolvedBundle, client: RegistryClient, from offset: UInt64 = 0, hasher: LayerHasher = LayerHasher(),
        sink: @Sendable (ByteBuffer) throws -> Void
    ) async throws {
        let layer = resolved.manifest.layer
        let reference = resolved.reference
        var received = offset
        var attempts = 0
        func mismatch(_ why: String) -> AirlockError {
            AirlockError(
                .verification, .registryDigestMismatch,
                "the layer of \(reference) (\(layer.digest.prefixed), \(layer.size) bytes) does not match its manifest: \(why); nothing was installed")
        }
        while received < layer.size {
            var headers: [(String, String)] = []
            if received > 0 { headers.append(("Range", "bytes=\(received)-")) }
            let response = try await client.send(
                .GET, "/v2/\(reference.repository)/blobs/\(layer.digest.prefixed)", headers: headers, scope: pullScope(reference), timeout: .hours(24))
            try await check(response, reference: reference, what: "layer", client: client)
            // A registry that ignores the range sends the whole blob: skip what we hold.
            var skip: UInt64 = 0
            if received > 0 {
                if response.status.code == 206 {
                    let range = response.headers["Content-Range"].first ?? ""
                    guard range.hasPrefix("bytes \(received)-") else { throw mismatch("the registry resumed at \(range), not at byte \(received)") }
                    client.count { $0.resumes += 1 }
                } else {
                    skip = received
                }
            }
            do {
                for try await buffer in response.body {
                    var chunk = buffer
                    let arrived = UInt64(chunk.readableBytes)
                    client.count { $0.bytesReceived += arrived }
                    if skip > 0 {
                        let n = Int(min(skip, arrived))
                        chunk.moveReaderIndex(forwardBy: n)
                        skip -= UInt64(n)
                        if chunk.readableBytes == 0 { continue }
                    }
                    guard received + UInt64(chunk.readableBytes) <= layer.size else { throw mismatch("the registry sent more than \(layer.size) bytes") }
                    chunk.withUnsafeReadableBytes { hasher.update($0) }
                    do { try sink(chunk) } catch { throw SinkFailure(error: error) }
                    received += UInt64(chunk.readableBytes)
                }
            } catch let e as AirlockError {
                throw e
            } catch let e as SinkFailure {
                // Whatever took the bytes failed (a reader that stopped reading): not the
                // network's fault, so no retry.
                throw e.error
            } catch {
                if error is CancellationError || attempts >= client.options.retries { throw client.unreachable(error, url: "\(reference)") }
                attempts += 1
                client.count { $0.retries += 1 }
                try await client.backoff(attempts)
                continue
            }
            if received < layer.size {
                // The connection ended early without an error: resume.
                guard attempts < client.options.retries else { throw mismatch("the registry sent \(received) bytes and stopped") }
                attempts += 1
                client.count { $0.retries += 1 }
                try await client.backoff(attempts)
            }
        }
        let digest = hasher.finish()
        guard digest == layer.digest else { throw mismatch("its \(received) bytes hash to \(digest.prefixed)") }
    }
}

/// The running SHA-256 of a layer as it arrives (kept across resumed requests).
public final class LayerHasher: @unchecked Sendable {
    private let hasher = SHA256Hasher()

    /// A hasher that has seen nothing yet.
    public init() {}

    /// Adds `bytes`.
    public func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bytes) }

    /// The digest of everything added.
    public func finish() -> SHA256Digest { hasher.finish() }
}

/// An error thrown by the consumer of a download, passed through as it is.
struct SinkFailure: Error {
    var error: Error
}
