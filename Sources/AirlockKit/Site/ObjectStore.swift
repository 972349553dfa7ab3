import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The site's content store, `.objects/sha256/`, reached through descriptors: the store folder
/// is opened once with O_NOFOLLOW, each shard folder relative to it with O_NOFOLLOW, and each
/// object relative to its shard's descriptor. A symlink planted in the store after the site's
/// safety check is never followed, and no object's path is walked from the root again.
///
/// Before the site lock (while an install stages) it answers lookups: a shard that the listing
/// made at `init` did not show holds nothing to reuse, so the objects of a first install cost
/// no system call to look up. Under the lock, `reopenForCommit` forgets every descriptor and
/// what was listed, and `shardCreating` opens the shards new content goes to, making them when
/// missing. Not thread-safe: the installing thread uses it (`Staging.linkIntoStore` hands other
/// threads the descriptors, not the store).
final class ObjectStore {
    /// An object of the store: its shard (the digest's first byte) and its name in the shard.
    struct Object {
        let shard: Int
        let name: String

        init(_ digest: SHA256Digest, executable: Bool) {
            let hex = digest.hex
            shard = Int(hex.prefix(2), radix: 16)!
            name = hex + (executable ? SiteLayout.executableSuffix : "")
        }
    }

    /// An object in an open shard: the descriptor, the name, and its path for messages.
    struct Located {
        let folder: Int32
        let name: String
        let path: String
    }

    /// `<root>/.objects/sha256`, for messages.
    let path: String
    private let site: Site
    private var fd: Int32
    /// Per shard: its open descriptor, or `unopened`, or `absent`.
    private var shards: [Int32]
    private static let unopened: Int32 = -1
    private static let absent: Int32 = -2

    init(site: Site) throws {
        self.site = site
        path = site.path(SiteLayout.objects, SiteLayout.objectsAlgorithm)
        fd = try Self.open(site)
        shards = Array(repeating: Self.absent, count: 256)
        for name in FileIO.entries(fd) {
            if let i = Self.shardIndex(name) { shards[i] = Self.unopened }
        }
    }

    /// `.objects` opened below the root, then `sha256` below it, neither followed if a link.
    private static func open(_ site: Site) throws -> Int32 {
        let objects = site.path(SiteLayout.objects)
        let parent = Sys.open(objects, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard parent >= 0 else { throw unsafeOrFailure(objects) }
        defer { close(parent) }
        let fd = Sys.openat(parent, SiteLayout.objectsAlgorithm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw unsafeOrFailure(objects + "/" + SiteLayout.objectsAlgorithm) }
        return fd
    }

    private static func unsafeOrFailure(_ path: String) -> AirlockError {
        if errno == ELOOP || errno == ENOTDIR {
            return AirlockError(
                .io, .siteUnsafe, "\(path) is not a real folder (something replaced a folder of the content store); nothing was installed: check the site root")
        }
        return Staging.failure("opening the site's object store \(path)")
    }

    deinit {
        closeShards()
        close(fd)
    }

    static func shardName(_ i: Int) -> String {
        let hex = Array("0123456789abcdef".utf8)
        return String(decoding: [hex[i >> 4], hex[i & 15]], as: UTF8.self)
    }

    /// The index of a two-lowercase-hex-digit shard name, nil for any other name.
    static func shardIndex(_ name: String) -> Int? {
        guard name.utf8.count == 2, name.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return Int(name, radix: 16)
    }

    func path(of o: Object) -> String { path + "/" + Self.shardName(o.shard) + "/" + o.name }

    /// Where `o` would be, when its shard exists (a shard that cannot be opened as a real
    /// folder counts as missing: the content is written again instead).
    func locate(_ o: Object) throws -> Located? {
        var s = shards[o.shard]
        if s == Self.absent { return nil }
        if s == Self.unopened {
            s = Sys.openat(fd, Self.shardName(o.shard), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if s < 0 {
                // Gone (a gc removed it empty), or not a real folder (the commit refuses it).
                guard errno == ENOENT || errno == ELOOP || errno == ENOTDIR else {
                    throw Staging.failure("opening \(path)/\(Self.shardName(o.shard))")
                }
                shards[o.shard] = Self.absent
                return nil
            }
            shards[o.shard] = s
        }
        return Located(folder: s, name: o.name, path: path(of: o))
    }

    /// A cheap check of a stored object before it is reused: a regular file of the right size
    /// and read-only mode. (Its content is what `audit` checks, and reuse compares it with the
    /// stream or hashes it; an object that fails here is written again from the bundle.)
    func looksIntact(_ o: Object, _ file: ManifestFile) throws -> Bool {
        guard let at = try locate(o) else { return false }
        var st = stat()
        guard fstatat(at.folder, at.name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        let mode = file.executable ? SiteLayout.executableFileMode : SiteLayout.fileMode
        return (st.st_mode & S_IFMT) == S_IFREG && UInt64(st.st_size) == file.size && st.st_mode & 0o7777 == mode
    }

    /// Under the site lock, before new content is added: what was opened and listed before the
    /// lock may be stale (a gc may have removed an empty shard meanwhile). The store is opened
    /// again from the root and must be the folder staging looked into: one swapped in meanwhile
    /// (and swapped back before the lock's safety check) is refused.
    func reopenForCommit() throws {
        closeShards()
        shards = Array(repeating: Self.unopened, count: 256)
        let again = try Self.open(site)
        var before = stat(), now = stat()
        guard fstat(fd, &before) == 0, fstat(again, &now) == 0, before.st_dev == now.st_dev, before.st_ino == now.st_ino else {
            close(again)
            throw AirlockError(
                .io, .siteUnsafe, "\(path) was replaced while the release was staged; nothing was installed: check the site root and install again")
        }
        close(fd)
        fd = again
    }

    /// The descriptor of `o`'s shard, the shard made when missing. Called under the site lock.
    func shardCreating(_ o: Object) throws -> Int32 {
        if shards[o.shard] >= 0 { return shards[o.shard] }
        let name = Self.shardName(o.shard)
        if Sys.mkdirat(fd, name, 0o755) != 0 && errno != EEXIST { throw Staging.failure("creating \(path)/\(name)") }
        let s = Sys.openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard s >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw AirlockError(
                    .io, .siteUnsafe,
                    "\(path)/\(name) is not a real folder (something replaced a shard of the content store); nothing was installed: check the site root")
            }
            throw Staging.failure("opening \(path)/\(name)")
        }
        shards[o.shard] = s
        return s
    }

    /// Removes `o` (an object this command added, when its release did not appear).
    func remove(_ o: Object) {
        if shards[o.shard] >= 0 { _ = Sys.unlinkat(shards[o.shard], o.name) }
    }

    private func closeShards() {
        for s in shards where s >= 0 { close(s) }
    }
}
