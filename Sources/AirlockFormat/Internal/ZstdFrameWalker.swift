/// Follows the frame and block headers of a zstd stream as its compressed bytes go by, without
/// decoding anything, to find where the first frame ends. The reader hands libarchive exactly
/// that frame: libarchive would report bytes after it as a decoding error (dropping the output
/// decoded just before them) or, for a skippable frame or a second frame, accept them silently.
/// Whatever follows the frame is the reader's to refuse, as trailing data.
package struct ZstdFrameWalker {
    private enum State {
        case magic(have: Int, value: UInt32)
        case frameHeader(descriptor: UInt8?, remaining: Int, checksum: Bool)
        case skip(remaining: Int, then: After)
        case blockHeader(have: Int, value: UInt32, checksum: Bool)
        case done
        case notZstd
    }

    private enum After {
        case frameEnd
        case block(checksum: Bool)
    }

    private var state = State.magic(have: 0, value: 0)

    /// True once the first frame ended.
    package var frameEnded: Bool { if case .done = state { return true } else { return false } }
    /// True when the stream does not start with a zstd frame: the walker stays out of the way.
    package var notZstd: Bool { if case .notZstd = state { return true } else { return false } }

    /// Feeds bytes; returns how many of them belong to the first frame (all of them until it
    /// ends, and all of them for a stream that is not zstd).
    package mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Int {
        var i = 0
        while i < bytes.count {
            switch state {
            case .done: return i
            case .notZstd: return bytes.count
            case .skip(let remaining, let then):
                let n = min(remaining, bytes.count - i)
                i += n
                if n == remaining {
                    switch then {
                    case .frameEnd: state = .done
                    case .block(let checksum): state = .blockHeader(have: 0, value: 0, checksum: checksum)
                    }
                } else {
                    state = .skip(remaining: remaining - n, then: then)
                }
            default:
                step(bytes[i])
                i += 1
            }
        }
        return i
    }

    private mutating func step(_ b: UInt8) {
        switch state {
        case .magic(let have, let value):
            let v = value | UInt32(b) << (8 * UInt32(have))
            if have < 3 {
                state = .magic(have: have + 1, value: v)
            } else {
                state = v == 0xFD2F_B528 ? .frameHeader(descriptor: nil, remaining: 0, checksum: false) : .notZstd
            }
        case .frameHeader(let descriptor, let remaining, let checksum):
            if descriptor == nil {
                let fcsFlag = Int(b >> 6), single = b & 0x20 != 0, dictFlag = Int(b & 3)
                // A reserved bit set: not a frame libzstd decodes either; let it report that.
                if b & 0x08 != 0 {
                    state = .notZstd
                    return
                }
                let fcs = [single ? 1 : 0, 2, 4, 8][fcsFlag]
                let n = (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] + fcs
                state = n == 0 ? .blockHeader(have: 0, value: 0, checksum: b & 0x04 != 0) : .frameHeader(descriptor: b, remaining: n, checksum: b & 0x04 != 0)
            } else if remaining > 1 {
                state = .frameHeader(descriptor: descriptor, remaining: remaining - 1, checksum: checksum)
            } else {
                state = .blockHeader(have: 0, value: 0, checksum: checksum)
            }
        case .blockHeader(let have, let value, let checksum):
            let v = value | UInt32(b) << (8 * UInt32(have))
            if have < 2 {
                state = .blockHeader(have: have + 1, value: v, checksum: checksum)
                return
            }
            let last = v & 1 != 0, type = (v >> 1) & 3, size = Int(v >> 3)
            if type == 3 {
                state = .notZstd
                return
            }
            let body = (type == 1 ? 1 : size) + (last && checksum ? 4 : 0)
            if body == 0 {
                state = last ? .done : .blockHeader(have: 0, value: 0, checksum: checksum)
            } else {
                state = .skip(remaining: body, then: last ? .frameEnd : .block(checksum: checksum))
            }
        case .skip, .done, .notZstd:
            break
        }
    }
}
