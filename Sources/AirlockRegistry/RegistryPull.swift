import AirlockFormat
import CAirlockSystem
import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat

#if canImport(Glibc)
import Glibc
#endif

/// What `airlock pull` fetched.
public struct PullResult: Sendable, JSONRepresentable {
    /// The manifest fetched, pinned to its digest.
    public var resolved: ResolvedBundle
    /// The file written.
    public var path: String
    /// Bytes already on disk from an earlier, interrupted pull of the same layer.
    public var resumedFrom: UInt64
    /// What the pull moved.
    public var stats: TransferStats

    /// The `--json` form of `airlock pull` (docs/cli.md).
    public var json: JSONValue {
        let m = resolved.manifest
        return .object([
            "reference": .string(resolved.reference.description), "pinned": .string(resolved.pinned.description),
            "digest": .string(resolved.digest.prefixed), "path": .string(path), "layer_digest": .string(m.layer.digest.prefixed),
            "layer_size": .integer(m.layer.size), "bundle_id": .string(m.config.digest.prefixed), "resumed_from": .integer(resumedFrom),
            "bytes_received": .integer(stats.bytesReceived), "retries": .integer(stats.retries), "resumes": .integer(stats.resumes),
            "annotations": .object(m.annotations.mapValues { .string($0) }),
        ])
    }
}

extension Registry {
    /// The file an interrupted pull of `layer` into `out` leaves, to resume from.
    public static func partialPath(_ out: String, layer: SHA256Digest) -> String { out + ".\(layer.hex.prefix(16)).partial" }

    /// Downloads the bundle `reference` names to `out`: into a partial file beside it (kept when
    /// the pull fails, so that the same command resumes it with a range request), renamed to
    /// `out` once its size and digest match the manifest's. Nothing about the bundle is trusted
    /// here: `airlock verify` decides that. Throws what `resolve` and `download` throw,
    /// `create-failed` and `write-failed`.
    public static func pull(_ reference: RegistryReference, to out: String, client: RegistryClient) async throws -> PullResult {
        let resolved = try await resolve(reference, client: client)
        let layer = resolved.manifest.layer
        let partial = partialPath(out, layer: layer.digest)
        let hasher = LayerHasher()
        var resumedFrom: UInt64 = 0
        // A partial file from an earlier pull: ours, regular, not linked elsewhere, not longer
        // than the layer. Its bytes are hashed once more (they are not sent again).
        var fd = Sys.open(partial, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 {
            var st = stat()
            if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid(), st.st_nlink == 1, UInt64(st.st_size) <= layer.size {
                resumedFrom = UInt64(st.st_size)
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                var at: UInt64 = 0
                while at < resumedFrom {
                    let n = buffer.withUnsafeMutableBytes { p in Sys.retryingInterrupts { pread(fd, p.baseAddress, p.count, off_t(at)) } }
                    guard n > 0 else { break }
                    buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    at += UInt64(n)
                }
                guard at == resumedFrom, lseek(fd, off_t(at), SEEK_SET) == off_t(at) else {
                    close(fd)
                    throw AirlockError(.io, .readFailed, "cannot read the partial download \(partial); remove it and pull again")
                }
            } else {
                close(fd)
                throw AirlockError(
                    .usage, .createFailed,
                    "\(partial) is in the way: it is not a partial download of this layer made by this user (a link, another owner, or too long); remove it and pull again"
                )
            }
        } else {
            fd = Sys.open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw AirlockError(.io, .createFailed, "cannot create \(partial) to download into", cause: String(cString: strerror(errno)))
            }
        }
        let file = fd
        defer { close(file) }
        do {
            try await download(resolved, client: client, from: resumedFrom, hasher: hasher) { b in
                try b.withUnsafeReadableBytes { try FileIO.writeAll(file, $0, path: partial) }
            }
        } catch let e as AirlockError {
            if e.code == ErrorCode.registryDigestMismatch.rawValue {
                _ = Sys.unlink(partial)
                throw e
            }
            var st = stat()
            let kept = fstat(file, &st) == 0 ? UInt64(st.st_size) : 0
            throw AirlockError(
                e.kind, e.code, e.message + "; \(kept) of \(layer.size) bytes are kept in \(partial): run the same command again to resume", cause: e.cause)
        }
        guard Sys.fsync(file) == 0 else { throw AirlockError(.io, .writeFailed, "cannot flush \(partial) to disk", cause: String(cString: strerror(errno))) }
        guard Sys.rename(partial, out) == 0 else {
            throw AirlockError(.io, .writeFailed, "cannot rename \(partial) to \(out)", cause: String(cString: strerror(errno)))
        }
        FileIO.syncParentDirectory(of: out)
        return PullResult(resolved: resolved, path: out, resumedFrom: resumedFrom, stats: client.stats)
    }
}

/// A bundle streamed from a registry into the one-pass verifier or installer: the layer's
/// buffers go, as they arrive, into a `ByteFeed` that a `BundleReader` reads, with no copy on
/// disk and no pipe. The reader's completion check waits for the download and fails unless the
/// layer's size and digest matched its manifest, so nothing is reported verified or installed
/// before that.
public final class RegistryBundleStream: Sendable {
    /// The manifest the layer came from.
    public let resolved: ResolvedBundle
    private let state: State

    private final class State: Sendable {
        let done = DispatchSemaphore(value: 0)
        let failure = NIOLockedValueBox<Error?>(nil)

        /// Waits for the download; its error, if it failed. Any number of callers may wait.
        func wait() -> Error? {
            done.wait()
            done.signal()
            return failure.withLockedValue { $0 }
        }
    }

    /// The reader stopped reading (it closed the feed): not a download failure.
    struct ReaderGone: Error {}

    private init(resolved: ResolvedBundle, state: State) {
        self.resolved = resolved
        self.state = state
    }

    /// Resolves `reference` (blocking) and starts downloading its layer. Returns the stream and
    /// the reader to hand to `Verifier.verify(reader:)` or `Installer.install(reader:)`; let the
    /// reader go before calling `outcome(of:)`.
    public static func open(_ reference: RegistryReference, client: RegistryClient) throws -> (RegistryBundleStream, BundleReader) {
        let resolved = try Registry.blocking { try await Registry.resolve(reference, client: client) }
        let feed = ByteFeed()
        let state = State()
        Task.detached {
            do {
                try await Registry.download(resolved, client: client) { b in
                    // The buffer is kept as it is (no copy): the reader copies it once.
                    guard feed.put(Data(buffer: b, byteTransferStrategy: .noCopy)) else { throw ReaderGone() }
                }
            } catch {
                state.failure.withLockedValue { $0 = error }
            }
            feed.end()
            state.done.signal()
        }
        let reader = BundleReader(feed: feed, label: reference.description) {
            if let e = state.wait(), !(e is ReaderGone) { throw e }
        }
        return (RegistryBundleStream(resolved: resolved, state: state), reader)
    }

    /// The error to report for a verify or install of this stream that failed with `error`:
    /// the download's own failure when there was one (a cut the retries could not heal shows
    /// as a truncated bundle to the reader), else `error`. Call it after the reader is gone.
    public func outcome(of error: Error) -> Error {
        if let e = state.wait(), !(e is ReaderGone) { return e }
        return error
    }

    /// Waits for the download to end (after the reader is gone).
    public func wait() { _ = state.wait() }
}

extension Registry {
    /// Runs `body` to completion from synchronous code (the CLI's commands), blocking the
    /// calling thread, which must not be one of Swift's cooperative threads.
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = NIOLockedValueBox<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let r: Result<T, Error>
            do { r = .success(try await body()) } catch { r = .failure(error) }
            box.withLockedValue { $0 = r }
            done.signal()
        }
        done.wait()
        return try box.withLockedValue { $0! }.get()
    }
}
