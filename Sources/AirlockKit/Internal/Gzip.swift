import AirlockFormat
import CZlib

#if canImport(Glibc)
import Glibc
#endif

/// gzip through zlib, for the recordings of `airlock serve`: each line is a gzip member of its
/// own, so that a file of them is what `zcat` reads as one text, a line written is complete
/// on its own, and a line a kill cut short spoils nothing before it.
enum Gzip {
    /// `bytes` as one gzip member.
    static func member(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var s = z_stream()
        guard airlock_deflate_init_gzip(&s, level) == Z_OK else { preconditionFailure("deflateInit2 failed: out of memory") }
        defer { deflateEnd(&s) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&s, uLong(bytes.count))) + 32)
        let written = bytes.withUnsafeBufferPointer { input -> Int in
            out.withUnsafeMutableBufferPointer { output -> Int in
                s.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                s.avail_in = uInt(input.count)
                s.next_out = output.baseAddress
                s.avail_out = uInt(output.count)
                let r = deflate(&s, Z_FINISH)
                precondition(r == Z_STREAM_END, "deflate did not finish in its bound: \(r)")
                return output.count - Int(s.avail_out)
            }
        }
        out.removeSubrange(written...)
        return out
    }

    /// Why a stream of gzip members could not be read to its end.
    enum Damage: Equatable {
        /// The last member stops short (a write a kill or a full disk cut): everything before it
        /// was read.
        case truncated
        /// Bytes that are not gzip, or a member whose checksum fails.
        case corrupt(String)
    }

    /// Reads the gzip members of the file `fd` from its start and hands each line (without its
    /// newline) to `line`, with its number (from 1), once the member that holds it has ended
    /// and its checksum matched, streaming: memory holds one chunk and one member's lines. A line longer than `maxLineBytes` is `corrupt`. Returns nil when the whole file
    /// was read, or the damage that stopped it, after every complete line before it.
    static func forEachLine(fd: Int32, maxLineBytes: Int, _ line: (Int, [UInt8]) throws -> Void) throws -> Damage? {
        var s = z_stream()
        guard airlock_inflate_init_gzip(&s) == Z_OK else { preconditionFailure("inflateInit2 failed: out of memory") }
        defer { inflateEnd(&s) }
        var input = [UInt8](repeating: 0, count: FileIO.readBufferSize(fd, from: 0))
        var output = [UInt8](repeating: 0, count: 1 << 18)
        var pending: [UInt8] = []
        /// Lines of the member being read, handed over when it ends whole.
        var held: [[UInt8]] = []
        var heldBytes = 0
        var number = 0
        var offset: off_t = 0
        var inMember = false
        while true {
            let n = input.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AirlockError.io(.readFailed, "cannot read a recording", errno: errno)
            }
            if n == 0 { break }
            offset += off_t(n)
            var used = 0
            var full = false
            // Until the chunk is used and inflate has nothing more to give for it.
            while used < n || full {
                var status: Int32 = Z_OK
                var produced = 0
                input.withUnsafeMutableBufferPointer { inp in
                    output.withUnsafeMutableBufferPointer { out in
                        s.next_in = inp.baseAddress! + used
                        s.avail_in = uInt(n - used)
                        s.next_out = out.baseAddress
                        s.avail_out = uInt(out.count)
                        status = inflate(&s, Z_NO_FLUSH)
                        used = n - Int(s.avail_in)
                        produced = out.count - Int(s.avail_out)
                    }
                }
                inMember = true
                full = produced == output.count
                for b in output[0..<produced] {
                    if b == 0x0A {
                        held.append(pending)
                        heldBytes += pending.count
                        pending.removeAll(keepingCapacity: true)
                    } else {
                        pending.append(b)
                    }
                    if pending.count + heldBytes > maxLineBytes { return .corrupt("line \(number + held.count + 1) is longer than \(maxLineBytes) bytes") }
                }
                switch status {
                case Z_STREAM_END:
                    inMember = false
                    full = false
                    inflateReset(&s)
                    for l in held {
                        number += 1
                        try line(number, l)
                    }
                    held.removeAll(keepingCapacity: true)
                    heldBytes = 0
                case Z_OK:
                    break
                case Z_BUF_ERROR:
                    full = false  // no progress possible without more input
                default:
                    let message = s.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    return .corrupt("after line \(number): \(message)")
                }
            }
        }
        if inMember { return .truncated }
        if !pending.isEmpty { return .truncated }
        return nil
    }
}
