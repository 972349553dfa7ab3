import Foundation

/// The JSON coders of the rollout state files: sorted keys, so that the same state is the same
/// bytes.
enum JSONCoding {
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }

    static var decoder: JSONDecoder { JSONDecoder() }
}

extension JSONEncoder {
    /// `encode` as bytes.
    func encode<T: Encodable>(_ value: T) throws -> [UInt8] { Array(try encode(value) as Data) }
}

extension JSONDecoder {
    /// `decode` from bytes.
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T { try decode(type, from: Data(bytes)) }
}
