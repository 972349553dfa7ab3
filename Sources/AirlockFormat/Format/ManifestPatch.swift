import CZstd

/// The manifest of a delta bundle, carried as a patch against its base release's manifest
/// (docs/format.md, "Delta bundles"): one zstd frame compressed with the base manifest as its
/// prefix, exactly what `zstd --patch-from=BASE` writes and reads. The manifest of a new release
/// repeats most of its base's (paths, sizes, digests of unchanged files), so the patch costs
/// about what changed.
public enum ManifestPatch {
    /// The zstd level a patch is made with: the manifest is small beside the payload, so its
    /// bytes are worth the time.
    public static let level: Int32 = 19
    /// Largest patch entry a reader accepts.
    public static let maxBytes = BundleLayout.maxManifestBytes
    /// The size of zstd's match tables when making a patch, as a power of two.
    static let tableLog: Int32 = 20
    /// The largest window a patch may use: a base and a manifest of 64 MiB each.
    static let maxWindowLog: Int32 = 27

    /// The window that lets the frame reach back over the whole base: the base and the new
    /// manifest together, rounded up to a power of two (2^10 at least).
    static func windowLog(base: Int, target: Int) -> Int32 {
        var log: Int32 = 10
        while (1 << Int(log)) < base + target && log < maxWindowLog { log += 1 }
        return log
    }

    private static func failed(_ code: Int, _ what: String) -> AirlockError {
        let name = ZSTD_getErrorName(code).map { String(cString: $0) } ?? "error \(code)"
        return AirlockError(.internal, .`internal`, "cannot \(what) the manifest patch: \(name)")
    }

    /// The patch that turns `base` into `target`. Throws `internal` when zstd can not run
    /// (out of memory).
    public static func make(_ target: [UInt8], base: [UInt8]) throws -> [UInt8] {
        precondition(target.count <= BundleLayout.maxManifestBytes && base.count <= BundleLayout.maxManifestBytes)
        guard let cctx = ZSTD_createCCtx() else { throw failed(0, "set up") }
        defer { ZSTD_freeCCtx(cctx) }
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(target.count))
        let written = try base.withUnsafeBytes { b in
            try target.withUnsafeBytes { t in
                // Level 19's search with its match tables capped at 2^20 entries each (8 MiB in
                // all, not the 80 MiB level 19 takes for a window this size): pack stays under
                // 64 MiB, and the long matches a patch is made of are still found.
                for (p, v) in [
                    (ZSTD_c_compressionLevel, level), (ZSTD_c_windowLog, windowLog(base: base.count, target: target.count)),
                    (ZSTD_c_hashLog, tableLog), (ZSTD_c_chainLog, tableLog), (ZSTD_c_checksumFlag, 1), (ZSTD_c_contentSizeFlag, 1),
                ] {
                    let r = ZSTD_CCtx_setParameter(cctx, p, v)
                    if ZSTD_isError(r) != 0 { throw failed(r, "set up") }
                }
                let r = ZSTD_CCtx_refPrefix(cctx, b.baseAddress, b.count)
                if ZSTD_isError(r) != 0 { throw failed(r, "set up") }
                return try out.withUnsafeMutableBytes { o in
                    let n = ZSTD_compress2(cctx, o.baseAddress, o.count, t.baseAddress, t.count)
                    if ZSTD_isError(n) != 0 { throw failed(n, "write") }
                    return n
                }
            }
        }
        out.removeSubrange(written...)
        return out
    }

    static func invalid(_ what: String) -> AirlockError {
        .verification(
            .manifestPatchInvalid,
            "the bundle's \(BundleLayout.manifestPatchEntry) \(what); the delta bundle is damaged or was made against another base: ask the vendor for the full bundle"
        )
    }

    /// The manifest `patch` gives when applied to `base`: exactly one zstd frame (not a
    /// skippable one), with its content size declared (at most 64 MiB) and its checksum, a window of at most 2^27, and
    /// nothing after it. Memory: the declared size, allocated once. Throws
    /// `manifest-patch-invalid`.
    public static func apply(_ patch: [UInt8], base: [UInt8]) throws(AirlockError) -> [UInt8] {
        // A zstd frame (not a skippable one) that carries its checksum.
        guard patch.count > 5, patch[0..<4] == [0x28, 0xB5, 0x2F, 0xFD] else { throw invalid("is not a zstd frame") }
        guard patch[4] & 0x04 != 0 else { throw invalid("carries no checksum") }
        let result: Result<[UInt8], AirlockError> = patch.withUnsafeBytes { p in
            let size = ZSTD_getFrameContentSize(p.baseAddress, p.count)
            if size == airlock_zstd_contentsize_error { return .failure(invalid("is not a zstd frame")) }
            if size == airlock_zstd_contentsize_unknown { return .failure(invalid("does not declare the size of the manifest")) }
            guard size <= UInt64(BundleLayout.maxManifestBytes) else {
                return .failure(invalid("declares a manifest of \(size) bytes, more than the \(BundleLayout.maxManifestBytes) allowed"))
            }
            let frame = ZSTD_findFrameCompressedSize(p.baseAddress, p.count)
            if ZSTD_isError(frame) != 0 { return .failure(invalid("is not a complete zstd frame")) }
            guard frame == p.count else { return .failure(invalid("holds bytes after its zstd frame")) }
            guard let dctx = ZSTD_createDCtx() else { return .failure(AirlockError(.internal, .outOfMemory, "cannot set up zstd")) }
            defer { ZSTD_freeDCtx(dctx) }
            var out = [UInt8](repeating: 0, count: Int(size))
            let n = base.withUnsafeBytes { b in
                out.withUnsafeMutableBytes { o -> Int in
                    var r = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, maxWindowLog)
                    if ZSTD_isError(r) != 0 { return r }
                    r = ZSTD_DCtx_refPrefix(dctx, b.baseAddress, b.count)
                    if ZSTD_isError(r) != 0 { return r }
                    return ZSTD_decompressDCtx(dctx, o.baseAddress, o.count, p.baseAddress, p.count)
                }
            }
            if ZSTD_isError(n) != 0 {
                return .failure(invalid("does not apply to the base's manifest (\(ZSTD_getErrorName(n).map { String(cString: $0) } ?? "zstd error"))"))
            }
            guard n == out.count else { return .failure(invalid("gives \(n) bytes, not the \(out.count) it declares")) }
            return .success(out)
        }
        return try result.get()
    }
}
