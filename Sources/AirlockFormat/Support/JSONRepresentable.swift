/// A result Airlock prints as JSON (`--json`, docs/cli.md): its JSON form is defined once, by
/// the library type, and encodes as that value with any `Encoder`. The CLI prints `json` with
/// `CanonicalJSON.pretty`, so the same result always gives the same bytes.
public protocol JSONRepresentable: Encodable {
    /// The documented JSON form.
    var json: JSONValue { get }
}

extension JSONRepresentable {
    /// Encodes `json`, the documented JSON form. Throws only what `encoder` throws, never an
    /// Airlock error code.
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension JSONValue: Encodable {
    /// Encodes the value as itself; a number as an integer when its text is one, else as a
    /// double. Throws only what `encoder` throws, never an Airlock error code.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .number(let text):
            var c = encoder.singleValueContainer()
            if let i = Int64(text) {
                try c.encode(i)
            } else if let u = UInt64(text) {
                try c.encode(u)
            } else {
                try c.encode(Double(text) ?? .nan)
            }
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let fields):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { try c.encode(v, forKey: Key(k)) }
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
