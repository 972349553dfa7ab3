import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

public struct InstalledRelease: Sendable {
    public var directory: String
    public var version: String
    public var sequence: UInt64
    public var bundleID: SHA256Digest
    public var bytes: UInt64
    public var files: Int
    public var installedAt: String?
    public var pinned: Bool

    var json: JSONValue {
        .object([
            "release": .string(directory), "version": .string(version), "sequence": .integer(sequence),
            "bundle_id": .string(bundleID.prefixed), "bytes": .integer(bytes), "files": .integer(files),
            "installed_at": installedAt.map { .string($0) } ?? .null, "pinned": .bool(pinned),
        ])
    }
}

/// The state of one release name on a site.
public struct NameStatus: Sendable {
    public var name: String
    public var current: String?
    public var rollbackTarget: String?
    public var releases: [InstalledRelease]

    public var currentRelease: InstalledRelease? { releases.first { $0.directory == current } }

    public var json: JSONValue {
        .object([
            "name": .string(name),
            "current": current.map { .string($0) } ?? .null,
            "bundle_id": currentRelease.map { .string($0.bundleID.prefixed) } ?? .null,
            "rollback_target": rollbackTarget.map { .string($0) } ?? .null,
            "releases": .array(releases.map(\.json)),
        ])
    }
}

/// The `--json` form of `airlock status` (docs/cli.md): every name (or one) on a site.
public struct SiteStatus: Sendable, JSONRepresentable {
    public var root: String
    public var names: [NameStatus]

    public var json: JSONValue { .object(["root": .string(root), "names": .array(names.map(\.json))]) }
}

extension SiteAdmin {
    /// `status` of a site, as one result.
    public static func siteStatus(site: Site, name: String? = nil) throws -> SiteStatus {
        SiteStatus(root: site.root, names: try status(site: site, name: name))
    }

    public static func status(site: Site, name: String? = nil) throws -> [NameStatus] {
        let names = name.map { [$0] } ?? site.names()
        if let name { try site.requireInstalled(name) }
        return try names.map { n in
            let state = try NameState.load(site, n).reconciled(installed: site.releases(n), current: site.current(n))
            let releases = site.releases(n).compactMap { dir -> InstalledRelease? in
                guard let bytes = try? site.manifestBytes(n, dir),
                    let m = try? Manifest.parse(bytes)
                else { return nil }
                return InstalledRelease(
                    directory: dir, version: m.version, sequence: m.sequence, bundleID: SHA256Digest.of(bytes), bytes: m.totalBytes,
                    files: m.files.count, installedAt: state.installedAt[dir], pinned: state.pinned.contains(dir))
            }.sorted { $0.sequence < $1.sequence || ($0.sequence == $1.sequence && $0.directory < $1.directory) }
            return NameStatus(name: n, current: site.current(n), rollbackTarget: state.rollbackTarget, releases: releases)
        }
    }
}
