/// Follows the frame and block headers of a zstd stream as its compressed bytes go by, without
/// decoding anything, so a reader knows exactly where the last complete frame ended. libarchive
/// reports garbage after a frame as a decoding error and may drop the output decoded just before
/// it; the walker tells that case ("data after the compressed stream") apart from a corrupt frame.
struct ZstdFrameWalker {
    private enum State {
        case magic(have: Int, value: UInt32)
        case frameHeader(descriptor: UInt8?, remaining: Int, checksum: Bool)
        case skippableSize(have: Int, value: UInt32)
        case skip(remaining: Int, then: After)
        case blockHeader(have: Int, value: UInt32, checksum: Bool)
        case invalid
    }

    private enum After { case frameEnd, block(checksum: Bool) }

    private var state = State.magic(have: 0, value: 0)
    /// Bytes seen so far.
    private(set) var offset: Int64 = 0
    /// Offset just after the last complete frame.
    private(set) var lastFrameEnd: Int64 = 0
    /// False once the bytes stopped looking like zstd frames.
    var isValid: Bool { if case .invalid = state { return false } else { return true } }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            switch state {
            case .invalid:
                return
            case .skip(let remaining, let then):
                let n = min(remaining, bytes.count - i)
                i += n
                offset += Int64(n)
                if n == remaining {
                    switch then {
                    case .frameEnd:
                        lastFrameEnd = offset
                        state = .magic(have: 0, value: 0)
                    case .block(let checksum):
                        state = .blockHeader(have: 0, value: 0, checksum: checksum)
                    }
                } else {
                    state = .skip(remaining: remaining - n, then: then)
                }
                continue
            default:
                break
            }
            let b = bytes[i]
            i += 1
            offset += 1
            step(b)
        }
    }

    private mutating func step(_ b: UInt8) {
        switch state {
        case .magic(let have, let value):
            let v = value | UInt32(b) << (8 * UInt32(have))
            if have < 3 {
                state = .magic(have: have + 1, value: v)
            } else if v == 0xFD2F_B528 {
                state = .frameHeader(descriptor: nil, remaining: 0, checksum: false)
            } else if v & 0xFFFF_FFF0 == 0x184D_2A50 {
                state = .skippableSize(have: 0, value: 0)
            } else {
                state = .invalid
            }
        case .frameHeader(let descriptor, let remaining, let checksum):
            if descriptor == nil {
                let fcsFlag = Int(b >> 6), single = b & 0x20 != 0, dictFlag = Int(b & 3)
                if b & 0x08 != 0 {
                    state = .invalid
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
        case .skippableSize(let have, let value):
            let v = value | UInt32(b) << (8 * UInt32(have))
            if have < 3 {
                state = .skippableSize(have: have + 1, value: v)
            } else if v == 0 {
                lastFrameEnd = offset
                state = .magic(have: 0, value: 0)
            } else {
                state = .skip(remaining: Int(v), then: .frameEnd)
            }
        case .blockHeader(let have, let value, let checksum):
            let v = value | UInt32(b) << (8 * UInt32(have))
            if have < 2 {
                state = .blockHeader(have: have + 1, value: v, checksum: checksum)
                return
            }
            let last = v & 1 != 0, type = (v >> 1) & 3, size = Int(v >> 3)
            if type == 3 {
                state = .invalid
                return
            }
            let body = type == 1 ? 1 : size
            let then: After = last ? .frameEnd : .block(checksum: checksum)
            if last && checksum {
                state = .skip(remaining: body + 4, then: .frameEnd)
            } else if body == 0 {
                if last {
                    lastFrameEnd = offset
                    state = .magic(have: 0, value: 0)
                } else {
                    state = .blockHeader(have: 0, value: 0, checksum: checksum)
                }
            } else {
                state = .skip(remaining: body, then: then)
            }
        case .skip, .invalid:
            break
        }
    }
}
