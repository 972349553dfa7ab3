import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `audit` found in one installed release.
public struct AuditReport: Sendable {
    /// The release name.
    public var name: String
    /// The release folder audited (`<version>-<id12>`).
    public var release: String
    /// Payload paths whose content differs from the manifest, or that are not a regular file
    /// reached without following a link.
    public var modified: [String] = []
    /// Payload paths the manifest lists that are gone.
    public var missing: [String] = []
    /// Entries in `payload/` (other than folders) the manifest does not list, sorted.
    public var extra: [String] = []
    /// Payload paths whose mode is not the installed one (0444, or 0555 for executables).
    public var modeChanged: [String] = []
    /// How many listed files were opened and hashed.
    public var filesChecked = 0

    /// Whether the release matches its manifest: nothing modified, missing, extra or changed in
    /// mode.
    public var clean: Bool { modified.isEmpty && missing.isEmpty && extra.isEmpty && modeChanged.isEmpty }

    /// The `--json` form of `airlock audit` (docs/cli.md).
    public var json: JSONValue {
        .object([
            "name": .string(name), "release": .string(release), "clean": .bool(clean), "files_checked": .integer(filesChecked),
            "modified": .array(modified.map { .string($0) }), "missing": .array(missing.map { .string($0) }),
            "extra": .array(extra.map { .string($0) }), "mode_changed": .array(modeChanged.map { .string($0) }),
        ])
    }
}

extension SiteAdmin {
    /// Re-hashes an installed release against its installed manifest. Throws `name-unknown`; with
    /// `ref`, `release-unknown` and `release-ambiguous`, without it `no-current`; read errors of the
    /// installed manifest (`site-unsafe`, `file-not-found`, `permission-denied`, `is-a-directory`,
    /// `open-failed`, `read-failed`, `file-too-large`); and what `Manifest.parse` throws.
    public static func audit(site: Site, name: String, release ref: String? = nil) throws -> AuditReport {
        try site.requireInstalled(name)
        let dir: String
        if let ref {
            dir = try Activation.resolve(site: site, name: name, ref)
        } else {
            guard let c = site.current(name) else {
                throw AirlockError(.usage, .noCurrent, "\(name) has no current release; name the release to audit")
            }
            dir = c
        }
        let base = site.releaseDirectory(name, dir)
        let bytes = try site.manifestBytes(name, dir)
        let m = try Manifest.parse(bytes)
        var report = AuditReport(name: name, release: dir)
        let hasher = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var listed = Set<String>()
        // No link is followed below the release: a folder replaced by a symlink makes its files
        // modified, never read from elsewhere.
        let payload = BeneathOpener(base + "/" + SiteLayout.releasePayload)
        for f in m.files {
            listed.insert(f.path)
            let fd = payload?.openFile(f.path) ?? -1
            guard fd >= 0 else {
                if errno == ELOOP || errno == ENOTDIR { report.modified.append(f.path) } else { report.missing.append(f.path) }
                continue
            }
            defer { close(fd) }
            var st = stat()
            fstat(fd, &st)
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                report.modified.append(f.path)
                continue
            }
            let want = f.executable ? SiteLayout.executableFileMode : SiteLayout.fileMode
            if st.st_mode & 0o7777 != want { report.modeChanged.append(f.path) }
            hasher.reset()
            var size: UInt64 = 0
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n <= 0 { break }
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                size += UInt64(n)
            }
            if size != f.size || hasher.finish() != f.sha256 { report.modified.append(f.path) }
            report.filesChecked += 1
        }
        // Anything in payload/ the manifest does not list.
        if let e = FileManager.default.enumerator(atPath: base + "/" + SiteLayout.releasePayload) {
            while let rel = e.nextObject() as? String {
                var st = stat()
                guard lstat(base + "/" + SiteLayout.releasePayload + "/" + rel, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) != S_IFDIR && !listed.contains(rel) { report.extra.append(rel) }
            }
        }
        report.extra.sort()
        return report
    }
}
