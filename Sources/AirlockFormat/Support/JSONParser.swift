/// A strict JSON parser. It refuses duplicate keys, invalid UTF-8, lone surrogates, control
/// characters in strings, leading zeros, trailing content and nesting deeper than 64.
public struct JSONParser {
    /// Why the parser refused its input, and where.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// The byte offset in the input at which the parser stopped.
        public var offset: Int
        /// What is wrong, in words.
        public var reason: String
        /// `<reason> at byte <offset>`.
        public var description: String { "\(reason) at byte \(offset)" }
    }

    private let bytes: [UInt8]
    private var i = 0
    private var depth = 0
    private var valuesLeft: Int
    private static let maxDepth = 64
    /// A top-level array member handed to `element` one value at a time instead of being kept
    /// (it appears as an empty array in the result): a manifest's `files` never becomes a tree.
    private var streamKey: String?
    private var element: ((JSONValue) -> Bool)?
    /// With `parse(_:maxValues:streaming:members:)`: the streamed array's objects go here as
    /// their members in order (no dictionary is built for them), any other element as
    /// `element` would have it.
    private var members: ((StreamedElement) -> Bool)?
    /// The members of the streamed object being parsed, reused from one object to the next.
    private var memberBuffer: [(key: String, value: JSONValue)] = []

    /// An element of a streamed array (`parse(_:maxValues:streaming:members:)`).
    public enum StreamedElement {
        /// An object: its members in the order they appear, keys unique (checked).
        case members([(key: String, value: JSONValue)])
        /// Anything else.
        case value(JSONValue)
    }

    /// Parses `bytes`, refusing more than `maxValues` values (objects, arrays and scalars).
    /// With `streaming`, the elements of that top-level array go to `element` as they are parsed;
    /// `element` returns false to stop the parse. Throws only a `Failure` (where and why), never an
    /// Airlock error code: each caller turns it into its own (for a manifest, `manifest-invalid`).
    public static func parse(
        _ bytes: [UInt8], maxValues: Int = 1_000_000, streaming key: String? = nil, element: ((JSONValue) -> Bool)? = nil
    ) throws(Failure) -> JSONValue {
        var p = JSONParser(bytes: bytes, maxValues: maxValues)
        p.streamKey = key
        p.element = element
        p.skipWhitespace()
        let v = try p.value()
        p.skipWhitespace()
        if p.i != bytes.count { throw p.fail("unexpected content after the JSON value") }
        return v
    }

    /// As `parse(_:maxValues:streaming:element:)`, but each object of the streamed array goes
    /// to `members` as its list of members rather than as a dictionary: the same checks
    /// (duplicate keys refused), less work for an array of many small objects (a manifest's
    /// files). `members` gets the list only for the call; it returns false to stop the parse.
    public static func parse(
        _ bytes: [UInt8], maxValues: Int = 1_000_000, streaming key: String, members: @escaping (StreamedElement) -> Bool
    ) throws(Failure) -> JSONValue {
        var p = JSONParser(bytes: bytes, maxValues: maxValues)
        p.streamKey = key
        p.members = members
        p.element = { members(.value($0)) }
        p.skipWhitespace()
        let v = try p.value()
        p.skipWhitespace()
        if p.i != bytes.count { throw p.fail("unexpected content after the JSON value") }
        return v
    }

    private init(bytes: [UInt8], maxValues: Int) {
        self.bytes = bytes
        self.valuesLeft = maxValues
    }

    private func fail(_ reason: String) -> Failure { Failure(offset: i, reason: reason) }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: StaticString) throws(Failure) {
        let n = literal.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("unexpected end of input") }
        for k in 0..<n where bytes[i + k] != literal.utf8Start[k] { throw fail("invalid literal") }
        i += n
    }

    private mutating func value() throws(Failure) -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end of input") }
        valuesLeft -= 1
        if valuesLeft < 0 { throw fail("more JSON values than allowed") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character")
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        var members: [String: JSONValue] = [:]
        try eachMember { p, key, keyOffset throws(Failure) in
            let v: JSONValue
            if p.depth == 1, key == p.streamKey, let element = p.element, p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "[") {
                try p.streamArray(element)
                v = .array([])
            } else {
                v = try p.value()
            }
            if members.updateValue(v, forKey: key) != nil {
                throw Failure(offset: keyOffset, reason: "duplicate key \"\(key)\"")
            }
        }
        return .object(members)
    }

    /// Walks the members of the object whose `{` is at `i`, up to its `}`: each key, with the
    /// offset where it begins, goes to `member`, which parses the value (at `i`) and keeps it.
    private mutating func eachMember(_ member: (inout JSONParser, String, Int) throws(Failure) -> Void) throws(Failure) {
        i += 1
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = i
            let key = try string()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipWhitespace()
            try member(&self, key, keyOffset)
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                return
            }
            throw fail("expected ',' or '}'")
        }
    }

    /// An object, as `object()` parses it, into `memberBuffer` (empty on entry): keys are
    /// compared with those before them, which for the few members of a file entry costs less
    /// than hashing them into a dictionary.
    private mutating func objectMembers() throws(Failure) {
        valuesLeft -= 1
        if valuesLeft < 0 { throw fail("more JSON values than allowed") }
        try enter()
        defer { depth -= 1 }
        var seen: Set<String>?
        try eachMember { p, key, keyOffset throws(Failure) in
            let v = try p.value()
            // Past 16 members the keys go into a set: a hostile object of many keys stays linear.
            if p.memberBuffer.count < 16 {
                if p.memberBuffer.contains(where: { $0.key == key }) { throw Failure(offset: keyOffset, reason: "duplicate key \"\(key)\"") }
            } else {
                if seen == nil { seen = Set(p.memberBuffer.map(\.key)) }
                if !seen!.insert(key).inserted { throw Failure(offset: keyOffset, reason: "duplicate key \"\(key)\"") }
            }
            p.memberBuffer.append((key, v))
        }
    }

    private mutating func streamArray(_ element: (JSONValue) -> Bool) throws(Failure) {
        try enter()
        defer { depth -= 1 }
        valuesLeft -= 1
        i += 1
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return
        }
        while true {
            skipWhitespace()
            if let members, i < bytes.count, bytes[i] == UInt8(ascii: "{") {
                try objectMembers()
                let ok = members(.members(memberBuffer))
                memberBuffer.removeAll(keepingCapacity: true)
                if !ok { throw fail("stopped at an element the caller refused") }
            } else {
                let v = try value()
                if !element(v) { throw fail("stopped at an element the caller refused") }
            }
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                return
            }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try value())
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func number() throws(Failure) -> JSONValue {
        let start = i
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.bytes.count, p.bytes[p.i] >= 0x30, p.bytes[p.i] <= 0x39 { p.i += 1 }
            return p.i - s
        }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count else { throw fail("invalid number") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if digits(&self) == 0 {
            throw fail("invalid number")
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            if digits(&self) == 0 { throw fail("invalid number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            if digits(&self) == 0 { throw fail("invalid number") }
        }
        if i - start > 64 { throw Failure(offset: start, reason: "number longer than 64 characters") }
        return .number(String(decoding: bytes[start..<i], as: UTF8.self))
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func string() throws(Failure) -> String {
        i += 1
        // A string with no escape (every string Airlock writes but those with a quote or a
        // backslash): validated and made straight from the input's bytes.
        let start = i
        while i < bytes.count, bytes[i] >= 0x20, bytes[i] != 0x22, bytes[i] != 0x5C { i += 1 }
        if i < bytes.count, bytes[i] == 0x22 {
            guard let s = String(validating: bytes[start..<i], as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
            i += 1
            return s
        }
        i = start
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < bytes.count else { throw fail("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800, scalar <= 0xDBFF {
                        guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                        else { throw fail("lone surrogate in string") }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00, low <= 0xDFFF else { throw fail("lone surrogate in string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00, scalar <= 0xDFFF {
                        throw fail("lone surrogate in string")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("invalid escape")
                }
                continue
            }
            // Copy a run of plain bytes; UTF-8 validity is checked once for the whole string.
            let s = i
            while i < bytes.count, bytes[i] >= 0x20, bytes[i] != 0x22, bytes[i] != 0x5C { i += 1 }
            out.append(contentsOf: bytes[s..<i])
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }
}
