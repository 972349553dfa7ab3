/// The naming rules for release names, versions and metadata keys.
public enum ReleaseNames {
    /// `^[a-z0-9][a-z0-9._-]{0,63}$`
    public static func isValidName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...64).contains(u.count), isLowerAlnum(u[0]) else { return false }
        return u.dropFirst().allSatisfy { isLowerAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    /// `^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`
    public static func isValidVersion(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...64).contains(u.count), isAlnum(u[0]) else { return false }
        return u.dropFirst().allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x2B || $0 == 0x5F || $0 == 0x2D }
    }

    package static func isValidMetadataKey(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...32).contains(u.count), (0x61...0x7A).contains(u[0]) else { return false }
        return u.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool { (0x61...0x7A).contains(c) || (0x30...0x39).contains(c) }
    private static func isAlnum(_ c: UInt8) -> Bool { isLowerAlnum(c) || (0x41...0x5A).contains(c) }
}
