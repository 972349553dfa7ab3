/// Follows the frame and block headers of a zstd stream as its compressed bytes go by, without
/// decoding anything, to find where the stream of frames ends (docs/format.md, "The container"):
/// one or more zstd frames, with zero-filled skippable frames of at most 64 KiB (at most 16 of
/// them) allowed after the first. The reader hands libarchive exactly those frames: libarchive
/// would report bytes after them as a decoding error (dropping the output decoded just before
/// them). Whatever follows the last frame is the reader's to refuse, as trailing data, and a
/// skippable frame that carries anything but zeros is refused: nothing rides along unseen.
package struct ZstdFrameWalker {
    private enum State {
        /// Between frames (or at the start): the next 4 bytes are a frame magic, or the end.
        case boundary
        /// Inside a frame header after its magic: `descriptor` once read, the header bytes still
        /// to come, the window it asks for so far (from the window descriptor, or the content
        /// size of a single-segment frame, little-endian at `shift`).
        case frameHeader(descriptor: UInt8?, remaining: Int, checksum: Bool, window: UInt64, shift: UInt64)
        case skip(remaining: Int, then: After)
        case blockHeader(have: Int, value: UInt32, checksum: Bool)
        case skippableSize(have: Int, value: UInt32)
        case skippableBody(remaining: Int)
        /// Bytes follow the last frame that begin no frame: the stream ended before them.
        case trailing
        /// A skippable frame that is not zero padding.
        case failed(String)
        case notZstd
    }

    private enum After {
        case frameEnd
        case block(checksum: Bool)
    }

    /// The magic of a zstd frame and of the skippable frame Airlock pads with.
    static let frameMagic: UInt32 = 0xFD2F_B528
    static let skippableMagic: UInt32 = 0x184D_2A50
    /// Largest skippable frame content, and most skippable frames, a bundle may hold.
    package static let maxSkippableBytes = 64 << 10
    package static let maxSkippableFrames = 16
    /// Largest window a frame may ask the decoder for (docs/format.md, "The container"): what
    /// `airlock pack` writes at any level it offers (1 to 19: at most 2^23) and twice the head's.
    /// libzstd's own limit is 2^27, which a hostile bundle could make the verifier allocate and
    /// fill before any signature is checked; a frame that asks for more stops here, before its
    /// header is complete, so the decoder never allocates it.
    package static let maxWindowBytes: UInt64 = 8 << 20

    private var state = State.boundary
    /// Frames begun so far (zstd frames only).
    package private(set) var frames = 0
    private var skippable = 0

    /// True once bytes followed the last frame (the stream ended before them).
    package var trailing: Bool { if case .trailing = state { return true } else { return false } }
    /// Why the stream is refused, when a skippable frame broke the rules.
    package var failure: String? { if case .failed(let why) = state { return why } else { return nil } }
    /// True when nothing more may be given to the decoder.
    package var stopped: Bool { trailing || failure != nil }
    /// True when the stream does not start with a zstd frame: the walker stays out of the way.
    package var notZstd: Bool { if case .notZstd = state { return true } else { return false } }

    /// Feeds bytes; returns how many of them, from the start, belong to the stream: all of them
    /// inside a frame and for a stream that is not zstd; fewer when the stream ended before them
    /// (`trailing`), when a skippable frame broke the rules (`failure`), or when the last 1 to 3
    /// bytes begin a frame magic that is not complete yet: give those again, with what follows,
    /// in the next call. `atEOF`: nothing follows these bytes.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer, atEOF: Bool) -> Int {
        var i = 0
        while i < bytes.count {
            switch state {
            case .trailing, .failed: return i
            case .notZstd: return bytes.count
            case .boundary:
                guard bytes.count - i >= 4 else {
                    if atEOF { state = frames == 0 ? .notZstd : .trailing }
                    return atEOF && frames == 0 ? bytes.count : i
                }
                let magic = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
                if magic == Self.frameMagic {
                    frames += 1
                    state = .frameHeader(descriptor: nil, remaining: 0, checksum: false, window: 0, shift: 0)
                } else if frames == 0 {
                    state = .notZstd
                    return bytes.count
                } else if magic == Self.skippableMagic {
                    skippable += 1
                    if skippable > Self.maxSkippableFrames {
                        state = .failed("the bundle holds more than \(Self.maxSkippableFrames) skippable zstd frames")
                        return i
                    }
                    state = .skippableSize(have: 0, value: 0)
                } else {
                    state = .trailing
                    return i
                }
                i += 4
            case .skip(let remaining, let then):
                let n = min(remaining, bytes.count - i)
                i += n
                if n == remaining {
                    switch then {
                    case .frameEnd: state = .boundary
                    case .block(let checksum): state = .blockHeader(have: 0, value: 0, checksum: checksum)
                    }
                } else {
                    state = .skip(remaining: remaining - n, then: then)
                }
            case .skippableBody(let remaining):
                let n = min(remaining, bytes.count - i)
                if bytes[i..<i + n].contains(where: { $0 != 0 }) {
                    state = .failed("a skippable zstd frame in the bundle carries data; Airlock pads with zero bytes only")
                    return i
                }
                i += n
                state = n == remaining ? .boundary : .skippableBody(remaining: remaining - n)
            default:
                step(bytes[i])
                // A refused byte is not the decoder's: a frame header stays incomplete.
                if case .failed = state { return i }
                i += 1
            }
        }
        if atEOF, case .boundary = state, frames == 0 { state = .notZstd }
        return i
    }

    private mutating func step(_ b: UInt8) {
        switch state {
        case .skippableSize(let have, let value):
            let v = value | UInt32(b) << (8 * UInt32(have))
            if have < 3 {
                state = .skippableSize(have: have + 1, value: v)
            } else if v > Self.maxSkippableBytes {
                state = .failed("a skippable zstd frame in the bundle holds \(v) bytes, more than the \(Self.maxSkippableBytes) allowed")
            } else {
                state = v == 0 ? .boundary : .skippableBody(remaining: Int(v))
            }
        case .frameHeader(let descriptor, let remaining, let checksum, let window, let shift):
            guard let d = descriptor else {
                let fcsFlag = Int(b >> 6), single = b & 0x20 != 0, dictFlag = Int(b & 3)
                // A reserved bit set: not a frame libzstd decodes either; let it report that.
                if b & 0x08 != 0 {
                    state = .notZstd
                    return
                }
                let fcs = [single ? 1 : 0, 2, 4, 8][fcsFlag]
                let n = (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] + fcs
                state = .frameHeader(descriptor: b, remaining: n, checksum: b & 0x04 != 0, window: 0, shift: 0)
                return
            }
            let single = d & 0x20 != 0, fcsFlag = Int(d >> 6)
            let fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag]
            var window = window, shift = shift
            if !single && shift == 0 && remaining == 1 + [0, 1, 2, 4][Int(d & 3)] + fcsBytes {
                // The window descriptor: 2^(10 + exponent), plus eighths of it.
                let base = UInt64(1) << (10 + UInt64(b >> 3))
                window = base + base / 8 * UInt64(b & 7)
                shift = 64  // read; nothing more adds to it
            } else if single && remaining <= fcsBytes {
                // A single-segment frame's window is its content size (2 bytes: plus 256).
                window |= UInt64(b) << shift
                shift += 8
                if remaining == 1 && fcsBytes == 2 { window += 256 }
            }
            if window > Self.maxWindowBytes && (!single || remaining == 1) {
                state = .failed(
                    "a zstd frame of the bundle asks for a window of \(window) bytes, more than the \(Self.maxWindowBytes) a bundle may use")
                return
            }
            state =
                remaining > 1
                ? .frameHeader(descriptor: d, remaining: remaining - 1, checksum: checksum, window: window, shift: shift)
                : .blockHeader(have: 0, value: 0, checksum: checksum)
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
                state = last ? .boundary : .blockHeader(have: 0, value: 0, checksum: checksum)
            } else {
                state = .skip(remaining: body, then: last ? .frameEnd : .block(checksum: checksum))
            }
        default:
            break
        }
    }
}
