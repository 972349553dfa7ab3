import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// The bearer token of `airlock serve`'s control endpoints (`<root>/.serve-token`): 32 random
/// bytes as 64 lowercase hex digits, in a file only the site's owner can read (0600). Whoever
/// can read it may steer the site's rollouts, as whoever can write the site root may.
public enum ServeToken {
    /// The site's token; made when missing (under the site lock, exclusively, without
    /// following a link) when `create` is true. Throws `site-unsafe` (the file is a link, has
    /// other names or other readers), `state-corrupt` (not 64 hex digits), the lock's errors and
    /// write errors.
    public static func load(site: Site, create: Bool, lockTimeout: Double = 30) throws -> String? {
        let path = site.path(SiteLayout.serveToken)
        if !FileIO.exists(path) {
            guard create else { return nil }
            let lock = try site.lockForWriting(command: "serve token", timeout: lockTimeout)
            defer { withExtendedLifetime(lock) {} }
            if !FileIO.exists(path) { try write(path, site: site) }
        }
        try SiteSafety.check(site, writing: false)
        let bytes = try FileIO.read(path, limit: 128, what: "serve token", siteFile: true)
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == 64, SHA256Digest(hex: text) != nil else {
            throw AirlockError(
                .io, .stateCorrupt, "\(path) is not a serve token (64 lowercase hex digits); remove it and start airlock serve again to make a new one")
        }
        return text
    }

    private static func write(_ path: String, site: Site) throws {
        var random = SystemRandomNumberGenerator()
        let token = (0..<4).map { _ in
            let v: UInt64 = random.next()
            let hex = String(v, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
        let fd = Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AirlockError.io(errno == ENOSPC ? .diskFull : .writeFailed, "cannot create \(path)", errno: errno) }
        defer { close(fd) }
        try Array((token + "\n").utf8).withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
        guard fchmod(fd, 0o600) == 0, Sys.fsync(fd) == 0 else { throw AirlockError.io(.writeFailed, "cannot write \(path)", errno: errno) }
        try FileIO.fsyncPath(site.root)
        try History.append(site, action: "serve-token", [:])
    }

    /// Whether `presented` (an `Authorization` header) carries `token`, compared in constant
    /// time.
    public static func authorizes(_ presented: String?, token: String) -> Bool {
        guard let presented, presented.hasPrefix("Bearer ") else { return false }
        let given = Array(presented.dropFirst(7).utf8), expected = Array(token.utf8)
        guard given.count == expected.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(given, expected) { diff |= a ^ b }
        return diff == 0
    }
}
