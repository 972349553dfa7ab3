/// A JSON value as Airlock reads it: strictly (RFC 8259, UTF-8, no duplicate keys) and with
/// numbers kept as their source text, so that no integer is silently rounded.
public enum JSONValue: Equatable, Sendable {
    /// JSON `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// The number's exact text, e.g. `7` or `0.93`.
    case number(String)
    /// A string, unescaped.
    case string(String)
    /// An array, in order.
    case array([JSONValue])
    /// An object, by key.
    case object([String: JSONValue])

    /// A number from an integer, written in decimal.
    public static func integer<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }

    /// The string, or nil when the value is not a string.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The members, or nil when the value is not an object.
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    /// The elements, or nil when the value is not an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// The boolean, or nil when the value is not a boolean.
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }

    /// The value as a non-negative integer no larger than `max`, or nil when it is anything else
    /// (a decimal, an exponent, a negative number, a string).
    public func unsignedInteger(max: UInt64 = BundleLayout.maxInteger) -> UInt64? {
        guard case .number(let text) = self, !text.isEmpty,
            text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            text == "0" || !text.hasPrefix("0"), text.utf8.count <= 20,
            let v = UInt64(text), v <= max
        else { return nil }
        return v
    }
}
