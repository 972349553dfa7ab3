import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One installed release of a name, as `airlock status` lists it.
public struct InstalledRelease: Sendable {
    /// The release folder (`<version>-<id12>`).
    public var directory: String
    /// The version its manifest gives.
    public var version: String
    /// The sequence its manifest gives.
    public var sequence: UInt64
    /// The bundle id: the SHA-256 of the installed manifest.
    public var bundleID: SHA256Digest
    /// The total size of its payload files, as the manifest lists them.
    public var bytes: UInt64
    /// The number of payload files the manifest lists.
    public var files: Int
    /// When it was installed, from the name's state (nil: not recorded).
    public var installedAt: String?
    /// Whether it is pinned (kept through `gc`).
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
    /// The release name.
    public var name: String
    /// The release folder `current` points at (nil: none).
    public var current: String?
    /// The release a rollback would switch to (nil: none).
    public var rollbackTarget: String?
    /// Every installed release whose manifest reads, by sequence.
    public var releases: [InstalledRelease]

    /// The installed release `current` points at (nil: none).
    public var currentRelease: InstalledRelease? { releases.first { $0.directory == current } }

    /// One entry of `names` in the `--json` form of `airlock status` (docs/cli.md).
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
    /// The site root.
    public var root: String
    /// The names reported on, sorted.
    public var names: [NameStatus]

    /// The `--json` form of `airlock status` (docs/cli.md).
    public var json: JSONValue { .object(["root": .string(root), "names": .array(names.map(\.json))]) }
}

extension SiteAdmin {
    /// `status` of a site, as one result. Throws what `status(site:name:)` throws: `name-unknown` for a
    /// `name` not installed, `state-corrupt`, and read errors of a name's state (`site-unsafe`,
    /// `file-not-found`, `permission-denied`, `is-a-directory`, `open-failed`, `read-failed`,
    /// `file-too-large`).
    public static func siteStatus(site: Site, name: String? = nil) throws -> SiteStatus {
        SiteStatus(root: site.root, names: try status(site: site, name: name))
    }

    /// The state of `name` (nil: of every name installed on the site): `current`, the rollback
    /// target and each installed release. Throws `name-unknown` for a `name` not installed,
    /// `state-corrupt`, and read errors of a name's state (`site-unsafe`, `permission-denied`,
    /// `read-failed`, ...).
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
